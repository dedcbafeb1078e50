"""The raw ASGI layer in front of the whole FastAPI stack: faults, the journal, the body limit and
the admin token (see :mod:`cxone_sandbox.app` for what it means to a client).

A faulted request never reaches a route, so it cannot change state, and only this outermost layer
holds uvicorn's own ``send``, which is how a connection is dropped. It reads every request's body, on
every route, and refuses one longer than ``max_body_bytes`` with ``413`` after reading at most that
much; the routes only see a body it has read. Admin routes (``/_sandbox/…``) are neither faulted nor
journaled; when an admin token is set they need it, all but the API docs, and without one they answer
loopback connections only.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI

from cxone_sandbox.answers import (
    FAULT_RESPONSES,
    MALFORMED,
    Asked,
    drop_connection,
    send_error,
    send_too_large,
)
from cxone_sandbox.faults import FaultInjector, Faults
from cxone_sandbox.incoming import (
    ADMIN_PREFIX,
    API_PREFIX,
    AUTH_PATHS,
    SENT_PATH,
    TOKEN_PATH,
    canonical_path,
    client_auth,
    fields_as_params,
    parse_body,
    read_body,
    replaying,
)
from cxone_sandbox.ratelimit import TokenBucket, retry_after_header
from cxone_sandbox.seed import load_seed
from cxone_sandbox.settings import JOURNAL_ENTRY_BYTES, Settings, is_loopback
from cxone_sandbox.state import SandboxState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.types import Message, Receive, Scope, Send

_REDACTED = "<redacted>"
# Admin routes that show nothing of the sandbox's state: the API docs, which a browser opens without a token.
_OPEN_ADMIN_PATHS: Final = frozenset({f"{ADMIN_PREFIX}docs", f"{ADMIN_PREFIX}openapi.json"})
# What an entry over JOURNAL_ENTRY_BYTES gives up, in this order, and what stands in for it; the
# method and path are cut to _CUT_CHARS characters rather than dropped.
_SHRINK_ORDER: Final[tuple[tuple[str, Any], ...]] = (
    ("body", None),
    ("body_fields", []),
    ("params", {}),
    ("user_agent", None),
    ("method", None),
    ("path", None),
)
_CUT_CHARS: Final = 256


class Sandbox:
    """Everything the routes share: seed, state, faults, journal and the server clock.

    :param seed: the seed; ``None`` uses the shipped default seed.
    :param faults: the faults the server starts with, and returns to on reset.
    :param settings: the server settings (body limit, journal size, admin token).
    """

    def __init__(self, seed: Mapping[str, Any] | None, faults: Faults, settings: Settings | None = None) -> None:
        self.seed: Mapping[str, Any] = seed if seed is not None else load_seed(None)
        self.initial_faults = faults
        self.settings = settings or Settings()
        self.state = SandboxState(self.seed)
        self.injector = FaultInjector(faults)
        self._bucket: tuple[tuple[float | None, int | None], TokenBucket | None] = ((None, None), None)
        #: The journal's entries, each as the JSON it is served as: compact, and its size is its cost.
        self.journal: deque[bytes] = deque(maxlen=self.settings.journal_size)
        #: Entries the ring dropped since the journal was last cleared.
        self.journal_dropped = 0
        self._admin_token = None if self.settings.admin_token is None else self.settings.admin_token.encode()
        self.started = time.monotonic()
        self.seq = 0
        self.inflight = 0
        # Set when the server shuts down, so that a held dripping answer does not stall the stop.
        self.stopping = asyncio.Event()

    def reset(self) -> None:
        """Back to the seed state and the starting faults, with an empty journal.

        ``seq`` keeps counting, so entries from before and after a reset are never confused.
        """
        self.state = SandboxState(self.seed)
        self.injector.configure(self.initial_faults)
        self.clear_journal()

    def throttle(self) -> float:
        """Whether the tenant's rate limit lets an Agent API request through: ``0.0``, or the seconds
        until it would. The bucket is rebuilt (full) when the limit's settings change."""
        faults = self.injector.faults
        key = (faults.rate_limit_rps, faults.rate_limit_burst)
        if self._bucket[0] != key:
            rate = faults.rate_limit_rps
            self._bucket = (key, TokenBucket(rate, faults.rate_limit_burst) if rate else None)
        bucket = self._bucket[1]
        return bucket.take() if bucket is not None else 0.0

    def clock(self) -> float:
        """Seconds since the server started (monotonic)."""
        return round(time.monotonic() - self.started, 6)

    def clear_journal(self) -> int:
        """Empty the journal and its count of dropped entries; return how many entries it held."""
        held = len(self.journal)
        self.journal.clear()
        self.journal_dropped = 0
        return held

    def record(self, entry: dict[str, Any]) -> None:
        """Add a finished request's entry to the journal, dropping the oldest when the ring is full."""
        data = self._entry_json(entry)
        if len(self.journal) == self.journal.maxlen:
            self.journal_dropped += 1
        self.journal.append(data)

    def journal_json(self) -> bytes:
        """The journal as the JSON list ``GET /_sandbox/journal`` answers, oldest first."""
        return b"[" + b",".join(self.journal) + b"]"

    def _entry_json(self, entry: dict[str, Any]) -> bytes:
        """``entry`` as JSON of at most about ``JOURNAL_ENTRY_BYTES``, without the admin token."""
        withheld: list[str] = []
        data = _dumps(entry)
        if self._admin_token is not None and (data is None or self._admin_token in data):
            withheld += _redact(entry, self._admin_token.decode())
            data = _dumps(entry)
        # Largest and least telling first; the path goes last, and only cut: it says what the request was.
        for name, empty in _SHRINK_ORDER:
            if data is not None and len(data) <= JOURNAL_ENTRY_BYTES:
                break
            value = entry[name]
            if name in ("method", "path"):
                if len(value) <= _CUT_CHARS:
                    continue
                entry[name] = value[:_CUT_CHARS] + "…"
            elif value == empty:
                continue
            else:
                entry[name] = copy.copy(empty)  # the stand-ins of _SHRINK_ORDER are shared
            withheld.append(name)
            data = _dumps(entry)
        if withheld:
            entry["withheld"] = withheld
            data = _dumps(entry)
        return data or b"{}"

    def admin_refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """Why an admin request may not be served, as ``(status, error, description)``; ``None`` if it may.

        With an admin token, every admin route but the docs needs ``Authorization: Bearer <token>``
        (compared in constant time). Without one, admin routes answer loopback connections only: an
        app served beyond loopback by other means than ``cxone-sandbox`` fails closed.
        """
        if scope.get("path") in _OPEN_ADMIN_PATHS:
            return None
        foreign = foreign_browser_request(scope, token_set=self._admin_token is not None)
        if foreign is not None:
            return (403, "AdminForbidden", foreign)
        if self._admin_token is None:
            server = scope.get("server")
            if server is None or is_loopback(str(server[0])):
                return None
            return (
                403,
                "AdminForbidden",
                "This sandbox has no admin token, so its admin routes answer loopback connections only",
            )
        authorization = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), b"")
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._admin_token):
            return None
        return (
            401,
            "AdminTokenRequired",
            "The sandbox's admin routes need its admin token: Authorization: Bearer <token>",
        )


def foreign_browser_request(scope: Scope, *, token_set: bool) -> str | None:
    """Why an admin request looks sent by a web page of another site, or ``None``.

    A page on any site can make a browser send requests to ``127.0.0.1``; with DNS rebinding it can
    even read the answers, under its own host name. So a cross-site ``Origin`` is refused always (also
    the ``null`` of a sandboxed page), and without an admin token the ``Host`` must name loopback or the
    address the server is bound to: a rebinding page's request carries its own host name there.
    """
    headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get(b"host", "").strip().lower()
    origin = headers.get(b"origin")
    if origin is not None:
        parts = urlsplit(origin.strip().lower())
        if not host or parts.netloc != host or parts.scheme not in ("http", "https"):
            return f"The sandbox's admin routes refuse requests from another site (Origin {origin[:80]!r})"
    if token_set:
        return None  # served beyond loopback under any name; the token, which no other site has, decides
    server = scope.get("server")
    bound = str(server[0]).lower() if server else ""
    name = urlsplit(f"//{host}").hostname or ""
    # No Host at all is no browser's request (every browser sends one): HTTP/1.0 tools stay welcome.
    if host and not (is_loopback(name) or (bound and name == bound.strip("[]"))):
        return (
            f"The sandbox's admin routes answer requests for a loopback host only, not Host {host[:80]!r} "
            "(a web page may have renamed 127.0.0.1: DNS rebinding)"
        )
    return None


def _dumps(value: Any) -> bytes | None:
    """``value`` as compact JSON; ``None`` when it cannot be (a body holding ``NaN``, or nested too deep)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, RecursionError):
        return None


def _redact(entry: dict[str, Any], secret: str) -> list[str]:
    """Replace ``secret`` in an entry's strings by ``<redacted>``; withhold a body that holds it.

    :return: ``["body"]`` when the body was withheld, else ``[]``.
    """

    def clean(text: str) -> str:
        return text.replace(secret, _REDACTED)

    for name in ("method", "path", "user_agent"):
        if isinstance(entry[name], str):
            entry[name] = clean(entry[name])
    entry["params"] = {clean(k): clean(v) for k, v in entry["params"].items()}
    entry["body_fields"] = [clean(f) for f in entry["body_fields"]]
    if entry["body"] is None:
        return []
    body = _dumps(entry["body"])
    if body is not None and secret.encode() not in body:
        return []
    entry["body"] = None
    return ["body"]


class SandboxApp(FastAPI):
    """The FastAPI app with the fault and journal layer in front of its whole middleware stack."""

    sandbox: Sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent_path: str = scope.get("path", "")
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if sent_path.startswith(ADMIN_PREFIX):
            await self._serve_admin(scope, receive, send)
            return
        path = canonical_path(sent_path)
        scope = {**scope, "path": path, SENT_PATH: sent_path}
        sb = self.sandbox
        sb.seq += 1
        sb.inflight += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        entry: dict[str, Any] = {
            "seq": sb.seq,
            "t_start": sb.clock(),
            "t_end": None,
            "method": scope["method"],
            "path": sent_path,
            # A token request's query could only hold secrets (nobody should send them there): names only.
            "params": {k: _REDACTED for k in query} if path == TOKEN_PATH else query,
            "body": None,
            "body_fields": [],
            "client_auth": None,
            "user_agent": headers.get("user-agent"),
            "status": None,
            "fault": None,
            "inflight": sb.inflight,
        }
        try:
            # Read first, so that the journal holds the body even of a request a fault answers.
            limit = sb.settings.max_body_bytes
            read, gone = await read_body(scope, receive, limit)
            if read is None:
                # Refused before faults, as a gateway refuses it before the service sees it.
                entry["status"] = await send_too_large(send, limit)
                return
            raw = read
            try:
                # The token endpoint reads a body whatever its label (see the token route): so does the journal.
                fields = parse_body(raw, headers.get("content-type", ""), trust_label=path != TOKEN_PATH)
            except ValueError:
                fields = {}  # the route answers 400; the journal has no field to show
            entry["body_fields"] = sorted(fields)
            in_api = path.startswith(API_PREFIX)
            if in_api:
                entry["body"] = fields or None
            elif path == TOKEN_PATH:
                entry["client_auth"] = client_auth(headers.get("authorization", ""), fields)
            if gone:
                return
            receive = replaying(raw, receive)
            faults = sb.injector.faults
            in_auth = path in AUTH_PATHS
            in_scope = in_api or (in_auth and faults.apply_to_auth)
            if faults.path_filter is not None:
                in_scope = in_scope and faults.path_filter in path
            if in_api:
                wait_s = sb.throttle()
                if wait_s > 0:
                    # Over the tenant's budget: refused at once, as a gateway does, before any latency.
                    entry["fault"] = "rate_limit"
                    entry["status"] = await send_error(
                        send,
                        429,
                        "TooManyRequests",
                        "The tenant's API rate limit is exceeded",
                        [(b"retry-after", retry_after_header(wait_s).encode())],
                        agent_api=faults,
                    )
                    return
            decision = sb.injector.decide(random_faults=in_scope, latency=in_api or in_auth)
            entry["fault"] = decision.kind
            if decision.delay_s > 0:
                # asyncio.sleep, not time.sleep: concurrent requests must overlap, as on a real network.
                await asyncio.sleep(decision.delay_s)
            if decision.kind == "drop":
                await drop_connection(send)
                return
            if decision.kind in FAULT_RESPONSES:
                entry["status"] = await self._send_fault(decision.kind, send, faults if in_api else None)
                return
            if decision.kind in MALFORMED:
                malformed = MALFORMED[decision.kind]
                params = {**(fields_as_params(fields) if in_api else {}), **query}
                asked = Asked(path, params, faults, sb.stopping)
                entry["status"] = await malformed(send, receive, asked)
                return

            async def send_recording(message: Message) -> None:
                if message["type"] == "http.response.start":
                    entry["status"] = message["status"]
                await send(message)

            await super().__call__(scope, receive, send_recording)
        finally:
            sb.inflight -= 1
            entry["t_end"] = sb.clock()
            sb.record(entry)

    async def _serve_admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An admin request: the token first (a refused client gets no byte of its body read), then
        the body limit; never faulted, never journaled."""
        sb = self.sandbox
        refusal = sb.admin_refusal(scope)
        if refusal is not None:
            status, error, description = refusal
            challenge = [(b"www-authenticate", b'Bearer realm="cxone-sandbox admin"')] if status == 401 else []
            await send_error(send, status, error, description, challenge)
            return
        raw, _ = await read_body(scope, receive, sb.settings.max_body_bytes)
        if raw is None:
            await send_too_large(send, sb.settings.max_body_bytes)
            return
        await super().__call__(scope, replaying(raw, receive), send)

    async def _send_fault(self, kind: str, send: Send, agent_api: Faults | None) -> int:
        status, error, description = FAULT_RESPONSES[kind]
        headers = []
        if kind == "429_retry_after":
            headers.append((b"retry-after", str(self.sandbox.injector.faults.retry_after_s).encode()))
        return await send_error(send, status, error, description, headers, agent_api=agent_api)
