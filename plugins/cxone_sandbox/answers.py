"""The answers a fault gives in the API's place: CXone's error shapes, a dropped connection, and the
malformed ones (HTML, plain text, truncated, empty, huge and dripped bodies).

They are written as raw ASGI messages, before any route: FastAPI's responses would not let a body be
cut short, streamed or trickled, and only the outermost ``send`` can drop the connection.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fastapi.responses import JSONResponse, Response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.types import Receive, Send

    from cxone_sandbox.faults import Faults

    # Writes one malformed answer and returns the status it sent.
    _Malformed = Callable[[Send, Receive, "Asked"], Awaitable[int]]

FAULT_RESPONSES: dict[str, tuple[int, str, str]] = {
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


#: The response header in which CXone's Agent API names an error (it publishes no error body).
STATUS_DESCRIPTION_HEADER: Final = "icStatusDescription"


def error_response(status: int, error: str, description: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def agent_error_headers(faults: Faults, error: str, sentence: str) -> dict[str, str]:
    """The ``icStatusDescription`` header of an Agent API error, as ``status_description`` says."""
    if faults.status_description == "none":
        return {}
    text = error if faults.status_description == "name" else sentence
    # A header value is latin-1 on the wire, one line: anything else would break the answer.
    return {STATUS_DESCRIPTION_HEADER: " ".join(text.encode("latin-1", "replace").decode("latin-1").split())}


def agent_error_response(
    faults: Faults,
    status: int,
    error: str,
    description: str,
    headers: Mapping[str, str] | None = None,
    *,
    sentence: str | None = None,
) -> Response:
    """An Agent API error as NICE publishes it: the status, the ``icStatusDescription`` header and no
    body; with ``error_body="legacy"`` (an extension) also the old ``{"error", "error_description"}``.

    :param sentence: the published wording (``status_description="sentence"``); default: ``description``.
    """
    all_headers = {**(headers or {}), **agent_error_headers(faults, error, sentence or description)}
    if faults.error_body == "legacy":
        return error_response(status, error, description, all_headers)
    return Response(status_code=status, headers=all_headers)


async def send_error(
    send: Send,
    status: int,
    error: str,
    description: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    agent_api: Faults | None = None,
) -> int:
    """Answer with CXone's error shape from the ASGI layer (before any route); return the status.

    :param agent_api: for an Agent API path, the faults in effect: the answer then takes the Agent
        API's shape (``icStatusDescription``, a body only with ``error_body="legacy"``).
    """
    if agent_api is not None:
        named = agent_error_headers(agent_api, error, description)
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in named.items()]
        if agent_api.error_body != "legacy":
            head = [(b"content-length", b"0"), *headers, *extra]
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": b""})
            return status
        headers = [*headers, *extra]
    body = json.dumps({"error": error, "error_description": description}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
    return status


async def send_too_large(send: Send, limit: int) -> int:
    # The connection stays open: uvicorn reads and discards the rest of the body after the answer, so
    # a client still sending gets to read the 413 instead of a reset.
    return await send_error(
        send, 413, "RequestEntityTooLarge", f"The request body is larger than the {limit} bytes this server accepts"
    )


async def drop_connection(send: Send) -> None:
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


@dataclass(frozen=True)
class Asked:
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


async def _html(send: Send, receive: Receive, asked: Asked) -> int:
    return await _send_whole(send, 502, b"text/html", _NGINX_502)


async def _non_json(send: Send, receive: Receive, asked: Asked) -> int:
    return await _send_whole(send, 200, b"text/plain", b"OK")


async def _truncated_json(send: Send, receive: Receive, asked: Asked) -> int:
    session_id = asked.params.get("sessionId") or "sess-2001"
    whole = json.dumps({"sessionId": session_id})
    # Cut inside the value: never valid JSON, yet it starts like the real answer.
    cut = whole[: len(whole) - max(3, len(session_id) // 2)]
    return await _send_whole(send, 200, b"application/json", cut.encode())


async def _no_session_id(send: Send, receive: Receive, asked: Asked) -> int:
    return await _send_whole(send, 202 if asked.is_join else 200, b"application/json", b"{}")


async def _huge_body(send: Send, receive: Receive, asked: Asked) -> int:
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


async def _slow_drip(send: Send, receive: Receive, asked: Asked) -> int:
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


MALFORMED: dict[str, _Malformed] = {
    "html": _html,
    "non_json": _non_json,
    "truncated_json": _truncated_json,
    "no_session_id": _no_session_id,
    "huge_body": _huge_body,
    "slow_drip": _slow_drip,
}
