"""AgentStateSensor and AgentStateTrigger through real Airflow runs (``dag.test()``) against the sandbox.

The agent's state is changed mid-wait from a thread, the way an agent logs in at their phone, through
the sandbox's admin route ``PUT /_sandbox/agents/{agent_id}/state``. ``dag.test()`` runs a deferred
task's trigger in line, so the deferrable sensor's trigger polls the sandbox over httpx here too; its
requests carry the hook's User-Agent and are held to the published contract by the autouse check in
``conftest.py``. The triggerer itself runs in ``tests/e2e/test_triggerer.py``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import DAGS_FOLDER, fresh_dag, reads_task_output

from cxone_provider.sensors.agent_state import AgentStateSensor
from cxone_provider.triggers.agent_state import AgentStateTrigger, wanted_states
from cxone_sandbox.state import ACCESS_TOKEN_PREFIX, ID_TOKEN_HEADER, REFRESH_TOKEN_PREFIX

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_FILE = Path(__file__).parent / "e2e" / "dags" / "cxone_e2e_agent_wait.py"
MODULE = DAG_FILE.stem
# The test DAGs live beside the e2e one; dag.test() needs them in the session's DAGs folder.
shutil.copy(DAG_FILE, DAGS_FOLDER / DAG_FILE.name)

MODES = ["poke", "reschedule", "deferrable"]
TOKEN_NEEDLES = (ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, ID_TOKEN_HEADER)


def set_agent_state(sandbox, agent_id: int, state: str) -> dict:
    """What an agent does at their phone: ``PUT /_sandbox/agents/{agent_id}/state``."""
    response = requests.put(
        f"{sandbox.url}/_sandbox/agents/{agent_id}/state",
        json={"state": state},
        headers=sandbox.admin_headers(),
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def states_reads(sandbox) -> list[dict]:
    return [e for e in sandbox.journal() if e["path"].endswith("/agents/states")]


def token_requests(sandbox) -> int:
    return sum(1 for e in sandbox.journal() if e["path"] == "/auth/token")


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
@pytest.mark.usefixtures("legacy_sandbox_extensions")
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
    assert row["sessionId"] == "sess-2009-1"  # a downstream join templates session_id from it
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


@pytest.mark.usefixtures("legacy_sandbox_extensions")
def test_an_agent_already_there_needs_no_wait(cxone_sandbox):
    _, ti = run("t_wait_deferrable", agent_id=2001)
    assert ti.state == "success"
    assert ti.xcom_pull(task_ids="wait_for_agent")["sessionId"] == "sess-2001"
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


@reads_task_output
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


# --- the trigger ---------------------------------------------------------------------------------------


def test_the_trigger_stores_the_connection_id_never_a_secret(cxone_sandbox):
    sensor = AgentStateSensor(task_id="wait", agent_id=2009, deferrable=True, timeout=60)
    assert sensor.deferrable
    trigger = AgentStateTrigger(agent_id=2009, states=["Available"], poll_interval=5, timeout=60, started_at=1.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "cxone_provider.triggers.agent_state.AgentStateTrigger"
    assert kwargs == {
        "agent_id": 2009,
        "cxone_conn_id": "cxone_default",
        "states": ["Available"],
        "poll_interval": 5.0,
        "timeout": 60.0,
        "started_at": 1.0,
    }
    # It runs (and mints its token) from the connection id alone; its event holds no token either.
    event = asyncio.run(_first_event(AgentStateTrigger(**kwargs | {"agent_id": 2001, "states": []})))
    stored = json.dumps([kwargs, event])
    connection = cxone_sandbox.connection()
    for needle in (connection["password"], connection["extra"]["client_secret"], *TOKEN_NEEDLES):
        assert needle not in stored
    assert event["status"] == "success"


async def _first_event(trigger: AgentStateTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def test_triggers_share_one_token_and_a_refused_key_is_asked_once(cxone_sandbox, monkeypatch):
    async def many(count: int, agent_id: int) -> list[dict]:
        triggers = [AgentStateTrigger(agent_id=agent_id, poll_interval=0.2, timeout=30) for _ in range(count)]
        return list(await asyncio.gather(*(_first_event(t) for t in triggers)))

    cxone_sandbox.set_faults(token_lifetime_s=3600)
    events = asyncio.run(many(20, 2001))
    assert {e["status"] for e in events} == {"success"}

    wrong = cxone_sandbox.connection()
    wrong["password"] = "not-the-secret-7d1c"
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_DEFAULT", json.dumps(wrong))
    cxone_sandbox.clear_journal()
    events = asyncio.run(many(20, 2001))
    assert {e["status"] for e in events} == {"auth_refused"}
    assert "access key 'SANDBOX-QA-KEY'" in events[0]["message"]
    assert token_requests(cxone_sandbox) == 1  # twenty triggers, one refused request: no retry storm
    assert states_reads(cxone_sandbox) == []


def test_the_trigger_reports_an_unknown_agent_and_a_timeout(cxone_sandbox):
    unknown = asyncio.run(_first_event(AgentStateTrigger(agent_id=9999, timeout=30)))
    assert unknown["status"] == "unknown_agent"
    assert "agent_id 9999" in unknown["message"]
    timeout = asyncio.run(_first_event(AgentStateTrigger(agent_id=2009, poll_interval=0.2, timeout=0.5)))
    assert timeout["status"] == "timeout"
    assert timeout["last_state"] == "LoggedOut"


def test_the_trigger_follows_every_page(monkeypatch):
    from cxone_provider.testing import SandboxServer

    # 250 more agents: three pages of at most 100 rows; the one waited for is on the last.
    with SandboxServer(live_sessions=250) as big:
        name, value = big.connection_env()
        monkeypatch.setenv(name, value)
        event = asyncio.run(_first_event(AgentStateTrigger(agent_id=5250, timeout=30)))
        assert event["status"] == "success"
        assert event["row"]["agentId"] == 5250
        assert len(states_reads(big)) == 3


def test_the_trigger_verifies_https_against_the_connections_ca(monkeypatch):
    from cxone_provider.testing import SandboxServer

    # The default trust store is certifi's, whatever the machine running the tests adds to it (as in
    # test_sandbox_tls.py: requests lets REQUESTS_CA_BUNDLE override the connection's CA).
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    with SandboxServer(tls=True) as tls:
        name, value = tls.connection_env()  # verify_ssl: the CA the sandbox made
        monkeypatch.setenv(name, value)
        assert asyncio.run(_first_event(AgentStateTrigger(agent_id=2001, timeout=30)))["status"] == "success"
        untrusted = tls.connection(verify_ssl=True)  # the default trust store does not know that CA
        monkeypatch.setenv(name, json.dumps(untrusted))
        event = asyncio.run(_first_event(AgentStateTrigger(agent_id=2001, timeout=30)))
        assert event["status"] == "error"
        assert "CERTIFICATE_VERIFY_FAILED" in event["message"]


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
