"""AgentSessionEventTrigger alone, run in this process's event loop, following a session's events over
real HTTP against the sandbox's get-next-event (a new session id per answer, 304, 409)."""

from __future__ import annotations

import json

import pytest
from conftest import end_after_polls, first_event, polled_ids, polls

from cxone_provider.triggers.session_events import AgentSessionEventTrigger

# As they ran beside the sensor's tests: a connection not in the environment is looked up in the DB.
pytestmark = pytest.mark.usefixtures("airflow_db")


def test_the_trigger_keeps_polling_with_each_new_id_until_the_session_ends(cxone_sandbox):
    ender = end_after_polls(cxone_sandbox, "sess-2001", 3)
    event = first_event(AgentSessionEventTrigger(session_id="sess-2001", cxone_conn_id="cxone_default", poll_timeout=2))
    ender.join(10)
    assert event["status"] == "success"
    assert event["event"]["Type"] == "AgentSessionEnd"
    assert event["polls"] >= 3
    ids = polled_ids(cxone_sandbox)
    assert ids[0] == "sess-2001"
    assert "sess-2001" not in ids[1:]  # every later poll used the id the previous answer named
    assert [e["status"] for e in polls(cxone_sandbox)][:-1] == [200] + [304] * (len(ids) - 2)


def test_the_trigger_returns_the_first_event_of_a_wanted_type(cxone_sandbox):
    trigger = AgentSessionEventTrigger(
        session_id="sess-2003", cxone_conn_id="cxone_default", event_types=["AgentState"], poll_timeout=2
    )
    event = first_event(trigger)
    assert (event["status"], event["event"]["Type"], event["event"]["CurrentState"]) == (
        "success",
        "AgentState",
        "Unavailable",
    )
    assert event["session_id"] != "sess-2003"  # the id the next poll must use


def test_the_trigger_times_out_and_a_session_that_ends_otherwise_is_said(cxone_sandbox):
    waiting = AgentSessionEventTrigger(
        session_id="sess-2004",
        cxone_conn_id="cxone_default",
        event_types=["CallContactEvent"],
        poll_timeout=1,
        timeout=2,
    )
    timed_out = first_event(waiting)
    assert timed_out["status"] == "timeout"
    assert "no CallContactEvent event on session 'sess-2004' within 2s" in timed_out["message"]
    ended = first_event(
        AgentSessionEventTrigger(session_id="sess-2007", cxone_conn_id="cxone_default", event_types=["AgentState"])
    )
    assert (ended["status"], ended["message"]) == ("ended", "session 'sess-2007' ended before any AgentState event")


def test_the_trigger_stores_the_connection_id_never_a_secret(cxone_sandbox):
    trigger = AgentSessionEventTrigger(session_id="sess-2001", cxone_conn_id="cxone_default")
    path, kwargs = trigger.serialize()
    assert path == "cxone_provider.triggers.session_events.AgentSessionEventTrigger"
    text = json.dumps(kwargs)
    assert cxone_sandbox.secret_of("SANDBOX-QA-KEY") not in text
    assert "sandbox-client-secret" not in text
    assert AgentSessionEventTrigger(**kwargs).serialize() == (path, kwargs)


def test_the_trigger_names_a_missing_connection(cxone_sandbox):
    event = first_event(AgentSessionEventTrigger(session_id="sess-2001", cxone_conn_id="cxone_nowhere"))
    assert event["status"] == "error"
    assert "cxone_nowhere" in event["message"]
