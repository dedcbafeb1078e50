"""QA sweeps as NICE publishes the join: (agent, session) items, each joined as its own agent.

Against the sandbox's defaults (its published join: ``asAgentId`` attaches to that agent's own live
session; impersonation judged on the access key's user), over real HTTP.
"""

from __future__ import annotations

import csv
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from conftest import FAST, PushedXComs, fresh_dag, fresh_sandbox, joins_sent, sandbox_with_live_sessions

from cxone_provider.domain.agent_sessions import distinct_items, parse_item
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.operators.mapped import merge_sweep_results, session_ids_of
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator
from cxone_provider.sweeps.report import read_report

LIVE = 40
REPORTS = Path(tempfile.mkdtemp(prefix="cxone-sweep-agents-"))


published_sandbox = sandbox_with_live_sessions(LIVE)


@pytest.fixture
def sandbox(published_sandbox, monkeypatch):
    return fresh_sandbox(published_sandbox, monkeypatch, "cxone_sweep")


def sweep(agents, **kwargs):
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("report_path", str(REPORTS / uuid.uuid4().hex))
    kwargs.setdefault("cxone_conn_id", "cxone_sweep")
    return JoinAgentSessionsOperator(task_id="sweep", agents=agents, **kwargs).execute(context={})


# --- the items ----------------------------------------------------------------------------------------

ITEMS = [
    (2001, "2001", 2001, None, None),
    ("2001", "2001", 2001, None, None),
    ({"agent_id": 2001}, "2001", 2001, None, None),
    ({"agentId": 2001, "sessionId": "sess-2001"}, "2001", 2001, "sess-2001", None),
    ({"agent_id": 2001, "session_id": " sess-2001 "}, "2001", 2001, "sess-2001", None),
    ({"agent_id": 2001, "session_id": ""}, "2001", 2001, None, None),
    ([2001, "sess-2001"], "2001", 2001, "sess-2001", None),
    ({"agent_id": 0}, "{'agent_id': 0}", None, None, JoinCondition.INVALID_AGENT_ID),
    ("abc", "abc", None, None, JoinCondition.INVALID_AGENT_ID),
    ({"session_id": "sess-2001"}, "{'session_id': 'sess-2001'}", None, None, JoinCondition.INVALID_AGENT_ID),
    ([1, 2, 3], "[1, 2, 3]", None, None, JoinCondition.INVALID_AGENT_ID),
    ({"agent_id": 2001, "session_id": "a b"}, "2001", 2001, "a b", JoinCondition.INVALID_AGENT_SESSION),
]


@pytest.mark.parametrize(("value", "key", "agent_id", "session_id", "condition"), ITEMS)
def test_each_item_form_is_read_or_given_its_condition(value, key, agent_id, session_id, condition):
    item = parse_item(value)
    assert (item.key, item.agent_id, item.session_id) == (key, agent_id, session_id)
    assert (item.rejected.condition if item.rejected else None) == condition
    if item.rejected:  # the message names the field at fault
        assert "agent_id" in item.rejected.message or "session_id" in item.rejected.message


def test_an_agent_given_twice_is_one_item_and_a_duplicate():
    items, duplicates = distinct_items([2001, {"agent_id": 2001, "session_id": "x"}, 2002, "2002"])
    assert [i.key for i in items] == ["2001", "2002"]
    assert duplicates == ["2001", "2002"]


# --- the operator -------------------------------------------------------------------------------------


def test_the_listing_offers_logged_in_agents_without_session_ids(sandbox):
    ti = PushedXComs()
    listed = ListAgentSessionsOperator(task_id="list", cxone_conn_id="cxone_sweep").execute(context={"ti": ti})
    agents = {item["agent_id"] for item in listed}
    assert {2001, 2002, 2003, 2004, 2005, 2006} <= agents
    assert not agents & {2007, 2008}  # logged out
    assert all("session_id" not in item for item in listed)  # CXone's rows carry none
    assert ti.pushed["sessions"] == listed


def test_a_sweep_of_listed_agents_joins_each_as_itself(sandbox):
    listed = ListAgentSessionsOperator(task_id="list", cxone_conn_id="cxone_sweep").execute(
        context={"ti": PushedXComs()}
    )
    result = sweep(listed, max_concurrency=8)
    assert len(result["Success"]) == len(listed)
    assert result["counts"]["Success"] == len(listed)
    live = {s["agent_id"]: s["session_id"] for s in sandbox.state()["agents"]}
    assert result["live_sessions"] == {str(a): live[a] for a in result["Success"]}
    sent = joins_sent(sandbox)
    assert sorted(int(e["params"]["asAgentId"]) for e in sent) == sorted(item["agent_id"] for item in listed)
    assert all("sessionId" not in e["params"] for e in sent)  # none expected: the live session, whatever its id
    assert result["stats"]["token_requests"] == 1


def test_each_item_ends_in_its_own_condition_and_the_sweep_goes_on(sandbox):
    result = sweep(
        [
            {"agent_id": 2001, "session_id": "sess-2001"},  # the agent's live session
            {"agent_id": 2002, "session_id": "sess-2001"},  # not the agent's session
            2007,  # logged out: no live session
            9999,  # no such agent
            1003,  # an inactive agent
            "x",  # names no agent: no request
            2003,
        ]
    )
    assert result["Success"] == [2001, 2003]
    assert result["InvalidAgentSession"] == [2002, 2007]
    assert result["InvalidAgentId"] == [9999, "x"]
    assert result["InvalidSecurityUser"] == [1003]
    assert result["stats"]["stopped_early"] is None  # each answer was about one agent
    mismatch = next(o for o in result["outcomes"] if o["agent_id"] == 2002)
    assert "sess-2002" in mismatch["message"]
    assert "sess-2001" in mismatch["message"]
    assert len(joins_sent(sandbox)) == 6  # "x" was never sent


def test_a_key_without_impersonation_stops_the_sweep_for_the_other_agents(sandbox, monkeypatch):
    name, value = sandbox.connection_env("cxone_sweep", key="SANDBOX-NOIMP-KEY")
    monkeypatch.setenv(name, value)
    result = sweep([2001, 2002, 2003, 2004], max_concurrency=1)
    assert result["ImpersonateNotEnabled"] == [2001, 2002, 2003, 2004]
    assert result["stats"]["stopped_early"] == "ImpersonateNotEnabled"
    assert len(joins_sent(sandbox)) == 1
    assert all(o["message"].startswith("not sent") for o in result["outcomes"][1:])


def test_the_report_and_the_selectors_name_agents_and_sessions(sandbox):
    result = sweep([2001, 2002, 2007, {"agent_id": 2003, "session_id": "sess-9"}])
    rows = read_report(result)
    assert [(r["agent_id"], r["condition"]) for r in rows] == [
        (2001, "Success"),
        (2002, "Success"),
        (2007, "InvalidAgentSession"),
        (2003, "InvalidAgentSession"),
    ]
    assert rows[0]["session_id"] == "sess-2001"
    merged = merge_sweep_results([result])
    assert session_ids_of(merged, "Success") == ["sess-2001", "sess-2002"]
    # Of the items that failed, only the one that expected a session can name it.
    assert session_ids_of(merged, "InvalidAgentSession") == ["sess-9"]


def test_the_two_forms_are_one_or_the_other_and_the_old_one_warns():
    with pytest.raises(ValueError, match="give agents"):
        JoinAgentSessionsOperator(task_id="both", agents=[1], session_ids=["s"])
    with pytest.raises(ValueError, match="give agents"):
        JoinAgentSessionsOperator(task_id="neither")
    with pytest.raises(ValueError, match="security_user goes with session_ids only"):
        JoinAgentSessionsOperator(task_id="as", agents=[1], security_user=1001)
    with pytest.warns(AirflowProviderDeprecationWarning, match="join_mode=session"):
        JoinAgentSessionsOperator(task_id="old", session_ids=["s"], security_user=1001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        JoinAgentSessionsOperator(task_id="new", agents=[1])


# --- the QA-sweep DAG ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db")
def test_qa_sweep_dag_reviews_every_live_agent_session(cxone_sandbox, tmp_path):
    from cxone_qa_sweep import REPORTS_BASE  # the DAGs folder is on sys.path (conftest)

    run = fresh_dag("cxone_qa_sweep", "cxone_qa_sweep").test(run_conf={"report_dir": tmp_path.name})
    states: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(ti.state)
    assert run.state == "success"
    logged_in = [a for a in cxone_sandbox.state()["agents"] if a["session_id"]]
    assert states["review_live_session"] == ["success"] * len(logged_in)
    for empty in ("note_ended_session", "retry_later", "alert_security_user"):
        assert states[empty] == ["skipped"], empty
    (csv_report,) = (REPORTS_BASE / tmp_path.name).glob("qa_sweep_*.csv")
    rows = list(csv.DictReader(csv_report.open()))
    assert {(int(float(r["agent_id"])), r["session_id"]) for r in rows} == {
        (a["agent_id"], a["session_id"]) for a in logged_in
    }


# --- a tenant's own condition rules (issue 21, item 3): the sweep takes them as the single join does ---------


def test_the_sweeps_condition_rules_decide_each_join(sandbox):
    # Agent 2009 is not logged in: CXone answers its join 404. This tenant reads every 404 as Default.
    plain = sweep([2001, 2009])
    assert plain["Success"] == [2001]
    assert 2009 not in plain["Default"]
    ruled = sweep([2001, 2009], condition_rules=[{"status": 404, "condition": "Default"}])
    assert (ruled["Success"], ruled["Default"]) == ([2001], [2009])
    (outcome,) = [o for o in ruled["outcomes"] if o["agent_id"] == 2009]
    assert outcome["status_code"] == 404
    assert "condition_rules[0]" in outcome["message"]


def test_a_sweeps_bad_condition_rule_is_refused_when_the_dag_is_parsed_naming_it():
    from cxone_provider.exceptions import ConditionRulesError

    with pytest.raises(ConditionRulesError, match=r"sweep: condition_rules\[0\]\.pattern '\(unclosed'"):
        JoinAgentSessionsOperator(
            task_id="sweep",
            agents=[2001],
            condition_rules=[{"status": 404, "pattern": "(unclosed", "condition": "InvalidAgentId"}],
        )
