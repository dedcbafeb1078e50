"""Helpers the sandbox's HTTP tests share: the seed's credentials, an Agent API call, CXone's error
shapes, and the fixtures ``sb`` (the session's sandbox, reset: ``cxone_sandbox``) and ``token`` (an
access token of the QA key). A test module takes the fixtures by assignment (``sb = sandbox_http.sb``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from cxone_sandbox.app import GATEWAY_NOT_FOUND

if TYPE_CHECKING:
    from cxone_provider.testing import SandboxServer

TENANT = "11ee0000-0000-4000-8000-00000000cx01"
CLIENT = ("sandbox-client", "sandbox-client-secret")
QA = ("SANDBOX-QA-KEY", "sandbox-qa-secret")
VERSION = "v33.0"
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


@pytest.fixture
def sb(cxone_sandbox: SandboxServer) -> SandboxServer:
    return cxone_sandbox


def get_token(sb: SandboxServer, key: tuple[str, str] = QA, client: tuple[str, str] = CLIENT) -> requests.Response:
    return requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": key[0], "password": key[1]},
        auth=client,
        timeout=10,
    )


@pytest.fixture
def token(sb: SandboxServer) -> str:
    response = get_token(sb)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def api(
    sb: SandboxServer,
    method: str,
    path: str,
    token: str | None,
    version: str = VERSION,
    *,
    body: Any = None,
    prefix: str = "inContactAPI",
    **params: Any,
) -> requests.Response:
    """An Agent API call: ``params`` in the query string, ``body`` (when given) as a JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(
        method,
        f"{sb.url}/{prefix}/services/{version}/{path}",
        params=params,
        json=body,
        headers=headers,
        timeout=10,
    )


def join(sb: SandboxServer, token: str, agent: object, session: object) -> requests.Response:
    return api(sb, "POST", "agent-sessions/join", token, asAgentId=agent, sessionId=session)


def assert_error(response: requests.Response, status: int, error: str) -> dict[str, str]:
    """CXone's error answer: on the Agent API the status and ``icStatusDescription`` with no body (as
    NICE publishes it); on the token endpoint and discovery an ``{"error", …}`` body."""
    assert response.status_code == status, response.text
    if "/services/" in response.url:
        assert response.headers.get("icStatusDescription") == error
        assert response.content == b"", "an Agent API error has no body"
        return {"error": error}
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    return body


def assert_gateway_404(response: requests.Response) -> None:
    """A 404 a gateway answers for a route that does not exist: no CXone ``error`` field."""
    assert response.status_code == 404, response.text
    assert response.json() == GATEWAY_NOT_FOUND
    assert "error" not in response.json()


def join_url(sb: SandboxServer) -> str:
    """The published join, for a raw client (a dripping or a held answer)."""
    return f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join?asAgentId=1001&sessionId=sess-2001"


def state_of(sb: SandboxServer, session_id: str) -> dict[str, Any]:
    return next(s for s in sb.state()["sessions"] if s["session_id"] == session_id)


def all_states(sb: SandboxServer, token: str) -> dict[int, dict[str, Any]]:
    """Every ``agents/states`` row by agent id, following ``_links.next``."""
    rows: dict[int, dict[str, Any]] = {}
    url: str | None = f"{sb.url}/inContactAPI/services/{VERSION}/agents/states"
    while url:
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, response.text
        rows.update((row["agentId"], row) for row in response.json()["agentStates"])
        url = response.json()["_links"]["next"]
    return rows


NOIMP = ("SANDBOX-NOIMP-KEY", "sandbox-noimp-secret")


def token_of(sb: SandboxServer, key: tuple[str, str]) -> str:
    response = get_token(sb, key)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
