"""The sandbox's Agent API basics over real HTTP: tokens on the API, API versions and the gateway's
404, ``agents/{id}`` and the ``agents/states`` listing (its rows, paging and filters).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import sandbox_http
from sandbox_http import VERSION, all_states, api, assert_error, assert_gateway_404, get_token

from cxone_provider.testing import SandboxServer
from cxone_sandbox.agent_states import AGENT_STATE_FIELDS
from cxone_sandbox.routes import DEFAULT_STATES_PAGE_SIZE, KNOWN_API_VERSIONS, MAX_STATES_PAGE_SIZE

sb = sandbox_http.sb
token = sandbox_http.token


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
