"""A request as it reaches the sandbox: its path, its body read within a limit, its fields.

The raw ASGI layer (:mod:`cxone_sandbox.asgi`) reads every body through :func:`read_body`;
the routes parse it with :func:`parse_body`, whatever published client sent it (JSON or a form).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.types import Message, Receive, Scope

API_PREFIX = "/inContactAPI/"
ADMIN_PREFIX = "/_sandbox/"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a credential
DISCOVERY_PATH = "/.well-known/cxone-configuration"
OIDC_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/auth/jwks"
# Where NICE's SDK asks who a token's user is (on the ACD's API host).
WHOAMI_PATH = "/incontactauthorizationserver/token/whoami"
# Where the ASGI layer keeps the path as the client spelled it (the routes see the canonical prefix).
SENT_PATH = "cxone_sandbox.sent_path"
#: The auth host's routes: faulted only with ``apply_to_auth``.
AUTH_PATHS = (TOKEN_PATH, DISCOVERY_PATH, OIDC_PATH, JWKS_PATH, WHOAMI_PATH)


def canonical_path(path: str) -> str:
    """``path`` with its ``inContactAPI`` prefix spelled as the routes spell it (NICE's SDK writes
    ``inContactAPI``, ``InContactAPI`` and ``incontactapi``: CXone does not mind the case)."""
    if path[: len(API_PREFIX)].lower() == API_PREFIX.lower():
        return API_PREFIX + path[len(API_PREFIX) :]
    return path


def parse_body(raw: bytes, content_type: str, *, trust_label: bool = True) -> dict[str, Any]:
    """The fields of a request body: a JSON object, or form fields (``application/x-www-form-urlencoded``).

    Without a telling ``Content-Type`` a body starting with ``{`` is JSON, anything else a form.

    :param trust_label: ``False`` decides by the body alone, whatever its ``Content-Type`` says: a
        body starting with ``{`` is JSON, anything else a form. The token endpoint reads bodies so,
        because NICE's SDK sends its refresh and token-exchange forms labelled ``application/json``.
    :raises ValueError: when the body is neither (invalid JSON, or JSON that is not an object).
    """
    if not raw.strip():
        return {}
    kind = content_type.split(";", 1)[0].strip().lower() if trust_label else ""
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


def fields_as_params(fields: Mapping[str, Any]) -> dict[str, str]:
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


async def read_body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
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


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then goes on with the client's."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def client_auth(authorization: str, fields: Mapping[str, Any]) -> str | None:
    """How a token request's application authenticated: ``"basic"``, ``"form"`` or ``None``."""
    if authorization.partition(" ")[0].lower() == "basic":
        return "basic"
    return "form" if "client_id" in fields else None
