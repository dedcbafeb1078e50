"""The CXone API contract (design.md section 3): NICE's published clients against the sandbox.

Every call of the contract is sent here over real HTTP exactly as NICE's published clients send it —
parameters in the query string as the clients generated from NICE's OpenAPI specs do, or as a JSON
body as NICE's agent SDK and the Ruby gem do — and must get a 2xx whose effect shows in the sandbox's
state. :func:`contract_violations` (``tests/published_contract.py``) is the other half: given journal
entries, it lists every request that strays from the published method, path and parameter names (plus
the project's documented decisions), so a test can hold any client's traffic — the hook's — to the
contract; its own tests end this module.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import jwt
import pytest
import requests
import sandbox_http
from published_contract import contract_violations
from sandbox_http import CLIENT, QA

from cxone_provider import testing as cxone_testing
from cxone_sandbox.seed import DEFAULT_BUSINESS_UNIT_ID

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_provider.testing import SandboxServer

cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

# The sandbox's HTTP tests' own fixtures: the session's sandbox (reset) and a QA-key access token.
sb = sandbox_http.sb
token = sandbox_http.token

# ------------------------------------------------------------------------------------------ helpers


def generated(
    sb: SandboxServer, token: str, method: str, path: str, version: str = "v33.0", **query: Any
) -> requests.Response:
    """A call as NICE's generated client sends it: query parameters, no body, ``Accept: application/json``."""
    return requests.request(
        method,
        f"{sb.url}/inContactAPI/services/{version}/{path}",
        params=query,
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
        timeout=10,
    )


def sdk(sb: SandboxServer, token: str, method: str, path: str, body: Mapping[str, Any]) -> requests.Response:
    """A call as NICE's agent SDK sends it: ``/InContactAPI/services/v23.0/…``, a JSON body."""
    return requests.request(
        method,
        f"{sb.url}/InContactAPI/services/v23.0/{path}",
        json=dict(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )


def gem(sb: SandboxServer, token: str, path: str, body: Mapping[str, Any]) -> requests.Response:
    """A POST as the Ruby gem sends it: v8.0, a JSON body, a lower-case ``bearer``."""
    return requests.post(
        f"{sb.url}/inContactAPI/services/v8.0/{path}",
        json=dict(body),
        headers={"Authorization": f"bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )


def session_of(sb: SandboxServer, session_id: str) -> dict[str, Any]:
    return next(s for s in sb.state()["sessions"] if s["session_id"] == session_id)


def log_in_supervisor(sb: SandboxServer, token: str) -> str:
    """Quinn (1001)'s live session, the one the published join attaches to: seeded, so the published
    start answers 409 (NICE's SDK then joins)."""
    response = generated(sb, token, "POST", "agent-sessions", stationId="7100", asAgentId=1001)
    assert response.status_code == 409, response.text
    return "sess-1001"


def assert_conforms(sb: SandboxServer) -> None:
    """The published shapes pass the contract check too: it flags nothing a published client sends."""
    assert contract_violations(sb.journal()) == []


# ------------------------------------------------------------------------------------------ token


def test_token_access_key_with_basic_client_credentials(sb: SandboxServer) -> None:
    response = requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": QA[0], "password": QA[1]},
        auth=CLIENT,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert {"access_token", "token_type", "refresh_token", "expires_in", "id_token"} <= set(response.json())
    assert sb.journal()[-1]["client_auth"] == "basic"
    assert_conforms(sb)


def test_token_access_key_with_client_credentials_as_fields(sb: SandboxServer) -> None:
    # The generated client's tokenAccessKeyRequest, sent as its HttpClient sends objects: JSON.
    body = {"client_id": CLIENT[0], "client_secret": CLIENT[1], "grant_type": "password"}
    response = requests.post(f"{sb.url}/auth/token", json={**body, "username": QA[0], "password": QA[1]}, timeout=10)
    assert response.status_code == 200, response.text
    # The same as form fields.
    form = requests.post(f"{sb.url}/auth/token", data={**body, "username": QA[0], "password": QA[1]}, timeout=10)
    assert form.status_code == 200, form.text
    assert [e["client_auth"] for e in sb.journal()] == ["form", "form"]
    assert_conforms(sb)


def test_token_as_the_ruby_gem_sends_it(sb: SandboxServer) -> None:
    basic = base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
    response = requests.post(
        f"{sb.url}/auth/token",
        json={"grant_type": "password", "username": QA[0], "password": QA[1], "scope": "RealTimeApi AgentApi"},
        headers={"Authorization": f"basic {basic}", "Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert_conforms(sb)


def test_refresh_token_grant_as_published(sb: SandboxServer) -> None:
    first = requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": QA[0], "password": QA[1]},
        auth=CLIENT,
        timeout=10,
    ).json()
    # The generated client's tokenRefreshRequest: client_id, grant_type, refresh_token (JSON).
    body = {"client_id": CLIENT[0], "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = requests.post(f"{sb.url}/auth/token", json=body, timeout=10)
    assert second.status_code == 200, second.text
    # The form-encoded grant with HTTP Basic, as an OAuth client library sends it.
    data = {"grant_type": "refresh_token", "refresh_token": second.json()["refresh_token"]}
    third = requests.post(f"{sb.url}/auth/token", data=data, auth=CLIENT, timeout=10)
    assert third.status_code == 200, third.text
    assert sb.state()["tokens_issued"] == 3
    assert_conforms(sb)


def test_the_auth_host_as_nices_sdk_uses_it(sb: SandboxServer) -> None:
    """OIDC document, JWKS, token exchange, refresh and whoami, each as NICE's SDK sends it (forms labelled
    application/json, no client on the refresh), every id_token answered verifying against the JWKS."""
    oidc = requests.get(f"{sb.url}/.well-known/openid-configuration", timeout=10).json()
    keys = requests.get(oidc["jwks_uri"], timeout=10).json()["keys"]
    first = requests.post(
        oidc["token_endpoint"],
        data={"grant_type": "password", "username": QA[0], "password": QA[1]},
        auth=CLIENT,
        timeout=10,
    ).json()
    sdk = {"Content-Type": "application/json"}
    exchanged = requests.post(
        oidc["token_endpoint"],
        data=(
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&scope=openid&client_id="
            + CLIENT[0]
            + "&subject_token="
            + first["access_token"]
            + "&subject_token_type=urn:ietf:params:oauth:token-type:access_token"
        ).encode(),
        headers=sdk,
        timeout=10,
    )
    assert exchanged.status_code == 200, exchanged.text
    refreshed = requests.post(
        oidc["token_endpoint"],
        data=f"grant_type=refresh_token&scope=openid&refresh_token={exchanged.json()['refresh_token']}".encode(),
        headers=sdk,
        timeout=10,
    )
    assert refreshed.status_code == 200, refreshed.text
    for body in (first, exchanged.json(), refreshed.json()):
        header = jwt.get_unverified_header(body["id_token"])
        key = next(k for k in keys if k["kid"] == header["kid"])
        claims = jwt.decode(body["id_token"], jwt.PyJWK(key).key, algorithms=["RS256"], audience=CLIENT[0])
        assert claims["tenantId"] == sb.tenant_id
    whoami = requests.post(
        f"{sb.url}/incontactauthorizationserver/token/whoami",
        json={"token": refreshed.json()["access_token"]},
        timeout=10,
    )
    assert whoami.json()["agent_id"] == 1001
    assert_conforms(sb)


# ------------------------------------------------------------------------------------------ discovery


def test_discovery_as_published(sb: SandboxServer) -> None:
    response = requests.get(
        f"{sb.url}/.well-known/cxone-configuration",
        params={"tenantId": sb.tenant_id},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    required = {"private": bool, "ui_endpoint": str, "auth_endpoint": str, "api_endpoint": str, "domain": str}
    for name, kind in {**required, "uhDomain": str, "cluster": str, "acdDomain": str}.items():
        assert isinstance(body[name], kind), name
    assert_conforms(sb)


# ------------------------------------------------------------------------------------------ agents


def test_agent_as_published(sb: SandboxServer, token: str) -> None:
    response = generated(sb, token, "GET", "agents/1001", fields="agentId,isActive,firstName,lastName,teamId,timeZone")
    assert response.status_code == 200, response.text
    assert response.json()["agents"][0]["agentId"] == 1001
    assert generated(sb, token, "GET", "agents/1001").json()["agents"][0]["isActive"] is True
    assert_conforms(sb)


def test_agent_states_as_published_following_the_pages(sb: SandboxServer, token: str) -> None:
    response = generated(sb, token, "GET", "agents/states", top=4, skip=0, updatedSince="2000-01-01T00:00:00.000Z")
    seen: list[int] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert {"totalRecords", "_links", "lastPollTime", "agentStates"} <= set(body)
        seen += [row["agentId"] for row in body["agentStates"]]
        pages += 1
        if not body["_links"].get("next"):
            break
        response = requests.get(
            body["_links"]["next"],
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
            timeout=10,
        )
    assert pages == 3
    assert len(seen) == len(set(seen)) == body["totalRecords"] == 12
    filtered = generated(
        sb, token, "GET", "agents/states", reqBUIds=str(DEFAULT_BUSINESS_UNIT_ID), fields="agentId", orderBy="agentId"
    )
    assert filtered.status_code == 200, filtered.text
    assert_conforms(sb)


# ------------------------------------------------------------------------------------------ sessions


def test_start_as_the_generated_client_sends_it(sb: SandboxServer, token: str) -> None:
    response = generated(
        sb,
        token,
        "POST",
        "agent-sessions",
        stationId="7009",
        stationPhoneNumber="5550009",
        inactivityTimeout=120,
        inactivityForceLogout="true",
        asAgentId=2009,
    )
    assert response.status_code == 202, response.text
    session = session_of(sb, response.json()["sessionId"])
    assert (session["agent_id"], session["inactivity_timeout"], session["state"]) == (2009, 120, "active")
    assert_conforms(sb)


def test_start_as_the_sdk_sends_it(sb: SandboxServer, token: str) -> None:
    body = {
        "stationId": "7009",
        "stationPhoneNumber": "5550009",
        "inactivityTimeout": 45,
        "inactivityForceLogout": False,
        "asAgentId": 2009,
    }
    response = sdk(sb, token, "POST", "agent-sessions", body)
    assert response.status_code == 202, response.text
    session = session_of(sb, response.json()["sessionId"])
    assert (session["agent_id"], session["inactivity_force_logout"]) == (2009, False)
    assert_conforms(sb)


def test_join_as_the_generated_client_sends_it(sb: SandboxServer, token: str) -> None:
    own = log_in_supervisor(sb, token)
    response = generated(sb, token, "POST", "agent-sessions/join", asAgentId="1001")
    assert response.status_code == 202, response.text
    assert response.json() == {"sessionId": own}
    assert_conforms(sb)


@pytest.mark.parametrize("client", ["sdk", "gem"])
def test_join_as_the_sdk_and_the_gem_send_it(sb: SandboxServer, token: str, client: str) -> None:
    own = log_in_supervisor(sb, token)
    body = {"asAgentId": 1001}
    response = (
        sdk(sb, token, "POST", "agent-sessions/join", body)
        if client == "sdk"
        else gem(sb, token, "agent-sessions/join", body)
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"sessionId": own}
    assert sb.state()["joins"] == [[own, 1001]]
    assert_conforms(sb)


@pytest.mark.parametrize("join_mode", ["session", "spec"])
def test_join_as_published_in_both_join_modes(sb: SandboxServer, token: str, join_mode: str) -> None:
    own = log_in_supervisor(sb, token)
    sb.set_faults(join_mode=join_mode)
    response = generated(sb, token, "POST", "agent-sessions/join", asAgentId="1001")
    assert (response.status_code, response.json()) == (202, {"sessionId": own})


def test_join_with_the_projects_session_id(sb: SandboxServer, token: str) -> None:
    # The one documented addition: sessionId beside asAgentId; joining by it is the sandbox's extension.
    sb.set_faults(join_mode="session")
    response = generated(sb, token, "POST", "agent-sessions/join", asAgentId="1001", sessionId="sess-2001")
    assert (response.status_code, response.json()) == (202, {"sessionId": "sess-2001"})
    assert_conforms(sb)


def test_end_as_the_generated_client_sends_it(sb: SandboxServer, token: str) -> None:
    response = generated(
        sb,
        token,
        "DELETE",
        "agent-sessions/sess-2005",
        forceLogoff="true",
        endContacts="false",
        ignorePersonalQueue="true",
    )
    assert response.status_code == 202, response.text
    session = session_of(sb, "sess-2005")
    assert session["state"] == "ended"
    assert session["end_options"] == {"forceLogoff": True, "endContacts": False, "ignorePersonalQueue": True}
    assert_conforms(sb)


def test_end_as_the_sdk_sends_it(sb: SandboxServer, token: str) -> None:
    body = {"forceLogoff": True, "endContacts": True, "ignorePersonalQueue": False}
    response = sdk(sb, token, "DELETE", "agent-sessions/sess-2006", body)
    assert response.status_code == 202, response.text
    assert session_of(sb, "sess-2006")["end_options"] == body
    assert_conforms(sb)


# ------------------------------------------------------------------------------------------ supervise


def test_monitor_coach_barge_take_over_as_published(sb: SandboxServer, token: str) -> None:
    own = log_in_supervisor(sb, token)
    monitor = generated(sb, token, "POST", f"agent-sessions/{own}/monitor", targetAgentId=2002)
    assert monitor.status_code == 202, monitor.text
    for action in ("coach", "barge", "take-over"):
        response = generated(sb, token, "POST", f"agent-sessions/{own}/{action}")  # no parameters, as published
        assert response.status_code == 202, f"{action}: {response.text}"
    actions = [(a["action"], a["target_agent_id"]) for a in sb.state()["supervise_actions"]]
    assert actions == [("monitor", 2002), ("coach", 2002), ("barge", 2002), ("take-over", 2002)]
    assert_conforms(sb)


# ------------------------------------------------------------------------------------------ the checker


def test_contract_violations_flags_what_strays_and_passes_published_shapes(sb: SandboxServer, token: str) -> None:
    own = log_in_supervisor(sb, token)
    generated(sb, token, "POST", "agent-sessions/join", asAgentId="1001")
    sdk(sb, token, "POST", "agent-sessions/join", {"asAgentId": 1001, "sessionId": own})
    generated(sb, token, "POST", f"agent-sessions/{own}/monitor", targetAgentId=2002)
    generated(sb, token, "POST", f"agent-sessions/{own}/coach")
    requests.get(f"{sb.url}/_sandbox/state", timeout=10)  # admin: not part of the contract
    assert contract_violations(sb.journal()) == []

    sb.clear_journal()
    generated(sb, token, "POST", "agent-sessions/join", asAgentId="1001", sessionId=own, madeUpParam="x")
    sdk(sb, token, "POST", f"agent-sessions/{own}/barge", {"targetAgentId": 2002, "agentId": 2002})
    generated(sb, token, "GET", "agents/1001", version="v99.9")
    generated(sb, token, "POST", "agent-sessions/join/now", asAgentId="1001")
    requests.post(f"{sb.url}/auth/token", params={"username": QA[0]}, data={"grant_type": "password"}, timeout=10)
    found = contract_violations(sb.journal())
    assert len(found) == 5, found
    join_strays, barge_strays, version_strays, route_strays, token_strays = found
    assert join_strays.endswith("join does not publish madeUpParam")
    # targetAgentId is this project's documented decision for barge; agentId is nobody's
    assert barge_strays.endswith("barge does not publish agentId")
    assert "unknown API version 'v99.9'" in version_strays
    assert route_strays.endswith("not a published call")
    assert "token parameters in the query string: username" in token_strays


def test_contract_violations_reads_entries_without_the_new_keys() -> None:
    # An entry of an older journal (no body_fields) is judged on its query alone.
    entry = {
        "seq": 1,
        "method": "POST",
        "path": "/inContactAPI/services/v33.0/agent-sessions/join",
        "params": {"x": "1"},
    }
    assert contract_violations([entry]) == [
        "#1 POST /inContactAPI/services/v33.0/agent-sessions/join: join does not publish x"
    ]
