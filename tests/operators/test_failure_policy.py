"""The one failure policy of every CXone task (``cxone_provider.operators.base``), one test per row.

Each test runs a real DAG (``dag.test()``, every task with ``retries=1``) against the sandbox and reads
how many tries each task took: one try is "failed fast", two is "Airflow retried it". The join keeps
Studio's semantics: what CXone answers is its result condition (recorded in its outcome), and the
condition with no branch decides whether it is retried (``Default``) or not (the others).
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from conftest import DAGS_FOLDER, changed_connection, fresh_dag, reads_task_output

from cxone_provider.operators.base import fails_fast

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_MODULE = "cxone_test_policy_dag"
# Every task alone (no dependencies), so that each shows its own tries; fast hook retries.
DAG_SOURCE = textwrap.dedent(
    '''
    """Every CXone task with retries=1: how a failure ends (one try, or two)."""

    from __future__ import annotations

    import datetime

    from airflow.sdk import DAG

    from cxone_provider.operators.agent_session import JoinAgentSessionOperator
    from cxone_provider.operators.agent_states import ListAgentSessionsOperator
    from cxone_provider.operators.security_user import SetSecurityUserOperator
    from cxone_provider.sensors.agent_state import AgentStateSensor
    from cxone_provider.sensors.session_events import AgentSessionEventSensor

    FAST = {"max_attempts": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}

    with DAG(
        "t_failure_policy",
        schedule=None,
        start_date=datetime.datetime(2026, 1, 1),
        params={"agent_id": 1001, "team_ids": [], "session_id": "sess-2001"},
        default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=0), "hook_params": FAST},
    ) as dag:
        SetSecurityUserOperator(task_id="set_user", agent_id="{{ params.agent_id }}")
        ListAgentSessionsOperator(task_id="list", team_ids="{{ params.team_ids }}")
        AgentStateSensor(
            task_id="wait", agent_id="{{ params.agent_id }}", mode="poke",
            poll_interval=0.2, timeout=20, deferrable=False,
        )
        AgentSessionEventSensor(
            task_id="events", session_id="{{ params.session_id }}", poll_timeout=0, timeout=20,
            deferrable=False,
        )
        JoinAgentSessionOperator(
            task_id="join",
            session_id="{{ params.session_id }}",
            security_user={"agent_id": 1001, "conn_id": "cxone_default", "time_zone": "UTC"},
        )
    '''
)
TASKS = ("set_user", "list", "wait", "events", "join")


@pytest.fixture
def policy_dag():
    path = DAGS_FOLDER / f"{DAG_MODULE}.py"
    path.write_text(DAG_SOURCE, encoding="utf-8")
    yield lambda **conf: fresh_dag(DAG_MODULE, "t_failure_policy").test(run_conf=conf or None)
    path.unlink()


def tries(dag_run: Any) -> dict[str, tuple[str, int]]:
    """Each task's final state and how many tries it took."""
    return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}


def join_condition(dag_run: Any) -> str:
    return dag_run.get_task_instance("join").xcom_pull(task_ids="join")["condition"]


def use_connection(monkeypatch: pytest.MonkeyPatch, sandbox: Any, **changes: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_DEFAULT", json.dumps(changed_connection(sandbox, **changes)))


@reads_task_output
def test_a_refused_access_key_fails_fast(cxone_sandbox, monkeypatch, policy_dag, capfd):
    use_connection(monkeypatch, cxone_sandbox, password="not-the-secret")
    dag_run = policy_dag()
    assert tries(dag_run) == {task: ("failed", 1) for task in TASKS}
    # The join does not raise for it: Studio's InvalidSecurityUser, which has no branch here.
    assert join_condition(dag_run) == "InvalidSecurityUser"
    assert "not-the-secret" not in "".join(capfd.readouterr())


@reads_task_output
def test_an_unusable_connection_fails_fast_naming_the_field(cxone_sandbox, monkeypatch, policy_dag, capfd):
    use_connection(monkeypatch, cxone_sandbox, extra={"api_version": "33"})
    dag_run = policy_dag()
    assert tries(dag_run) == {task: ("failed", 1) for task in TASKS}
    assert "extra 'api_version' must look like 'v33.0'" in "".join(capfd.readouterr())
    assert cxone_sandbox.journal() == []  # nothing was sent, on any try


def test_a_bad_input_fails_fast_naming_the_field(cxone_sandbox, policy_dag, capfd):
    dag_run = policy_dag(agent_id="abc", team_ids=["team-x"], session_id="../x")
    assert tries(dag_run) == {task: ("failed", 1) for task in TASKS}
    output = "".join(capfd.readouterr())
    assert "team_ids must hold whole numbers, got 'team-x'" in output
    assert "SetSecurityUser: agent_id 'abc' is not an integer" in output
    assert "AgentStateSensor: agent_id 'abc' is not an integer" in output
    # The join answers a bad session id as Studio does, without a request: a condition.
    assert join_condition(dag_run) == "InvalidAgentSession"
    assert cxone_sandbox.journal() == []


def test_an_api_that_answers_503_forever_is_retried_by_airflow(cxone_sandbox, policy_dag):
    cxone_sandbox.set_faults(rate_503=1)
    dag_run = policy_dag()
    assert tries(dag_run) == {task: ("failed", 2) for task in TASKS}
    assert join_condition(dag_run) == "Default"  # the join's no-answer condition, retried when unrouted


def test_an_auth_service_that_is_down_is_retried_by_airflow(cxone_sandbox, policy_dag):
    """503 from the token endpoint and discovery: no API host, no API call, a retry for every task."""
    cxone_sandbox.set_faults(rate_503=1, apply_to_auth=True)
    dag_run = policy_dag()
    assert tries(dag_run) == {task: ("failed", 2) for task in TASKS}
    assert join_condition(dag_run) == "Default"
    assert not [e for e in cxone_sandbox.journal() if "/inContactAPI/" in e["path"]]


def test_an_answer_no_retry_can_change_fails_fast(cxone_sandbox, policy_dag, capfd):
    """An unknown session's event poll (a 4xx that is not 408 or 429) ends the sensor without a retry."""
    dag_run = policy_dag(session_id="sess-9999")
    assert tries(dag_run)["events"] == ("failed", 1)


@pytest.mark.parametrize(
    ("status", "fast"),
    [(400, True), (401, True), (403, True), (404, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_which_error_answers_fail_fast(status, fast):
    from cxone_provider.exceptions import CxoneApiError
    from cxone_provider.response import ApiResponse

    assert fails_fast(CxoneApiError(ApiResponse(status_code=status, message="x"), "call")) is fast
    assert fails_fast(CxoneApiError(ApiResponse(status_code=None, message="no answer"), "call")) is False


def test_on_kill_stops_every_hook_the_task_made_and_a_new_try_starts_afresh(cxone_sandbox):
    from cxone_provider.exceptions import CxoneStopped
    from cxone_provider.operators.agent_states import ListAgentSessionsOperator

    task = ListAgentSessionsOperator(task_id="list")
    hook = task.hook
    assert hook.get_agent_states()
    task.on_kill()
    sent = len(cxone_sandbox.journal())
    with pytest.raises(CxoneStopped):
        hook.get_agent_states()
    assert len(cxone_sandbox.journal()) == sent  # nothing more was sent
    task.close_hooks()
    assert task.hook is not hook
    assert task.hook.get_agent_states()
