"""Replay: the sandbox serves a tenant's answers that ``cxone-doctor --record`` wrote (``--replay PATH``).

A record (format ``cxone-doctor-record/1``, described in ``docs/doctor.md``) holds the answers a real
tenant gave, redacted. Served back, they let tests run the provider against that tenant's shapes:

- ``POST /auth/token`` checks the sandbox seed's credentials (the connection ``cxone-sandbox`` prints)
  and issues working tokens, in the recorded answer's shape; its ``id_token`` carries the recorded
  (redacted) claims, unsigned. A recorded refusal is answered as recorded.
- discovery is answered as recorded whatever ``tenantId`` is asked (the record's tenant id is
  redacted), every recorded ``GET`` of the Agent API as recorded to a request with the same path
  (``inContactAPI`` and the version in any case) and query, and with a token this server issued.
- the record's ``{auth_host}`` and ``{api_host}`` placeholders become this server's address, so
  discovery and ``_links`` lead back here.
- anything else answers ``404`` (a ``GET`` not in the record) or ``501`` (any other call: a replay
  cannot change state), with a ``message`` naming the request and saying it is not in the record.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse, Response

from cxone_sandbox.incoming import API_PREFIX, DISCOVERY_PATH, TOKEN_PATH, fields_as_params, parse_body
from cxone_sandbox.params import ApiError

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from cxone_sandbox.asgi import SandboxApp

#: The one record format this module reads (written by :mod:`cxone_provider.doctor`).
RECORD_FORMAT: Final = "cxone-doctor-record/1"
PLACEHOLDERS: Final = ("{auth_host}", "{api_host}")
_METHODS: Final = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# {"alg":"none","typ":"JWT"}: the replay's id_tokens are for reading, like the sandbox's own.
_JWT_HEADER: Final = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"
_TOKEN_FIELDS: Final = ("access_token", "refresh_token", "id_token")


@dataclass(frozen=True)
class RecordedAnswer:
    """One recorded answer (an entry of the record's ``answers``)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str]
    body: Any
    text: str | None
    id_token_claims: dict[str, Any] | None

    def key(self) -> tuple[str, str, str]:
        return _key(self.method, self.path, self.query)


@dataclass(frozen=True)
class Recording:
    """A record file, checked: what the replay serves."""

    api_version: str
    answers: tuple[RecordedAnswer, ...]

    @property
    def has_discovery(self) -> bool:
        return any(a.path == DISCOVERY_PATH for a in self.answers)

    def token_answer(self) -> RecordedAnswer | None:
        return next((a for a in self.answers if a.method == "POST" and a.path == TOKEN_PATH), None)


def _key(method: str, path: str, query: Mapping[str, str]) -> tuple[str, str, str]:
    # The prefix and the version segment are case-insensitive on CXone; ids in a path are digits.
    return method.upper(), path.lower(), urlencode(sorted(query.items()))


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Read and check a record file.

    :raises ValueError: naming the file and the field that is wrong.
    """
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"replay record {where}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"replay record {where}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"replay record {where}: must be a JSON object, got {type(data).__name__}")
    if data.get("format") != RECORD_FORMAT:
        raise ValueError(f"replay record {where}: format must be {RECORD_FORMAT!r}, got {data.get('format')!r}")
    version = data.get("api_version")
    if not isinstance(version, str) or not version:
        raise ValueError(f"replay record {where}: api_version must be a version such as 'v33.0', got {version!r}")
    entries = data.get("answers")
    if not isinstance(entries, list):
        raise ValueError(f"replay record {where}: answers must be a list, got {type(entries).__name__}")
    return Recording(version, tuple(_answer(where, i, e) for i, e in enumerate(entries)))


def _answer(where: str, index: int, entry: object) -> RecordedAnswer:
    def bad(name: str, problem: str) -> ValueError:
        return ValueError(f"replay record {where}: answers[{index}].{name} {problem}")

    if not isinstance(entry, dict):
        raise ValueError(f"replay record {where}: answers[{index}] must be an object")
    method, path, status = entry.get("method"), entry.get("path"), entry.get("status")
    if method not in _METHODS:
        raise bad("method", f"must be an HTTP method, got {method!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise bad("path", f"must be a path starting with '/', got {path!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise bad("status", f"must be an HTTP status, got {status!r}")
    tables: dict[str, dict[str, str]] = {}
    for name in ("query", "headers"):
        value = entry.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad(name, f"must be an object of strings, got {value!r}")
        tables[name] = {str(k): v for k, v in value.items()}
    text = entry.get("text")
    if text is not None and not isinstance(text, str):
        raise bad("text", f"must be a string, got {text!r}")
    claims = entry.get("id_token_claims")
    if claims is not None and not isinstance(claims, dict):
        raise bad("id_token_claims", f"must be an object, got {claims!r}")
    return RecordedAnswer(
        method=str(method),
        path=path,
        query=tables["query"],
        status=status,
        headers={k.lower(): v for k, v in tables["headers"].items()},
        body=entry.get("body"),
        text=text,
        id_token_claims=claims,
    )


def replay_connection(
    seed: Mapping[str, Any],
    recording: Recording,
    url: str,
    *,
    key: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``cxone`` connection for a replay at ``url``: the seed's credentials, the record's API version,
    and discovery only when the record holds a discovery answer (else ``api_base_url``)."""
    from cxone_sandbox.seed import sandbox_connection

    extras: dict[str, Any] = {"api_version": recording.api_version}
    if not recording.has_discovery:
        extras["api_base_url"] = f"{url}{API_PREFIX}services/{recording.api_version}/"
    extras.update(extra or {})
    return sandbox_connection(seed, url, key=key, extra=extras)


def _placed(value: Any, base: str) -> Any:
    """``value`` with the record's host placeholders replaced by ``base``."""
    if isinstance(value, str):
        for placeholder in PLACEHOLDERS:
            value = value.replace(placeholder, base)
        return value
    if isinstance(value, dict):
        return {k: _placed(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_placed(v, base) for v in value]
    return value


def _id_token(claims: Mapping[str, Any], lifetime_s: int) -> str:
    now = int(time.time())
    fresh = {**claims, "iat": now, "exp": now + lifetime_s}
    payload = base64.urlsafe_b64encode(json.dumps(fresh, separators=(",", ":")).encode()).rstrip(b"=")
    return f"{_JWT_HEADER}.{payload.decode('ascii')}."


def _served(answer: RecordedAnswer, base: str, body: Any = None) -> Response:
    body = answer.body if body is None else body
    headers = {k: _placed(v, base) for k, v in answer.headers.items() if k != "content-type"}
    if body is not None:
        return JSONResponse(_placed(body, base), status_code=answer.status, headers=headers)
    media = answer.headers.get("content-type") or ("text/plain" if answer.text else None)
    content = _placed(answer.text or "", base) if answer.status not in (204, 304) else ""
    return Response(content, status_code=answer.status, headers=headers, media_type=media)


def _not_recorded(request: Request, status: int) -> JSONResponse:
    shown = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    why = "not in the replayed record" if status == 404 else "not in the replayed record: a replay changes nothing"
    return JSONResponse({"message": f"{request.method} {shown}: {why}"}, status_code=status)


def add_replay_routes(app: SandboxApp, recording: Recording) -> None:
    """Serve ``recording`` on ``app`` (after its admin routes, which keep working)."""
    sb = app.sandbox
    recorded = {a.key(): a for a in recording.answers}
    discovery = next((a for a in recording.answers if a.method == "GET" and a.path == DISCOVERY_PATH), None)
    token_answer = recording.token_answer()

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def token(request: Request) -> Response:
        if token_answer is None:
            return _not_recorded(request, 404)
        if not 200 <= token_answer.status < 300:
            return _served(token_answer, base_of(request))  # the tenant refused: so does the replay
        try:
            fields = fields_as_params(parse_body(await request.body(), request.headers.get("content-type", "")))
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                raise ApiError(401, "invalid_client", "Client authentication failed") from None
        recorded_body = token_answer.body if isinstance(token_answer.body, dict) else {}
        lifetime = recorded_body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            lifetime = sb.injector.faults.token_lifetime_s
        # The seed's rules decide who gets a token, and the token works on the routes below.
        issued = sb.state.issue_token(
            client_id=client_id,
            client_secret=client_secret,
            grant_type=fields.get("grant_type"),
            form=fields,
            lifetime_s=lifetime,
            issuer=base_of(request),
        )
        body = {**recorded_body, **{k: issued[k] for k in _TOKEN_FIELDS if k in recorded_body}}
        if "id_token" in recorded_body:
            body["id_token"] = _id_token(_placed(token_answer.id_token_claims or {}, base_of(request)), lifetime)
        return _served(token_answer, base_of(request), body)

    async def replay(request: Request) -> Response:
        path = request.url.path
        if request.method == "POST" and path == TOKEN_PATH:
            return await token(request)
        if request.method != "GET":
            return _not_recorded(request, 501)
        if path == DISCOVERY_PATH:
            return _not_recorded(request, 404) if discovery is None else _served(discovery, base_of(request))
        answer = recorded.get(_key("GET", path, dict(request.query_params)))
        if answer is None:
            return _not_recorded(request, 404)
        if path.startswith(API_PREFIX):
            sb.state.check_token(request.headers.get("authorization"))
        return _served(answer, base_of(request))

    app.add_api_route("/{path:path}", replay, methods=_METHODS, include_in_schema=False)
