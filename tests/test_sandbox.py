"""The CXone sandbox over real HTTP: the Agent API, faults, journal, admin and CLI (auth: test_sandbox_auth.py).

One sandbox process serves the whole module (the ``cxone_sandbox`` fixture resets it per test);
plain ``requests`` talks to it, so these tests pin the wire contract the hook relies on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import requests

from cxone_provider import testing as cxone_testing
from cxone_provider.testing import SandboxError, SandboxServer
from cxone_sandbox import create_app, default_seed, generate_seed, load_seed
from cxone_sandbox.agent_states import AGENT_STATE_FIELDS
from cxone_sandbox.app import GATEWAY_NOT_FOUND
from cxone_sandbox.cli import build_parser, connection_line, faults_from_args
from cxone_sandbox.faults import Faults
from cxone_sandbox.routes import DEFAULT_STATES_PAGE_SIZE, KNOWN_API_VERSIONS, MAX_STATES_PAGE_SIZE
from cxone_sandbox.seed import sandbox_connection
from cxone_sandbox.settings import ADMIN_TOKEN_ENV, JOURNAL_ENTRY_BYTES, Settings, is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# The package's own fixtures, used the way a user's conftest would use them.
cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

TENANT = "11ee0000-0000-4000-8000-00000000cx01"
CLIENT = ("sandbox-client", "sandbox-client-secret")
QA = ("SANDBOX-QA-KEY", "sandbox-qa-secret")
VERSION = "v33.0"
PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


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


# The auth host (token, OIDC, JWKS, discovery) is tests/test_sandbox_auth.py's.


# ------------------------------------------------------------------------------------------ join


NOIMP = ("SANDBOX-NOIMP-KEY", "sandbox-noimp-secret")


def token_of(sb: SandboxServer, key: tuple[str, str]) -> str:
    response = get_token(sb, key)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.mark.parametrize(
    ("key", "agent", "status", "error", "joined"),
    [
        (QA, 1001, 202, None, "sess-1001"),
        (QA, 2001, 202, None, "sess-2001"),
        (QA, 1003, 403, "InvalidSecurityUser", None),
        (NOIMP, 1001, 403, "ImpersonateNotEnabled", None),
        (QA, 9999, 404, "InvalidAgentId", None),
        (QA, 2009, 404, "InvalidAgentSession", None),
        (QA, 2007, 404, "InvalidAgentSession", None),
    ],
    ids=["own", "impersonated", "inactive", "no-impersonation", "unknown-agent", "not-logged-in", "session-ended"],
)
def test_join_conditions(
    sb: SandboxServer, key: tuple[str, str], agent: int, status: int, error: str | None, joined: str | None
) -> None:
    # The published join: asAgentId only; the session asked for plays no part.
    response = join(sb, token_of(sb, key), agent, "sess-2003")
    if error is None:
        assert (response.status_code, response.json()) == (status, {"sessionId": joined})
    else:
        assert_error(response, status, error)
    assert sb.state()["joins"] == ([[joined, agent]] if error is None else [])


@pytest.mark.parametrize(
    ("agent", "session", "status", "error"),
    [
        (1001, "sess-2001", 202, None),
        (9999, "sess-2001", 404, "InvalidAgentId"),
        (1001, "sess-2007", 409, "InvalidAgentSession"),
        (1001, "no-such", 404, "InvalidAgentSession"),
    ],
    ids=["Success", "InvalidAgentId", "ended", "unknown"],
)
def test_join_conditions_under_the_session_extension(
    sb: SandboxServer, token: str, agent: int, session: str, status: int, error: str | None
) -> None:
    sb.set_faults(join_mode="session")  # this project's extension: join a session by its id
    response = join(sb, token, agent, session)
    if error is None:
        assert (response.status_code, response.json()) == (status, {"sessionId": session})
    else:
        assert_error(response, status, error)
    assert sb.state()["joins"] == ([[session, agent]] if error is None else [])


def test_impersonation_is_judged_on_the_token_holder(sb: SandboxServer) -> None:
    noimp = token_of(sb, NOIMP)
    # Its own agent needs no impersonation: 1002 is not logged in, so the session is what fails.
    assert_error(join(sb, noimp, 1002, None), 404, "InvalidAgentSession")
    assert_error(join(sb, noimp, 2001, None), 403, "ImpersonateNotEnabled")
    started = api(sb, "POST", "agent-sessions", noimp, stationId="7102")
    assert started.status_code == 202, started.text
    assert join(sb, noimp, 1002, None).json() == started.json()
    as_another = api(sb, "POST", "agent-sessions", noimp, stationId="7109", asAgentId=2009)
    assert_error(as_another, 403, "ImpersonateNotEnabled")


@pytest.mark.parametrize("body", [{"asAgentId": ""}, {}], ids=["empty", "missing"])
def test_join_without_an_agent_joins_as_the_token_holder(sb: SandboxServer, token: str, body: dict[str, str]) -> None:
    # NICE's SDK sends asAgentId "" when it has no agent id.
    response = api(sb, "POST", "agent-sessions/join", token, body=body)
    assert (response.status_code, response.json()) == (202, {"sessionId": "sess-1001"})


@pytest.mark.parametrize("agent", ["abc", "0", "-5", "1.5"], ids=["text", "zero", "negative", "float"])
def test_join_malformed_agent_id(sb: SandboxServer, token: str, agent: str | None) -> None:
    assert_error(join(sb, token, agent, "sess-2001"), 400, "InvalidAgentId")


def test_join_without_session_id_and_no_own_session(sb: SandboxServer, token: str) -> None:
    sb.set_faults(join_mode="session")
    assert_error(join(sb, token, 2009, None), 404, "InvalidAgentSession")


def test_join_without_session_id_attaches_to_the_agents_own_session(sb: SandboxServer, token: str) -> None:
    # The published request (asAgentId only) also in the session extension: NICE's SDK's use of the call.
    sb.set_faults(join_mode="session")
    own = api(sb, "POST", "agent-sessions", token, stationId="7101", asAgentId=2009).json()["sessionId"]
    response = join(sb, token, 2009, None)
    assert (response.status_code, response.json()) == (202, {"sessionId": own})
    assert sb.state()["joins"] == [[own, 2009]]


def test_join_is_idempotent_and_counted(sb: SandboxServer, token: str) -> None:
    sb.set_faults(join_mode="session")
    first = join(sb, token, 1001, "sess-2003")
    second = join(sb, token, 1001, "sess-2003")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"sessionId": "sess-2003"}
    state = sb.state()
    session = next(s for s in state["sessions"] if s["session_id"] == "sess-2003")
    assert session["joined_agents"] == [1001]
    assert session["join_calls"] == 2
    assert state["joins"] == [["sess-2003", 1001]]
    assert state["join_calls"] == 2


def test_join_takes_its_parameters_from_a_json_body(sb: SandboxServer, token: str) -> None:
    # NICE's agent SDK and the Ruby gem send {"asAgentId": …} as JSON; the project adds sessionId beside it.
    sb.set_faults(join_mode="session")
    response = api(sb, "POST", "agent-sessions/join", token, body={"asAgentId": 1001, "sessionId": "sess-2004"})
    assert response.status_code == 202, response.text
    assert response.json() == {"sessionId": "sess-2004"}
    assert sb.state()["joins"] == [["sess-2004", 1001]]


def test_join_takes_its_parameters_from_a_form_body(sb: SandboxServer, token: str) -> None:
    sb.set_faults(join_mode="session")
    response = requests.post(
        f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join",
        data={"asAgentId": "1001", "sessionId": "sess-2005"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert sb.state()["joins"] == [["sess-2005", 1001]]


def test_a_query_parameter_wins_over_the_same_in_the_body(sb: SandboxServer, token: str) -> None:
    sb.set_faults(join_mode="session")
    response = api(
        sb, "POST", "agent-sessions/join", token, body={"asAgentId": 1002}, asAgentId=1001, sessionId="sess-2001"
    )
    assert response.status_code == 202, response.text
    assert sb.state()["joins"] == [["sess-2001", 1001]]


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json"], ids=["not-an-object", "invalid"])
def test_api_body_that_is_not_a_json_object(sb: SandboxServer, token: str, raw: bytes) -> None:
    response = requests.post(
        f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join",
        data=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert_error(response, 400, "InvalidRequest")
    assert sb.state()["join_calls"] == 0


def test_join_mode_spec_attaches_the_agent_to_its_own_session(sb: SandboxServer, token: str) -> None:
    own = api(sb, "POST", "agent-sessions", token, stationId="7101", asAgentId=2009).json()["sessionId"]
    # The published join: asAgentId only.
    response = api(sb, "POST", "agent-sessions/join", token, body={"asAgentId": 2009})
    assert response.status_code == 202, response.text
    assert response.json() == {"sessionId": own}
    # The session asked for is ignored: the answer names the agent's own session, not sess-2001.
    response = join(sb, token, 2009, "sess-2001")
    assert (response.status_code, response.json()) == (202, {"sessionId": own})
    assert sb.state()["joins"] == [[own, 2009]]


def test_join_mode_spec_without_a_live_session_is_invalid_agent_session(sb: SandboxServer, token: str) -> None:
    sb.set_faults(status_description="sentence")
    assert_error(join(sb, token, 2009, "sess-2001"), 404, "Invalid agent session Id.")
    assert sb.state()["join_calls"] == 0


@pytest.mark.parametrize(
    ("key", "agent", "status", "error"),
    [
        (QA, 1003, 403, "InvalidSecurityUser"),
        (NOIMP, 2001, 403, "ImpersonateNotEnabled"),
        (QA, 9999, 404, "InvalidAgentId"),
    ],
    ids=["inactive", "no-impersonation", "unknown"],
)
@pytest.mark.parametrize("mode", ["spec", "session"])
def test_join_keeps_the_agent_checks_first(
    sb: SandboxServer, key: tuple[str, str], agent: int, status: int, error: str, mode: str
) -> None:
    # 2001 is logged in, so only the impersonation check can refuse it.
    sb.set_faults(join_mode=mode)
    assert_error(join(sb, token_of(sb, key), agent, "sess-2001"), status, error)


def test_the_published_shapes_are_the_default(sb: SandboxServer, token: str) -> None:
    defaults = sb.faults()
    assert (defaults["join_mode"], defaults["states_session_id"]) == ("spec", False)
    assert (defaults["status_description"], defaults["error_body"]) == ("name", "none")
    assert join(sb, token, 1001, "sess-2001").json() == {"sessionId": "sess-1001"}


@pytest.mark.parametrize(
    ("knobs", "header", "body"),
    [
        ({}, "InvalidAgentId", None),
        ({"status_description": "sentence"}, "Invalid Agent Id", None),
        ({"status_description": "none"}, None, None),
        ({"error_body": "legacy"}, "InvalidAgentId", "InvalidAgentId"),
    ],
    ids=["name", "sentence", "none", "legacy-body"],
)
def test_agent_api_error_shapes(
    sb: SandboxServer, token: str, knobs: dict[str, str], header: str | None, body: str | None
) -> None:
    sb.set_faults(**knobs)
    response = api(sb, "GET", "agents/4242", token)
    assert response.status_code == 404
    assert response.headers.get("icStatusDescription") == header
    if body is None:
        assert response.content == b""
    else:
        assert response.json() == {"error": body, "error_description": "Agent 4242 was not found"}


# ------------------------------------------------------------------------------------------ API basics


@pytest.mark.parametrize("bearer", [None, "not-a-token"], ids=["missing", "unknown"])
def test_api_needs_a_valid_token(sb: SandboxServer, bearer: str | None) -> None:
    response = api(sb, "GET", "agents/1001", bearer)
    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_token_expires(sb: SandboxServer) -> None:
    sb.set_faults(token_lifetime_s=1)
    response = get_token(sb)
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    time.sleep(1.1)
    assert_error(api(sb, "GET", "agents/1001", token), 401, "invalid_token")


@pytest.mark.parametrize("version", ["v99.9", "v35.0", "v0.0", "v33.1", "latest", "33.0", "v33"])
def test_unknown_api_version_is_a_gateway_404(sb: SandboxServer, token: str, version: str) -> None:
    assert_gateway_404(api(sb, "GET", "agents/1001", token, version=version))
    assert_gateway_404(api(sb, "POST", "agent-sessions/join", token, version=version, asAgentId=1001))
    assert_gateway_404(api(sb, "GET", "agents/1001", None, version=version))  # before the token check


@pytest.mark.parametrize(
    "version", ["v1.0", "v2.0", "V4.0", "v8.0", "v21.0", "v23.0", "v27.0", "v31.0", "v33.0", "V33.0", "v34.0"]
)
def test_known_api_versions_are_served(sb: SandboxServer, token: str, version: str) -> None:
    assert version.lower() in KNOWN_API_VERSIONS
    assert api(sb, "GET", "agents/1001", token, version=version).status_code == 200


def test_known_api_versions_are_v1_to_v34() -> None:
    assert sorted(KNOWN_API_VERSIONS, key=lambda v: float(v[1:])) == [f"v{n}.0" for n in range(1, 35)]


@pytest.mark.parametrize(
    "path",
    [
        "/inContactAPI/services/v33.0/typo/agent-sessions/join",
        "/inContactAPI/services/v33.0/agents/1001/nope",
        "/inContactAPI/services/v33.0/",
        "/inContactAPI/v33.0/agents/1001",
        "/no-such-route",
    ],
)
def test_unknown_route_is_a_gateway_404(sb: SandboxServer, token: str, path: str) -> None:
    response = requests.post(f"{sb.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert_gateway_404(response)


def test_wrong_method_has_no_cxone_error_either(sb: SandboxServer, token: str) -> None:
    response = api(sb, "GET", "agent-sessions/join", token)
    assert response.status_code == 405
    assert "error" not in response.json()


@pytest.mark.parametrize("prefix", ["inContactAPI", "InContactAPI", "incontactapi", "INCONTACTAPI"])
def test_api_prefix_is_case_insensitive(sb: SandboxServer, token: str, prefix: str) -> None:
    assert api(sb, "GET", "agents/1001", token, prefix=prefix).status_code == 200
    response = api(sb, "POST", "agent-sessions/join", token, prefix=prefix, asAgentId=1001, sessionId="sess-2001")
    assert response.status_code == 202
    assert sb.journal()[-1]["path"] == f"/{prefix}/services/{VERSION}/agent-sessions/join"  # as sent


def test_get_agent(sb: SandboxServer, token: str) -> None:
    response = api(sb, "GET", "agents/1001", token)
    assert response.status_code == 200
    record = response.json()["agents"][0]
    assert response.json()["businessUnitId"] == 4600001
    assert {k: record[k] for k in ("agentId", "isActive", "firstName", "lastName", "teamId", "timeZone")} == {
        "agentId": 1001,
        "isActive": True,
        "firstName": "Quinn",
        "lastName": "Supervisor",
        "teamId": 10,
        "timeZone": "America/Denver",
    }
    assert (record["userName"], record["emailAddress"]) == ("quinn.supervisor@sandbox.local",) * 2
    assert record["timeZoneOffset"] in {"-07:00", "-06:00"}  # standard or daylight time
    assert api(sb, "GET", "agents/1003", token).json()["agents"][0]["isActive"] is False


def test_get_agent_errors(sb: SandboxServer, token: str) -> None:
    assert_error(api(sb, "GET", "agents/abc", token), 400, "InvalidAgentId")
    assert_error(api(sb, "GET", "agents/4242", token), 404, "InvalidAgentId")


PUBLISHED_ROW_FIELDS = {
    "agentId",
    "agentStateId",
    "agentStateName",
    "agentStateCategory",
    "businessUnitId",
    "contactId",
    "isActive",
    "firstName",
    "lastName",
    "sessionStartTime",
    "skillId",
    "skillName",
    "stationId",
    "stationPhoneNumber",
    "teamId",
    "teamName",
    "userName",
}


def test_agent_states_rows(sb: SandboxServer, token: str) -> None:
    response = api(sb, "GET", "agents/states", token, updatedSince="2020-01-01T00:00:00Z")
    assert response.status_code == 200
    states = {s["agentId"]: s for s in response.json()["agentStates"]}
    assert set(states) == {1001, 1002, 1003, *range(2001, 2010)}
    # The published fields and lastUpdateTime (published too); the sessionId extension is off.
    assert all(set(s) == PUBLISHED_ROW_FIELDS | {"lastUpdateTime"} for s in states.values())
    assert set(AGENT_STATE_FIELDS) == PUBLISHED_ROW_FIELDS | {"lastUpdateTime", "sessionId"}
    live = {a: s for a, s in states.items() if s["agentStateName"] != "LoggedOut"}
    assert set(live) == {1001, *range(2001, 2007)}
    assert {s["agentStateName"] for s in live.values()} == {"Available", "InboundContact", "Unavailable"}
    ava = states[2001]
    assert (ava["agentStateName"], ava["agentStateId"], ava["agentStateCategory"]) == ("Available", 1, "Available")
    assert (ava["stationId"], ava["teamId"], ava["teamName"], ava["isActive"]) == (7001, 20, "Team 20", True)
    assert ava["userName"] == "ava.reyes@sandbox.local"
    assert (ava["contactId"], ava["skillId"], ava["skillName"]) == (None, None, None)
    assert ava["sessionStartTime"].endswith("Z")
    datetime.fromisoformat(ava["sessionStartTime"])
    on_call = states[2002]
    assert (on_call["agentStateName"], on_call["agentStateCategory"]) == ("InboundContact", "Working")
    assert all(on_call[k] for k in ("contactId", "skillId", "skillName"))
    for logged_out in (2007, 2008, 2009, 1002):
        assert states[logged_out]["agentStateName"] == "LoggedOut"
        assert states[logged_out]["agentStateId"] == 0
        assert states[logged_out]["stationId"] is None
        assert states[logged_out]["sessionStartTime"] is None
    assert states[1003]["isActive"] is False


def test_agent_states_envelope(sb: SandboxServer, token: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    body = api(sb, "GET", "agents/states", token).json()
    assert list(body) == ["totalRecords", "_links", "lastPollTime", "agentStates"]
    assert body["totalRecords"] == 12 == len(body["agentStates"])
    assert body["_links"] == {
        "self": f"{sb.url}/inContactAPI/services/{VERSION}/agents/states",
        "next": None,
        "previous": None,
    }
    assert datetime.fromisoformat(body["lastPollTime"]) >= before


def test_agent_states_pages_with_top_and_skip(sb: SandboxServer, token: str) -> None:
    first = api(sb, "GET", "agents/states", token, top=5, fields="agentId,teamId").json()
    assert first["totalRecords"] == 12
    assert [r["agentId"] for r in first["agentStates"]] == [1001, 1002, 1003, 2001, 2002]
    assert first["_links"]["previous"] is None
    headers = {"Authorization": f"Bearer {token}"}
    second = requests.get(first["_links"]["next"], headers=headers, timeout=10).json()
    assert [r["agentId"] for r in second["agentStates"]] == [2003, 2004, 2005, 2006, 2007]
    assert set(second["agentStates"][0]) == {"agentId", "teamId"}, "the next link keeps the other parameters"
    back = requests.get(second["_links"]["previous"], headers=headers, timeout=10).json()
    assert back["agentStates"] == first["agentStates"]
    third = requests.get(second["_links"]["next"], headers=headers, timeout=10).json()
    assert [r["agentId"] for r in third["agentStates"]] == [2008, 2009]
    assert third["_links"]["next"] is None
    assert "skip=5" in third["_links"]["previous"]
    skipped = api(sb, "GET", "agents/states", token, skip=10).json()
    assert [r["agentId"] for r in skipped["agentStates"]] == [2008, 2009]
    assert api(sb, "GET", "agents/states", token, skip=50).json()["agentStates"] == []


def test_agent_states_links_keep_the_clients_spelling(sb: SandboxServer, token: str) -> None:
    body = api(sb, "GET", "agents/states", token, prefix="incontactapi", version="v23.0", top=5).json()
    base = f"{sb.url}/incontactapi/services/v23.0/agents/states?"
    assert body["_links"]["self"] == base + "top=5"
    assert body["_links"]["next"] == base + "top=5&skip=5"


@pytest.mark.parametrize("params", [{"top": 0}, {"top": "abc"}, {"skip": -1}, {"skip": "1.5"}])
def test_agent_states_bad_paging(sb: SandboxServer, token: str, params: dict[str, Any]) -> None:
    assert_error(api(sb, "GET", "agents/states", token, **params), 400, "InvalidParameter")


def test_agent_states_default_and_largest_page() -> None:
    with SandboxServer(live_sessions=150) as server:
        token = get_token(server).json()["access_token"]
        assert DEFAULT_STATES_PAGE_SIZE == MAX_STATES_PAGE_SIZE == 100
        asked: list[dict[str, Any]] = [{}, {"top": 1000}]
        for params in asked:
            body = api(server, "GET", "agents/states", token, **params).json()
            assert body["totalRecords"] == 162
            assert len(body["agentStates"]) == 100
            assert "skip=100" in body["_links"]["next"]
        assert len(all_states(server, token)) == 162


def test_agent_states_published_filters(sb: SandboxServer, token: str) -> None:
    def ids(**params: Any) -> list[int]:
        response = api(sb, "GET", "agents/states", token, **params)
        assert response.status_code == 200, response.text
        return [r["agentId"] for r in response.json()["agentStates"]]

    everyone = ids()
    assert ids(updatedSince="2000-01-01T00:00:00.000Z") == everyone
    assert ids(updatedSince="2999-01-01T00:00:00Z") == []
    bu = api(sb, "GET", "agents/states", token).json()["agentStates"][0]["businessUnitId"]
    assert ids(reqBUIds=str(bu)) == everyone
    assert ids(reqBUIds=f"{bu + 1},{bu + 2}") == []
    rows = api(sb, "GET", "agents/states", token, fields="agentId,agentStateName").json()["agentStates"]
    assert all(set(r) == {"agentId", "agentStateName"} for r in rows)
    assert ids(orderBy="agentId desc") == sorted(everyone, reverse=True)
    by_name = api(sb, "GET", "agents/states", token, orderBy="lastName asc").json()["agentStates"]
    assert [r["lastName"] for r in by_name] == sorted((r["lastName"] for r in by_name), key=str.lower)
    assert ids(orderBy="noSuchField") == everyone
    assert_error(api(sb, "GET", "agents/states", token, updatedSince="yesterday"), 400, "InvalidParameter")


def test_agent_states_updated_since_sees_a_new_login(sb: SandboxServer, token: str) -> None:
    since = datetime.now(UTC).isoformat()
    assert api(sb, "POST", "agent-sessions", token, stationId="7009", asAgentId=2009).status_code == 202
    rows = api(sb, "GET", "agents/states", token, updatedSince=since).json()["agentStates"]
    assert [r["agentId"] for r in rows] == [2009]


def test_agent_states_session_id_is_an_extension(sb: SandboxServer, token: str) -> None:
    rows = api(sb, "GET", "agents/states", token).json()["agentStates"]
    assert rows
    assert all("sessionId" not in r for r in rows)
    assert all(set(r) == PUBLISHED_ROW_FIELDS | {"lastUpdateTime"} for r in rows)
    sb.set_faults(states_session_id=True)
    assert "sessionId" in api(sb, "GET", "agents/states", token).json()["agentStates"][0]


# ------------------------------------------------------------------------------------------ sessions


def test_start_join_and_end_a_session(sb: SandboxServer, token: str) -> None:
    started = api(sb, "POST", "agent-sessions", token, stationId="7009", asAgentId=2009)
    assert started.status_code == 202
    session_id = started.json()["sessionId"]
    states = {s["agentId"]: s for s in api(sb, "GET", "agents/states", token).json()["agentStates"]}
    assert (states[2009]["stationId"], states[2009]["agentStateName"]) == (7009, "Available")
    assert join(sb, token, 2009, None).json() == {"sessionId": session_id}
    # A second start for a logged-in agent is refused: NICE's SDK then joins.
    assert_error(api(sb, "POST", "agent-sessions", token, stationId="7010", asAgentId=2009), 409, "InvalidState")

    ended = api(sb, "DELETE", f"agent-sessions/{session_id}", token, forceLogoff="true")
    assert ended.status_code == 202
    assert_error(api(sb, "DELETE", f"agent-sessions/{session_id}", token), 409, "InvalidAgentSession")
    assert_error(join(sb, token, 2009, None), 404, "InvalidAgentSession")
    assert_error(api(sb, "DELETE", "agent-sessions/no-such", token), 404, "InvalidAgentSession")
    states = {s["agentId"]: s for s in api(sb, "GET", "agents/states", token).json()["agentStates"]}
    assert states[2009]["agentStateName"] == "LoggedOut"


def test_start_session_by_phone_number(sb: SandboxServer, token: str) -> None:
    response = api(sb, "POST", "agent-sessions", token, stationPhoneNumber="5551234", asAgentId=2009)
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"stationId": "7009", "asAgentId": 9999}, 404, "InvalidAgentId"),
        ({"stationId": "7009", "asAgentId": 1003}, 403, "InvalidSecurityUser"),
        ({"asAgentId": 2009}, 400, "InvalidStation"),
        ({"stationId": "7009"}, 409, "InvalidState"),
    ],
    ids=["unknown-agent", "inactive-agent", "no-station", "own-agent-logged-in"],
)
def test_start_session_errors(sb: SandboxServer, token: str, params: dict[str, Any], status: int, error: str) -> None:
    assert_error(api(sb, "POST", "agent-sessions", token, **params), status, error)


def test_start_session_takes_its_parameters_from_a_json_body(sb: SandboxServer, token: str) -> None:
    body = {
        "stationId": "7009",
        "stationPhoneNumber": "5550009",
        "inactivityTimeout": 120,
        "inactivityForceLogout": True,
        "asAgentId": 2009,
    }
    response = api(sb, "POST", "agent-sessions", token, body=body)
    assert response.status_code == 202, response.text
    session = state_of(sb, response.json()["sessionId"])
    assert (session["agent_id"], session["station_id"], session["station_phone_number"]) == (2009, 7009, "5550009")
    assert (session["inactivity_timeout"], session["inactivity_force_logout"]) == (120, True)


def test_start_session_takes_the_same_parameters_from_the_query(sb: SandboxServer, token: str) -> None:
    response = api(
        sb,
        "POST",
        "agent-sessions",
        token,
        stationId="7009",
        inactivityTimeout=45,
        inactivityForceLogout="false",
        asAgentId=2009,
    )
    assert response.status_code == 202, response.text
    session = state_of(sb, response.json()["sessionId"])
    assert (session["inactivity_timeout"], session["inactivity_force_logout"]) == (45, False)


@pytest.mark.parametrize(
    "params",
    [{"inactivityTimeout": "soon"}, {"inactivityTimeout": 0}, {"inactivityForceLogout": "maybe"}],
    ids=["timeout-text", "timeout-zero", "force-logout-not-boolean"],
)
def test_start_session_bad_options(sb: SandboxServer, token: str, params: dict[str, Any]) -> None:
    response = api(sb, "POST", "agent-sessions", token, stationId="7009", asAgentId=2009, **params)
    assert_error(response, 400, "InvalidParameter")


@pytest.mark.parametrize("style", ["json", "query"])
def test_end_session_options(sb: SandboxServer, token: str, style: str) -> None:
    options = {"forceLogoff": True, "endContacts": False, "ignorePersonalQueue": True}
    if style == "json":  # NICE's agent SDK sends them as a JSON body of a DELETE
        response = api(sb, "DELETE", "agent-sessions/sess-2003", token, body=options)
    else:
        response = api(
            sb, "DELETE", "agent-sessions/sess-2003", token, **{k: str(v).lower() for k, v in options.items()}
        )
    assert response.status_code == 202, response.text
    session = state_of(sb, "sess-2003")
    assert session["state"] == "ended"
    assert session["end_options"] == options


# ------------------------------------------------------------------------------------------ supervise


@pytest.mark.parametrize("action", ["monitor", "coach", "barge", "take-over"])
def test_supervise_actions_are_recorded(sb: SandboxServer, token: str, action: str) -> None:
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    response = api(sb, "POST", f"agent-sessions/sess-2001/{action}", token, targetAgentId=2001)
    assert response.status_code == 202
    assert response.json() == {}
    (recorded,) = sb.state()["supervise_actions"]
    assert recorded["session_id"] == "sess-2001"
    assert recorded["action"] == action
    assert recorded["target_agent_id"] == 2001


@pytest.mark.parametrize(
    ("session", "target", "status", "error"),
    [
        ("no-such", 2001, 404, "InvalidAgentSession"),
        ("sess-2007", 2001, 409, "InvalidAgentSession"),
        ("sess-2001", 9999, 404, "InvalidAgentId"),
        ("sess-2001", "x", 400, "InvalidAgentId"),
        ("sess-2001", 2009, 409, "InvalidAgentSession"),
    ],
    ids=["unknown-session", "ended-session", "unknown-target", "bad-target", "target-logged-out"],
)
def test_supervise_errors(sb: SandboxServer, token: str, session: str, target: object, status: int, error: str) -> None:
    response = api(sb, "POST", f"agent-sessions/{session}/monitor", token, targetAgentId=target)
    assert_error(response, status, error)
    assert sb.state()["supervise_actions"] == []


def test_supervise_takes_target_agent_id_from_a_json_body(sb: SandboxServer, token: str) -> None:
    response = api(sb, "POST", "agent-sessions/sess-2001/monitor", token, body={"targetAgentId": 2002})
    assert response.status_code == 202, response.text
    assert sb.state()["supervise_actions"][0]["target_agent_id"] == 2002


def supervisor_session(sb: SandboxServer, token: str) -> str:
    """Quinn (1001)'s own live session, seeded: the session a supervisor monitors from."""
    assert state_of(sb, "sess-1001")["state"] == "active"
    return "sess-1001"


@pytest.mark.parametrize("action", ["coach", "barge", "take-over"])
def test_coach_barge_take_over_act_on_the_monitored_agent(sb: SandboxServer, token: str, action: str) -> None:
    own = supervisor_session(sb, token)
    assert api(sb, "POST", f"agent-sessions/{own}/monitor", token, targetAgentId=2002).status_code == 202
    response = api(sb, "POST", f"agent-sessions/{own}/{action}", token)  # no parameter, as published
    assert response.status_code == 202, response.text
    monitored, acted = sb.state()["supervise_actions"]
    assert (monitored["action"], monitored["target_from"]) == ("monitor", "targetAgentId")
    assert (acted["action"], acted["target_agent_id"], acted["target_from"]) == (action, 2002, "monitor")
    assert acted["target_session_id"] == "sess-2002"
    assert state_of(sb, own)["monitoring"] == 2002


@pytest.mark.parametrize("action", ["coach", "barge", "take-over"])
def test_coach_barge_take_over_act_on_a_joined_sessions_agent(sb: SandboxServer, token: str, action: str) -> None:
    sb.set_faults(join_mode="session")  # a supervisor joining an agent's session: this project's extension
    assert join(sb, token, 1001, "sess-2004").status_code == 202
    assert api(sb, "POST", f"agent-sessions/sess-2004/{action}", token).status_code == 202
    (acted,) = sb.state()["supervise_actions"]
    assert (acted["target_agent_id"], acted["target_from"]) == (2004, "join")


@pytest.mark.parametrize("action", ["coach", "barge", "take-over"])
def test_coach_barge_take_over_with_no_agent_to_act_on(sb: SandboxServer, token: str, action: str) -> None:
    own = "sess-1001"  # neither monitoring nor joined
    assert_error(api(sb, "POST", f"agent-sessions/{own}/{action}", token), 409, "InvalidAgentSession")
    assert sb.state()["supervise_actions"] == []


def test_monitor_keeps_its_target_agent_id(sb: SandboxServer, token: str) -> None:
    sb.set_faults(join_mode="session")
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    assert_error(api(sb, "POST", "agent-sessions/sess-2001/monitor", token), 400, "InvalidAgentId")


def test_unknown_supervise_action_is_not_found(sb: SandboxServer, token: str) -> None:
    response = api(sb, "POST", "agent-sessions/sess-2001/whisper", token, targetAgentId=2001)
    assert_gateway_404(response)


# ------------------------------------------------------------------------------------------ faults


def test_faults_default_off(sb: SandboxServer) -> None:
    assert sb.faults() == Faults().to_dict()
    assert sb.faults()["token_lifetime_s"] == 3600


def test_put_faults_replaces_over_defaults(sb: SandboxServer) -> None:
    sb.set_faults(latency_ms=5, rate_503=0.5)
    effective = sb.set_faults(rate_503=0.25)
    assert effective["rate_503"] == 0.25
    assert effective["latency_ms"] == 0


@pytest.mark.parametrize(
    "knobs",
    [
        {"no_such_knob": 1},
        {"rate_503": 2},
        {"rate_503": 0.6, "rate_drop": 0.6},
        {"rate_html": 0.6, "rate_slow_drip": 0.6},
        {"rate_non_json": -0.1},
        {"huge_body_bytes": 0},
        {"huge_body_bytes": 1.5},
        {"drip_interval_s": -1},
        {"path_filter": 5},
        {"join_mode": "own"},
        {"join_mode": None},
        {"states_session_id": "maybe"},
    ],
)
def test_bad_faults_are_rejected(sb: SandboxServer, knobs: dict[str, object]) -> None:
    response = requests.put(f"{sb.url}/_sandbox/faults", json=knobs, timeout=10)
    assert_error(response, 400, "InvalidFaults")


@pytest.mark.parametrize(
    ("knobs", "status", "error", "fault", "retry_after"),
    [
        ({"rate_429_retry_after": 1.0, "retry_after_s": 3}, 429, "TooManyRequests", "429_retry_after", "3"),
        ({"rate_429_no_retry_after": 1.0}, 429, "TooManyRequests", "429", None),
        ({"rate_503": 1.0}, 503, "ServiceUnavailable", "503", None),
    ],
    ids=["429-retry-after", "429-no-retry-after", "503"],
)
def test_faulted_responses(
    sb: SandboxServer,
    token: str,
    knobs: dict[str, object],
    status: int,
    error: str,
    fault: str,
    retry_after: str | None,
) -> None:
    sb.set_faults(**knobs)
    response = join(sb, token, 1001, "sess-2001")
    assert_error(response, status, error)
    assert response.headers.get("Retry-After") == retry_after
    # A faulted request never reaches the API: nothing joined.
    assert sb.state()["join_calls"] == 0
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (status, fault)


def test_dropped_connection_is_a_connection_error(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_drop=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        join(sb, token, 1001, "sess-2001")
    assert sb.state()["join_calls"] == 0
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (None, "drop")
    sb.set_faults()
    assert join(sb, token, 1001, "sess-2001").status_code == 202


def test_faults_spare_auth_unless_asked(sb: SandboxServer) -> None:
    sb.set_faults(rate_503=1.0)
    assert get_token(sb).status_code == 200
    sb.set_faults(rate_503=1.0, apply_to_auth=True)
    assert_error(get_token(sb), 503, "ServiceUnavailable")


def test_admin_is_never_faulted(sb: SandboxServer) -> None:
    sb.set_faults(rate_drop=1.0, apply_to_auth=True, latency_ms=2000)
    started = time.monotonic()
    assert sb.state()["join_calls"] == 0
    assert sb.journal() == []
    assert time.monotonic() - started < 1


def test_latency_overlaps_across_concurrent_requests(sb: SandboxServer, token: str) -> None:
    sb.set_faults(latency_ms=200)
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started >= 0.2
    sb.clear_journal()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda s: join(sb, token, 1001, s).status_code, ["sess-2001"] * 8))
    elapsed = time.monotonic() - started
    assert statuses == [202] * 8
    assert elapsed < 0.2 * 8 / 2, "latency must not serialise requests"
    assert max(e["inflight"] for e in sb.journal()) > 1


def test_slow_requests(sb: SandboxServer, token: str) -> None:
    sb.set_faults(slow_rate=1.0, slow_ms=150)
    started = time.monotonic()
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    assert time.monotonic() - started >= 0.15
    assert sb.journal()[-1]["fault"] == "slow"


def test_random_seed_makes_runs_reproducible(sb: SandboxServer, token: str) -> None:
    def run() -> list[int]:
        sb.set_faults(rate_503=0.3, rate_429_no_retry_after=0.2, random_seed=42)
        return [api(sb, "GET", "agents/1001", token).status_code for _ in range(30)]

    first = run()
    assert run() == first
    assert {200, 429, 503} <= set(first)


def test_path_filter_faults_only_matching_paths(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0, slow_rate=1.0, slow_ms=0, latency_ms=100, path_filter="agent-sessions/join")
    sb.clear_journal()
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started >= 0.1, "latency still applies outside the filter"
    assert_error(join(sb, token, 1001, "sess-2001"), 503, "ServiceUnavailable")
    assert [e["fault"] for e in sb.journal()] == [None, "503"]
    # The malformed answers obey it too.
    sb.set_faults(rate_html=1.0, path_filter="agents/")
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    assert api(sb, "GET", "agents/1001", token).status_code == 502


def test_path_filter_narrows_apply_to_auth(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0, path_filter="/auth/token")
    assert get_token(sb).status_code == 200, "auth stays out of scope without apply_to_auth"
    sb.set_faults(rate_503=1.0, path_filter="/auth/token", apply_to_auth=True)
    assert_error(get_token(sb), 503, "ServiceUnavailable")
    assert api(sb, "GET", "agents/1001", token).status_code == 200


def test_empty_path_filter_means_none(sb: SandboxServer) -> None:
    assert sb.set_faults(path_filter="")["path_filter"] is None


@pytest.mark.parametrize(
    ("knob", "path", "status", "content_type", "body"),
    [
        ("rate_html", "agent-sessions/join", 502, "text/html", None),
        ("rate_non_json", "agent-sessions/join", 200, "text/plain", b"OK"),
        ("rate_truncated_json", "agent-sessions/join", 200, "application/json", b'{"sessionId": "sess-20'),
        ("rate_no_session_id", "agent-sessions/join", 202, "application/json", b"{}"),
        ("rate_no_session_id", "agents/1001", 200, "application/json", b"{}"),
    ],
    ids=["html", "non-json", "truncated-json", "no-session-id-join", "no-session-id-elsewhere"],
)
def test_malformed_answers(
    sb: SandboxServer, token: str, knob: str, path: str, status: int, content_type: str, body: bytes | None
) -> None:
    sb.set_faults(**{knob: 1.0})
    method = "POST" if path == "agent-sessions/join" else "GET"
    response = api(sb, method, path, token, asAgentId=1001, sessionId="sess-2001")
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Length"] == str(len(response.content))
    if body is None:  # nginx's page
        assert response.content.startswith(b"<html>\r\n<head><title>502 Bad Gateway</title></head>")
        assert response.content.rstrip().endswith(b"</body>\r\n</html>")
    else:
        assert response.content == body
    if knob != "rate_no_session_id":
        with pytest.raises(requests.exceptions.JSONDecodeError):
            response.json()
    assert sb.state()["join_calls"] == 0, "a malformed answer never reaches the API"
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (status, knob.removeprefix("rate_"))


def test_malformed_rates_share_the_die(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_html=0.5, rate_non_json=0.5, random_seed=3)
    sb.clear_journal()
    statuses = {api(sb, "GET", "agents/1001", token).status_code for _ in range(20)}
    assert statuses == {200, 502}
    assert {e["fault"] for e in sb.journal()} == {"html", "non_json"}


def test_huge_body(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_huge_body=1.0)
    assert sb.faults()["huge_body_bytes"] == 5_000_000
    sb.clear_journal()
    response = join(sb, token, 1001, "sess-2001")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content)) == "5000000"
    body = response.json()  # well-formed, only too big
    assert body["sessionId"] == "sess-2001"
    assert set(body["padding"]) == {"x"}
    sb.set_faults(rate_huge_body=1.0, huge_body_bytes=70_000)  # more than one chunk
    response = api(sb, "GET", "agents/1001", token)
    assert len(response.content) == 70_000
    assert set(response.json()) == {"padding"}
    assert sb.state()["join_calls"] == 0
    assert [e["fault"] for e in sb.journal()] == ["huge_body", "huge_body"]


def join_url(sb: SandboxServer) -> str:
    return f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join?asAgentId=1001&sessionId=sess-2001"


def test_slow_drip_outlasts_a_per_read_timeout(sb: SandboxServer, token: str) -> None:
    # Each byte comes within the read timeout, so only a bound on the whole read could stop this.
    sb.set_faults(rate_slow_drip=1.0, drip_interval_s=0.05)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    response = requests.post(join_url(sb), headers=headers, timeout=(5, 0.5))
    assert time.monotonic() - started >= 20 * 0.05 * 0.9
    assert response.status_code == 200
    assert response.json() == {"sessionId": "drip"}
    assert response.headers["Content-Length"] == "20"
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (200, "slow_drip")
    assert sb.state()["join_calls"] == 0


def test_slow_drip_times_out_blocks_nothing_and_survives_disconnects(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_slow_drip=1.0, drip_interval_s=2.0, path_filter="agent-sessions/join")
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    streamed = requests.post(join_url(sb), headers=headers, stream=True, timeout=(5, 5))
    assert time.monotonic() - started < 0.4, "headers come at once"
    assert streamed.status_code == 200
    # While it drips, the server answers others at once.
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started < 0.4
    # A read timeout shorter than the interval fires (requests reports it as a ConnectionError).
    with pytest.raises(requests.exceptions.RequestException, match="timed out"):
        requests.post(join_url(sb), headers=headers, timeout=(5, 0.2))
    streamed.close()  # the client leaves mid-drip
    deadline = time.monotonic() + 3
    while len(drips := [e for e in sb.journal() if e["fault"] == "slow_drip"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(drips) == 2
    # Each ends as its client leaves: not after its 40 s course, nor even after the current interval.
    assert all(e["t_end"] - e["t_start"] < 1.5 for e in drips), drips
    assert all(e["status"] == 200 for e in drips)
    assert "Traceback" not in sb.log()
    assert "ASGI callable" not in sb.log()
    sb.set_faults()
    assert join(sb, token, 1001, "sess-2001").status_code == 202


def test_cli_fault_flags() -> None:
    args = build_parser().parse_args(
        [
            "--rate-html=0.1",
            "--rate-non-json=0.1",
            "--rate-truncated-json=0.1",
            "--rate-no-session-id=0.1",
            "--rate-huge-body=0.1",
            "--huge-body-bytes=1000",
            "--rate-slow-drip=0.1",
            "--drip-interval-s=0.25",
            "--path-filter=agent-sessions/join",
        ]
    )
    faults = faults_from_args(args)
    assert faults == Faults(
        rate_html=0.1,
        rate_non_json=0.1,
        rate_truncated_json=0.1,
        rate_no_session_id=0.1,
        rate_huge_body=0.1,
        huge_body_bytes=1000,
        rate_slow_drip=0.1,
        drip_interval_s=0.25,
        path_filter="agent-sessions/join",
    )
    assert faults_from_args(build_parser().parse_args([])) == Faults()
    # A filter that looks like a flag still reaches the server as one argument.
    assert "--path-filter=-join" in SandboxServer(faults={"path_filter": "-join"}).command()


def test_cli_tenant_setting_flags() -> None:
    args = build_parser().parse_args(
        ["--join-mode", "session", "--states-session-id", "--status-description", "sentence", "--error-body", "legacy"]
    )
    legacy = Faults(join_mode="session", states_session_id=True, status_description="sentence", error_body="legacy")
    assert faults_from_args(args) == legacy
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--join-mode", "own"])
    command = SandboxServer(faults={"join_mode": "session", "states_session_id": True}).command()
    assert command[-3:] == ["--join-mode", "session", "--states-session-id"]


# ------------------------------------------------------------------------------------------ journal


def test_journal_records_requests_without_secrets(sb: SandboxServer) -> None:
    issued = get_token(sb).json()
    join(sb, issued["access_token"], 1001, "sess-2002")
    entries = sb.journal()
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/auth/token", 200),
        ("POST", f"/inContactAPI/services/{VERSION}/agent-sessions/join", 202),
    ]
    token_entry, join_entry = entries
    assert join_entry["params"] == {"asAgentId": "1001", "sessionId": "sess-2002"}
    assert join_entry["seq"] > token_entry["seq"]
    assert set(join_entry) == set(token_entry) == JOURNAL_KEYS
    assert (join_entry["body"], join_entry["body_fields"], join_entry["client_auth"]) == (None, [], None)
    assert join_entry["user_agent"].startswith("python-requests/")
    assert token_entry["body"] is None
    assert token_entry["body_fields"] == ["grant_type", "password", "username"]
    assert token_entry["client_auth"] == "basic"
    assert join_entry["fault"] is None
    assert join_entry["inflight"] == 1
    assert 0 <= token_entry["t_start"] <= token_entry["t_end"] <= join_entry["t_start"] <= join_entry["t_end"]
    dumped = json.dumps(entries) + json.dumps(sb.state())
    for secret in (QA[1], CLIENT[1], issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in dumped


JOURNAL_KEYS = {
    "seq",
    "t_start",
    "t_end",
    "method",
    "path",
    "params",
    "body",
    "body_fields",
    "client_auth",
    "user_agent",
    "status",
    "fault",
    "inflight",
}


def test_journal_records_a_json_body_and_the_user_agent(sb: SandboxServer, token: str) -> None:
    sb.clear_journal()
    response = requests.post(
        f"{sb.url}/InContactAPI/services/v23.0/agent-sessions/join",
        json={"asAgentId": 1001, "sessionId": "sess-2001"},
        headers={"Authorization": f"Bearer {token}", "User-Agent": "cxone-agent-sdk/1.0"},
        timeout=10,
    )
    assert response.status_code == 202
    (entry,) = sb.journal()
    assert entry["path"] == "/InContactAPI/services/v23.0/agent-sessions/join"
    assert entry["params"] == {}
    assert entry["body"] == {"asAgentId": 1001, "sessionId": "sess-2001"}  # JSON values as sent
    assert entry["body_fields"] == ["asAgentId", "sessionId"]
    assert entry["user_agent"] == "cxone-agent-sdk/1.0"


def test_journal_records_the_body_of_a_faulted_request(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0)
    sb.clear_journal()
    assert api(sb, "POST", "agent-sessions/join", token, body={"asAgentId": 1001}).status_code == 503
    (entry,) = sb.journal()
    assert (entry["fault"], entry["body"]) == ("503", {"asAgentId": 1001})


def test_journal_token_entries_hold_field_names_and_client_auth_only(sb: SandboxServer) -> None:
    issued = get_token(sb).json()
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    requests.post(f"{sb.url}/auth/token", data={**form, "client_id": CLIENT[0], "client_secret": CLIENT[1]}, timeout=10)
    # Secrets in the query string (nobody should) are kept out too.
    requests.post(f"{sb.url}/auth/token", params={"password": QA[1]}, data={"grant_type": "password"}, timeout=10)
    basic, form_entry, query_entry = sb.journal()
    assert (basic["client_auth"], basic["body_fields"]) == ("basic", ["grant_type", "password", "username"])
    assert form_entry["client_auth"] == "form"
    assert form_entry["body_fields"] == ["client_id", "client_secret", "grant_type", "refresh_token"]
    assert query_entry["params"] == {"password": "<redacted>"}
    assert query_entry["client_auth"] is None
    assert all(e["body"] is None for e in (basic, form_entry, query_entry))
    dumped = json.dumps(sb.journal()) + json.dumps(sb.state())
    for secret in (QA[1], CLIENT[1], issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in dumped


def test_journal_route_and_helper_return_the_same_list(sb: SandboxServer, token: str) -> None:
    join(sb, token, 1001, "sess-2001")
    listed = requests.get(f"{sb.url}/_sandbox/journal", timeout=10).json()
    assert isinstance(listed, list)
    assert listed == sb.journal()
    assert [e["path"].rsplit("/", 1)[-1] for e in listed] == ["token", "join"]


def test_clear_journal(sb: SandboxServer, token: str) -> None:
    assert sb.journal()
    sb.clear_journal()
    assert sb.journal() == []


# ------------------------------------------------------------------------------------------ reset


def test_reset_restores_seed_faults_and_journal(sb: SandboxServer, token: str) -> None:
    join(sb, token, 1001, "sess-2001")
    api(sb, "DELETE", "agent-sessions/sess-2002", token)
    sb.set_faults(latency_ms=10)
    sb.reset()
    state = sb.state()
    assert state["join_calls"] == 0
    assert state["tokens_issued"] == 0
    assert next(s for s in state["sessions"] if s["session_id"] == "sess-2002")["state"] == "active"
    assert sb.faults() == Faults().to_dict()
    assert sb.journal() == []
    # Tokens are state too: a reset revokes them, as a new tenant would.
    assert_error(api(sb, "GET", "agents/1001", token), 401, "invalid_token")


# ------------------------------------------------------------------------------------------ hardening
# What the sandbox guarantees when something hostile can reach it: a body is read up to a limit, the
# journal is a ring of small entries, and beyond loopback its admin routes need a token.

MiB = 1024 * 1024
#: The body of the issue's report: one token request this big peaked at 742 MiB in the sandbox.
HOSTILE_BYTES = 300 * MiB
#: How much a sandbox may grow while it refuses a hostile body (its limit is 1 MiB).
RSS_GROWTH_LIMIT = 64 * MiB
ADMIN_ROUTES = [("PUT", "faults"), ("POST", "reset"), ("DELETE", "journal")]
READ_ROUTES = ["journal", "state", "faults"]


def _blocks(total: int) -> Iterator[bytes]:
    block = b"x" * MiB
    for _ in range(total // MiB):
        yield block


def rss_growth(pid: int | None, call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()``'s result, and how far the process ``pid`` grew above its resident size meanwhile."""
    assert pid is not None
    process = psutil.Process(pid)
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = call()
    finally:
        done.set()
        sampler.join()
    return result, peak - start


def raw_request(url: str, head: str, body_bytes: int) -> tuple[int, dict[str, Any]]:
    """Send ``head`` and ``body_bytes`` of body over a plain socket, whatever the server does
    meanwhile, then read the answer: ``(status, JSON body)``."""
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode("latin-1"))
        try:
            for block in _blocks(body_bytes):
                conn.sendall(block)
        except OSError:
            pass  # the answer may have come already; read it
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"null")


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def send_hostile(
    sb: SandboxServer, method: str, path: str, framing: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """A ``HOSTILE_BYTES`` body to ``path``: chunked (a generator, no length), with its true
    ``Content-Length``, or with one that claims more than is sent (the client then waits)."""
    if framing == "chunked":
        response = requests.request(method, f"{sb.url}{path}", data=_blocks(HOSTILE_BYTES), headers=headers, timeout=30)
        return response.status_code, response.json()
    declared = HOSTILE_BYTES if framing == "content-length" else 8 * 1024 * MiB
    head = f"{method} {path} HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return raw_request(sb.url, head + f"Content-Length: {declared}\r\n\r\n", HOSTILE_BYTES)


@pytest.mark.parametrize("framing", ["chunked", "content-length", "lying-content-length"])
def test_a_hostile_token_request_is_refused_without_being_read(sb: SandboxServer, framing: str) -> None:
    (status, body), grew = rss_growth(sb.pid, lambda: send_hostile(sb, "POST", "/auth/token", framing))
    assert status == 413
    assert body == {
        "error": "RequestEntityTooLarge",
        "error_description": "The request body is larger than the 1048576 bytes this server accepts",
    }
    assert grew < RSS_GROWTH_LIMIT, f"the sandbox grew {grew / MiB:.0f} MiB"
    (entry,) = sb.journal()
    assert (entry["path"], entry["status"], entry["body_fields"], entry["fault"]) == ("/auth/token", 413, [], None)
    assert get_token(sb).status_code == 200  # and it goes on serving


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/inContactAPI/services/{VERSION}/agent-sessions/join"),
        ("PUT", "/_sandbox/faults"),
        ("POST", "/_sandbox/reset"),
    ],
    ids=["join", "put-faults", "reset"],
)
def test_every_route_refuses_a_hostile_body(sb: SandboxServer, method: str, path: str) -> None:
    # Before faults too: the limit is the gateway's, the service never sees the request.
    sb.set_faults(rate_503=1.0)
    (status, body), grew = rss_growth(sb.pid, lambda: send_hostile(sb, method, path, "chunked"))
    assert (status, body["error"]) == (413, "RequestEntityTooLarge")
    assert grew < RSS_GROWTH_LIMIT, f"the sandbox grew {grew / MiB:.0f} MiB"
    assert sb.faults()["rate_503"] == 1.0  # the refused admin calls changed nothing


def test_the_body_limit_is_a_setting() -> None:
    with SandboxServer(settings={"max_body_bytes": 4096}) as server:
        bearer = {"Authorization": f"Bearer {get_token(server).json()['access_token']}"}
        url = f"{server.url}/inContactAPI/services/{VERSION}/agent-sessions/join"

        def body(size: int) -> bytes:
            head = b'{"asAgentId": 1001, "sessionId": "sess-2001", "padding": "'
            return head + b"x" * (size - len(head) - 2) + b'"}'

        at_limit = requests.post(url, data=body(4096), headers=bearer, timeout=10)
        assert at_limit.status_code == 202, at_limit.text
        over = requests.post(url, data=body(4097), headers=bearer, timeout=10)
        # Refused by the gateway in front of the API, before CXone: the gateway's body.
        assert (over.status_code, over.json()["error"]) == (413, "RequestEntityTooLarge")
        assert "4096 bytes" in over.json()["error_description"]
        assert [e["status"] for e in server.journal()] == [200, 202, 413]


def test_the_journal_is_a_ring_that_counts_what_it_dropped() -> None:
    with SandboxServer(settings={"journal_size": 5}) as server:
        for _ in range(12):
            requests.get(f"{server.url}/.well-known/cxone-configuration", params={"tenantId": TENANT}, timeout=10)
        listed = requests.get(f"{server.url}/_sandbox/journal", timeout=10)
        assert [e["seq"] for e in listed.json()] == [8, 9, 10, 11, 12]  # the most recent, oldest first
        assert listed.headers["X-Sandbox-Journal-Dropped"] == "7"
        assert listed.headers["X-Sandbox-Journal-Size"] == "5"
        assert server.journal() == listed.json()
        assert server.journal_dropped() == 7
        server.clear_journal()
        assert (server.journal(), server.journal_dropped()) == ([], 0)
        get_token(server)
        assert [e["seq"] for e in server.journal()] == [13]  # seq keeps counting
        server.reset()
        assert (server.journal(), server.journal_dropped()) == ([], 0)


def test_journal_entries_stay_small_whatever_was_sent(sb: SandboxServer, token: str) -> None:
    sb.clear_journal()
    url = f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join"
    padded = {"asAgentId": 1001, "sessionId": "sess-2001", "padding": "x" * (512 * 1024)}

    def flood() -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            for _ in range(200):
                assert session.post(url, json=padded, timeout=10).status_code == 202

    _, grew = rss_growth(sb.pid, flood)
    assert grew < RSS_GROWTH_LIMIT, f"200 requests of 512 KiB grew the sandbox by {grew / MiB:.0f} MiB"
    requests.get(url.replace("agent-sessions/join", "agents/1001"), params={"fields": "x" * 8000}, timeout=10)
    entries = sb.journal()
    assert len(entries) == 201
    assert all(len(json.dumps(e, separators=(",", ":"))) <= JOURNAL_ENTRY_BYTES for e in entries)
    padded_entry, long_query = entries[0], entries[-1]
    assert (padded_entry["body"], padded_entry["withheld"]) == (None, ["body"])
    assert padded_entry["body_fields"] == ["asAgentId", "padding", "sessionId"]  # what still fits stays
    assert (padded_entry["status"], padded_entry["path"]) == (
        202,
        f"/inContactAPI/services/{VERSION}/agent-sessions/join",
    )
    assert (long_query["params"], long_query["withheld"]) == ({}, ["params"])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),  # noqa: S104 - the binding the rule is about
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("sandbox.internal", False),  # a name may resolve to anything
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def run_cli(tmp_path: Path, *args: str, env: dict[str, str], wait: bool) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``cxone-sandbox`` with ``args``, its stdout and stderr in files (a trace log would fill a pipe)."""
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    # The package the tests import, as SandboxServer gives its child.
    package_parent = str(Path(cxone_testing.__file__).resolve().parent.parent)
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
    }
    full_env.pop(ADMIN_TOKEN_ENV, None)
    full_env.update(env)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxone_sandbox.cli", *args], stdout=stdout, stderr=stderr, env=full_env
        )
    if wait:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # it listened instead of refusing: leave no server behind
            proc.wait()
            raise
    return proc, out, err


def test_beyond_loopback_without_an_admin_token_it_refuses_to_start(tmp_path: Path) -> None:
    proc, out, err = run_cli(tmp_path, "--host", "0.0.0.0", "--port", "0", env={}, wait=True)  # noqa: S104
    assert proc.returncode == 2
    assert out.read_text() == ""  # it never listened
    message = err.read_text()
    assert "--host 0.0.0.0 is beyond loopback" in message
    assert ADMIN_TOKEN_ENV in message
    assert "--admin-token" in message
    # A token too short to protect anything is refused too, without being quoted.
    weak = "sandbox-pass"
    proc, out, err = run_cli(tmp_path, "--host", "0.0.0.0", "--port", "0", env={ADMIN_TOKEN_ENV: weak}, wait=True)  # noqa: S104
    assert proc.returncode == 2
    assert "at least 16 characters" in err.read_text()
    assert weak not in err.read_text()


@pytest.fixture(scope="module")
def exposed() -> Iterator[SandboxServer]:
    """A sandbox bound to every interface (so with an admin token), reached over 127.0.0.1."""
    with SandboxServer(host="0.0.0.0") as server:  # noqa: S104 - what these tests are about
        yield server


def admin_call(sb: SandboxServer, method: str, route: str, headers: dict[str, str]) -> requests.Response:
    body = {"latency_ms": 0} if route == "faults" and method == "PUT" else None
    return requests.request(method, f"{sb.url}/_sandbox/{route}", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(("method", "route"), ADMIN_ROUTES, ids=[f"{m} {r}" for m, r in ADMIN_ROUTES])
def test_beyond_loopback_a_mutating_admin_route_needs_the_token(
    exposed: SandboxServer, method: str, route: str
) -> None:
    token = exposed.admin_token
    assert token is not None
    assert exposed.url.startswith("http://127.0.0.1:")  # bound to every interface, reached over loopback
    wrong = "x" * len(token)
    for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Basic {token}"}, {"X-Token": token}):
        refused = admin_call(exposed, method, route, headers)
        assert_error(refused, 401, "AdminTokenRequired")
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert token not in refused.text
    assert admin_call(exposed, method, route, {"Authorization": f"Bearer {token}"}).status_code == 200


def test_beyond_loopback_reads_need_the_token_too_but_cxone_and_the_docs_do_not(exposed: SandboxServer) -> None:
    # The journal shows what the tests did (agents, sessions, parameters), the state the agents.
    for route in READ_ROUTES:
        assert_error(admin_call(exposed, "GET", route, {}), 401, "AdminTokenRequired")
        assert admin_call(exposed, "GET", route, exposed.admin_headers()).status_code == 200
    assert requests.get(f"{exposed.url}/_sandbox/docs", timeout=10).status_code == 200
    assert requests.get(f"{exposed.url}/_sandbox/openapi.json", timeout=10).status_code == 200
    # CXone's own routes are what the sandbox is for: they need CXone's credentials only.
    issued = get_token(exposed)
    assert issued.status_code == 200
    assert join(exposed, issued.json()["access_token"], 1001, "sess-2001").status_code == 202
    # The helpers send the token themselves.
    exposed.set_faults(latency_ms=1)
    assert exposed.faults()["latency_ms"] == 1
    exposed.reset()


def test_beyond_loopback_a_refused_admin_call_reads_no_body(exposed: SandboxServer) -> None:
    def refused() -> requests.Response:
        return requests.put(f"{exposed.url}/_sandbox/faults", data=_blocks(HOSTILE_BYTES), timeout=30)

    response, grew = rss_growth(exposed.pid, refused)
    assert_error(response, 401, "AdminTokenRequired")
    assert grew < RSS_GROWTH_LIMIT


def test_on_loopback_nothing_needs_a_token(sb: SandboxServer) -> None:
    assert sb.admin_token is None
    assert sb.admin_headers() == {}
    for method, route in [*ADMIN_ROUTES, *(("GET", r) for r in READ_ROUTES)]:
        assert admin_call(sb, method, route, {}).status_code == 200, (method, route)


def test_a_token_set_on_loopback_is_required_there_too() -> None:
    with SandboxServer(settings={"admin_token": "chosen-on-loopback-1234"}) as server:
        assert server.admin_token == "chosen-on-loopback-1234"
        assert_error(admin_call(server, "POST", "reset", {}), 401, "AdminTokenRequired")
        server.reset()  # the helpers send it


def test_an_app_served_beyond_loopback_without_a_token_fails_closed() -> None:
    # Someone serving create_app() with their own uvicorn on 0.0.0.0: no token, so loopback only.
    app = create_app()

    def status_of(server: tuple[str, int]) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/_sandbox/state",
            "raw_path": b"/_sandbox/state",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", f"{server[0]}:{server[1]}".encode())],
            "client": ("192.0.2.7", 50000),
            "server": server,
        }
        asyncio.run(app(scope, receive, send))
        return int(sent[0]["status"])

    assert status_of(("192.0.2.1", 8765)) == 403
    assert status_of(("127.0.0.1", 8765)) == 200


# --- DNS rebinding and cross-site requests (issue 26) --------------------------------------------------


@pytest.mark.parametrize(("method", "route"), [*ADMIN_ROUTES, *(("GET", r) for r in READ_ROUTES)])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Host": "rebound.example:8765"}, id="rebinding-host"),
        pytest.param({"Host": "127.0.0.1.nip.example"}, id="lookalike-host"),
        pytest.param({"Origin": "http://evil.example"}, id="cross-site-origin"),
        pytest.param({"Origin": "null"}, id="sandboxed-page-origin"),
        pytest.param({"Origin": "http://localhost:1"}, id="other-local-origin"),
    ],
)
def test_on_loopback_a_web_page_cannot_use_the_admin_routes(
    sb: SandboxServer, method: str, route: str, headers: dict[str, str]
) -> None:
    """A page on another site (or one that rebinds its name to 127.0.0.1) gets nothing: no reset, no journal."""
    issued = get_token(sb)  # something for the journal and the state to hold
    refused = admin_call(sb, method, route, headers)
    body = assert_error(refused, 403, "AdminForbidden")
    assert "Origin" in body["error_description"] or "Host" in body["error_description"]
    assert issued.json()["access_token"] not in refused.text
    journal = sb.journal()
    assert [entry["path"] for entry in journal] == ["/auth/token"]  # neither cleared nor reset
    assert sb.faults()["latency_ms"] == 0


def test_on_loopback_the_sandboxs_own_names_and_origin_still_work(sb: SandboxServer) -> None:
    port = sb.url.rsplit(":", 1)[1]
    for headers in (
        {},
        {"Host": f"localhost:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"},  # a page the sandbox served
    ):
        assert admin_call(sb, "GET", "state", headers).status_code == 200, headers
    sb.set_faults(latency_ms=1)  # the provider's own helpers
    sb.reset()


def test_beyond_loopback_a_cross_site_origin_is_refused_even_with_the_token(exposed: SandboxServer) -> None:
    # Served to the network, the sandbox answers any Host name (compose's service name); the token decides.
    token_headers = exposed.admin_headers()
    assert admin_call(exposed, "GET", "state", {**token_headers, "Host": "cxone-sandbox:8765"}).status_code == 200
    refused = admin_call(exposed, "POST", "reset", {**token_headers, "Origin": "https://evil.example"})
    assert_error(refused, 403, "AdminForbidden")


def test_the_admin_token_stays_out_of_the_journal_and_the_output(tmp_path: Path) -> None:
    admin_token = "Adm1n-" + "t" * 26
    proc, out, err = run_cli(
        tmp_path,
        *("--host", "0.0.0.0", "--port", "0", "--access-log", "--log-level", "trace"),  # noqa: S104
        env={ADMIN_TOKEN_ENV: admin_token},
        wait=False,
    )
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()
            time.sleep(0.05)
        port = out.read_text().split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {admin_token}"}
        assert requests.put(f"{base}/_sandbox/faults", json={}, headers=admin, timeout=10).status_code == 200
        assert (
            requests.get(f"{base}/_sandbox/state", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code
            == 401
        )
        # A client that sends the admin token to CXone's routes, wherever it puts it.
        requests.get(f"{base}/.well-known/cxone-configuration", params={"tenantId": admin_token}, timeout=10)
        requests.post(
            f"{base}/inContactAPI/services/{VERSION}/agent-sessions/join",
            json={"asAgentId": admin_token, admin_token: 1},
            headers={"Authorization": f"Bearer {admin_token}", "User-Agent": admin_token},
            timeout=10,
        )
        requests.post(f"{base}/auth/token", data={"password": admin_token}, timeout=10)
        journal = requests.get(f"{base}/_sandbox/journal", headers=admin, timeout=10)
        assert len(journal.json()) == 3
        assert admin_token not in journal.text
        assert "<redacted>" in journal.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = out.read_text() + err.read_text()
    # Both logs were on and quoted what the client sent (the trace log its scope, the access log its
    # request line), with the token redacted.
    assert "query_string" in output
    assert "tenantId=<redacted>" in output
    assert admin_token not in output
    assert admin_token not in " ".join(proc.args)


def test_cli_server_setting_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    token = "s" * 20
    args = build_parser().parse_args(["--max-body-bytes", "2048", "--journal-size", "0", "--admin-token", token])
    assert Settings.from_args(args) == Settings(max_body_bytes=2048, journal_size=0, admin_token=token)
    assert Settings.from_args(build_parser().parse_args([])) == Settings()
    assert Settings.from_args(build_parser().parse_args([]), {ADMIN_TOKEN_ENV: token}).admin_token == token
    assert token not in repr(Settings(admin_token=token))
    server = SandboxServer(settings={"max_body_bytes": 2048, "journal_size": 0, "admin_token": token})
    command = server.command()
    assert command[-4:] == ["--max-body-bytes", "2048", "--journal-size", "0"]
    assert token not in " ".join(command)  # it travels in the environment
    assert server.settings.to_env() == {ADMIN_TOKEN_ENV: token}


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"max_body_bytes": 0}, "max_body_bytes must be positive"),
        ({"journal_size": -1}, "journal_size must not be negative"),
        ({"journal_size": "10"}, "journal_size must be an integer"),
        ({"admin_token": "short"}, "at least 16 characters"),
        ({"admin_token": "has a space in it!"}, "printable ASCII only"),
        ({"journal": 5}, "unknown sandbox setting"),
    ],
)
def test_bad_server_settings_are_rejected(values: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Settings.from_mapping(values)


# ------------------------------------------------------------------------------------------ testing.py


def test_fixture_sets_the_connection_env(sb: SandboxServer) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_CXONE_DEFAULT"])
    assert conn == sb.connection()
    assert conn == {
        "conn_type": "cxone",
        "host": sb.url,
        "login": "SANDBOX-QA-KEY",
        "password": "sandbox-qa-secret",
        "extra": {
            "client_id": "sandbox-client",
            "client_secret": "sandbox-client-secret",
            "tenant_id": TENANT,
        },
    }


def test_connection_variants(sb: SandboxServer) -> None:
    pinned = sb.connection(key="SANDBOX-NOIMP-KEY", discovery=False, read_timeout=5)
    assert pinned["password"] == "sandbox-noimp-secret"
    assert pinned["extra"]["api_base_url"] == f"{sb.url}/inContactAPI/services/v33.0/"
    assert pinned["extra"]["read_timeout"] == 5
    name, value = sb.connection_env("cxone_qa")
    assert name == "AIRFLOW_CONN_CXONE_QA"
    assert json.loads(value) == sb.connection()
    with pytest.raises(KeyError, match="NO-SUCH"):
        sb.connection(key="NO-SUCH")


def test_seed_helpers() -> None:
    seed = default_seed()
    assert load_seed(None) == seed
    grown = generate_seed(3)
    assert [s["session_id"] for s in grown["sessions"][-3:]] == ["sess-5001", "sess-5002", "sess-5003"]
    assert len(grown["agents"]) == len(seed["agents"]) + 3
    assert create_app(grown, {"latency_ms": 1}).title == "CXone sandbox"
    with pytest.raises(ValueError, match="unknown agent"):
        create_app({**seed, "sessions": [{"session_id": "s", "agent_id": 1, "state": "active"}]})


def test_server_with_custom_seed_and_faults() -> None:
    seed = default_seed()
    seed["tenant_id"] = "custom-tenant"
    knobs: dict[str, Any] = {
        "rate_slow_drip": 1.0,
        "drip_interval_s": 30,
        "path_filter": "agent-sessions/join",
        "join_mode": "spec",
        "states_session_id": False,
    }
    with SandboxServer(seed, live_sessions=2, faults=knobs) as server:
        assert server.tenant_id == "custom-tenant"
        state = server.state()
        assert {"sess-5001", "sess-5002"} <= {s["session_id"] for s in state["sessions"]}
        assert server.faults() == Faults(**knobs).to_dict()  # through the command line
        server.set_faults()
        server.reset()  # back to the faults it started with
        assert server.faults() == Faults(**knobs).to_dict()
        # A client holding a dripping answer does not stall the stop: the rest comes at once.
        held = requests.post(
            join_url(server),
            headers={"Authorization": f"Bearer {get_token(server).json()['access_token']}"},
            stream=True,
            timeout=(5, 10),
        )
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 3
        assert held.json() == {"sessionId": "drip"}
    assert not server.running


def test_server_start_failure_reports_stderr() -> None:
    with pytest.raises(SandboxError, match="rate_503"):
        SandboxServer(extra_args=["--rate-503", "2"], startup_timeout=20).start()


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_announces_and_stops_cleanly(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PLUGINS, os.environ.get("PYTHONPATH")]))}
    cmd = [
        sys.executable,
        "-m",
        "cxone_sandbox.cli",
        "--port",
        "0",
        "--live-sessions",
        "3",
        "--latency-ms",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("CXone sandbox listening on http://127.0.0.1:"), line + proc.stderr.read()  # type: ignore[union-attr]
        url = line.rsplit(" ", 1)[1].strip()
        name, _, value = proc.stdout.readline().strip().partition("=")
        assert name == "AIRFLOW_CONN_CXONE_DEFAULT"
        (unquoted,) = shlex.split(value)  # one shell word, ready to paste after `export`
        seed = generate_seed(3)
        assert json.loads(unquoted) == sandbox_connection(seed, url)
        assert json.loads(unquoted)["login"] == "SANDBOX-QA-KEY"
        state = requests.get(f"{url}/_sandbox/state", timeout=10).json()
        assert "sess-5003" in {s["session_id"] for s in state["sessions"]}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # exactly two lines on stdout, both read


def test_connection_line_logs_in_with_the_first_key_that_may_impersonate() -> None:
    seed = default_seed()
    seed["users"] = [dict(u, can_impersonate=u["access_key_id"] == "SANDBOX-INACTIVE-KEY") for u in seed["users"]]
    seed["applications"][0]["client_secret"] = "it's quoted"
    line = connection_line(seed, "http://127.0.0.1:1")
    assert line is not None
    conn = json.loads(shlex.split(line.partition("=")[2])[0])
    assert (conn["login"], conn["password"]) == ("SANDBOX-INACTIVE-KEY", "sandbox-inactive-secret")
    assert conn["extra"]["client_secret"] == "it's quoted"
    seed["users"] = []
    assert connection_line(seed, "http://127.0.0.1:1") is None
