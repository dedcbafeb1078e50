"""AgentStateTrigger alone, run in this process's event loop against the sandbox over real HTTP (httpx).

What it stores when it is serialized, one token shared by many triggers, a refused key asked once,
paging and TLS. The sensor that defers to it is tested in ``tests/sensors/test_agent_state_sensor.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import first_event, first_payload, states_reads, token_requests

from cxone_provider.sensors.agent_state import AgentStateSensor
from cxone_provider.triggers.agent_state import AgentStateTrigger
from cxone_sandbox.state import ACCESS_TOKEN_PREFIX, ID_TOKEN_HEADER, REFRESH_TOKEN_PREFIX

# As they ran beside the sensor's tests: a connection not in the environment is looked up in the DB.
pytestmark = pytest.mark.usefixtures("airflow_db")

TOKEN_NEEDLES = (ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, ID_TOKEN_HEADER)


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
    event = first_event(AgentStateTrigger(**kwargs | {"agent_id": 2001, "states": []}))
    stored = json.dumps([kwargs, event])
    connection = cxone_sandbox.connection()
    for needle in (connection["password"], connection["extra"]["client_secret"], *TOKEN_NEEDLES):
        assert needle not in stored
    assert event["status"] == "success"


def test_triggers_share_one_token_and_a_refused_key_is_asked_once(cxone_sandbox, monkeypatch):
    async def many(count: int, agent_id: int) -> list[dict]:
        triggers = [AgentStateTrigger(agent_id=agent_id, poll_interval=0.2, timeout=30) for _ in range(count)]
        return list(await asyncio.gather(*(first_payload(t) for t in triggers)))

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
    unknown = first_event(AgentStateTrigger(agent_id=9999, timeout=30))
    assert unknown["status"] == "unknown_agent"
    assert "agent_id 9999" in unknown["message"]
    timeout = first_event(AgentStateTrigger(agent_id=2009, poll_interval=0.2, timeout=0.5))
    assert timeout["status"] == "timeout"
    assert timeout["last_state"] == "LoggedOut"


def test_the_trigger_follows_every_page(monkeypatch):
    from cxone_provider.testing import SandboxServer

    # 250 more agents: three pages of at most 100 rows; the one waited for is on the last.
    with SandboxServer(live_sessions=250) as big:
        name, value = big.connection_env()
        monkeypatch.setenv(name, value)
        event = first_event(AgentStateTrigger(agent_id=5250, timeout=30))
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
        assert first_event(AgentStateTrigger(agent_id=2001, timeout=30))["status"] == "success"
        untrusted = tls.connection(verify_ssl=True)  # the default trust store does not know that CA
        monkeypatch.setenv(name, json.dumps(untrusted))
        event = first_event(AgentStateTrigger(agent_id=2001, timeout=30))
        assert event["status"] == "error"
        assert "CERTIFICATE_VERIFY_FAILED" in event["message"]
