"""The operators through real Airflow runs (``dag.test()``) against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import DAGBAG_MODULE, fresh_dag, reads_task_output

from cxone_provider.operators.agent_session import BranchConfigError, JoinAgentSessionOperator

pytestmark = pytest.mark.usefixtures("airflow_db")


def run(dag, **conf):
    dag_run = dag.test(run_conf=conf or None)
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def outcome_of(dag_run, task_id="join"):
    return dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def joins_sent(sandbox):
    return [e for e in sandbox.journal() if e["path"].endswith("agent-sessions/join")]


#: The live session of agent 1001, the test DAGs' SecurityUser, in the sandbox's seed: CXone's join attaches
#: the SecurityUser to its own live session, so this is the one a join as 1001 succeeds for.
OWN_SESSION = "sess-1001"


# --- routing -----------------------------------------------------------------------------------------


def test_rule_1_the_conditions_own_entry(cxone_sandbox):
    _, states = run(fresh_dag("cxone_test_dags", "t_rules_1_2"), session_id="sess-2007")
    assert states["on_invalid_session"] == "success"
    assert states["on_success"] == states["on_default"] == "skipped"


def test_rule_1_success(cxone_sandbox):
    _, states = run(fresh_dag("cxone_test_dags", "t_rules_1_2"), session_id=OWN_SESSION)
    assert states["on_success"] == "success"
    assert states["on_invalid_session"] == states["on_default"] == "skipped"


def test_rule_2_default_when_the_condition_has_no_branch(cxone_sandbox, monkeypatch):
    # Impersonation belongs to the connection's key user: 1002's key acting as the SecurityUser 1001.
    monkeypatch.setenv(*cxone_sandbox.connection_env(key="SANDBOX-NOIMP-KEY"))
    dag_run, states = run(fresh_dag("cxone_test_dags", "t_rules_1_2"), agent_id=1001, session_id=OWN_SESSION)
    assert outcome_of(dag_run)["condition"] == "ImpersonateNotEnabled"
    assert states["on_default"] == "success"
    assert states["on_success"] == states["on_invalid_session"] == "skipped"


def test_rule_3_success_runs_every_direct_downstream_task(cxone_sandbox):
    _, states = run(fresh_dag("cxone_test_dags", "t_rule_3"), session_id=OWN_SESSION)
    assert states == {"join": "success", "work_a": "success", "work_b": "success"}


@reads_task_output
def test_rule_3_other_conditions_fail_the_task_loudly(cxone_sandbox, capfd):
    # Agent 2007's session has ended; CXone says so in its icStatusDescription header, in NICE's wording.
    cxone_sandbox.set_faults(status_description="sentence")
    dag_run, states = run(fresh_dag("cxone_test_dags", "t_rule_3"), agent_id=2007, session_id="sess-2007")
    assert states == {"join": "failed", "work_a": "upstream_failed", "work_b": "upstream_failed"}
    assert dag_run.state == "failed"
    output = "".join(capfd.readouterr())
    assert "ended in InvalidAgentSession for session_id 'sess-2007'" in output
    assert "Invalid agent session Id." in output  # the API's own message
    # the outcome is kept for reports even though the task failed
    assert outcome_of(dag_run)["condition"] == "InvalidAgentSession"


def test_rule_3_success_follows_every_direct_downstream_task_even_failure_branches(cxone_sandbox):
    _, states = run(fresh_dag("cxone_test_dags", "t_rule_3_claimed"), session_id=OWN_SESSION)
    assert states == {"join": "success", "work": "success", "alert": "success"}
    _, states = run(fresh_dag("cxone_test_dags", "t_rule_3_claimed"), agent_id=2008, session_id="sess-2008")  # ended
    assert states == {"join": "success", "work": "skipped", "alert": "success"}


def test_task_group_as_a_branch_target(cxone_sandbox):
    _, states = run(fresh_dag("cxone_test_dags", "t_task_group"), session_id=OWN_SESSION)
    assert states == {
        "join": "success",
        "supervise.first": "success",
        "supervise.second": "success",
        "fallback": "skipped",
    }


def test_default_after_exhausted_retries_follows_default(cxone_sandbox):
    cxone_sandbox.set_faults(rate_429_no_retry_after=1.0, path_filter="agent-sessions/join")
    dag_run, states = run(fresh_dag("cxone_test_dags", "t_task_group"))
    assert states["fallback"] == "success"
    assert states["supervise.first"] == "skipped"
    outcome = outcome_of(dag_run)
    assert outcome["condition"] == "Default"
    assert outcome["status_code"] == 429
    assert outcome["attempts"] == 3 == len(joins_sent(cxone_sandbox))


# --- templating ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", ["t_templating_plain", "t_templating_native"])
def test_templated_inputs(cxone_sandbox, dag_id):
    dag_run, states = run(fresh_dag("cxone_test_dags", dag_id), session_id=OWN_SESSION)
    joins = ("xcomarg_inputs", "pulled_user", "pulled_session", "default_user")
    assert all(states[t] == "success" for t in joins), states
    # Success needs the rendered agent's own live session to be the rendered session: a value rendered
    # wrong (or not at all) in any join is another condition.
    for task_id in joins:
        assert outcome_of(dag_run, task_id)["condition"] == "Success", task_id
    sent = sorted((e["params"]["asAgentId"], e["params"]["sessionId"]) for e in joins_sent(cxone_sandbox))
    assert sent == [("1001", OWN_SESSION)] * 3 + [("2004", "sess-2004")]


def test_rendered_fields_hold_no_secret(cxone_sandbox):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    dag_run, _ = run(fresh_dag("cxone_test_dags", "t_templating_plain"))
    rendered = {ti.task_id: RenderedTaskInstanceFields.get_templated_fields(ti) for ti in dag_run.get_task_instances()}
    assert rendered["pulled_user"]["security_user"] == str(
        {"agent_id": 1001, "conn_id": "cxone_default", "time_zone": "UTC"}
    )
    text = json.dumps(rendered, default=str)
    for secret in ("sandbox-qa-secret", "sandbox-client-secret"):
        assert secret not in text


# --- bad input: one run per row; each gets its condition and sends nothing ------------------------------

BAD_INPUT = [
    pytest.param({"session_id": ""}, "bad_session", id="empty-session"),
    pytest.param({"session_id": "   "}, "bad_session", id="blank-session"),
    pytest.param({"session_id": None}, "bad_session", id="None-rendered-session"),
    pytest.param({"session_id": "sess 2001"}, "bad_session", id="malformed-session"),
    pytest.param({"security_user": [1001]}, "bad_user", id="user-not-a-mapping"),
    pytest.param({"security_user": {"conn_id": "cxone_default"}}, "bad_user", id="user-without-agent-id"),
    pytest.param({"security_user": {"agent_id": 0}}, "bad_agent", id="agent-0"),
    pytest.param({"security_user": {"agent_id": -1}}, "bad_agent", id="agent-minus-1"),
    pytest.param({"security_user": {"agent_id": "abc"}}, "bad_agent", id="agent-abc"),
]


@pytest.mark.parametrize(("conf", "branch"), BAD_INPUT)
def test_bad_input_gets_its_condition_and_sends_nothing(cxone_sandbox, conf, branch):
    dag_run, states = run(fresh_dag("cxone_test_dags", "t_bad_input"), **conf)
    assert {task_id for task_id, state in states.items() if state == "success"} == {"join", branch}
    assert outcome_of(dag_run)["status_code"] is None
    assert cxone_sandbox.journal() == []


# --- branches checked when the DAG is parsed -------------------------------------------------------------


def test_unknown_condition_names_are_rejected_at_construction():
    with pytest.raises(BranchConfigError, match=r"unknown condition\(s\) 'Sucess', 'OnError'"):
        JoinAgentSessionOperator(task_id="j", session_id="s", branches={"Sucess": "a", "OnError": "b"})


def _parse(tmp_path, body):
    (tmp_path / "bad_dag.py").write_text(textwrap.dedent(body))
    script = textwrap.dedent(
        f"""
        import json
        from {DAGBAG_MODULE} import DagBag
        bag = DagBag(dag_folder={str(tmp_path)!r})
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": list(bag.import_errors.values())}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_targets_not_downstream_are_rejected_when_the_dag_is_parsed(tmp_path):
    report = _parse(
        tmp_path,
        """
        import pendulum
        from airflow.sdk import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator
        from cxone_provider.operators.agent_session import JoinAgentSessionOperator

        with DAG("bad_targets", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            join = JoinAgentSessionOperator(
                task_id="join", session_id="s", branches={"Success": "ok", "Default": ["elsewhere", "nowhere"]}
            )
            join >> EmptyOperator(task_id="ok")
            EmptyOperator(task_id="elsewhere")
        """,
    )
    assert report["dags"] == []
    (error,) = report["errors"]
    assert "Default -> 'elsewhere'" in error
    assert "Default -> 'nowhere'" in error
    assert "Success" not in error.split("not directly downstream:")[1].split(";")[0]


def test_unknown_condition_is_an_import_error(tmp_path):
    report = _parse(
        tmp_path,
        """
        import pendulum
        from airflow.sdk import DAG
        from cxone_provider.operators.agent_session import JoinAgentSessionOperator

        with DAG("bad_keys", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            JoinAgentSessionOperator(task_id="join", session_id="s", branches={"Succes": "x"})
        """,
    )
    (error,) = report["errors"]
    assert "unknown condition(s) 'Succes'" in error


def test_bad_condition_rules_are_an_import_error_naming_the_field_and_value(tmp_path):
    report = _parse(
        tmp_path,
        """
        import pendulum
        from airflow.sdk import DAG
        from cxone_provider.operators.agent_session import JoinAgentSessionOperator

        with DAG("bad_rules", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            JoinAgentSessionOperator(
                task_id="join",
                session_id="s",
                condition_rules=[{"status": 404, "pattern": "ok", "condition": "InvalidAgentSession"},
                                 {"status": 404, "pattern": "(unclosed", "condition": "InvalidAgentId"}],
            )
        """,
    )
    assert report["dags"] == []
    (error,) = report["errors"]
    assert "join: condition_rules[1].pattern '(unclosed' is not a valid regular expression" in error


def test_operator_condition_rules_decide_a_join(cxone_sandbox):
    from cxone_provider.operators.agent_session import JoinAgentSessionOperator

    # Agent 2009 is not logged in: CXone answers the join 404; this tenant's rule reads every 404 as Default.
    operator = JoinAgentSessionOperator(
        task_id="join",
        session_id="sess-2009",
        security_user=2009,
        condition_rules=[{"status": 404, "condition": "Default"}],
    )
    outcome = operator.join({})
    assert (outcome.condition, outcome.status_code) == ("Default", 404)
    assert "condition_rules[0]" in outcome.message


# --- the default SecurityUser ---------------------------------------------------------------------------


@pytest.mark.parametrize("operator", ["JoinAgentSessionOperator", "JoinAgentSessionsOperator"])
def test_two_equally_near_set_security_users_are_an_import_error(tmp_path, operator):
    module = "agent_session" if operator == "JoinAgentSessionOperator" else "sweep"
    inputs = 'session_id="s"' if operator == "JoinAgentSessionOperator" else 'session_ids=["s"]'
    report = _parse(
        tmp_path,
        f"""
        import pendulum
        from airflow.sdk import DAG
        from cxone_provider.operators.{module} import {operator}
        from cxone_provider.operators.security_user import SetSecurityUserOperator

        with DAG("two_supervisors", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            join = {operator}(task_id="join", {inputs})
            [SetSecurityUserOperator(task_id="sup_b", agent_id=1002),
             SetSecurityUserOperator(task_id="sup_a", agent_id=1001)] >> join
        """,
    )
    assert report["dags"] == []
    (error,) = report["errors"]
    assert "'sup_a', 'sup_b' are equally near" in error
    assert "pass security_user= explicitly" in error


def test_a_sweep_of_agents_needs_no_security_user_upstream(tmp_path):
    """Each agent is joined as itself: two SetSecurityUsers upstream are not ambiguous for it."""
    report = _parse(
        tmp_path,
        """
        import pendulum
        from airflow.sdk import DAG
        from cxone_provider.operators.sweep import JoinAgentSessionsOperator
        from cxone_provider.operators.security_user import SetSecurityUserOperator

        with DAG("agents_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            sweep = JoinAgentSessionsOperator(task_id="sweep", agents=[2001, 2002])
            [SetSecurityUserOperator(task_id="sup_b", agent_id=1002),
             SetSecurityUserOperator(task_id="sup_a", agent_id=1001)] >> sweep
        """,
    )
    assert report["errors"] == []
    assert report["dags"] == ["agents_sweep"]


def test_the_nearest_set_security_user_wins_and_an_explicit_one_needs_no_default():
    import pendulum
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from cxone_provider.operators.common import nearest_set_security_user
    from cxone_provider.operators.security_user import SetSecurityUserOperator
    from cxone_provider.policies import task_policy

    with DAG("near", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        far = SetSecurityUserOperator(task_id="far", agent_id=1002)
        near = SetSecurityUserOperator(task_id="near", agent_id=1001)
        join = JoinAgentSessionOperator(task_id="join", session_id="s")
        far >> EmptyOperator(task_id="step") >> join
        near >> join
        explicit = JoinAgentSessionOperator(task_id="explicit", session_id="s", security_user=1001)
        [SetSecurityUserOperator(task_id="x", agent_id=1), SetSecurityUserOperator(task_id="y", agent_id=2)] >> explicit
    for _ in range(5):  # the same answer whatever the set order
        assert nearest_set_security_user(join) is near
    task_policy(explicit)  # security_user given: the tie upstream does not matter


@reads_task_output
def test_the_join_logs_one_line_with_everything(cxone_sandbox, capfd, caplog):
    run(fresh_dag("cxone_test_dags", "t_rules_1_2"), session_id=OWN_SESSION)
    output = "".join(capfd.readouterr()) + caplog.text
    (line,) = [row for row in output.splitlines() if f"Join Agent Session '{OWN_SESSION}' as agent 1001" in row]
    assert "(from set_security_user): Success (HTTP 202, 1 attempt, " in line
    assert "→ on_success (own branch)" in line


def test_a_default_without_a_branch_says_to_add_the_default_branch(cxone_sandbox, capfd):
    cxone_sandbox.set_faults(rate_503=1.0, path_filter="agent-sessions/join")
    _, states = run(fresh_dag("cxone_test_dags", "t_rule_3"))
    assert states["join"] == "failed"
    output = "".join(capfd.readouterr())
    assert "no branch handles it (add branches['Default'])" in output
    assert "or branches['Default']" not in output
