"""The sandbox's HTTP face: CXone's auth, discovery and Agent API routes, plus the admin routes.

Faults, the journal, the body limit and the admin token live in a raw ASGI layer in front of the
whole FastAPI stack (see :meth:`SandboxApp.__call__`): a faulted request never reaches a route, so it
cannot change state, and only the outermost layer holds uvicorn's own ``send``, which is how a
connection is dropped. That layer reads every request's body, on every route, and refuses one longer
than ``max_body_bytes`` with ``413`` after reading at most that much (see
:mod:`cxone_sandbox.settings`); the routes only see a body it has read. Admin routes
(``/_sandbox/…``) are neither faulted nor journaled; when an admin token is set they need it
(``Authorization: Bearer <token>``), all but the API docs, and without one they answer loopback
connections only (``cxone-sandbox`` refuses to bind beyond loopback without one). The malformed
answers (HTML, plain text, truncated, empty, huge and dripped bodies) are written here too, as raw
ASGI messages: FastAPI's responses would not let a body be cut short, streamed or trickled.

What NICE's published clients send is accepted as they send it: Agent API parameters in the query
string (the clients generated from NICE's OpenAPI specs) or in a JSON body (NICE's agent SDK, the Ruby
gem; any ``Content-Type`` or none), the ``inContactAPI`` prefix and the version segment in any case,
application credentials as HTTP Basic or as form fields. A route that does not exist, including an
unknown API version, answers ``404`` the way a gateway does, ``{"message": "Not Found"}``. CXone's own
Agent API errors (``InvalidAgentId``, ``InvalidAgentSession``…) are the status and the
``icStatusDescription`` header with no body, as NICE publishes them (the tenant settings
``status_description`` and ``error_body`` choose the header's wording and the legacy body); the token
endpoint and discovery answer Global Auth's ``{"error", "errorDescription"}``.

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
:data:`~cxone_sandbox.settings.JOURNAL_ENTRY_BYTES` of JSON: for a request that would take
more, the entry withholds its body, then its body's field names, query, User-Agent, and cuts its path,
until it fits, and names what it left out in an extra key, ``"withheld": ["body", …]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxone_sandbox.admin import add_admin_routes
from cxone_sandbox.answers import agent_error_response, error_response
from cxone_sandbox.asgi import Sandbox, SandboxApp
from cxone_sandbox.faults import Faults
from cxone_sandbox.incoming import API_PREFIX
from cxone_sandbox.oidc import add_auth_routes
from cxone_sandbox.params import ApiError
from cxone_sandbox.replay import Recording, add_replay_routes
from cxone_sandbox.routes import (
    add_api_routes,
)
from cxone_sandbox.settings import Settings
from cxone_sandbox.userhub import add_userhub_routes

if TYPE_CHECKING:
    from collections.abc import Mapping


#: What a gateway answers for a route that does not exist: no CXone ``error`` field.
GATEWAY_NOT_FOUND: Final = {"message": "Not Found"}


def create_app(
    seed: Mapping[str, Any] | None = None,
    faults: Faults | Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    replay: Recording | None = None,
) -> SandboxApp:
    """Build the sandbox app.

    :param seed: the tenant's seed (see :mod:`cxone_sandbox.seed`); default: the shipped one.
    :param faults: a :class:`~cxone_sandbox.faults.Faults` or a mapping of knobs; default: off.
    :param settings: a :class:`~cxone_sandbox.settings.Settings` or a mapping of them
        (body limit, journal size, admin token); default: the defaults, no admin token.
    :param replay: serve this record of a tenant's answers instead of the seed's tenant (see
        :mod:`cxone_sandbox.replay`); the seed still decides who gets a token.
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

    def in_agent_api(request: Request) -> bool:
        return request.url.path.startswith(API_PREFIX)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if in_agent_api(request):
            faults = app.sandbox.injector.faults
            return agent_error_response(
                faults, exc.status, exc.error, exc.description, exc.headers, sentence=exc.sentence
            )
        return error_response(exc.status, exc.error, exc.description, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            # No such route (or method): the gateway answers, not CXone, so there is no `error` field.
            message = GATEWAY_NOT_FOUND["message"] if exc.status_code == 404 else "Method Not Allowed"
            return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)
        if in_agent_api(request):
            description = f"{exc.detail}: {request.method} {request.url.path}"
            return agent_error_response(app.sandbox.injector.faults, exc.status_code, "BadRequest", description)
        return error_response(
            exc.status_code, "BadRequest", f"{exc.detail}: {request.method} {request.url.path}", exc.headers
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "InternalServerError", f"{type(exc).__name__}: {exc}")

    if replay is None:
        add_auth_routes(app)
        add_userhub_routes(app)
        add_api_routes(app)
        add_admin_routes(app)
    else:
        add_admin_routes(app)  # first: the replay's catch-all route would take theirs
        add_replay_routes(app, replay)
    return app
