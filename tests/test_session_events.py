"""Following a session's events: CxoneHook.get_next_event, AgentSessionEventTrigger and the sensor,
over real HTTP against the sandbox's get-next-event (a new session id per answer, 304, 409)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from conftest import fresh_dag

from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.sensors.session_events import AgentSessionEventSensor
from cxone_provider.triggers.session_events import AgentSessionEventTrigger

pytestmark = pytest.mark.usefixtures("airflow_db")

SUPERVISED = "cxone_supervised_session"


def polls(sandbox) -> list[dict]:
    return [e for e in sandbox.journal() if e["path"].endswith("/get-next-event")]


def polled_ids(sandbox) -> list[str]:
    return [e["path"].rsplit("/", 2)[-2] for e in polls(sandbox)]


def end_after_polls(sandbox, session_id: str, count: int) -> threading.Thread:
    """End ``session_id`` (as an agent logging off would) once it has been polled ``count`` times."""

    def end() -> None:
        deadline = time.monotonic() + 60
        while len(polls(sandbox)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        with CxoneHook() as hook:
            hook.end_agent_session(session_id, force_logoff=True)

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


def first_event(trigger: AgentSessionEventTrigger) -> dict:
    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def test_get_next_event_follows_the_new_session_id(cxone_sandbox):
    with CxoneHook() as hook:
        first = hook.get_next_event("sess-2001", timeout=0)
        assert [e["Type"] for e in first.events] == ["AgentSessionStart", "AgentState"]
        assert first.next_session_id not in (None, "sess-2001")
        quiet = hook.get_next_event(first.next_session_id, timeout=0)  # 304: nothing new, the id stays
        assert (quiet.events, quiet.next_session_id, quiet.ended) == ([], first.next_session_id, False)
        hook.end_agent_session("sess-2001")
        over = hook.get_next_event(first.next_session_id, timeout=0)  # 409: the session has ended
        assert (over.ended, over.next_session_id) == (True, None)
    assert polled_ids(cxone_sandbox) == ["sess-2001", first.next_session_id, first.next_session_id]


@pytest.mark.parametrize("timeout", [-1, 61, 1.5, True])
def test_get_next_event_refuses_a_timeout_outside_the_published_range(cxone_sandbox, timeout):
    with (
        CxoneHook() as hook,
        pytest.raises(ValueError, match=r"timeout must be a whole number of seconds from 0 to 60"),
    ):
        hook.get_next_event("sess-2001", timeout=timeout)
    assert not polls(cxone_sandbox)


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


def test_the_sensor_in_poke_mode_follows_the_session_in_its_worker(cxone_sandbox):
    sensor = AgentSessionEventSensor(task_id="watch", session_id="sess-2002", deferrable=False, poll_timeout=1)
    ender = end_after_polls(cxone_sandbox, "sess-2002", 2)
    done = sensor.poke({})
    while not done.is_done:
        done = sensor.poke({})
    ender.join(10)
    result = done.xcom_value
    assert result["event"] == {"Type": "AgentSessionEnd"}
    assert result["polls"] >= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_timeout": 61}, "poll_timeout must be a whole number of seconds from 0 to 60, got 61"),
        ({"mode": "reschedule"}, "mode='reschedule' cannot follow a CXone session"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AgentSessionEventSensor(task_id="watch", session_id="sess-2001", **kwargs)


def test_an_id_that_would_change_the_path_fails_the_task_sending_nothing(cxone_sandbox):
    from cxone_provider.compat import AirflowFailException

    sensor = AgentSessionEventSensor(task_id="watch", session_id="..", deferrable=False)
    with pytest.raises(AirflowFailException, match=r"session_id '\.\.'"):
        sensor.poke({})
    assert not polls(cxone_sandbox)


def test_the_supervised_example_follows_its_session_until_it_ends(cxone_sandbox):
    """watch_session: deferred, it keeps polling the supervisor's joined session and notices its end."""
    # The journal has a poll once it is answered: after the first, the next one is waiting on the session.
    ender = end_after_polls(cxone_sandbox, "sess-1001", 1)
    run = fresh_dag(SUPERVISED, SUPERVISED).test(run_conf={"watch_session": True, "audit_log": "watch.jsonl"})
    ender.join(10)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["start_monitoring"] == states["watch_session"] == states["finish"] == "success"
    watched = run.get_task_instance("watch_session").xcom_pull(task_ids="watch_session")
    assert watched["event"]["Type"] == "AgentSessionEnd"
    assert polled_ids(cxone_sandbox)[0] == "sess-1001"
    (session,) = [s for s in cxone_sandbox.state()["sessions"] if s["session_id"] == "sess-1001"]
    assert session["state"] == "ended"
