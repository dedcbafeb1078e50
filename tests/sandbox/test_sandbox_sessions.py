"""The sandbox's Agent API sessions over real HTTP: the join and its conditions, starting and ending
a session, and the supervise actions (monitor, coach, barge, take-over). Plain ``requests`` talks to it,
so these tests pin the wire contract the hook relies on (auth: test_sandbox_auth.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests
import sandbox_http
from sandbox_http import NOIMP, QA, VERSION, api, assert_error, assert_gateway_404, join, state_of, token_of

if TYPE_CHECKING:
    from cxone_provider.testing import SandboxServer

sb = sandbox_http.sb
token = sandbox_http.token


# ------------------------------------------------------------------------------------------ join


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
