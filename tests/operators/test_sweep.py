"""QA sweeps: the sweep operator over real HTTP, and the QA-sweep DAG through dag.test().

On CXone's published join (the sandbox's defaults): ``agents=`` items, each joined as its own agent.
The tests of the deprecated ``session_ids=`` form itself (its SecurityUser, its list of session ids)
run on the sandbox's extensions, which that form needs, and say so in their names.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from conftest import FAST, PushedXComs, fresh_dag, fresh_sandbox, joins_sent, sandbox_with_live_sessions

from cxone_provider.domain.classification import ROUTE_NOT_FOUND
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator, live_sessions
from cxone_provider.sweeps.pacing import AdaptiveLimiter
from cxone_provider.sweeps.report import read_report

LIVE = 300
REPORTS = Path(tempfile.mkdtemp(prefix="cxone-sweep-reports-"))
QA_USER = {"agent_id": 1001, "conn_id": "cxone_sweep"}
#: The generated agents 5001…, each logged in with session ``sess-<agent id>``.
LIVE_AGENTS = [5001 + n for n in range(LIVE)]


big_sandbox = sandbox_with_live_sessions(LIVE)


@pytest.fixture
def sandbox(big_sandbox, monkeypatch):
    return fresh_sandbox(big_sandbox, monkeypatch, "cxone_sweep")


@pytest.fixture
def legacy_sandbox(big_sandbox, monkeypatch):
    """For the deprecated ``session_ids=`` form: one SecurityUser joining other agents' sessions by id
    works only on the sandbox's ``join_mode=session`` extension."""
    fresh_sandbox(big_sandbox, monkeypatch, "cxone_sweep", legacy=True)
    monkeypatch.setenv(*big_sandbox.connection_env("cxone_noimp", key="SANDBOX-NOIMP-KEY"))
    return big_sandbox


def expecting_own_sessions(agent_ids):
    """Each agent with the live session it is expected to be in (``sess-<agent id>``)."""
    return [{"agent_id": agent, "session_id": f"sess-{agent}"} for agent in agent_ids]


def sweep(agents, **kwargs):
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("cxone_conn_id", "cxone_sweep")
    # Outside a task run the report goes only where it is told to.
    kwargs.setdefault("report_path", str(REPORTS / uuid.uuid4().hex))
    return JoinAgentSessionsOperator(task_id="sweep", agents=agents, **kwargs).execute(context={})


def legacy_sweep(session_ids, security_user=QA_USER, **kwargs):
    """The deprecated form: ``session_ids`` joined as one ``security_user``."""
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("report_path", str(REPORTS / uuid.uuid4().hex))
    with pytest.warns(AirflowProviderDeprecationWarning):
        operator = JoinAgentSessionsOperator(
            task_id="sweep", session_ids=session_ids, security_user=security_user, **kwargs
        )
    return operator.execute(context={})


def joined_agents(sandbox):
    return [int(e["params"]["asAgentId"]) for e in joins_sent(sandbox)]


def test_list_sessions_keeps_live_ones_and_filters(sandbox):
    ti = PushedXComs()
    listed = ListAgentSessionsOperator(task_id="list", cxone_conn_id="cxone_sweep").execute(context={"ti": ti})
    assert len(listed) == 7 + LIVE  # 1001 (the supervisor), 2001 … 2006 and the generated agents: logged in
    assert 2007 not in [item["agent_id"] for item in listed]  # logged out
    assert ti.pushed["sessions"][1]["agent_id"] == 2001
    only_team = ListAgentSessionsOperator(
        task_id="list", team_ids="[20]", exclude_agent_ids=[2001], cxone_conn_id="cxone_sweep"
    ).execute(context={"ti": ti})
    assert only_team
    assert all(s["team_id"] == 20 for s in ti.pushed["sessions"])
    assert 2001 not in [item["agent_id"] for item in only_team]


def test_filters_rendered_from_none_are_no_filter(sandbox):
    listed = ListAgentSessionsOperator(
        task_id="list", team_ids="None", agent_state_names=None, exclude_agent_ids="None", cxone_conn_id="cxone_sweep"
    ).execute(context={"ti": PushedXComs()})
    assert len(listed) == 7 + LIVE


def test_live_sessions_filters_by_state_name():
    states = [
        {"agentId": 1, "sessionId": "a", "agentStateName": "Available", "teamId": 1},
        {"agentId": 2, "sessionId": "b", "agentStateName": "InboundContact", "teamId": 1},
        {"agentId": 3, "sessionId": None, "agentStateName": "LoggedOut", "teamId": 1},
    ]
    assert [s["session_id"] for s in live_sessions(states)] == ["a", "b"]
    assert [s["session_id"] for s in live_sessions(states, agent_state_names=["available"])] == ["a"]


def test_sweep_accounts_for_every_agent_exactly_once(sandbox):
    live = expecting_own_sessions(LIVE_AGENTS)
    logged_out = [2007, 2008]
    wrong_session = [{"agent_id": 2001, "session_id": "sess-2002"}]  # 2001 is live, in sess-2001
    unknown = [9998, 9999]
    malformed = ["x", {"agent_id": 0}, {"agent_id": 2003, "session_id": "has space"}]
    duplicated = [*LIVE_AGENTS[:5], 2007]
    items = live + logged_out + wrong_session + unknown + malformed + duplicated

    result = sweep(items, max_concurrency=16)

    assert set(result) >= {c.value for c in JoinCondition} | {"outcomes", "duplicates", "stats", "counts"}
    assert result["Success"] == LIVE_AGENTS
    assert result["live_sessions"] == {str(a): f"sess-{a}" for a in LIVE_AGENTS}
    assert result["InvalidAgentSession"] == [2007, 2008, 2001, 2003]
    assert result["InvalidAgentId"] == [9998, 9999, "x", "{'agent_id': 0}"]
    for condition in ("Default", "InvalidSecurityUser", "ImpersonateNotEnabled"):
        assert result[condition] == []
    listed = [str(a) for c in JoinCondition for a in result[c.value]]
    distinct = [str(a) for a in [*LIVE_AGENTS, 2007, 2008, 2001, 9998, 9999, "x", "{'agent_id': 0}", 2003]]
    assert sorted(listed) == sorted(distinct)  # each distinct item in exactly one list
    assert result["duplicates"] == [str(a) for a in duplicated]
    every = read_report(result)
    assert [o["item"] for o in every] == distinct
    assert all(o["attempts"] == 1 for o in every if o["condition"] == "Success")
    # The XCom keeps Success agents by id only, the others with their full outcome, in input order.
    assert [o["item"] for o in result["outcomes"]] == [o["item"] for o in every if o["condition"] != "Success"]

    # One join per distinct well-formed item, as its agent; malformed ones never sent.
    assert sorted(joined_agents(sandbox)) == sorted([*LIVE_AGENTS, 2007, 2008, 2001, 9998, 9999])
    assert len([e for e in sandbox.journal() if e["path"] == "/auth/token"]) == 1
    assert result["stats"]["token_requests"] == 1
    # CXone attaches each agent to its own live session: 2001 too, although it was expected elsewhere.
    own = [(f"sess-{a}", a) for a in [*LIVE_AGENTS, 2001]]
    assert sorted(tuple(pair) for pair in sandbox.state()["joins"]) == sorted(own)
    assert result["stats"]["peak_in_flight"] <= 16
    json.dumps(result)  # XCom-ready


@pytest.mark.parametrize(
    ("security_user", "condition", "requests"),
    [
        pytest.param({"agent_id": 1003, "conn_id": "cxone_sweep"}, "InvalidSecurityUser", True, id="inactive"),
        # Impersonation belongs to the key user: 1002's key acting as 1001.
        pytest.param({"agent_id": 1001, "conn_id": "cxone_noimp"}, "ImpersonateNotEnabled", True, id="no-imp"),
        pytest.param({"agent_id": 9999, "conn_id": "cxone_sweep"}, "InvalidAgentId", True, id="unknown-agent"),
        pytest.param({"agent_id": -1, "conn_id": "cxone_sweep"}, "InvalidAgentId", False, id="negative-agent"),
        pytest.param({"conn_id": "cxone_sweep"}, "InvalidSecurityUser", False, id="no-agent-id"),
    ],
)
def test_legacy_form_security_user_conditions_reach_every_session(legacy_sandbox, security_user, condition, requests):
    """The deprecated session_ids= form's own SecurityUser (the agents form has none)."""
    session_ids = ["sess-2001", "sess-2002", "sess-2007", *(f"sess-{5001 + n}" for n in range(100))]
    result = legacy_sweep(session_ids, security_user=security_user, max_concurrency=4)
    assert result[condition] == session_ids
    # An answer about the SecurityUser holds for every session: the sweep stops sending after the
    # first ones (at most one per worker) instead of asking a hundred times.
    assert 0 < len(joins_sent(legacy_sandbox)) <= 4 if requests else joins_sent(legacy_sandbox) == []
    messages = {o["message"].removeprefix("not sent: ") for o in result["outcomes"]}
    assert len(messages) <= 4 if requests else len(messages) == 1


def test_a_mistyped_api_base_url_stops_the_sweep_with_one_cause(big_sandbox, monkeypatch):
    big_sandbox.reset()
    typo = big_sandbox.url + "/inContactAPI/services/v33.0/typo/"
    name, value = big_sandbox.connection_env("cxone_typo", discovery=False, api_base_url=typo)
    monkeypatch.setenv(name, value)
    result = sweep(expecting_own_sessions(LIVE_AGENTS), cxone_conn_id="cxone_typo", max_concurrency=8)
    assert result["Default"] == LIVE_AGENTS
    assert all(ROUTE_NOT_FOUND in o["message"] for o in result["outcomes"])
    assert 0 < len(joins_sent(big_sandbox)) <= 8
    assert result["stats"]["stopped_early"] == "Default"
    assert result["InvalidAgentSession"] == []


def test_exhausted_retries_are_default_and_say_so(sandbox):
    sandbox.set_faults(rate_503=1.0, path_filter="agent-sessions/join")
    result = sweep([2001, 2002], hook_params={**FAST, "max_attempts": 2})
    assert result["Default"] == [2001, 2002]
    assert all("gave up after 2 attempts" in o["message"] for o in result["outcomes"])
    assert len(joins_sent(sandbox)) == 4


def test_a_429_storm_shrinks_the_concurrency_and_loses_nothing(sandbox):
    sandbox.set_faults(rate_429_no_retry_after=0.3, latency_ms=5, random_seed=21, path_filter="agent-sessions/join")
    live = LIVE_AGENTS[:200]
    result = sweep(expecting_own_sessions(live), max_concurrency=16, hook_params={**FAST, "max_attempts": 12})

    stats = result["stats"]
    assert stats["concurrency_decreases"] > 0
    assert stats["lowest_concurrency_limit"] < 16
    assert stats["rate_limit_found"] is None  # random 429s that slowing down does not end are no budget
    assert stats["retries"]["429"] == len([e for e in joins_sent(sandbox) if e["status"] == 429])
    assert result["Success"] == live
    assert sorted(tuple(pair) for pair in sandbox.state()["joins"]) == sorted((f"sess-{a}", a) for a in live)
    # The server never saw more joins at once than the configured maximum.
    assert max(e["inflight"] for e in joins_sent(sandbox)) <= 16


def test_the_sweep_finds_the_tenants_rate_limit_and_keeps_to_it(sandbox):
    # 30 a second: 16 workers outrun that on any machine, so the sweep meets the limit however loaded this one is
    # (at 100 a second a slow run could stay under it and find nothing).
    sandbox.set_faults(rate_limit_rps=30, latency_ms=5)
    result = sweep(expecting_own_sessions(LIVE_AGENTS), max_concurrency=16)

    assert result["Success"] == LIVE_AGENTS  # every 429 was retried: nothing lost
    assert result["stats"]["rate_limit_found"] is not None
    throttled = [e for e in joins_sent(sandbox) if e["status"] == 429]
    # Once found, the limit is kept to: the 429s are the first second's, not one per session.
    assert len(throttled) < LIVE // 4


def test_legacy_form_keys_duplicate_session_ids_as_sent_and_sends_no_malformed_one(legacy_sandbox):
    """The deprecated session_ids= form's list of session ids (the agents form's items: test_sweep_agents.py)."""
    result = legacy_sweep([" sess-2001", "sess-2001", "sess-2002 ", True, 1.5, None])
    assert result["Success"] == ["sess-2001", "sess-2002"]
    assert result["duplicates"] == ["sess-2001"]
    assert result["InvalidAgentSession"] == ["True", "1.5", "None"]
    sent = sorted(e["params"]["sessionId"] for e in joins_sent(legacy_sandbox))
    assert sent == ["sess-2001", "sess-2002"]  # a session id list: None and "" are bad ids, never sent


def test_an_unreachable_api_host_is_default_for_every_session_at_once(sandbox):
    sandbox.set_faults(rate_503=1.0, apply_to_auth=True, path_filter="cxone-configuration")
    result = sweep([2001, 2002, 2003], hook_params={**FAST, "max_attempts": 2})
    assert result["Default"] == [2001, 2002, 2003]
    assert all("API host discovery" in o["message"] for o in result["outcomes"])
    assert len([e for e in sandbox.journal() if "cxone-configuration" in e["path"]]) == 2  # once, retried once
    assert joins_sent(sandbox) == []


def test_limiter_halves_on_throttle_and_creeps_back():
    limiter = AdaptiveLimiter(16, cooldown_s=0)
    limiter.throttled()
    limiter.throttled()
    assert limiter.limit == 4
    for _ in range(4 + 5 + 6):
        limiter.succeeded()
    assert limiter.limit == 7
    assert limiter.lowest_limit == 4


# --- the QA-sweep DAG ------------------------------------------------------------------------------


def _states(dag_run):
    states: dict[str, list[str]] = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id, []).append(ti.state)
    return {task_id: sorted(s) for task_id, s in states.items()}


@pytest.mark.usefixtures("airflow_db")
def test_qa_sweep_dag_routes_throttled_agents_to_retry_later(cxone_sandbox, tmp_path):
    """The example DAG on CXone's published join: each team-20 agent's join answered 503 until retries end."""
    cxone_sandbox.set_faults(rate_503=1.0, path_filter="agent-sessions/join")
    dag_run = fresh_dag("cxone_qa_sweep", "cxone_qa_sweep").test(
        run_conf={"report_dir": tmp_path.name, "team_ids": [20]}
    )
    states = _states(dag_run)
    assert dag_run.state == "success"
    team_20 = {a["agent_id"] for a in cxone_sandbox.state()["agents"] if a["team_id"] == 20 and a["session_id"]}
    sweep_result = dag_run.get_task_instance("sweep").xcom_pull(task_ids="sweep")
    assert set(sweep_result["Default"]) == team_20
    assert 0 < len(team_20) < 6
    assert states["retry_later"] == ["success"] * len(team_20)
    assert states["review_live_session"] == ["skipped"]


def test_a_long_sweep_reports_progress_on_a_timer(sandbox, capfd, caplog):
    sandbox.set_faults(latency_ms=50)
    sweep(LIVE_AGENTS[:60], max_concurrency=4, progress_interval_s=0.2)  # ~0.75 s: several progress intervals
    output = "".join(capfd.readouterr()) + caplog.text
    progress = [line for line in output.splitlines() if "Sweep " in line and "/60 joined in" in line]
    assert len(progress) >= 3, output[-2000:]
    assert any("Success" in line and "/s" in line for line in progress)
