"""CXone's routes in the sandbox: the Agent API calls (the auth host's are :mod:`~cxone_sandbox.oidc`'s).

Parameters are accepted as NICE's published clients send them: in the query string (the clients
generated from NICE's OpenAPI specs) or in a JSON body (NICE's agent SDK, the Ruby gem); application
credentials as HTTP Basic or as form fields. The rules over the tenant are
:class:`~cxone_sandbox.state.SandboxState`'s; the routes only read requests and write answers.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_sandbox.incoming import SENT_PATH, fields_as_params, parse_body
from cxone_sandbox.params import ApiError, iso_time, parse_int
from cxone_sandbox.state import SUPERVISE_ACTIONS
from cxone_sandbox.timezones import timezone_rows

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_sandbox.asgi import SandboxApp
    from cxone_sandbox.tokens import Token


#: The Agent API versions the sandbox serves, ``v1.0`` … ``v34.0``, in any case (NICE's own clients
#: write v2.0, V4.0, v8.0, v12.0, v21.0, v23.0, v25.0, v27.0, v30.0, v31.0, v33.0 and v34.0); any other
#: answers a gateway's 404, as a mistyped ``api_version`` would on a tenant.
KNOWN_API_VERSIONS: Final = frozenset(f"v{n}.0" for n in range(1, 35))
#: ``agents/states`` rows per page without ``top``, and the most a page holds whatever ``top`` asks
#: (the published spec gives neither number): a client must follow ``_links.next``.
DEFAULT_STATES_PAGE_SIZE: Final = 100
MAX_STATES_PAGE_SIZE: Final = 100


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
    return fields_as_params(fields)


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
    path = request.scope.get(SENT_PATH, request.url.path)
    qs = urlencode(dict(query)) if query is not None else request.url.query
    return f"{_base_url(request)}{path}" + (f"?{qs}" if qs else "")


def add_api_routes(app: SandboxApp) -> None:
    """Add the Agent API routes to ``app``."""
    sb = app.sandbox

    def authorize(request: Request, version: str) -> Token:
        """The token holder of an Agent API call; first, idle sessions time out (see ``events``)."""
        if version.lower() not in KNOWN_API_VERSIONS:
            # Before the token: the gateway has no route for the version, CXone never sees the call.
            raise StarletteHTTPException(404, "Not Found")
        holder = sb.state.check_token(request.headers.get("authorization"))
        sb.state.session_timeout_s = sb.injector.faults.session_timeout_s
        sb.state.expire_idle()
        return holder

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

    @app.get(api + "/agents/{agent_id}/agent-settings")
    async def agent_settings(request: Request, version: str, agent_id: str) -> JSONResponse:
        authorize(request, version)
        return JSONResponse(sb.state.agent_settings(agent_id))

    @app.get(api + "/cache/agentstate")
    async def agent_state_cache(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        q = await _api_params(request)
        return JSONResponse(sb.state.agent_state_cache(q.get("fields")))

    @app.get(api + "/timezones")
    async def timezones(request: Request, version: str) -> JSONResponse:
        authorize(request, version)
        return JSONResponse({"timeZones": timezone_rows()})

    # Versions are listed with or without a version segment of their own (the sandbox's shape: a list).
    @app.get("/inContactAPI/services/apiversion")
    @app.get(api + "/apiversion")
    async def api_versions(request: Request, version: str = "v1.0") -> JSONResponse:
        authorize(request, version)
        return JSONResponse(sorted(KNOWN_API_VERSIONS, key=lambda v: float(v[1:])))

    @app.post(api + "/agent-sessions")
    async def start_session(request: Request, version: str) -> JSONResponse:
        holder = authorize(request, version)
        q = await _api_params(request)
        body = sb.state.start_session(
            holder,
            q.get("asAgentId"),
            q.get("stationId"),
            q.get("stationPhoneNumber"),
            q.get("inactivityTimeout"),
            q.get("inactivityForceLogout"),
        )
        return JSONResponse(body, status_code=202)

    @app.post(api + "/agent-sessions/join")
    async def join(request: Request, version: str) -> JSONResponse:
        holder = authorize(request, version)
        q = await _api_params(request)
        body = sb.state.join(holder, q.get("asAgentId"), q.get("sessionId"), mode=sb.injector.faults.join_mode)
        return JSONResponse(body, status_code=202)

    @app.get(api + "/agent-sessions/{session_id}/get-next-event")
    async def get_next_event(request: Request, version: str, session_id: str) -> Response:
        authorize(request, version)
        q = await _api_params(request)
        answer = await sb.state.next_event(session_id, q.get("timeout"), sb.stopping)
        if answer is None:
            return Response(status_code=304)
        return JSONResponse(answer)

    # Declared before the supervise actions' {action}, which would otherwise swallow "state".
    @app.post(api + "/agent-sessions/{session_id}/state")
    async def set_state(request: Request, version: str, session_id: str) -> Response:
        authorize(request, version)
        q = await _api_params(request)
        sb.state.set_session_state(session_id, q.get("state"), q.get("reason"))
        return Response(status_code=202)

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
