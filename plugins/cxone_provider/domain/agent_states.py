"""What the agent-state sensor and its trigger both decide: the states waited for, a match, the
agent's row, and the messages a DAG author reads. Pure rules: no HTTP, no Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cxone_provider.domain.inputs import parse_list

LOGGED_OUT = "LoggedOut"


def wanted_states(states: str | Iterable[str] | None) -> tuple[str, ...]:
    """The agent state names to wait for; ``()`` means any state but ``LoggedOut``.

    Read by the one rule of list-valued template fields (:func:`~cxone_provider.domain.inputs.parse_list`):
    a name, names separated by commas, or a list, also as plain Jinja renders one
    (``"['Available', 'Unavailable']"``). Each name is kept once.

    :raises ValueError: naming the value, for a state that is not a non-empty name.
    """
    given = list(states) if isinstance(states, Iterable) and not isinstance(states, str | Mapping) else states
    names = []
    for item in parse_list("states", given) or []:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"states {states!r}: every state must be an agent state name such as 'Available'")
        names.append(item.strip())
    return tuple(dict.fromkeys(names))


def describe_wanted(states: Sequence[str]) -> str:
    """``"any state but LoggedOut"``, or the names joined with ``or``."""
    return f"any state but {LOGGED_OUT}" if not states else " or ".join(states)


def state_matches(row: Mapping[str, Any], states: Sequence[str]) -> bool:
    """Whether the row's ``agentStateName`` is one of ``states`` (without regard to case)."""
    name = str(row.get("agentStateName") or "").lower()
    if not states:
        return bool(name) and name != LOGGED_OUT.lower()
    return name in {s.lower() for s in states}


def find_agent(rows: Iterable[Mapping[str, Any]], agent_id: int) -> dict[str, Any] | None:
    """The row of ``agent_id`` in an ``agents/states`` listing, or ``None`` when CXone lists no such agent."""
    for row in rows:
        try:
            if int(row.get("agentId")) == agent_id:  # type: ignore[arg-type]
                return dict(row)
        except (TypeError, ValueError):
            continue
    return None


def unknown_agent_message(agent_id: int, listed: int) -> str:
    return (
        f"AgentStateSensor: agent_id {agent_id} is not among the {listed} agent(s) CXone lists in agents/states; "
        "check the agent id"
    )


def last_seen(agent_id: int, last_state: Any, states: Sequence[str]) -> str:
    """What a timeout message adds to Airflow's: the last state seen, and what the sensor waited for."""
    return f"Agent {agent_id} was last seen in state {last_state!r}; waiting for {describe_wanted(states)}."


def timeout_message(run_duration: float, timeout: float, agent_id: int, last_state: Any, states: Sequence[str]) -> str:
    """Airflow's sensor timeout message (as ``BaseSensorOperator.execute`` words it), then the last state seen."""
    return (
        f"Sensor has timed out; run duration of {run_duration} seconds exceeds the specified timeout of "
        f"{timeout}. {last_seen(agent_id, last_state, states)}"
    )
