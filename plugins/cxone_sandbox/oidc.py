"""CXone's auth host in the sandbox: the token endpoint, OIDC and CXone discovery, the JWKS, whoami.

As NICE's Global Auth publishes them and NICE's SDK uses them: the OIDC document names the token
endpoint, the JWKS and RS256; every id_token is signed with the sandbox's key
(:mod:`cxone_sandbox.signing`) and carries the claims NICE's SDK reads. The token endpoint reads
a form or a JSON body whatever its ``Content-Type`` says (NICE's SDK sends forms labelled
``application/json``) and answers errors in Global Auth's shape, ``{"error", "errorDescription"}``.
The grant rules are :class:`~cxone_sandbox.tokens.TokenRules`'.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse

from cxone_sandbox.incoming import (
    API_PREFIX,
    DISCOVERY_PATH,
    JWKS_PATH,
    OIDC_PATH,
    TOKEN_PATH,
    WHOAMI_PATH,
    fields_as_params,
    parse_body,
)
from cxone_sandbox.params import ApiError
from cxone_sandbox.routes import _base_url, _basic_client
from cxone_sandbox.seed import SANDBOX_DOMAIN
from cxone_sandbox.signing import ALGORITHM, signing_key
from cxone_sandbox.tokens import GRANT_TYPES, SANDBOX_CLUSTER, AuthError, user_id

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_sandbox.asgi import SandboxApp

#: Where CXone's OIDC document points a browser login and logout; named as CXone names them, not
#: served (the sandbox has no login page: its users log in with access keys).
AUTHORIZE_PATH: Final = "/auth/authorize"
LOGOUT_PATH: Final = "/auth/authorize/logout"
_NO_STORE: Final = {"Cache-Control": "no-store"}


def auth_error_response(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Global Auth's published error shape (camelCase; the legacy token service wrote ``error_description``)."""
    return JSONResponse({"error": error, "errorDescription": description}, status_code=status, headers=headers)


def openid_configuration(base: str) -> dict[str, Any]:
    """The OIDC discovery document of the auth host reached at ``base``."""
    return {
        "issuer": base,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "end_session_endpoint": base + LOGOUT_PATH,
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": [ALGORITHM],
        "grant_types_supported": list(GRANT_TYPES),
        "scopes_supported": ["openid"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "request_object_signing_alg_values_supported": ["none"],
        "display_values_supported": ["page", "popup"],
        "claim_types_supported": ["normal"],
        "code_challenge_methods_supported": ["S256"],
    }


async def _auth_fields(request: Request) -> dict[str, str]:
    """A token or whoami request's fields, from a form or a JSON body whatever its label says."""
    try:
        fields = parse_body(await request.body(), request.headers.get("content-type", ""), trust_label=False)
    except ValueError as exc:
        raise AuthError(400, "invalid_request", str(exc)) from None
    return fields_as_params(fields)


def add_auth_routes(app: SandboxApp) -> None:
    """Add the auth host's routes to ``app``, and the error shape they answer in."""
    sb = app.sandbox

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        return auth_error_response(exc.status, exc.error, exc.description, exc.headers)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        fields = await _auth_fields(request)
        client_id, client_secret = _basic_client(request.headers.get("authorization"))
        if client_id is None:
            client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        elif "client_secret" in fields:
            raise AuthError(400, "invalid_request", "Send the client credentials as HTTP Basic or as fields, not both")
        elif fields.get("client_id", client_id) != client_id:
            raise AuthError(400, "invalid_request", "client_id differs from the HTTP Basic client")
        body = sb.state.issue_token(
            client_id=client_id,
            client_secret=client_secret,
            grant_type=fields.get("grant_type"),
            form=fields,
            lifetime_s=sb.injector.faults.token_lifetime_s,
            issuer=_base_url(request),
        )
        return JSONResponse(body, headers=_NO_STORE)

    @app.get(OIDC_PATH)
    async def oidc_configuration(request: Request) -> JSONResponse:
        return JSONResponse(openid_configuration(_base_url(request)))

    @app.get(JWKS_PATH)
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [signing_key().jwk]})

    @app.get(DISCOVERY_PATH)
    async def discovery(request: Request) -> JSONResponse:
        tenant = request.query_params.get("tenantId")
        if tenant != sb.state.tenant_id:
            shown = tenant if tenant else "(missing)"
            raise AuthError(404, "InvalidTenant", f"Tenant {shown} was not found")
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
                "cluster": SANDBOX_CLUSTER,
                "acdDomain": SANDBOX_DOMAIN,
                "tenantId": tenant,
            }
        )

    @app.post(WHOAMI_PATH)
    async def whoami(request: Request) -> JSONResponse:
        # NICE's SDK asks it at https://api-{cluster}.{acdDomain}/…: a client reaches the sandbox's by
        # sending that host's requests here. The token comes in the body, as the SDK sends it.
        fields = await _auth_fields(request)
        try:
            live = sb.state.check_token(f"Bearer {fields.get('token', '')}")
        except ApiError as exc:
            raise AuthError(401, exc.error, exc.description) from None
        agent = sb.state.agents[live.agent_id]
        base = _base_url(request)
        return JSONResponse(
            {
                "agent_id": agent.agent_id,
                "bus_no": sb.state.business_unit_id,
                "team_id": agent.team_id,
                "sub": f"user:{user_id(sb.state.tenant_id, agent.agent_id)}",
                "iss": base,
                "expires_in": max(0, int(live.expires_at - time.monotonic())),
                "refresh_token_server_uri": base + TOKEN_PATH,
                "resource_server_base_uri": base + API_PREFIX,
            },
            headers=_NO_STORE,
        )
