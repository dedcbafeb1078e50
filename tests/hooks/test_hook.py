"""CxoneHook over real HTTP against the sandbox: auth, discovery, every call, retries, secrets."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import changed_connection, idle, wait_for

from cxone_provider.client.policy import RETRY_POLICY, RetryWhen
from cxone_provider.domain.classification import ROUTE_NOT_FOUND
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneConfigError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import join_agent_session

C = JoinCondition


@pytest.fixture
def make_hook(cxone_sandbox, monkeypatch):
    """Build a hook on a fresh connection to the sandbox; fast backoff so retry tests stay quick."""

    def make(conn_id="cxone_test", *, key="SANDBOX-QA-KEY", discovery=True, hook_kwargs=None, **extra):
        name, value = cxone_sandbox.connection_env(conn_id, key=key, discovery=discovery, **extra)
        monkeypatch.setenv(name, value)
        kwargs = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, **(hook_kwargs or {})}
        return CxoneHook(conn_id, **kwargs)

    return make


def _calls(sandbox, path_part):
    return [e for e in sandbox.journal() if path_part in e["path"]]


# --- auth and discovery ---------------------------------------------------------------------------


def test_token_is_requested_once_and_cached(cxone_sandbox, make_hook):
    hook = make_hook()
    first = hook.access_token()
    assert hook.access_token() == first
    hook.get_agent(1001)
    hook.get_agent_states()
    assert len(_calls(cxone_sandbox, "/auth/token")) == 1
    assert hook.token_requests == 1


def test_discovery_with_tenant_id(cxone_sandbox, make_hook):
    hook = make_hook()
    assert hook.api_base_url == f"{cxone_sandbox.url}/inContactAPI/services/v33.0/"
    (call,) = _calls(cxone_sandbox, "cxone-configuration")
    assert call["params"] == {"tenantId": cxone_sandbox.tenant_id}


def test_discovery_reads_the_tenant_from_the_id_token(cxone_sandbox, make_hook):
    hook = make_hook(tenant_id="")
    assert hook.api_base_url.endswith("/inContactAPI/services/v33.0/")
    (call,) = _calls(cxone_sandbox, "cxone-configuration")
    assert call["params"] == {"tenantId": cxone_sandbox.tenant_id}


def test_api_base_url_skips_discovery(cxone_sandbox, make_hook):
    hook = make_hook(discovery=False)
    assert hook.get_agent(1001)["agentId"] == 1001
    assert _calls(cxone_sandbox, "cxone-configuration") == []


def test_api_version_comes_from_the_connection(cxone_sandbox, make_hook):
    hook = make_hook(api_version="v23.0")
    hook.get_agent(1001)
    assert any("/services/v23.0/agents/1001" in e["path"] for e in cxone_sandbox.journal())


def test_refused_access_key_raises_auth_error_without_the_secret(cxone_sandbox, make_hook, monkeypatch):
    hook = make_hook()
    name, value = cxone_sandbox.connection_env("cxone_test")
    monkeypatch.setenv(name, value.replace("sandbox-qa-secret", "Wrong-Secret-7f3a9"))
    hook = CxoneHook("cxone_test")
    with pytest.raises(CxoneAuthError, match="invalid_grant") as refused:
        hook.access_token()
    assert "SANDBOX-QA-KEY" in str(refused.value)
    # The token endpoint's errorDescription (Global Auth's published shape) is the message.
    assert "The access key id or secret is invalid" in str(refused.value)
    assert "Wrong-Secret-7f3a9" not in str(refused.value)
    assert refused.value.http_status == 400


def test_test_connection_reports_success_and_failure(cxone_sandbox, make_hook, monkeypatch):
    ok, message = make_hook().test_connection()
    assert ok, message
    assert "token issued" in message
    name, value = cxone_sandbox.connection_env("cxone_bad")
    monkeypatch.setenv(name, value.replace("sandbox-client-secret", "Not-The-Client-Secret-42"))
    ok, message = CxoneHook("cxone_bad").test_connection()
    assert not ok
    assert "invalid_client" in message
    assert "Client authentication failed" in message
    assert "Not-The-Client-Secret-42" not in message


# --- the Agent API ----------------------------------------------------------------------------------


def test_get_agent_and_unknown_agent(make_hook):
    hook = make_hook()
    agent = hook.get_agent(1001)
    assert agent["isActive"] is True
    assert agent["firstName"] == "Quinn"
    with pytest.raises(CxoneApiError, match="9999") as unknown:
        hook.get_agent(9999)
    assert unknown.value.http_status == 404
    # CXone names the error in the icStatusDescription header, with no body: the error carries its text.
    assert unknown.value.response.status_description == "InvalidAgentId"
    assert str(unknown.value).endswith(": InvalidAgentId")


def test_agent_states_tell_logged_in_agents_from_logged_out_ones(make_hook):
    states = {s["agentId"]: s for s in make_hook().get_agent_states()}
    assert (states[2001]["agentStateName"], states[2001]["stationId"]) == ("Available", 7001)
    assert states[2001]["sessionStartTime"] is not None
    assert (states[2009]["agentStateName"], states[2009]["sessionStartTime"]) == ("LoggedOut", None)
    assert all("sessionId" not in row for row in states.values())  # CXone's rows name no session


def test_agent_states_follow_every_page(cxone_sandbox, make_hook):
    agents = len(cxone_sandbox.state()["agents"])
    rows = make_hook().get_agent_states(page_size=5)
    assert sorted(r["agentId"] for r in rows) == sorted(a["agent_id"] for a in cxone_sandbox.state()["agents"])
    pages = _calls(cxone_sandbox, "agents/states")
    assert len(pages) == -(-agents // 5)  # ceil: one request per page, none after the last
    assert pages[0]["params"] == {"top": "5", "skip": "0"}


def test_start_and_end_a_session(cxone_sandbox, make_hook):
    hook = make_hook()
    session_id = hook.start_agent_session(as_agent_id=2009, station_id="station-9")
    states = {s["agentId"]: s for s in hook.get_agent_states()}
    assert (states[2009]["agentStateName"], states[2009]["stationId"]) == ("Available", "station-9")
    # Joined as its own agent, the started session is that agent's live one.
    assert join_agent_session(hook, session_id, 2009).condition is C.SUCCESS
    hook.end_agent_session(session_id, force_logoff=True)
    (end_call,) = [e for e in cxone_sandbox.journal() if e["method"] == "DELETE"]
    assert end_call["params"] == {"forceLogoff": "true"}
    ended = join_agent_session(hook, session_id, 2009)
    assert (ended.condition, ended.status_code) == (C.INVALID_AGENT_SESSION, 404)
    states = {s["agentId"]: s for s in hook.get_agent_states()}
    assert states[2009]["agentStateName"] == "LoggedOut"


def test_coach_barge_take_over_send_no_target_unless_given(cxone_sandbox, make_hook):
    hook = make_hook()
    hook.monitor("sess-2001", target_agent_id=2002)
    for action in (hook.coach, hook.barge, hook.take_over):
        action("sess-2001")
    sent = [e for e in cxone_sandbox.journal() if "/agent-sessions/sess-2001/" in e["path"]]
    assert [(e["path"].rsplit("/", 1)[-1], e["params"], e["status"]) for e in sent] == [
        ("monitor", {"targetAgentId": "2002"}, 202),
        ("coach", {}, 202),
        ("barge", {}, 202),
        ("take-over", {}, 202),
    ]


@pytest.mark.parametrize("action", ["monitor", "coach", "barge", "take_over"])
def test_supervise_actions(cxone_sandbox, make_hook, action):
    hook = make_hook()
    getattr(hook, action)("sess-2001", target_agent_id=2001)
    wire_action = action.replace("_", "-")
    (call,) = _calls(cxone_sandbox, f"/agent-sessions/sess-2001/{wire_action}")
    assert call["params"] == {"targetAgentId": "2001"}
    assert call["status"] == 202


def test_supervise_an_ended_session_raises(make_hook):
    with pytest.raises(CxoneApiError) as ended:
        make_hook().monitor("sess-2007", target_agent_id=2007)
    assert ended.value.http_status == 409
    assert ended.value.response.status_description == "InvalidAgentSession"  # CXone's header, no body
    assert ended.value.response.body is None


# --- join: one test per row of the table the sandbox serves ----------------------------------------


@pytest.mark.parametrize(
    ("agent_id", "session_id", "condition", "status"),
    [
        pytest.param(1001, "sess-1001", C.SUCCESS, 202, id="Success-the-key-users-own"),
        pytest.param(2001, "sess-2001", C.SUCCESS, 202, id="Success-impersonated"),
        pytest.param(1003, "sess-2001", C.INVALID_SECURITY_USER, 403, id="InvalidSecurityUser-inactive"),
        pytest.param(9999, "sess-2001", C.INVALID_AGENT_ID, 404, id="InvalidAgentId-unknown"),
        pytest.param(2007, "sess-2007", C.INVALID_AGENT_SESSION, 404, id="InvalidAgentSession-ended"),
        pytest.param(2009, "sess-2009", C.INVALID_AGENT_SESSION, 404, id="InvalidAgentSession-not-logged-in"),
        # CXone attaches the SecurityUser to its own live session: another agent's is never joined.
        pytest.param(1001, "sess-2001", C.INVALID_AGENT_SESSION, 202, id="InvalidAgentSession-another-agents"),
    ],
)
def test_join_rows(cxone_sandbox, make_hook, agent_id, session_id, condition, status):
    outcome = join_agent_session(make_hook(), session_id, agent_id)
    assert outcome.condition is condition
    assert outcome.status_code == status
    assert outcome.attempts == 1
    (call,) = _calls(cxone_sandbox, "agent-sessions/join")
    assert call["method"] == "POST"
    assert call["params"] == {"asAgentId": str(agent_id), "sessionId": session_id}


def test_join_impersonate_not_enabled_is_the_key_users(cxone_sandbox, make_hook):
    # Impersonation belongs to the connection's key user: 1002's key acting as agent 1001 (on its own session).
    outcome = join_agent_session(make_hook(key="SANDBOX-NOIMP-KEY"), "sess-1001", 1001)
    assert (outcome.condition, outcome.status_code, outcome.attempts) == (C.IMPERSONATE_NOT_ENABLED, 403, 1)


@pytest.mark.parametrize(
    "conn_extra",
    [
        pytest.param({"path": "/inContactAPI/services/v33.0/typo/"}, id="mistyped-api_base_url"),
        pytest.param({"path": "/inContactAPI/services/v99.9/"}, id="unknown-version-in-api_base_url"),
        pytest.param({"api_version": "v99.9"}, id="unknown-api_version"),
    ],
)
@pytest.mark.off_contract
def test_a_wrong_api_url_is_default_route_not_found_and_not_retried(cxone_sandbox, make_hook, conn_extra):
    if "path" in conn_extra:
        hook = make_hook(discovery=False, api_base_url=cxone_sandbox.url + conn_extra["path"])
    else:
        hook = make_hook(**conn_extra)
    outcome = join_agent_session(hook, "sess-2001", 1001)
    assert outcome.condition is C.DEFAULT
    assert ROUTE_NOT_FOUND in outcome.message
    assert outcome.status_code == 404
    assert outcome.attempts == 1
    assert outcome.same_for_every_session
    assert len(_calls(cxone_sandbox, "agent-sessions/join")) == 1


def test_a_tenant_that_ignores_session_id_never_gives_success(cxone_sandbox, make_hook):
    """The published join (the sandbox's default) attaches asAgentId to that agent's own session."""
    hook = make_hook()
    no_session = join_agent_session(hook, "sess-2001", 2009)
    assert (no_session.condition, no_session.status_code) == (C.INVALID_AGENT_SESSION, 404)
    own = hook.start_agent_session(as_agent_id=2009, station_id="station-1")
    other = join_agent_session(hook, "sess-2001", 2009)
    assert other.condition is C.INVALID_AGENT_SESSION
    assert other.status_code == 202
    assert repr(own) in other.message
    assert "'sess-2001'" in other.message
    assert join_agent_session(hook, own, 2009).condition is C.SUCCESS
    assert join_agent_session(hook, "sess-1001", 1001).condition is C.SUCCESS  # the key user's own, seeded


@pytest.mark.usefixtures("legacy_sandbox_extensions")
def test_the_join_mode_session_extension_joins_the_session_asked_for(cxone_sandbox, make_hook):
    """The sandbox's ``join_mode=session`` extension, not CXone's published join: agent 2009 joins another
    agent's session by its id (what the deprecated ``session_ids=`` sweep form relies on)."""
    hook = make_hook()
    cxone_sandbox.set_faults(join_mode="session")
    hook.start_agent_session(as_agent_id=2009, station_id="station-1")
    outcome = join_agent_session(hook, "sess-2003", 2009)
    assert (outcome.condition, outcome.message) == (C.SUCCESS, "joined")


def test_join_is_idempotent(cxone_sandbox, make_hook):
    hook = make_hook()
    assert join_agent_session(hook, "sess-2002", 2002).condition is C.SUCCESS
    assert join_agent_session(hook, "sess-2002", 2002).condition is C.SUCCESS
    joins = [tuple(pair) for pair in cxone_sandbox.state()["joins"]]
    assert joins.count(("sess-2002", 2002)) == 1


def test_session_id_is_url_encoded(cxone_sandbox, make_hook):
    # An id that would change a path ("a/b", "..") is refused before sending: see test_security.py.
    outcome = join_agent_session(make_hook(), "a+b=c&e%41", 1001)
    assert outcome.condition is C.INVALID_AGENT_SESSION
    (call,) = _calls(cxone_sandbox, "agent-sessions/join")
    assert call["params"]["sessionId"] == "a+b=c&e%41"


@pytest.mark.parametrize(
    ("session_id", "agent_id", "condition"),
    [
        ("   ", 1001, C.INVALID_AGENT_SESSION),
        ("None", 1001, C.INVALID_AGENT_SESSION),
        ("sess 2001", 1001, C.INVALID_AGENT_SESSION),
        ("sess-2001", 0, C.INVALID_AGENT_ID),
        ("sess-2001", -1, C.INVALID_AGENT_ID),
        ("sess-2001", "abc", C.INVALID_AGENT_ID),
    ],
)
def test_bad_input_sends_nothing(cxone_sandbox, make_hook, session_id, agent_id, condition):
    outcome = join_agent_session(make_hook(), session_id, agent_id)
    assert outcome.condition is condition
    assert outcome.status_code is None
    assert cxone_sandbox.journal() == []


@pytest.mark.parametrize("no_session", [None, ""])
def test_a_join_expecting_no_session_is_success_with_the_agents_live_session(cxone_sandbox, make_hook, no_session):
    hook = make_hook()
    # Agent 2009 is not logged in: CXone's answer names the session as the unknown part.
    outcome = join_agent_session(hook, no_session, 2009)
    assert (outcome.condition, outcome.session_id, outcome.status_code) == (C.INVALID_AGENT_SESSION, "", 404)
    live = hook.start_agent_session(as_agent_id=2009, station_id="7100")
    outcome = join_agent_session(hook, no_session, 2009)
    assert (outcome.condition, outcome.session_id) == (C.SUCCESS, live)
    joins = _calls(cxone_sandbox, "agent-sessions/join")
    assert len(joins) == 2
    assert all("sessionId" not in e["params"] for e in joins)  # the published request: asAgentId only


def test_refused_token_makes_the_join_invalid_security_user(cxone_sandbox, make_hook):
    outcome = join_agent_session(make_hook(key="SANDBOX-INACTIVE-KEY"), "sess-2001", 1001)
    assert outcome.condition is C.INVALID_SECURITY_USER
    assert "invalid_grant" in outcome.message
    assert _calls(cxone_sandbox, "agent-sessions/join") == []


# --- retries ------------------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(cxone_sandbox, make_hook):
    hook = make_hook(hook_kwargs={"max_attempts": 2})
    hook.access_token()
    cxone_sandbox.set_faults(rate_429_retry_after=1.0, retry_after_s=1)
    started = time.monotonic()
    outcome = join_agent_session(hook, "sess-2001", 1001)
    waited = time.monotonic() - started
    assert outcome.condition is C.DEFAULT
    assert outcome.status_code == 429
    assert outcome.attempts == 2
    assert "gave up after 2 attempts" in outcome.message
    # The backoff alone would be 0.01-0.05 s: only the server's Retry-After explains a 1 s pause.
    assert waited >= 1.0


@pytest.mark.parametrize("fault", ["rate_429_retry_after", "rate_429_no_retry_after", "rate_503", "rate_drop"])
def test_transient_faults_are_retried_until_success(cxone_sandbox, make_hook, fault):
    hook = make_hook(hook_kwargs={"max_attempts": 10})
    hook.access_token()
    cxone_sandbox.set_faults(**{fault: 0.5}, retry_after_s=0, random_seed=11)
    # As CXone publishes the join: each agent 2001 … 2006 joined as itself, expecting its own session.
    outcomes = [join_agent_session(hook, f"sess-200{n}", 2000 + n) for n in range(1, 7)]
    assert [o.condition for o in outcomes] == [C.SUCCESS] * 6
    joins = _calls(cxone_sandbox, "agent-sessions/join")
    faulted = [e for e in joins if e["fault"]]
    assert faulted, "the seeded dice must have injected some faults"
    # Every attempt the journal shows is counted; nothing was sent that the outcome does not explain.
    assert sum(o.attempts for o in outcomes) == len(joins)
    assert len(joins) - len(faulted) == 6
    assert sorted(tuple(pair) for pair in cxone_sandbox.state()["joins"]) == [
        (f"sess-200{n}", 2000 + n) for n in range(1, 7)
    ]
    assert {e["fault"] for e in faulted} <= {"429_retry_after", "429", "503", "drop"}


@pytest.mark.parametrize(("fault", "status"), [("rate_503", 503), ("rate_drop", None)])
def test_gives_up_after_the_bound(cxone_sandbox, make_hook, fault, status):
    hook = make_hook(hook_kwargs={"max_attempts": 3})
    hook.access_token()
    cxone_sandbox.set_faults(**{fault: 1.0})
    outcome = join_agent_session(hook, "sess-2001", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.status_code == status
    assert outcome.attempts == 3
    assert len(_calls(cxone_sandbox, "agent-sessions/join")) == 3
    assert cxone_sandbox.state()["joins"] == []


def test_retry_listener_hears_every_retry(cxone_sandbox, make_hook):
    heard: list[str] = []
    hook = make_hook(hook_kwargs={"max_attempts": 3, "retry_listener": heard.append})
    hook.access_token()
    cxone_sandbox.set_faults(rate_503=1.0)
    join_agent_session(hook, "sess-2001", 1001)
    assert heard == ["503", "503"]


def test_the_retry_policy_table_covers_every_call():
    assert set(RETRY_POLICY) == {
        "token",
        "discovery",
        "get_agent",
        "agent_states",
        "join",
        "start_session",
        "end_session",
        "supervise",
        "get_next_event",
    }
    changing = {call for call, when in RETRY_POLICY.items() if when is RetryWhen.NOT_RECEIVED}
    # A poll CXone answered moved the session to a new id: repeating it would use a spent one.
    assert changing == {"start_session", "end_session", "supervise", "get_next_event"}


def _send_once_after_read_timeout(hook, call):
    if call == "start":
        hook.start_agent_session(as_agent_id=2009, station_id="station-9")
    elif call == "end":
        hook.end_agent_session("sess-2004")
    elif call == "monitor":
        hook.monitor("sess-2001", target_agent_id=2002)
    else:
        getattr(hook, call)("sess-2001", target_agent_id=2002)


@pytest.mark.parametrize(
    ("call", "path_part"),
    [
        ("start", "/agent-sessions"),
        ("end", "/agent-sessions/sess-2004"),
        ("monitor", "/sess-2001/monitor"),
        ("coach", "/sess-2001/coach"),
        ("barge", "/sess-2001/barge"),
        ("take_over", "/sess-2001/take-over"),
    ],
)
def test_a_state_changing_call_is_not_repeated_after_a_read_timeout(cxone_sandbox, make_hook, call, path_part):
    hook = make_hook(read_timeout=0.5, hook_kwargs={"max_attempts": 4})
    hook.access_token()
    _ = hook.api_base_url
    cxone_sandbox.set_faults(latency_ms=800)  # CXone acts after 0.8 s; the hook stops listening at 0.5 s
    with pytest.raises(CxoneApiError, match="no HTTP answer") as unanswered:
        _send_once_after_read_timeout(hook, call)
    assert unanswered.value.response.attempts == 1

    def sent() -> list[dict]:
        return [e for e in cxone_sandbox.journal() if e["path"].endswith(path_part) and e["method"] != "GET"]

    # The hook has returned, so it sends nothing more: once the sandbox has finished what it received, count.
    wait_for(sent, "the call in the journal")
    idle(cxone_sandbox)
    assert len(sent()) == 1, sent()


def test_a_state_changing_call_is_retried_when_the_connection_is_refused(cxone_sandbox, make_hook):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    base = f"http://127.0.0.1:{closed}/inContactAPI/services/v33.0/"
    hook = make_hook(discovery=False, api_base_url=base, hook_kwargs={"max_attempts": 3})
    with pytest.raises(CxoneApiError, match="no HTTP answer") as refused:
        hook.barge("sess-2001")
    assert refused.value.response.attempts == 3
    assert refused.value.response.retries == ["connection", "connection"]


def test_a_join_that_could_not_be_sent_counts_its_attempts(cxone_sandbox, make_hook):
    cxone_sandbox.set_faults(rate_drop=1.0, apply_to_auth=True, path_filter="cxone-configuration")
    outcome = join_agent_session(make_hook(hook_kwargs={"max_attempts": 2}), "sess-2001", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.attempts == 2
    assert outcome.status_code is None
    assert "no HTTP answer" in outcome.message
    assert "None" not in outcome.message


# --- token life cycle -----------------------------------------------------------------------------------


def test_token_is_renewed_before_it_expires(cxone_sandbox, make_hook):
    cxone_sandbox.set_faults(token_lifetime_s=2)
    hook = make_hook()
    first = hook.access_token()
    time.sleep(1.9)  # past the renewal point (90 % of the lifetime), not past the expiry
    assert join_agent_session(hook, "sess-1001", 1001).condition is C.SUCCESS
    assert hook.access_token() != first
    # The renewal came before the join was sent, so the API never saw the stale token. The first token
    # expired about when it was renewed; the new one lasts 2 s from its request. On a machine that
    # stalls past that (CI once did), the join is refused with the new token expired, renewed and sent
    # again: a 401 is wrong only inside the new token's lifetime, where only the stale token gets one.
    journal = [e for e in cxone_sandbox.journal() if "configuration" not in e["path"]]
    assert [e["path"].rsplit("/", 1)[-1] for e in journal][:3] == ["token", "token", "join"]
    renewed = journal[1]
    refused = [e for e in journal if e["status"] == 401]
    assert all(e["t_end"] >= renewed["t_start"] + 2 for e in refused), (renewed, refused)


def test_a_401_renews_once_and_retries_once(cxone_sandbox, make_hook):
    hook = make_hook()
    hook.get_agent(1001)
    cxone_sandbox.reset()  # revokes every token the sandbox issued (and puts the faults back)
    assert join_agent_session(hook, "sess-2001", 2001).condition is C.SUCCESS
    statuses = [(e["path"].rsplit("/", 1)[-1], e["status"]) for e in cxone_sandbox.journal()]
    assert statuses == [("join", 401), ("token", 200), ("join", 202)]


def test_a_401_after_the_renewal_is_invalid_security_user(cxone_sandbox, make_hook):
    heard: list[str] = []
    hook = make_hook(hook_kwargs={"retry_listener": heard.append})
    hook.access_token()
    _ = hook.api_base_url
    cxone_sandbox.clear_journal()
    cxone_sandbox.set_faults(rate_401=1.0)  # the token is refused whatever its age: revoked
    outcome = join_agent_session(hook, "sess-2001", 1001)
    assert outcome.condition is C.INVALID_SECURITY_USER
    assert outcome.status_code == 401
    assert outcome.attempts == 2
    statuses = [(e["path"].rsplit("/", 1)[-1], e["status"]) for e in cxone_sandbox.journal()]
    assert statuses == [("join", 401), ("token", 200), ("join", 401)]
    assert heard == ["401"]


def test_a_failed_renewal_is_not_repeated_by_every_caller(cxone_sandbox, make_hook):
    cxone_sandbox.set_faults(token_lifetime_s=1)
    hook = make_hook(hook_kwargs={"max_attempts": 2, "backoff_max_s": 5})
    hook.access_token()
    cxone_sandbox.set_faults(rate_503=1.0, apply_to_auth=True, path_filter="/auth/token")
    time.sleep(1.0)  # the token is due for renewal, and the token endpoint is down
    first = join_agent_session(hook, "sess-2001", 1001)
    second = join_agent_session(hook, "sess-2002", 1001)
    assert first.condition is second.condition is C.DEFAULT
    assert "gave up after 2 attempts" in first.message
    assert second.message == first.message
    # the first token, two attempts at renewing it, none for the second caller within the backoff window
    assert [e["status"] for e in _calls(cxone_sandbox, "/auth/token")] == [200, 503, 503]
    assert _calls(cxone_sandbox, "agent-sessions/join") == []


def test_an_unreachable_api_host_is_default(cxone_sandbox, make_hook):
    cxone_sandbox.set_faults(rate_503=1.0, apply_to_auth=True, path_filter="cxone-configuration")
    outcome = join_agent_session(make_hook(hook_kwargs={"max_attempts": 2}), "sess-2001", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.status_code == 503
    assert "API host discovery" in outcome.message


# --- bad connection settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"login": ""}, "login (access key id)", id="missing-access-key"),
        pytest.param({"password": None}, "password (access key secret)", id="missing-secret"),
        pytest.param({"extra": {"client_secret": ""}}, "extra 'client_secret'", id="missing-client-secret"),
        pytest.param({"host": "http://cxone.example.com"}, "plain http:// to 'cxone.example.com'", id="http-remote"),
        pytest.param({"extra": {"api_base_url": "http://10.1.2.3/x/"}}, "extra 'api_base_url'", id="http-base"),
        pytest.param({"extra": {"api_version": "33"}}, "extra 'api_version' must look like 'v33.0'", id="version"),
        pytest.param({"extra": {"read_timeout": "soon"}}, "extra 'read_timeout'", id="timeout"),
        pytest.param({"extra": {"verify_ssl": "maybe"}}, "extra 'verify_ssl'", id="verify"),
    ],
)
def test_bad_connection_settings_name_the_field(cxone_sandbox, monkeypatch, change, named):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_CXONE_BROKEN", json.dumps(changed_connection(cxone_sandbox, **change)))
    with pytest.raises(CxoneConfigError, match="connection 'cxone_broken'") as bad:
        CxoneHook("cxone_broken").access_token()
    assert named in str(bad.value)
    assert "sandbox-qa-secret" not in str(bad.value)
    assert cxone_sandbox.journal() == []


def test_tls_verification_is_on_unless_switched_off(make_hook):
    assert make_hook().session.verify is True
    assert make_hook("cxone_lab", verify_ssl=False).session.verify is False


@pytest.mark.parametrize(
    "host", ["http://cxone-sandbox:8765", "http://10.0.0.8", "http://[2001:db8::1]", "http://localhost.example.com"]
)
def test_http_to_any_non_loopback_host_is_refused_whatever_the_extras(cxone_sandbox, monkeypatch, host):
    import json

    conn = cxone_sandbox.connection()
    conn["host"] = host
    conn["extra"].update(allow_insecure_http=True, verify_ssl=False)  # no extra opens it
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_LAB", json.dumps(conn))
    with pytest.raises(CxoneConfigError, match="plain http://"):
        _ = CxoneHook("cxone_lab").settings


# --- secrets ----------------------------------------------------------------------------------------


def test_secrets_and_tokens_never_reach_logs_or_messages(cxone_sandbox, make_hook, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    hook = make_hook(hook_kwargs={"max_attempts": 2})
    token = hook.access_token()
    cxone_sandbox.set_faults(rate_503=0.5, rate_drop=0.3, random_seed=5)
    texts = [repr(hook.settings)]
    texts += [str(join_agent_session(hook, f"sess-200{n}", 1001).to_dict()) for n in range(1, 7)]
    cxone_sandbox.set_faults()
    for call in (lambda: hook.get_agent(9999), lambda: hook.monitor("sess-2007", target_agent_id=1)):
        with pytest.raises(CxoneApiError) as error:
            call()
        texts.append(str(error.value))
    _ok, message = hook.test_connection()
    texts.append(message)
    captured = capfd.readouterr()
    everything = "\n".join([*texts, caplog.text, captured.out, captured.err, str(cxone_sandbox.journal())])
    assert "retry" in caplog.text.lower() or "retry" in captured.out.lower() + captured.err.lower()
    for secret in (token, "sandbox-qa-secret", "sandbox-client-secret"):
        assert secret not in everything
