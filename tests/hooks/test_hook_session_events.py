"""CxoneHook.get_next_event over real HTTP against the sandbox's get-next-event (a new session id per
answer, 304, 409). The trigger and the sensor that follow a session with it are tested in
``tests/triggers/test_session_event_trigger.py`` and ``tests/sensors/test_session_event_sensor.py``."""

from __future__ import annotations

import pytest
from conftest import polled_ids, polls

from cxone_provider.hooks.cxone import CxoneHook

# As they ran beside the sensor's tests: a connection not in the environment is looked up in the DB.
pytestmark = pytest.mark.usefixtures("airflow_db")


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
