"""UserHub's user record in the sandbox: ``GET /user-management/v1/users/{userId}``.

NICE's SDK asks it on ``https://api-{area}.{domain}`` after a token exchange, for a tenant on UserHub
(an id_token with a ``tenant`` claim), and reads ``user.firstName`` and ``user.lastName`` from it; a
client reaches the sandbox's by sending that host's requests here. The shape is NICE's published
user-management spec's (``{"user": {…}}``; an unauthorized call answers ``{"timestamp", "status",
"error", "message", "path"}``, an unknown user ``{"code", "details", …}``). Every agent of the seed is a
user, its id the ``sub`` of its id_token without ``user:``. The sandbox's decisions where the spec
gives no values: an active agent's user is ``ACTIVE``, an inactive one's ``BLOCKED``; no custom
attributes; ``timeZone`` left out (UserHub writes IANA names, the seed may hold CXone's display names).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import Request  # noqa: TC002 - FastAPI reads route annotations at run time
from fastapi.responses import JSONResponse

from cxone_sandbox.params import ApiError, iso_time
from cxone_sandbox.tokens import SANDBOX_CLUSTER, user_id

if TYPE_CHECKING:
    from cxone_sandbox.asgi import SandboxApp
    from cxone_sandbox.records import Agent

USERS_PATH: Final = "/user-management/v1/users/"


def user_record(agent: Agent, tenant_id: str, business_unit_id: int) -> dict[str, Any]:
    """The UserHub user of ``agent``'s login, with the fields NICE's spec names that the seed knows."""
    full_name = f"{agent.first_name} {agent.last_name}"
    return {
        "id": user_id(tenant_id, agent.agent_id),
        "userName": agent.user_name,
        "firstName": agent.first_name,
        "middleName": "",
        "lastName": agent.last_name,
        "fullName": full_name,
        "displayName": full_name,
        "emailAddress": agent.email_address,
        "status": "ACTIVE" if agent.active else "BLOCKED",
        "teamId": str(agent.team_id),
        "icBUId": str(business_unit_id),
        "icClusterId": SANDBOX_CLUSTER,
        "acdInfos": [{"loginId": str(agent.agent_id)}],
        "billable": True,
        "impersonated": False,
        "customAttributes": {},
    }


def add_userhub_routes(app: SandboxApp) -> None:
    """Add UserHub's user record to ``app``."""
    sb = app.sandbox

    @app.get(USERS_PATH + "{wanted}")
    async def user(request: Request, wanted: str) -> JSONResponse:
        try:
            sb.state.check_token(request.headers.get("authorization"))
        except ApiError as exc:
            body = {
                "timestamp": iso_time(datetime.now(UTC)),
                "status": 401,
                "error": "Unauthorized",
                "message": exc.description,
                "path": request.url.path,
            }
            return JSONResponse(body, status_code=401, headers=exc.headers)
        state = sb.state
        agent = next((a for a in state.agents.values() if user_id(state.tenant_id, a.agent_id) == wanted), None)
        if agent is None:
            details = f"User {wanted} was not found"
            return JSONResponse({"code": "NOT_FOUND", "details": details, "entityType": "User"}, status_code=404)
        return JSONResponse({"user": user_record(agent, state.tenant_id, state.business_unit_id)})
