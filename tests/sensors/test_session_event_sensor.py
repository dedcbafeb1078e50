"""AgentSessionEventSensor following a session's events, in poke mode and deferred (``dag.test()``
runs its trigger in line), over real HTTP against the sandbox's get-next-event. The hook's
get_next_event and the trigger alone are tested in ``tests/hooks/test_hook_session_events.py`` and
``tests/triggers/test_session_event_trigger.py``."""

from __future__ import annotations

import pytest
from conftest import end_after_polls, fresh_dag, polled_ids, polls

from cxone_provider.sensors.session_events import AgentSessionEventSensor

pytestmark = pytest.mark.usefixtures("airflow_db")

SUPERVISED = "cxone_supervised_session"


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
