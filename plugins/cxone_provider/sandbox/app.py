"""The sandbox's HTTP face: CXone's auth, discovery and Agent API routes, plus the admin routes.

Faults and the journal live in a raw ASGI layer in front of the whole FastAPI stack (see
:meth:`SandboxApp.__call__`): a faulted request never reaches a route, so it cannot change state,
and only the outermost layer holds uvicorn's own ``send``, which is how a connection is dropped.
Admin routes (``/_sandbox/…``) are neither faulted, journaled nor authenticated. The malformed
answers (HTML, plain text, truncated, empty, huge and dripped bodies) are written here too, as raw
ASGI messages: FastAPI's responses would not let a body be cut short, streamed or trickled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_provider.sandbox.faults import FaultInjector, Faults
from cxone_provider.sandbox.state import SUPERVISE_ACTIONS, ApiError, SandboxState, load_seed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from starlette.types import Message, Receive, Scope, Send

    # Writes one malformed answer and returns the status it sent.
    _Malformed = Callable[[Send, Receive, "_Asked"], Awaitable[int]]

API_PREFIX = "/inContactAPI/"
ADMIN_PREFIX = "/_sandbox/"
_AUTH_PATHS = ("/auth/token", "/.well-known/cxone-configuration")
_VERSION = re.compile(r"^v\d+\.\d+$")

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


class Sandbox:
    """Everything the routes share: seed, state, faults, journal and the server clock.

    :param seed: the seed; ``None`` uses the shipped default seed.
    :param faults: the faults the server starts with, and returns to on reset.
    """

    def __init__(self, seed: Mapping[str, Any] | None, faults: Faults) -> None:
        self.seed: Mapping[str, Any] = seed if seed is not None else load_seed(None)
        self.initial_faults = faults
        self.state = SandboxState(self.seed)
        self.injector = FaultInjector(faults)
        self.journal: list[dict[str, Any]] = []
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
        self.journal.clear()

    def clock(self) -> float:
        """Seconds since the server started (monotonic)."""
        return round(time.monotonic() - self.started, 6)


class SandboxApp(FastAPI):
    """The FastAPI app with the fault and journal layer in front of its whole middleware stack."""

    sandbox: Sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX):
            await super().__call__(scope, receive, send)
            return
        sb = self.sandbox
        sb.seq += 1
        sb.inflight += 1
        entry: dict[str, Any] = {
            "seq": sb.seq,
            "t_start": sb.clock(),
            "t_end": None,
            "method": scope["method"],
            "path": path,
            "params": dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
            "status": None,
            "fault": None,
            "inflight": sb.inflight,
        }
        try:
            faults = sb.injector.faults
            in_api = path.startswith(API_PREFIX)
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
                asked = _Asked(path, entry["params"], faults, sb.stopping)
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
            sb.journal.append(entry)

    async def _send_fault(self, kind: str, send: Send) -> int:
        status, error, description = _FAULT_RESPONSES[kind]
        body = json.dumps({"error": error, "error_description": description}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if kind == "429_retry_after":
            headers.append((b"retry-after", str(self.sandbox.injector.faults.retry_after_s).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status


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
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else (None, None)


async def _token_form(request: Request) -> dict[str, str]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "invalid_request", "The request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request", "The request body must be a JSON object")
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def create_app(seed: Mapping[str, Any] | None = None, faults: Faults | Mapping[str, Any] | None = None) -> SandboxApp:
    """Build the sandbox app.

    :param seed: the tenant's seed (see :mod:`cxone_provider.sandbox.state`); default: the shipped one.
    :param faults: a :class:`~cxone_provider.sandbox.faults.Faults` or a mapping of knobs; default: off.
    """
    initial = faults if isinstance(faults, Faults) else Faults.from_mapping(faults)
    app = SandboxApp(
        title="CXone sandbox",
        description="A local imitation of NICE CXone's auth and Agent API, for demos and tests.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.sandbox = Sandbox(seed, initial)
    sb = app.sandbox

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.error, exc.description, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
        description = f"{exc.detail}: {request.method} {request.url.path}"
        return _error(exc.status_code, name, description, exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "InternalServerError", f"{type(exc).__name__}: {exc}")

    def authorize(request: Request, version: str) -> None:
        if not _VERSION.match(version):
            raise ApiError(404, "UnknownApiVersion", f"Unknown API version {version!r}")
        sb.state.check_token(request.headers.get("authorization"))

    # ------------------------------------------------------------------------------------ auth

    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        client_id, client_secret = _basic_client(request.headers.get("authorization"))
        form = await _token_form(request)
        body = sb.state.issue_token(
            client_id=client_id,
            client_secret=client_secret,
            grant_type=form.get("grant_type"),
            username=form.get("username"),
            password=form.get("password"),
            lifetime_s=sb.injector.faults.token_lifetime_s,
            issuer=_base_url(request),
        )
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/.well-known/cxone-configuration")
    async def discovery(request: Request) -> JSONResponse:
        tenant = request.query_params.get("tenantId")
        if tenant != sb.state.tenant_id:
            shown = tenant if tenant else "(missing)"
            raise ApiError(404, "InvalidTenant", f"Tenant {shown} was not found")
        return JSONResponse(
            {"api_endpoint": _base_url(request), "area": "na1", "domain": "sandbox.local", "tenantId": tenant}
        )

    # ------------------------------------------------------------------------------------ Agent API

    api = "/inContactAPI/services/{version}"

    # Declared before agents/{agentId}, which would otherwise swallow "states".
    @app.get(api + "/agents/states")
    async def agent_states(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        return JSONResponse(sb.state.agent_states())

    @app.get(api + "/agents/{agent_id}")
    async def agent(request: Request, version: str, agent_id: str) -> JSONResponse:
        authorize(request, version)
        return JSONResponse(sb.state.get_agent(agent_id))

    @app.post(api + "/agent-sessions")
    async def start_session(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = request.query_params
        body = sb.state.start_session(q.get("asAgentId"), q.get("stationId"), q.get("stationPhoneNumber"))
        return JSONResponse(body, status_code=202)

    @app.post(api + "/agent-sessions/join")
    async def join(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = request.query_params
        return JSONResponse(sb.state.join(q.get("asAgentId"), q.get("sessionId")), status_code=202)

    @app.delete(api + "/agent-sessions/{session_id}")
    async def end_session(request: Request, version: str, session_id: str) -> JSONResponse:
        authorize(request, version)
        # forceLogoff only matters to a real agent's softphone; the session ends either way.
        sb.state.end_session(session_id)
        return JSONResponse({}, status_code=202)

    @app.post(api + "/agent-sessions/{session_id}/{action}")
    async def supervise(request: Request, version: str, session_id: str, action: str) -> JSONResponse:
        if action not in SUPERVISE_ACTIONS:
            raise StarletteHTTPException(404, "Not Found")
        authorize(request, version)
        sb.state.supervise(session_id, action, request.query_params.get("targetAgentId"))
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
    async def get_journal() -> JSONResponse:
        return JSONResponse({"entries": sb.journal})

    @app.delete("/_sandbox/journal")
    async def clear_journal() -> JSONResponse:
        cleared = len(sb.journal)
        sb.journal.clear()
        return JSONResponse({"cleared": cleared})

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
