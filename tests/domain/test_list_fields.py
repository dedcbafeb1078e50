"""One rule for every list-valued template field (``cxone_provider.domain.inputs.parse_list``).

One test per row of the rule, through the operators that read such fields, over real HTTP against
the sandbox: the sensor's ``states`` and ListAgentSessionsOperator's ``agent_state_names`` read the
same value the same way (``"Available,Unavailable"`` is two states for both), and a sweep's ``agents``
follows the same rule.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path

import pytest

from cxone_provider.compat import AirflowFailException
from cxone_provider.domain.inputs import parse_list
from cxone_provider.operators.agent_states import ListAgentSessionsOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator
from cxone_provider.sensors.agent_state import AgentStateSensor

AGENT = 2001
TWO = {"Available", "Unavailable"}

# (rendered value, the states it names; None: no filter, any logged-in state)
ROWS = [
    pytest.param(["Available", "Unavailable"], TWO, id="a-list"),
    pytest.param(("Available", "Unavailable"), TWO, id="a-tuple"),
    pytest.param('["Available", "Unavailable"]', TWO, id="a-json-list"),
    pytest.param("['Available', 'Unavailable']", TWO, id="a-python-repr-list"),
    pytest.param("Available,Unavailable", TWO, id="comma-separated"),
    pytest.param(" Available ,  Unavailable ", TWO, id="comma-separated-items-stripped"),
    pytest.param("Unavailable", {"Unavailable"}, id="one-name"),
    pytest.param("", None, id="blank-text-is-no-filter"),
    pytest.param("None", None, id="a-rendered-None-is-not-given"),
    pytest.param(None, None, id="None-is-not-given"),
]

# (rendered value, what the error says after the field's name)
BAD = [
    pytest.param("Available,,Unavailable", "'Available,,Unavailable' has an empty item", id="an-empty-item"),
    pytest.param("Available,", "'Available,' has an empty item", id="a-trailing-comma"),
    pytest.param("['Available'", "got \"['Available'\": not a JSON or Python literal", id="bad-literal"),
    pytest.param('{"state": "Available"}', "must be a list, got dict", id="a-rendered-mapping"),
    pytest.param(5, "must be a list, got int: 5", id="a-number"),
]


class _TaskInstance:
    def xcom_push(self, key, value):
        pass


def listed_states(value) -> dict[int, str]:
    listing = ListAgentSessionsOperator(task_id="list", agent_state_names=value)
    return {row["agent_id"]: row["agent_state"] for row in listing.execute(context={"ti": _TaskInstance()})}


def sensor_is_done(value) -> bool:
    sensor = AgentStateSensor(task_id="wait", agent_id=AGENT, states=value, poll_interval=1)
    try:
        return sensor.poke(context={}).is_done
    finally:
        sensor.hook.close()


@pytest.mark.parametrize(("value", "states"), ROWS)
def test_the_sensor_and_the_listing_read_a_list_field_alike(cxone_sandbox, value, states):
    cxone_sandbox.set_agent_state(AGENT, "Unavailable")
    listed = listed_states(value)
    assert listed[AGENT] == "Unavailable"
    if states is None:
        assert "LoggedOut" not in listed.values()
        assert len(set(listed.values())) > 1  # no filter: every logged-in state
    else:
        assert set(listed.values()) <= states
    assert sensor_is_done(value)
    cxone_sandbox.set_agent_state(AGENT, "InboundContact")
    assert sensor_is_done(value) is (states is None)
    assert AGENT not in listed_states(value) or states is None


@pytest.mark.parametrize(("value", "message"), BAD)
def test_a_bad_list_fails_both_naming_the_field_and_the_value_and_sends_nothing(cxone_sandbox, value, message):
    cxone_sandbox.clear_journal()
    with pytest.raises(AirflowFailException, match=f"^AgentStateSensor: states .*{_re(message)}"):
        sensor_is_done(value)
    with pytest.raises(AirflowFailException, match=f"^agent_state_names .*{_re(message)}"):
        listed_states(value)
    assert cxone_sandbox.journal() == []


@pytest.mark.parametrize(
    "agents", ["2001, 2002", "[2001, 2002]", '["2001", "2002"]', [2001, 2002]], ids=["comma", "repr", "json", "list"]
)
def test_a_sweep_reads_agents_by_the_same_rule(cxone_sandbox, agents):
    sweep = JoinAgentSessionsOperator(
        task_id="sweep",
        agents=agents,
        report_path=str(Path(tempfile.gettempdir()) / f"cxone-list-{uuid.uuid4().hex}"),
    )
    result = sweep.execute(context={})
    assert sorted(result["Success"]) == [2001, 2002]


def test_the_rule_as_a_function():
    assert parse_list("f", "a, b") == ["a", "b"]
    assert parse_list("f", "['a', 'b']") == parse_list("f", '["a", "b"]') == parse_list("f", ("a", "b")) == ["a", "b"]
    assert parse_list("f", "") == []
    assert parse_list("f", "null") is None
    # Items of a list are the field's to check: a sweep keeps a malformed one with its condition.
    assert parse_list("f", ["a", "", " b"]) == ["a", "", " b"]
    with pytest.raises(ValueError, match=r"^f must be a list, got dict: \{'a': 1\}"):
        parse_list("f", {"a": 1})


def _re(text: str) -> str:
    return re.escape(text)
