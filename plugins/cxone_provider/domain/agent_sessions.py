"""The agent sessions a QA sweep checks: (agent, expected session) pairs, as NICE publishes the join.

CXone's published join attaches the caller to *an agent's own* live session (``asAgentId`` only) and
answers that session's id; it cannot join another agent's session by id (design.md, "What a join is").
So a sweep over many agents joins each *as that agent*, through the connection's access key (whose
user needs impersonation for every agent but its own), and the session id, when the item gives one,
is the session it expects that agent to be in.

An item is any of::

    2001                                        # an agent id: its live session, whatever its id
    "2001"
    {"agent_id": 2001}                          # what ListAgentSessionsOperator returns
    {"agent_id": 2001, "session_id": "sess-2001"}   # expect that session (agentId/sessionId also read)
    [2001, "sess-2001"]

Malformed items are kept, with their documented condition (``InvalidAgentId``, ``InvalidAgentSession``)
and no request: nothing given to a sweep is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_agent_id, check_session_id, session_label

__all__ = ["AgentSessionItem", "distinct_items", "parse_item"]

_AGENT_KEYS = ("agent_id", "agentId", "AgentId")
_SESSION_KEYS = ("session_id", "sessionId", "SessionId")


# slots: a sweep of 100,000 agents holds 100,000 items for its whole run (a __dict__ each was ~10 MiB).
@dataclass(frozen=True, slots=True)
class AgentSessionItem:
    """One item of a sweep.

    :param key: how the sweep names the item in its result, checkpoint and report: the agent id as
        text, or the value as given when it names no agent.
    :param agent_id: the agent to join as; ``None`` when the item is malformed.
    :param session_id: the session expected (checked), or ``None`` for "the agent's live session".
    :param rejected: why the item is joined without a request, when it is malformed.
    """

    key: str
    agent_id: int | None
    session_id: str | None = None
    rejected: InputRejected | None = None

    @property
    def label(self) -> int | str:
        """The item as the sweep's condition lists show it: the agent id, or the value as given."""
        return self.agent_id if self.agent_id is not None else self.key


def parse_item(value: object) -> AgentSessionItem:
    """One sweep item from any of the module's forms; a malformed one carries its condition."""
    raw_agent: object
    raw_session: object = None
    if isinstance(value, Mapping):
        raw_agent = next((value[k] for k in _AGENT_KEYS if k in value), None)
        raw_session = next((value[k] for k in _SESSION_KEYS if k in value), None)
        if raw_agent is None:
            rejected = InputRejected(
                JoinCondition.INVALID_AGENT_ID, f"sweep item {_shown(value)} has no agent_id (keys: {sorted(value)})"
            )
            return AgentSessionItem(_shown(value), None, rejected=rejected)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) != 2:
            rejected = InputRejected(
                JoinCondition.INVALID_AGENT_ID,
                f"sweep item {_shown(value)} must be [agent_id, session_id], not {len(value)} value(s)",
            )
            return AgentSessionItem(_shown(value), None, rejected=rejected)
        raw_agent, raw_session = value
    else:
        raw_agent = value
    try:
        agent_id = check_agent_id(raw_agent, field_name="sweep item agent_id")
    except InputRejected as rejected:
        return AgentSessionItem(_shown(value), None, rejected=rejected)
    if raw_session is None or (isinstance(raw_session, str) and not raw_session.strip()):
        return AgentSessionItem(str(agent_id), agent_id)
    try:
        session_id = check_session_id(raw_session)
    except InputRejected as rejected:
        return AgentSessionItem(str(agent_id), agent_id, session_label(raw_session), rejected)
    return AgentSessionItem(str(agent_id), agent_id, session_id)


def distinct_items(values: Sequence[object]) -> tuple[list[AgentSessionItem], list[str]]:
    """Each agent once, in input order, and the keys given more than once.

    An agent has at most one live session in CXone, so a second item for the same agent is a
    duplicate (joined once, listed under ``duplicates``), whatever session it expects.
    """
    seen: set[str] = set()
    items: list[AgentSessionItem] = []
    duplicates: list[str] = []
    for value in values:
        item = parse_item(value)
        if item.key in seen:
            if item.key not in duplicates:
                duplicates.append(item.key)
            continue
        seen.add(item.key)
        items.append(item)
    return items, duplicates


def _shown(value: object) -> str:
    text = session_label(value)
    return text if len(text) <= 80 else text[:80] + "…"
