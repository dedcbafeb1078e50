"""The sandbox's Agent API as NICE's own SDK drives it: start and join as it sends them, a session's
life through ``get-next-event`` (a new id per answer, 304, 409 after the end), set state, the calls it
makes before polling (agent settings, the agent-state directory, time zones) and the published
fields of agent records and agent-state rows. Plain ``requests`` over real HTTP, shaped as the SDK's
compiled code sends them (JSON bodies without a ``Content-Type``, ``InContactAPI`` and ``V``-spelled
versions).
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from conftest import set_agent_state, wait_for

from cxone_provider import testing as cxone_testing

if TYPE_CHECKING:
    from cxone_provider.testing import SandboxServer

cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

CLIENT = ("sandbox-client", "sandbox-client-secret")
QA = ("SANDBOX-QA-KEY", "sandbox-qa-secret")
NOIMP = ("SANDBOX-NOIMP-KEY", "sandbox-noimp-secret")


@pytest.fixture
def sb(cxone_sandbox: SandboxServer) -> SandboxServer:
    return cxone_sandbox


def token_of(sb: SandboxServer, key: tuple[str, str] = QA) -> str:
    response = requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": key[0], "password": key[1]},
        auth=CLIENT,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def sdk(
    sb: SandboxServer, token: str, method: str, path: str, body: Any = None, version: str = "v23.0", **query: Any
) -> requests.Response:
    """A call as NICE's SDK makes it: ``InContactAPI``, a JSON body with no ``Content-Type``."""
    return requests.request(
        method,
        f"{sb.url}/InContactAPI/services/{version}/{path}",
        params=query,
        data=None if body is None else json.dumps(body),
        headers={"Authorization": f"Bearer {token}"},
        timeout=70,
    )


def poll(sb: SandboxServer, token: str, session_id: str, timeout: int | str = 0) -> requests.Response:
    return sdk(sb, token, "GET", f"agent-sessions/{session_id}/get-next-event", timeout=timeout)


def session_of(sb: SandboxServer, session_id: str) -> dict[str, Any]:
    return next(s for s in sb.state()["sessions"] if s["session_id"] == session_id)


def start_own(sb: SandboxServer, token: str) -> str:
    """Log the token holder's agent in as the SDK does; its session id."""
    response = sdk(sb, token, "POST", "agent-sessions", {"stationId": "", "stationPhoneNumber": "5550102"})
    assert response.status_code == 202, response.text
    return str(response.json()["sessionId"])


# ------------------------------------------------------------------------------------------ start and join


def test_start_as_the_sdk_sends_it_logs_in_the_token_holder(sb: SandboxServer) -> None:
    noimp = token_of(sb, NOIMP)
    session_id = start_own(sb, noimp)
    session = session_of(sb, session_id)
    assert (session["agent_id"], session["station_phone_number"], session["state"]) == (1002, "5550102", "active")
    # Again: the agent has a live session, so 409; the SDK then joins it, asAgentId "".
    again = sdk(sb, noimp, "POST", "agent-sessions", {"stationId": "", "stationPhoneNumber": "5550102"})
    assert (again.status_code, again.headers["icStatusDescription"], again.content) == (409, "InvalidState", b"")
    joined = sdk(sb, noimp, "POST", "agent-sessions/join", {"asAgentId": ""})
    assert (joined.status_code, joined.json()) == (202, {"sessionId": session_id})


def test_start_needs_a_station(sb: SandboxServer) -> None:
    response = sdk(sb, token_of(sb, NOIMP), "POST", "agent-sessions", {"stationId": "", "stationPhoneNumber": ""})
    assert (response.status_code, response.headers["icStatusDescription"]) == (400, "InvalidStation")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_parameters_in_a_json_body_with_any_content_type(sb: SandboxServer, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {token_of(sb)}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(
        f"{sb.url}/InContactAPI/services/v23.0/agent-sessions/join",
        data=json.dumps({"asAgentId": 2001}),
        headers=headers,
        timeout=10,
    )
    assert (response.status_code, response.json()) == (202, {"sessionId": "sess-2001"})


# ------------------------------------------------------------------------------------------ get-next-event


def test_a_sessions_first_poll_reads_its_start_and_state_with_a_new_id(sb: SandboxServer) -> None:
    token = token_of(sb)
    response = poll(sb, token, "sess-2002")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"sessionId", "events"}
    assert body["sessionId"] not in {"", "sess-2002"}
    start, state = body["events"]
    assert (start["Type"], start["AgentId"], start["SessionId"], start["StationId"]) == (
        "AgentSessionStart",
        "2002",
        "sess-2002",
        "7002",
    )
    assert (state["Type"], state["CurrentState"], state["IsAcw"]) == ("AgentState", "InboundContact", "False")
    for event in body["events"]:
        assert all(key[0].isupper() and isinstance(value, str) for key, value in event.items()), event


def test_the_next_poll_must_use_the_new_id(sb: SandboxServer) -> None:
    token = token_of(sb)
    new_id = poll(sb, token, "sess-2001").json()["sessionId"]
    old = poll(sb, token, "sess-2001")
    assert (old.status_code, old.headers["icStatusDescription"], old.content) == (404, "InvalidAgentSession", b"")
    assert poll(sb, token, new_id).status_code == 304  # nothing new yet, and the id stays
    assert poll(sb, token, new_id).status_code == 304
    # Every other call accepts any id the session has had; the join answers the current one.
    assert sdk(sb, token, "POST", "agent-sessions/join", {"asAgentId": 2001}).json() == {"sessionId": new_id}
    assert sdk(sb, token, "POST", "agent-sessions/sess-2001/state", {"state": "Unavailable"}).status_code == 202
    assert sdk(sb, token, "POST", f"agent-sessions/{new_id}/state", {"state": "Available"}).status_code == 202
    assert [e["CurrentState"] for e in poll(sb, token, new_id).json()["events"]] == ["Unavailable", "Available"]


def test_none_within_the_timeout_is_304_with_no_body(sb: SandboxServer) -> None:
    token = token_of(sb)
    current = poll(sb, token, "sess-2004").json()["sessionId"]
    began = time.monotonic()
    response = poll(sb, token, current, timeout=1)
    assert (response.status_code, response.content) == (304, b"")
    assert time.monotonic() - began >= 0.9  # it waited its timeout out (a lower bound: no machine is too fast)


@pytest.mark.parametrize("timeout", ["", "61", "-1", "soon"], ids=["missing", "over-60", "negative", "text"])
def test_the_timeout_is_required_from_0_to_60(sb: SandboxServer, timeout: str) -> None:
    response = poll(sb, token_of(sb), "sess-2001", timeout=timeout)
    assert (response.status_code, response.headers["icStatusDescription"]) == (400, "InvalidParameter")


def test_a_state_change_answers_a_waiting_poll(sb: SandboxServer) -> None:
    token = token_of(sb)
    current = poll(sb, token, "sess-2003").json()["sessionId"]
    answered: dict[str, requests.Response] = {}
    # the longest poll NICE allows: answered within half of it, it was answered by the event, not its timeout
    waiter = threading.Thread(target=lambda: answered.update(r=poll(sb, token, current, timeout=60)))
    waiter.start()
    wait_for(lambda: sb.state()["inflight"] == 1, "the poll waiting")
    set_state = sdk(sb, token, "POST", f"agent-sessions/{current}/state", {"state": "Unavailable", "reason": "Lunch"})
    assert (set_state.status_code, set_state.content) == (202, b"")
    waiter.join(30)
    assert not waiter.is_alive(), "the poll waited out its timeout instead of answering the event"
    (event,) = answered["r"].json()["events"]
    assert (event["Type"], event["CurrentState"], event["CurrentOutReason"]) == ("AgentState", "Unavailable", "Lunch")
    assert session_of(sb, "sess-2003")["out_reason"] == "Lunch"


def test_the_admin_state_route_is_an_event_too(sb: SandboxServer) -> None:
    token = token_of(sb)
    current = poll(sb, token, "sess-2001").json()["sessionId"]
    changed = requests.put(f"{sb.url}/_sandbox/agents/2001/state", json={"state": "OutboundContact"}, timeout=10)
    assert changed.status_code == 200, changed.text
    (event,) = poll(sb, token, current).json()["events"]
    assert (event["CurrentState"], event["IsOutbound"]) == ("OutboundContact", "True")


def test_an_ended_session_answers_409_also_to_a_waiting_poll(sb: SandboxServer) -> None:
    token = token_of(sb)
    current = poll(sb, token, "sess-2005").json()["sessionId"]
    answered: dict[str, requests.Response] = {}
    waiter = threading.Thread(target=lambda: answered.update(r=poll(sb, token, current, timeout=60)))
    waiter.start()
    wait_for(lambda: sb.state()["inflight"] == 1, "the poll waiting")
    assert sdk(sb, token, "DELETE", "agent-sessions/sess-2005", {"forceLogoff": True}).status_code == 202
    waiter.join(30)
    assert not waiter.is_alive(), "the poll waited out its timeout instead of answering the end"
    assert (answered["r"].status_code, answered["r"].content) == (409, b"")
    assert poll(sb, token, current).status_code == 409
    assert poll(sb, token, "sess-2007").status_code == 409  # seeded as ended


def test_unknown_session_is_404(sb: SandboxServer) -> None:
    sb.set_faults(status_description="sentence")
    response = poll(sb, token_of(sb), "no-such")
    assert (response.status_code, response.headers["icStatusDescription"]) == (404, "Invalid agent session Id.")


def test_an_unpolled_client_session_times_out(sb: SandboxServer) -> None:
    sb.set_faults(session_timeout_s=1)
    noimp = token_of(sb, NOIMP)
    session_id = start_own(sb, noimp)
    assert poll(sb, noimp, session_id).status_code == 200  # polling keeps it alive
    time.sleep(1.3)
    assert session_of(sb, session_id)["state"] == "ended"
    # Seeded sessions are kept alive by their agents' softphones: nobody polled them.
    assert session_of(sb, "sess-2006")["state"] == "active"
    assert session_of(sb, "sess-2006")["kept_alive_by"] == "softphone"


def test_a_poll_in_progress_keeps_the_session_alive(sb: SandboxServer) -> None:
    sb.set_faults(session_timeout_s=1)
    token = token_of(sb)
    current = poll(sb, token, "sess-2006").json()["sessionId"]  # the client now keeps it alive
    assert poll(sb, token, current, timeout=2).status_code == 304
    assert session_of(sb, "sess-2006")["kept_alive_by"] == "polls"
    time.sleep(1.3)
    assert session_of(sb, "sess-2006")["state"] == "ended"


# ------------------------------------------------------------------------------------------ set state


@pytest.mark.parametrize("state", ["Lunch", "LoggedOut", ""])
def test_set_state_takes_available_or_unavailable_only(sb: SandboxServer, state: str) -> None:
    sb.set_faults(status_description="sentence")
    response = sdk(sb, token_of(sb), "POST", "agent-sessions/sess-2001/state", {"state": state})
    assert (response.status_code, response.headers["icStatusDescription"]) == (400, "Invalid state request.")
    assert session_of(sb, "sess-2001")["agent_state"] == "Available"


def test_set_state_on_an_ended_session(sb: SandboxServer) -> None:
    sb.set_faults(status_description="sentence")
    response = sdk(sb, token_of(sb), "POST", "agent-sessions/sess-2007/state", {"state": "Available"})
    assert (response.status_code, response.headers["icStatusDescription"]) == (409, "Invalid State")


def test_set_state_from_the_query_as_the_generated_client_sends_it(sb: SandboxServer) -> None:
    response = requests.post(
        f"{sb.url}/inContactAPI/services/v33.0/agent-sessions/sess-2004/state",
        params={"state": "Unavailable", "reason": "Training"},
        headers={"Authorization": f"Bearer {token_of(sb)}"},
        timeout=10,
    )
    assert response.status_code == 202
    rows = sdk(sb, token_of(sb), "GET", "agents/states").json()["agentStates"]
    assert next(r for r in rows if r["agentId"] == 2004)["agentStateName"] == "Unavailable"


# ------------------------------------------------------------------------------------------ what the SDK reads first


def test_agent_settings(sb: SandboxServer) -> None:
    response = sdk(sb, token_of(sb), "GET", "agents/1001/agent-settings", version="v30.0")
    assert response.status_code == 200
    settings = response.json()
    for field in ("webRTCType", "webRTCWSSUrls", "webRTCServerDomain", "webRTCICEUrls", "maxConferenceParties"):
        assert field in settings
    missing = sdk(sb, token_of(sb), "GET", "agents/4242/agent-settings", version="v30.0")
    assert (missing.status_code, missing.headers["icStatusDescription"]) == (404, "InvalidAgentId")


def test_the_agent_state_directory(sb: SandboxServer) -> None:
    response = sdk(sb, token_of(sb), "GET", "cache/agentstate", version="v27.0", updatedSince="1970-01-01T00:00:00Z")
    assert response.status_code == 200
    result = response.json()["resultSet"]
    assert result["lastPollTime"].endswith("Z")
    rows = {r["agentId"]: r for r in result["agentState"]}
    assert rows[2002]["agentStateName"] == "InboundContact"
    assert rows[2002]["isOutbound"] is False
    assert rows[2009]["agentStateName"] == "LoggedOut"
    assert {"userId", "teamName", "userName", "skillName", "outStateDescription"} <= set(rows[2002])
    fields = sdk(sb, token_of(sb), "GET", "cache/agentstate", version="v27.0", fields="agentId,teamId").json()
    assert all(set(r) == {"agentId", "teamId"} for r in fields["resultSet"]["agentState"])


def test_time_zones_list_display_names_and_windows_ids(sb: SandboxServer) -> None:
    response = requests.get(
        f"{sb.url}/incontactapi/services/v25.0/timezones",
        headers={"Authorization": f"Bearer {token_of(sb)}"},
        timeout=10,
    )
    assert response.status_code == 200
    zones = {z["standardName"]: z for z in response.json()["timeZones"]}
    assert all(set(z) == {"displayName", "standardName", "offset"} for z in zones.values())
    assert zones["Mountain Standard Time"] == {
        "displayName": "(GMT-07:00) Mountain Time (US & Canada)",
        "standardName": "Mountain Standard Time",
        "offset": "-07:00",
    }
    assert zones["India Standard Time"]["offset"] == "+05:30"


def test_api_versions_are_listed(sb: SandboxServer) -> None:
    for url in ("/inContactAPI/services/apiversion", "/inContactAPI/services/v33.0/apiversion"):
        response = requests.get(f"{sb.url}{url}", headers={"Authorization": f"Bearer {token_of(sb)}"}, timeout=10)
        assert response.status_code == 200
        assert {"v2.0", "v4.0", "v23.0", "v34.0"} <= set(response.json())


# ------------------------------------------------------------------------------------------ records


@pytest.mark.parametrize(
    ("agent", "zone", "offsets"),
    [
        (2001, "(GMT-05:00) Eastern Time (US & Canada)", {"-05:00", "-04:00"}),
        (2003, "Eastern Standard Time", {"-05:00", "-04:00"}),
        (2008, "(GMT-07:00) Arizona", {"-07:00"}),
        (1001, "America/Denver", {"-07:00", "-06:00"}),
    ],
    ids=["display-name", "windows-id", "no-daylight-saving", "iana"],
)
def test_agent_time_zones_as_seeded(sb: SandboxServer, agent: int, zone: str, offsets: set[str]) -> None:
    record = sdk(sb, token_of(sb), "GET", f"agents/{agent}").json()["agents"][0]
    assert record["timeZone"] == zone
    assert record["timeZoneOffset"] in offsets


def test_agent_records_and_state_rows_are_typed_as_published(sb: SandboxServer) -> None:
    token = token_of(sb)
    record = sdk(sb, token, "GET", "agents/2002").json()["agents"][0]
    types = {
        "agentId": int,
        "userName": str,
        "firstName": str,
        "lastName": str,
        "emailAddress": str,
        "isActive": bool,
        "teamId": int,
        "teamName": str,
        "timeZone": str,
        "timeZoneOffset": str,
    }
    assert {k: type(record[k]) for k in types} == types
    rows = {r["agentId"]: r for r in sdk(sb, token, "GET", "agents/states").json()["agentStates"]}
    row = rows[2002]
    row_types = {
        "agentId": int,
        "agentStateId": int,
        "agentStateName": str,
        "agentStateCategory": str,
        "businessUnitId": int,
        "contactId": int,
        "isActive": bool,
        "firstName": str,
        "lastName": str,
        "sessionStartTime": str,
        "skillId": int,
        "skillName": str,
        "stationId": int,
        "teamId": int,
        "teamName": str,
        "userName": str,
    }
    assert {k: type(row[k]) for k in row_types} == row_types
    assert "sessionId" not in row


# --- the admin route the sensor tests change an agent's state through -----------------------------------


def test_the_admin_route_changes_the_agents_states_row(cxone_sandbox):
    assert set_agent_state(cxone_sandbox, 2009, "Available")["sessionId"] == "sess-2009-1"
    assert set_agent_state(cxone_sandbox, 2009, "Unavailable")["agentStateName"] == "Unavailable"
    assert set_agent_state(cxone_sandbox, 2001, "LoggedOut")["sessionId"] is None
    agents = {a["agent_id"]: a for a in cxone_sandbox.state()["agents"]}
    assert agents[2009]["session_id"] == "sess-2009-1"
    assert agents[2001]["session_id"] is None
    response = requests.put(f"{cxone_sandbox.url}/_sandbox/agents/9999/state", json={"state": "Available"}, timeout=10)
    assert (response.status_code, response.json()["error"]) == (404, "InvalidAgentId")
    response = requests.put(f"{cxone_sandbox.url}/_sandbox/agents/2001/state", json={"state": "Lunch"}, timeout=10)
    assert (response.status_code, response.json()["error"]) == (400, "InvalidState")


def test_the_admin_route_needs_the_admin_token_when_one_is_set():
    from cxone_provider.testing import SandboxServer

    with SandboxServer(settings={"admin_token": "sensor-admin-token-4f2a9c"}) as guarded:
        url = f"{guarded.url}/_sandbox/agents/2009/state"
        refused = requests.put(url, json={"state": "Available"}, timeout=10)
        assert (refused.status_code, refused.json()["error"]) == (401, "AdminTokenRequired")
        assert set_agent_state(guarded, 2009, "Available")["agentStateName"] == "Available"
