"""The client's two faces decide alike: agents/states paging, unusable rows, and the hook parameters
that reach the triggerer. Hostile servers the tests start on 127.0.0.1; the security tests of both
faces are in ``test_security.py`` and ``test_hostile.py``."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from conftest import counts_printed_lines
from hostile_server import Answer, HostileServer

from cxone_provider.exceptions import CxoneApiError
from cxone_provider.hooks.cxone import CxoneHook, async_hook_params
from cxone_provider.triggers.agent_state import AgentStateTrigger

JSON = {"Content-Type": "application/json"}
API = "/inContactAPI/services/v33.0/"
TOKEN = {"access_token": "faces-token-1c9e", "token_type": "bearer", "expires_in": 3600}


@pytest.fixture
def server(monkeypatch):
    with HostileServer() as hostile:
        hostile.route("POST", "/auth/token", lambda _: Answer(200, JSON, json.dumps(TOKEN).encode()))
        conn = {
            "conn_type": "cxone",
            "host": hostile.url,
            "login": "KEY-1",
            "password": "faces-secret-77a0",
            "extra": {"client_id": "app", "client_secret": "faces-client-3b1d", "api_base_url": hostile.url + API},
        }
        monkeypatch.setenv("AIRFLOW_CONN_CXONE_FACES", json.dumps(conn))
        yield hostile


def states_page(rows: list[object], next_link: str | None = None) -> Answer:
    body: dict[str, object] = {"agentStates": rows}
    if next_link is not None:
        body["_links"] = {"next": next_link}
    return Answer(200, JSON, json.dumps(body).encode())


def hook(**params: object) -> CxoneHook:
    return CxoneHook("cxone_faces", backoff_initial_s=0.01, backoff_max_s=0.05, **params)  # type: ignore[arg-type]


@counts_printed_lines
def test_a_row_that_is_not_an_object_is_skipped_and_logged_once_on_both_faces(server, face, caplog, capfd):
    caplog.set_level(logging.WARNING)
    rows = [{"agentId": 1001, "agentStateName": "Available"}, "garbage", None, 7, {"agentId": 1002}]
    server.route("GET", API + "agents/states", lambda _: states_page(rows))
    client = face(hook())
    for _ in range(2):
        assert client.agent_states() == [{"agentId": 1001, "agentStateName": "Available"}, {"agentId": 1002}]
    logged = caplog.text + "".join(capfd.readouterr())
    assert logged.count("CXone sent an agents/states row") == 1, logged
    assert "rows that are not objects are skipped" in logged


def test_both_faces_follow_every_page_and_stop_at_a_loop(server, face):
    pages = {
        "": states_page([{"agentId": 1}], f"{API}agents/states?skip=1"),
        "skip=1": states_page([{"agentId": 2}], "agents/states?skip=2"),  # relative to the API base
        "skip=2": states_page([{"agentId": 3}], f"{API}agents/states?skip=1"),  # back to a page already read
    }
    server.route("GET", API + "agents/states", lambda request: pages.get(request.query, pages[""]))
    assert [row["agentId"] for row in face(hook()).agent_states()] == [1, 2, 3]
    assert len(server.received) == 4  # the token, then three pages: the loop back is not followed


def test_a_next_link_off_the_api_base_is_refused_on_both_faces(server, face):
    server.route("GET", API + "agents/states", lambda _: states_page([{"agentId": 1}], "https://elsewhere.invalid/x"))
    with pytest.raises(CxoneApiError, match="next page link leaves the API base"):
        face(hook()).agent_states()


def test_only_plain_retry_parameters_reach_the_trigger():
    params = {
        "max_attempts": 2,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 4,
        "max_wait_s": 10.0,
        "pool_size": 50,  # sizes the worker's pool; the triggerer shares its own
        "retry_listener": print,  # callables and events belong to the worker's process
        "stop": object(),
        "max_attempts_typo": 3,
    }
    kept = {"max_attempts": 2, "backoff_initial_s": 0.5, "backoff_max_s": 4, "max_wait_s": 10.0}
    assert async_hook_params(params) == kept
    assert async_hook_params({"max_attempts": True, "max_wait_s": "10"}) == {}
    trigger = AgentStateTrigger(agent_id=1001, cxone_conn_id="cxone_faces", hook_params=params)
    _, kwargs = trigger.serialize()
    assert kwargs["hook_params"] == kept
    json.dumps(kwargs)  # what the metadata DB stores
    assert "hook_params" not in AgentStateTrigger(agent_id=1001).serialize()[1]


def test_the_sensors_hook_params_decide_the_triggers_retries(server):
    throttled = Answer(503, {**JSON, "Retry-After": "0"}, b'{"error": "ServiceUnavailable"}')
    server.route("GET", API + "agents/states", lambda _: throttled)
    from cxone_provider.sensors.agent_state import AgentStateSensor

    sensor = AgentStateSensor(
        task_id="wait", agent_id=1001, cxone_conn_id="cxone_faces", hook_params={"max_attempts": 2, "pool_size": 3}
    )
    trigger = AgentStateTrigger(agent_id=1001, cxone_conn_id="cxone_faces", hook_params=sensor.hook_params, timeout=30)
    event = asyncio.run(AgentStateTrigger(**trigger.serialize()[1]).wait())
    assert event["status"] == "error"
    assert "gave up after 2 attempts" in event["message"]
    assert sum(1 for r in server.received if r.path.endswith("agents/states")) == 2
