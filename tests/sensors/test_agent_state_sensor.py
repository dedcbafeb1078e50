"""AgentStateSensor through real Airflow runs (``dag.test()``) against the sandbox.

The agent's state is changed mid-wait from a thread, the way an agent logs in at their phone, through
the sandbox's admin route ``PUT /_sandbox/agents/{agent_id}/state``. ``dag.test()`` runs a deferred
task's trigger in line, so the deferrable sensor's trigger polls the sandbox over httpx here too; its
requests carry the hook's User-Agent and are held to the published contract by the autouse check in
``conftest.py``. The trigger alone is tested in ``tests/triggers/test_agent_state_trigger.py``, the
triggerer itself in ``tests/e2e/test_triggerer.py``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from conftest import DAGS_FOLDER, TESTS, fresh_dag, reads_task_output, set_agent_state, states_reads, token_requests

from cxone_provider import compat
from cxone_provider.compat import AIRFLOW_V_3_1_PLUS
from cxone_provider.domain.agent_states import wanted_states
from cxone_provider.sensors.agent_state import AgentStateSensor

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_FILE = TESTS / "e2e" / "dags" / "cxone_e2e_agent_wait.py"
MODULE = DAG_FILE.stem
# The test DAGs live beside the e2e one; dag.test() needs them in the session's DAGs folder.
shutil.copy(DAG_FILE, DAGS_FOLDER / DAG_FILE.name)

MODES = ["poke", "reschedule", "deferrable"]


def change_after_reads(sandbox, reads: int, agent_id: int, state: str) -> threading.Thread:
    """Change the agent's state once the sensor has read ``agents/states`` ``reads`` times (mid-wait)."""

    def change() -> None:
        deadline = time.monotonic() + 60
        while len(states_reads(sandbox)) < reads and time.monotonic() < deadline:
            time.sleep(0.1)
        set_agent_state(sandbox, agent_id, state)

    thread = threading.Thread(target=change, daemon=True)
    thread.start()
    return thread


def run(dag_id: str, **conf):
    dag_run = fresh_dag(MODULE, dag_id).test(run_conf=conf or None)
    return dag_run, dag_run.get_task_instance("wait_for_agent")


# --- the wait ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_sensor_succeeds_when_the_agent_logs_in_mid_wait(cxone_sandbox, mode):
    # Two reads before the login: the sensor saw the agent logged out and kept waiting (for the
    # deferrable sensor, the second read is its trigger's).
    changer = change_after_reads(cxone_sandbox, 2, 2009, "Available")
    _, ti = run(f"t_wait_{mode}")
    changer.join(10)

    assert ti.state == "success"
    row = ti.xcom_pull(task_ids="wait_for_agent")
    assert row["agentId"] == 2009
    assert row["agentStateName"] == "Available"
    assert row["sessionStartTime"] is not None  # the row of the login it waited for, not the logged-out one
    reads = states_reads(cxone_sandbox)
    assert len(reads) >= 3
    # A triggerer keeps one token per connection for every trigger: one an earlier test's reset
    # revoked is answered 401 once, renewed, and the read repeated.
    assert [e["status"] for e in reads if e["status"] != 200] in ([], [401])
    if mode == "poke":
        assert token_requests(cxone_sandbox) == 1  # one token for every poke of the wait


def test_states_names_the_states_to_wait_for(cxone_sandbox):
    # Logged in (Available) is not enough: it waits for a contact.
    changer = change_after_reads(cxone_sandbox, 2, 2001, "InboundContact")
    _, ti = run("t_wait_deferrable", agent_id=2001, states=["InboundContact", "OutboundContact"])
    changer.join(10)
    assert ti.state == "success"
    assert ti.xcom_pull(task_ids="wait_for_agent")["agentStateName"] == "InboundContact"


def test_an_agent_already_there_needs_no_wait(cxone_sandbox):
    _, ti = run("t_wait_deferrable", agent_id=2001)
    assert ti.state == "success"
    row = ti.xcom_pull(task_ids="wait_for_agent")
    assert (row["agentId"], row["agentStateName"], row["stationId"]) == (2001, "Available", 7001)
    assert len(states_reads(cxone_sandbox)) == 1  # checked once, never deferred


@reads_task_output
@pytest.mark.parametrize("mode", MODES)
def test_the_sensor_times_out_with_the_last_state_seen(cxone_sandbox, capfd, mode):
    _, ti = run(f"t_wait_{mode}_timeout")
    output = "".join(capfd.readouterr())
    assert ti.state == "failed"
    assert ti.try_number == 1  # a timeout is not retried
    assert "Sensor has timed out; run duration of" in output
    assert "exceeds the specified timeout of 3.0." in output
    assert "Agent 2009 was last seen in state 'LoggedOut'; waiting for any state but LoggedOut." in output


@pytest.mark.parametrize("mode", MODES)
def test_soft_fail_skips_the_sensor_when_it_times_out(cxone_sandbox, capfd, mode):
    _, ti = run(f"t_wait_{mode}_soft")
    assert ti.state == "skipped"
    output = "".join(capfd.readouterr())
    assert "Sensor has timed out; run duration of" in output
    assert "Agent 2009 was last seen in state 'LoggedOut'" in output


# --- errors --------------------------------------------------------------------------------------------


@reads_task_output
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_an_unknown_agent_fails_naming_it(cxone_sandbox, capfd, mode):
    _, ti = run(f"t_wait_{mode}", agent_id=9999)
    output = "".join(capfd.readouterr())
    assert ti.state == "failed"
    assert ti.try_number == 1
    assert "agent_id 9999 is not among the 12 agent(s) CXone lists in agents/states" in output


@reads_task_output
@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_refused_access_key_fails_naming_it_without_retries(cxone_sandbox, monkeypatch, capfd, mode):
    wrong = cxone_sandbox.connection()
    wrong["password"] = "not-the-secret-7d1c"
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_DEFAULT", json.dumps(wrong))
    _, ti = run(f"t_wait_{mode}")
    output = "".join(capfd.readouterr())
    assert ti.state == "failed"
    assert ti.try_number == 1  # the DAG allows two retries: none is taken
    assert "CXone gave no token for access key 'SANDBOX-QA-KEY' of connection 'cxone_default'" in output
    assert token_requests(cxone_sandbox) == 1
    assert "not-the-secret-7d1c" not in output


def test_bad_inputs_fail_naming_the_field_and_value(cxone_sandbox, capfd):
    _, ti = run("t_wait_poke", agent_id="agent-7")
    assert ti.state == "failed"
    assert "AgentStateSensor: agent_id 'agent-7' is not an integer" in "".join(capfd.readouterr())
    assert states_reads(cxone_sandbox) == []
    with pytest.raises(ValueError, match=r"states \['Available', ''\]: every state must be an agent state name"):
        wanted_states(["Available", ""])


def test_states_accept_a_name_a_list_or_a_rendered_list():
    assert wanted_states(None) == ()
    assert wanted_states("Available") == ("Available",)
    assert wanted_states("Available, Unavailable") == ("Available", "Unavailable")
    assert wanted_states("['Available', 'Dialer']") == ("Available", "Dialer")
    assert wanted_states(["Dialer", "Dialer"]) == ("Dialer",)


def test_reschedule_mode_stays_from_airflow_3_1_and_pokes_on_3_0_saying_why(caplog, monkeypatch):
    monkeypatch.setattr(compat, "_said", set())  # what earlier tests' sensors already said in this process
    sensor = AgentStateSensor(task_id="wait", agent_id=1001, mode="reschedule")
    said = "mode='reschedule' for CXone sensors needs Airflow 3.1.0 or newer"
    if AIRFLOW_V_3_1_PLUS:
        assert (sensor.mode, said in caplog.text) == ("reschedule", False)
    else:
        assert (sensor.mode, said in caplog.text) == ("poke", True)
