"""The sandbox's HTTP face: CXone's auth, discovery and Agent API routes, plus the admin routes.

Faults, the journal, the body limit and the admin token live in a raw ASGI layer in front of the
whole FastAPI stack (see :meth:`SandboxApp.__call__`): a faulted request never reaches a route, so it
cannot change state, and only the outermost layer holds uvicorn's own ``send``, which is how a
connection is dropped. That layer reads every request's body, on every route, and refuses one longer
than ``max_body_bytes`` with ``413`` after reading at most that much (see
:mod:`cxone_provider.sandbox.settings`); the routes only see a body it has read. Admin routes
(``/_sandbox/…``) are neither faulted nor journaled; when an admin token is set they need it
(``Authorization: Bearer <token>``), all but the API docs, and without one they answer loopback
connections only (``cxone-sandbox`` refuses to bind beyond loopback without one). The malformed
answers (HTML, plain text, truncated, empty, huge and dripped bodies) are written here too, as raw
ASGI messages: FastAPI's responses would not let a body be cut short, streamed or trickled.

What NICE's published clients send is accepted as they send it: Agent API parameters in the query
string (the clients generated from NICE's OpenAPI specs) or in a JSON body (NICE's agent SDK, the Ruby
gem), the ``inContactAPI`` path prefix in any case, application credentials as HTTP Basic or as form
fields. A route that does not exist, including an unknown API version, answers ``404`` the way a
gateway does, ``{"message": "Not Found"}`` with no CXone ``error`` field; CXone's own 404s
(``InvalidAgentId``, ``InvalidAgentSession``) keep CXone's ``{"error", "error_description"}``.

The journal entry of a request (``GET /_sandbox/journal`` and
:meth:`cxone_provider.testing.SandboxServer.journal` return the same list of them)::

    {"seq": 7,                      # counts every request since the server started
     "t_start": 1.25, "t_end": 1.26, # seconds since the server started
     "method": "POST",
     "path": "/inContactAPI/services/v33.0/agent-sessions/join",   # as the client sent it
     "params": {"asAgentId": "1001"},  # the query string (values "<redacted>" on /auth/token)
     "body": {"sessionId": "sess-2001"},  # an Agent API call's JSON or form body; else null
     "body_fields": ["sessionId"],   # the names of the body's fields, on every route
     "client_auth": null,           # /auth/token: "basic" or "form" (how the application authenticated)
     "user_agent": "python-requests/2.32.3",
     "status": 202, "fault": null, "inflight": 1}

No value of a token request's body, no ``Authorization`` header, no issued token and not the admin
token (wherever a client put it: ``<redacted>``) ever reaches it. The journal is a ring of the
``journal_size`` most recent entries; ``GET /_sandbox/journal`` names in ``X-Sandbox-Journal-Dropped``
how many fell out since it was last cleared. An entry is kept as at most
:data:`~cxone_provider.sandbox.settings.JOURNAL_ENTRY_BYTES` of JSON: for a request that would take
more, the entry withholds its body, then its body's field names, query, User-Agent, and cuts its path,
until it fits, and names what it left out in an extra key, ``"withheld": ["body", …]``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_provider.sandbox.faults import FaultInjector, Faults
from cxone_provider.sandbox.settings import (
    JOURNAL_DROPPED_HEADER,
    JOURNAL_ENTRY_BYTES,
    JOURNAL_SIZE_HEADER,
    Settings,
    is_loopback,
)
from cxone_provider.sandbox.state import (
    SANDBOX_DOMAIN,
    SUPERVISE_ACTIONS,
    ApiError,
    SandboxState,
    iso_time,
    load_seed,
    parse_int,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.types import Message, Receive, Scope, Send

    # Writes one malformed answer and returns the status it sent.
    _Malformed = Callable[[Send, Receive, "_Asked"], Awaitable[int]]

API_PREFIX = "/inContactAPI/"
ADMIN_PREFIX = "/_sandbox/"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a credential
DISCOVERY_PATH = "/.well-known/cxone-configuration"
_AUTH_PATHS = (TOKEN_PATH, DISCOVERY_PATH)
#: The Agent API versions the sandbox serves, ``v1.0`` … ``v33.0`` (published clients use v8.0, v23.0
#: and v33.0); any other answers a gateway's 404, as a mistyped ``api_version`` would on a tenant.
KNOWN_API_VERSIONS: Final = frozenset(f"v{n}.0" for n in range(1, 34))
#: ``agents/states`` rows per page without ``top``, and the most a page holds whatever ``top`` asks
#: (the published spec gives neither number): a client must follow ``_links.next``.
DEFAULT_STATES_PAGE_SIZE: Final = 100
MAX_STATES_PAGE_SIZE: Final = 100
#: What a gateway answers for a route that does not exist: no CXone ``error`` field.
GATEWAY_NOT_FOUND: Final = {"message": "Not Found"}
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
# Where the ASGI layer keeps the path as the client spelled it (the routes see the canonical prefix).
_SENT_PATH = "cxone_sandbox.sent_path"

_FAULT_RESPONSES: dict[str, tuple[int, str, str]] = {
    "429_retry_after": (429, "TooManyRequests", "Rate limit exceeded, retry later"),
    "429": (429, "TooManyRequests", "Rate limit exceeded"),
    "503": (503, "ServiceUnavailable", "The service is temporarily unavailable"),
    "401": (401, "invalid_token", "The access token is invalid or has expired"),
}


_JOIN_SUFFIX = "/agent-sessions/join"
# nginx's own page, byte for byte: what a client meets when the proxy in front of the API fails.
_NGINX_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_DRIP_BODY: Final = b'{"sessionId":"drip"}'  # 20 bytes: enough to outlast any per-read timeout
_CHUNK_BYTES: Final = 64 * 1024


def _error(status: int, error: str, description: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


async def _send_error(
    send: Send, status: int, error: str, description: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> int:
    """Answer with CXone's error shape from the ASGI layer (before any route); return the status."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
    return status


async def _send_too_large(send: Send, limit: int) -> int:
    # The connection stays open: uvicorn reads and discards the rest of the body after the answer, so
    # a client still sending gets to read the 413 instead of a reset.
    return await _send_error(
        send, 413, "RequestEntityTooLarge", f"The request body is larger than the {limit} bytes this server accepts"
    )


def canonical_path(path: str) -> str:
    """``path`` with its ``inContactAPI`` prefix spelled as the routes spell it (NICE's SDK writes
    ``inContactAPI``, ``InContactAPI`` and ``incontactapi``: CXone does not mind the case)."""
    if path[: len(API_PREFIX)].lower() == API_PREFIX.lower():
        return API_PREFIX + path[len(API_PREFIX) :]
    return path


def parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """The fields of a request body: a JSON object, or form fields (``application/x-www-form-urlencoded``).

    Without a telling ``Content-Type`` a body starting with ``{`` is JSON, anything else a form.

    :raises ValueError: when the body is neither (invalid JSON, or JSON that is not an object).
    """
    if not raw.strip():
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if "json" in kind or (kind != "application/x-www-form-urlencoded" and raw.lstrip().startswith(b"{")):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
            raise ValueError("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the request body must be a JSON object")
        return {str(k): v for k, v in data.items()}
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def _wire(value: Any) -> str:
    """A JSON body value as the same parameter would read in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _fields_as_params(fields: Mapping[str, Any]) -> dict[str, str]:
    return {k: _wire(v) for k, v in fields.items() if v is not None}


def _declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or ``None`` (chunked, absent; uvicorn refuses a malformed one)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """Read the whole request body, unless it is longer than ``limit`` bytes; also say whether the
    client left before it was all sent.

    :return: the body, or ``None`` when it is too long: then at most ``limit`` bytes (plus the chunk
        that passed it, which uvicorn's flow control keeps to about 64 KiB) were read, and none at all
        when ``Content-Length`` announced more. HTTP framing ends a body at its ``Content-Length``,
        so a client that understates it cannot make this read more: the rest is no body, and uvicorn
        refuses it as a malformed next request.
    """
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        return None, False
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then goes on with the client's."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _client_auth(authorization: str, fields: Mapping[str, Any]) -> str | None:
    """How a token request's application authenticated: ``"basic"``, ``"form"`` or ``None``."""
    if authorization.partition(" ")[0].lower() == "basic":
        return "basic"
    return "form" if "client_id" in fields else None


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
        scope = {**scope, "path": path, _SENT_PATH: sent_path}
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
            read, gone = await _read_body(scope, receive, limit)
            if read is None:
                # Refused before faults, as a gateway refuses it before the service sees it.
                entry["status"] = await _send_too_large(send, limit)
                return
            raw = read
            try:
                fields = parse_body(raw, headers.get("content-type", ""))
            except ValueError:
                fields = {}  # the route answers 400; the journal has no field to show
            entry["body_fields"] = sorted(fields)
            in_api = path.startswith(API_PREFIX)
            if in_api:
                entry["body"] = fields or None
            elif path == TOKEN_PATH:
                entry["client_auth"] = _client_auth(headers.get("authorization", ""), fields)
            if gone:
                return
            receive = _replaying(raw, receive)
            faults = sb.injector.faults
            in_auth = path in _AUTH_PATHS
            in_scope = in_api or (in_auth and faults.apply_to_auth)
            if faults.path_filter is not None:
                in_scope = in_scope and faults.path_filter in path
            decision = sb.injector.decide(random_faults=in_scope, latency=in_api or in_auth)
            entry["fault"] = decision.kind
            if decision.delay_s > 0:
                # asyncio.sleep, not time.sleep: concurrent requests must overlap, as on a real network.
                await asyncio.sleep(decision.delay_s)
            if decision.kind == "drop":
                await _drop_connection(send)
                return
            if decision.kind in _FAULT_RESPONSES:
                entry["status"] = await self._send_fault(decision.kind, send)
                return
            if decision.kind in _MALFORMED:
                malformed = _MALFORMED[decision.kind]
                params = {**(_fields_as_params(fields) if in_api else {}), **query}
                asked = _Asked(path, params, faults, sb.stopping)
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
            await _send_error(send, status, error, description, challenge)
            return
        raw, _ = await _read_body(scope, receive, sb.settings.max_body_bytes)
        if raw is None:
            await _send_too_large(send, sb.settings.max_body_bytes)
            return
        await super().__call__(scope, _replaying(raw, receive), send)

    async def _send_fault(self, kind: str, send: Send) -> int:
        status, error, description = _FAULT_RESPONSES[kind]
        headers = []
        if kind == "429_retry_after":
            headers.append((b"retry-after", str(self.sandbox.injector.faults.retry_after_s).encode()))
        return await _send_error(send, status, error, description, headers)


async def _drop_connection(send: Send) -> None:
    """Abort the TCP connection so the client gets no response bytes at all.

    Under uvicorn, the outermost ``send`` is ``RequestResponseCycle.send``, whose instance holds the
    asyncio transport. Elsewhere (an in-process test client) there is no socket to drop, so raise.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox fault: connection dropped")
    transport.abort()
    # abort() reports connection_lost on the next loop turns; wait for it, or uvicorn would answer
    # "returned without starting response" with a 500 on a dead socket.
    for _ in range(10):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


# ------------------------------------------------------------------------------------ malformed answers


@dataclass(frozen=True)
class _Asked:
    """What a malformed answer may depend on: the request, and the faults it was decided under."""

    path: str
    params: Mapping[str, str]
    faults: Faults
    stopping: asyncio.Event

    @property
    def is_join(self) -> bool:
        return self.path.endswith(_JOIN_SUFFIX)


def _headers(content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(length).encode())]


async def _send_whole(send: Send, status: int, content_type: bytes, body: bytes) -> int:
    await send({"type": "http.response.start", "status": status, "headers": _headers(content_type, len(body))})
    await send({"type": "http.response.body", "body": body})
    return status


async def _html(send: Send, receive: Receive, asked: _Asked) -> int:
    return await _send_whole(send, 502, b"text/html", _NGINX_502)


async def _non_json(send: Send, receive: Receive, asked: _Asked) -> int:
    return await _send_whole(send, 200, b"text/plain", b"OK")


async def _truncated_json(send: Send, receive: Receive, asked: _Asked) -> int:
    session_id = asked.params.get("sessionId") or "sess-2001"
    whole = json.dumps({"sessionId": session_id})
    # Cut inside the value: never valid JSON, yet it starts like the real answer.
    cut = whole[: len(whole) - max(3, len(session_id) // 2)]
    return await _send_whole(send, 200, b"application/json", cut.encode())


async def _no_session_id(send: Send, receive: Receive, asked: _Asked) -> int:
    return await _send_whole(send, 202 if asked.is_join else 200, b"application/json", b"{}")


async def _huge_body(send: Send, receive: Receive, asked: _Asked) -> int:
    # Well-formed (the join's carries its sessionId), only too big: a client that reads it all
    # succeeds, so only a cap on the body size tells the two apart.
    head = '{"padding": "'
    if asked.is_join and asked.params.get("sessionId"):
        head = '{"sessionId": ' + json.dumps(asked.params["sessionId"]) + ', "padding": "'
    tail = '"}'
    padding = max(0, asked.faults.huge_body_bytes - len(head) - len(tail))
    total = len(head) + padding + len(tail)
    await send({"type": "http.response.start", "status": 200, "headers": _headers(b"application/json", total)})
    await send({"type": "http.response.body", "body": head.encode(), "more_body": True})
    # In chunks: uvicorn's send waits for the socket to drain, so the server holds one chunk at a time.
    chunk = b"x" * min(padding, _CHUNK_BYTES)
    while padding > 0:
        size = min(padding, _CHUNK_BYTES)
        await send({"type": "http.response.body", "body": chunk[:size], "more_body": True})
        padding -= size
    await send({"type": "http.response.body", "body": tail.encode()})
    return 200


async def _slow_drip(send: Send, receive: Receive, asked: _Asked) -> int:
    headers = _headers(b"application/json", len(_DRIP_BODY))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    # Watch for the client leaving, so an abandoned drip stops at once rather than trickling into a
    # dead socket for the rest of its course (uvicorn accepts an unfinished body after a disconnect).
    gone = asyncio.ensure_future(_disconnected(receive))
    stopping = asyncio.ensure_future(asked.stopping.wait())
    interval = asked.faults.drip_interval_s
    try:
        for i in range(len(_DRIP_BODY)):
            done, _ = await asyncio.wait({gone, stopping}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                break
            if stopping in done:
                # Finish at once: an unfinished answer would make uvicorn wait, then log a cancelled task.
                await send({"type": "http.response.body", "body": _DRIP_BODY[i:]})
                break
            more = i + 1 < len(_DRIP_BODY)
            await send({"type": "http.response.body", "body": _DRIP_BODY[i : i + 1], "more_body": more})
    finally:
        gone.cancel()
        stopping.cancel()
    return 200


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (a request body still arriving is read and ignored)."""
    while (await receive())["type"] != "http.disconnect":
        pass


_MALFORMED: dict[str, _Malformed] = {
    "html": _html,
    "non_json": _non_json,
    "truncated_json": _truncated_json,
    "no_session_id": _no_session_id,
    "huge_body": _huge_body,
    "slow_drip": _slow_drip,
}


def _base_url(request: Request) -> str:
    """The sandbox's base URL as the client reached it (so discovery works behind any port)."""
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def _basic_client(authorization: str | None) -> tuple[str | None, str | None]:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        # Some clients wrap long base64 lines (Ruby's Base64.encode64): whitespace is not part of it.
        decoded = base64.b64decode("".join(value.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else (None, None)


async def _request_fields(request: Request, error: str) -> dict[str, str]:
    """The body's fields as strings (a JSON ``true`` reads ``"true"``, as in a query string).

    :param error: the ``error`` name of the 400 answered for a body that is neither JSON nor a form.
    """
    try:
        fields = parse_body(await request.body(), request.headers.get("content-type", ""))
    except ValueError as exc:
        raise ApiError(400, error, str(exc)) from None
    return _fields_as_params(fields)


async def _api_params(request: Request) -> dict[str, str]:
    """An Agent API call's parameters: the query string's, and a JSON or form body's.

    NICE's generated clients send them in the query, its agent SDK and the Ruby gem as a JSON body;
    a name in both is taken from the query.
    """
    params = await _request_fields(request, "InvalidRequest")
    params.update(request.query_params)
    return params


def _sent_url(request: Request, query: Mapping[str, str] | None = None) -> str:
    """The request's URL as the client spelled it, with ``query`` in place of its own when given."""
    path = request.scope.get(_SENT_PATH, request.url.path)
    qs = urlencode(dict(query)) if query is not None else request.url.query
    return f"{_base_url(request)}{path}" + (f"?{qs}" if qs else "")


def create_app(
    seed: Mapping[str, Any] | None = None,
    faults: Faults | Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
) -> SandboxApp:
    """Build the sandbox app.

    :param seed: the tenant's seed (see :mod:`cxone_provider.sandbox.state`); default: the shipped one.
    :param faults: a :class:`~cxone_provider.sandbox.faults.Faults` or a mapping of knobs; default: off.
    :param settings: a :class:`~cxone_provider.sandbox.settings.Settings` or a mapping of them
        (body limit, journal size, admin token); default: the defaults, no admin token.
    """
    initial = faults if isinstance(faults, Faults) else Faults.from_mapping(faults)
    server_settings = settings if isinstance(settings, Settings) else Settings.from_mapping(settings)
    app = SandboxApp(
        title="CXone sandbox",
        description="A local imitation of NICE CXone's auth and Agent API, for demos and tests.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.sandbox = Sandbox(seed, initial, server_settings)
    sb = app.sandbox

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.error, exc.description, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            # No such route (or method): the gateway answers, not CXone, so there is no `error` field.
            message = GATEWAY_NOT_FOUND["message"] if exc.status_code == 404 else "Method Not Allowed"
            return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)
        return _error(exc.status_code, "BadRequest", f"{exc.detail}: {request.method} {request.url.path}", exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "InternalServerError", f"{type(exc).__name__}: {exc}")

    def authorize(request: Request, version: str) -> None:
        if version not in KNOWN_API_VERSIONS:
            # Before the token: the gateway has no route for the version, CXone never sees the call.
            raise StarletteHTTPException(404, "Not Found")
        sb.state.check_token(request.headers.get("authorization"))

    # ------------------------------------------------------------------------------------ auth

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        fields = await _request_fields(request, "invalid_request")
        client_id, client_secret = _basic_client(request.headers.get("authorization"))
        if client_id is None:
            client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        elif "client_secret" in fields:
            raise ApiError(400, "invalid_request", "Send the client credentials as HTTP Basic or as fields, not both")
        elif fields.get("client_id", client_id) != client_id:
            raise ApiError(400, "invalid_request", "client_id differs from the HTTP Basic client")
        body = sb.state.issue_token(
            client_id=client_id,
            client_secret=client_secret,
            grant_type=fields.get("grant_type"),
            form=fields,
            lifetime_s=sb.injector.faults.token_lifetime_s,
            issuer=_base_url(request),
        )
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get(DISCOVERY_PATH)
    async def discovery(request: Request) -> JSONResponse:
        tenant = request.query_params.get("tenantId")
        if tenant != sb.state.tenant_id:
            shown = tenant if tenant else "(missing)"
            raise ApiError(404, "InvalidTenant", f"Tenant {shown} was not found")
        base = _base_url(request)
        return JSONResponse(
            {
                "private": False,
                "ui_endpoint": base,
                "auth_endpoint": base,
                "api_endpoint": base,
                "domain": SANDBOX_DOMAIN,
                "uhDomain": SANDBOX_DOMAIN,
                "area": "na1",
                "tenantId": tenant,
            }
        )

    # ------------------------------------------------------------------------------------ Agent API

    api = "/inContactAPI/services/{version}"

    # Declared before agents/{agentId}, which would otherwise swallow "states".
    @app.get(api + "/agents/states")
    async def agent_states(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        top = min(parse_int(q.get("top"), "top", minimum=1) or DEFAULT_STATES_PAGE_SIZE, MAX_STATES_PAGE_SIZE)
        skip = parse_int(q.get("skip"), "skip") or 0
        rows = sb.state.agent_states(
            updated_since=q.get("updatedSince"),
            req_bu_ids=q.get("reqBUIds"),
            fields=q.get("fields"),
            order_by=q.get("orderBy"),
            with_session_id=sb.injector.faults.states_session_id,
        )
        query = dict(request.query_params)

        def page(at: int) -> str:
            return _sent_url(request, {**query, "top": str(top), "skip": str(at)})

        return JSONResponse(
            {
                "totalRecords": len(rows),
                "_links": {
                    "self": _sent_url(request),
                    "next": page(skip + top) if skip + top < len(rows) else None,
                    "previous": page(max(0, skip - top)) if skip > 0 else None,
                },
                "lastPollTime": iso_time(datetime.now(UTC)),
                "agentStates": rows[skip : skip + top],
            }
        )

    @app.get(api + "/agents/{agent_id}")
    async def agent(request: Request, version: str, agent_id: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        return JSONResponse(sb.state.get_agent(agent_id, q.get("fields")))

    @app.post(api + "/agent-sessions")
    async def start_session(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        body = sb.state.start_session(
            q.get("asAgentId"),
            q.get("stationId"),
            q.get("stationPhoneNumber"),
            q.get("inactivityTimeout"),
            q.get("inactivityForceLogout"),
        )
        return JSONResponse(body, status_code=202)

    @app.post(api + "/agent-sessions/join")
    async def join(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        body = sb.state.join(q.get("asAgentId"), q.get("sessionId"), mode=sb.injector.faults.join_mode)
        return JSONResponse(body, status_code=202)

    @app.delete(api + "/agent-sessions/{session_id}")
    async def end_session(request: Request, version: str, session_id: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        # The options only matter to a real agent's softphone: the session ends either way; they are recorded.
        sb.state.end_session(session_id, q.get("forceLogoff"), q.get("endContacts"), q.get("ignorePersonalQueue"))
        return JSONResponse({}, status_code=202)

    @app.post(api + "/agent-sessions/{session_id}/{action}")
    async def supervise(request: Request, version: str, session_id: str, action: str) -> JSONResponse:
        if action not in SUPERVISE_ACTIONS:
            raise StarletteHTTPException(404, "Not Found")
        authorize(request, version)
        q = await _api_params(request)
        sb.state.supervise(session_id, action, q.get("targetAgentId"))
        return JSONResponse({}, status_code=202)

    # ------------------------------------------------------------------------------------ admin

    @app.get("/_sandbox/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(sb.injector.faults.to_dict())

    @app.put("/_sandbox/faults")
    async def put_faults(request: Request) -> JSONResponse:
        try:
            knobs = json.loads(await request.body() or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("the body must be a JSON object of fault knobs")
            sb.injector.configure(Faults.from_mapping(knobs))
        except ValueError as exc:
            return _error(400, "InvalidFaults", str(exc))
        return JSONResponse(sb.injector.faults.to_dict())

    @app.get("/_sandbox/journal")
    async def get_journal() -> Response:
        # The bare list: the same shape SandboxServer.journal() returns; the ring's facts in headers.
        headers = {JOURNAL_DROPPED_HEADER: str(sb.journal_dropped), JOURNAL_SIZE_HEADER: str(sb.journal.maxlen)}
        return Response(sb.journal_json(), media_type="application/json", headers=headers)

    @app.delete("/_sandbox/journal")
    async def clear_journal() -> JSONResponse:
        return JSONResponse({"cleared": sb.clear_journal()})

    @app.get("/_sandbox/state")
    async def get_state() -> JSONResponse:
        snapshot = sb.state.snapshot()
        snapshot["inflight"] = sb.inflight
        return JSONResponse(snapshot)

    @app.post("/_sandbox/reset")
    async def reset() -> JSONResponse:
        sb.reset()
        return JSONResponse({"reset": True, "faults": sb.injector.faults.to_dict()})

    return app
