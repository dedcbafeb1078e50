"""``GET agents/states``: the rows of every agent, logged in or not, as CXone lists them.

The fields are CXone's published ones; ids and categories of the states, and the skills of contact
states, are the sandbox's own (documented) values, as the published schema gives none.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cxone_sandbox.params import POSITIVE_INT, ApiError, iso_time, parse_datetime
from cxone_sandbox.seed import SANDBOX_DOMAIN

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_sandbox.records import Agent, Session

# agentStateName -> (agentStateId, agentStateCategory). The names are CXone's published enumeration;
# the published schema gives no ids or categories, so these are the sandbox's own (documented) values.
AGENT_STATE_CODES: dict[str, tuple[int, str]] = {
    "LoggedOut": (0, "LoggedOut"),
    "Available": (1, "Available"),
    "Unavailable": (2, "Unavailable"),
    "InboundContact": (3, "Working"),
    "OutboundContact": (4, "Working"),
    "InboundConsult": (5, "Working"),
    "OutboundConsult": (6, "Working"),
    "Dialer": (7, "Working"),
    "LoggedIn": (8, "Unavailable"),
}
# The skill a contact state is handled under (the seed has no skills): state name -> (skillId, skillName).
_CONTACT_SKILLS: dict[str, tuple[int, str]] = {
    "InboundContact": (4100, "Sandbox Inbound Voice"),
    "InboundConsult": (4100, "Sandbox Inbound Voice"),
    "OutboundContact": (4200, "Sandbox Outbound Voice"),
    "OutboundConsult": (4200, "Sandbox Outbound Voice"),
    "Dialer": (4200, "Sandbox Outbound Voice"),
}
#: The station an agent logged in by ``PUT /_sandbox/agents/{agentId}/state`` sits at.
ADMIN_LOGIN_STATION = "sandbox-admin"
#: The fields of an ``agents/states`` row, in the order the sandbox writes them: CXone's published
#: fields, then ``sessionId``, the sandbox's extension (present unless the tenant setting
#: ``states_session_id`` is off).
AGENT_STATE_FIELDS = (
    "agentId",
    "agentStateId",
    "agentStateName",
    "agentStateCategory",
    "businessUnitId",
    "contactId",
    "isActive",
    "firstName",
    "lastName",
    "lastUpdateTime",
    "sessionStartTime",
    "skillId",
    "skillName",
    "stationId",
    "stationPhoneNumber",
    "teamId",
    "teamName",
    "userName",
    "sessionId",
)


class AgentStatesListing:
    """The ``agents/states`` listing, as a part of :class:`~cxone_sandbox.state.SandboxState`
    (which holds the attributes below)."""

    business_unit_id: int
    agents: dict[int, Agent]
    sessions: dict[str, Session]
    active_session_of: dict[int, str]

    if TYPE_CHECKING:  # SandboxState's and SessionEvents', used to log an agent in or out

        def _agent(self, agent_id: int) -> Agent: ...

        def _login(
            self, agent: Agent, station_id: str | None, station_phone: str | None, *, softphone: bool
        ) -> Session: ...

        def _end(self, session: Session) -> None: ...

        def _change_state(self, session: Session, state: str, reason: str = "") -> None: ...

        def expire_idle(self) -> None: ...

    def set_agent_state(self, agent_id: int, state_name: object) -> dict[str, Any]:
        """Change an agent's state as the agent would (``PUT /_sandbox/agents/{agentId}/state``).

        ``LoggedOut`` ends the agent's live session (a logout); any other state logs a logged-out agent
        in first (a new session at station :data:`ADMIN_LOGIN_STATION`, kept alive by the agent's own
        softphone), then sets the state, which the session's polls read as an ``AgentState`` event.
        Either way the agent's ``lastUpdateTime`` moves, so ``updatedSince`` lists the change.

        :return: the agent's ``agents/states`` row after the change, with ``sessionId``.
        :raises ApiError: 404 ``InvalidAgentId`` for an unknown agent, 400 ``InvalidState`` for a state
            name not in :data:`AGENT_STATE_CODES`, 409 ``InvalidAgentState`` to log in an inactive agent.
        """
        agent = self._agent(agent_id)
        if not isinstance(state_name, str) or state_name not in AGENT_STATE_CODES:
            raise ApiError(
                400,
                "InvalidState",
                f"state must be one of {', '.join(AGENT_STATE_CODES)}, got {state_name!r}",
            )
        live = self.active_session_of.get(agent_id)
        if state_name == "LoggedOut":
            if live is not None:
                self._end(self.sessions[live])
        else:
            if live is None:
                if not agent.active:
                    raise ApiError(409, "InvalidAgentState", f"Agent {agent_id} is not active and cannot log in")
                live = self._login(agent, ADMIN_LOGIN_STATION, None, softphone=True).session_id
            self._change_state(self.sessions[live], state_name)
        agent.updated_at = datetime.now(UTC)
        return self._state_row(agent, with_session_id=True)

    def agent_states(
        self,
        *,
        updated_since: str | None = None,
        req_bu_ids: str | None = None,
        fields: str | None = None,
        order_by: str | None = None,
        with_session_id: bool = True,
    ) -> list[dict[str, Any]]:
        """The rows of ``GET agents/states``: every agent, logged in or not (paging is the route's).

        :param updated_since: only agents whose state changed at or after this ISO 8601 time.
        :param req_bu_ids: comma-separated business unit ids; only their agents.
        :param fields: comma-separated row fields to keep (unknown names are ignored).
        :param order_by: ``field [asc|desc]``, comma-separated; by ``agentId`` when absent.
        :param with_session_id: add the ``sessionId`` extension to each row.
        :raises ApiError: 400 ``InvalidParameter`` on a malformed date or business unit id.
        """
        self.expire_idle()
        since = parse_datetime(updated_since, "updatedSince") if updated_since else None
        units: set[int] | None = None
        if req_bu_ids:
            parts = [p.strip() for p in req_bu_ids.split(",") if p.strip()]
            if not all(POSITIVE_INT.match(p) for p in parts):
                raise ApiError(400, "InvalidParameter", f"reqBUIds must be comma-separated ids, got {req_bu_ids!r}")
            units = {int(p) for p in parts}
        rows = []
        for agent in sorted(self.agents.values(), key=lambda a: a.agent_id):
            if since is not None and agent.updated_at < since:
                continue
            if units is not None and self.business_unit_id not in units:
                continue
            rows.append(self._state_row(agent, with_session_id))
        # Sorted by the last key first: Python's sort is stable, so earlier keys win.
        for name, descending in reversed(_order_keys(order_by)):
            rows.sort(key=functools.partial(_row_key, name), reverse=descending)
        return [only_fields(row, fields) for row in rows]

    def agent_state_cache(self, fields: str | None = None) -> dict[str, Any]:
        """``GET cache/agentstate``: the agent-state directory NICE's SDK polls, every active agent's
        row under ``resultSet.agentState`` (the SDK reads ``lastPollTime`` beside it for its next
        ``updatedSince``; the sandbox lists every agent each time).
        """
        self.expire_idle()
        now = iso_time(datetime.now(UTC))
        rows = []
        for agent in sorted(self.agents.values(), key=lambda a: a.agent_id):
            row = self._state_row(agent, with_session_id=False)
            sid = self.active_session_of.get(agent.agent_id)
            session = self.sessions[sid] if sid is not None else None
            rows.append(
                only_fields(
                    {
                        "agentId": agent.agent_id,
                        "userId": f"00000000-0000-4000-8000-{agent.agent_id:012d}",
                        "agentStateName": row["agentStateName"],
                        "contactId": row["contactId"],
                        "firstName": agent.first_name,
                        "isActive": agent.active,
                        "isOutbound": row["agentStateName"] in {"OutboundContact", "OutboundConsult", "Dialer"},
                        "lastName": agent.last_name,
                        "lastPollTime": now,
                        "lastUpdateTime": row["lastUpdateTime"],
                        "mediaName": "Call" if row["skillId"] else None,
                        "outStateCode": 0,
                        "outStateDescription": session.out_reason if session else "",
                        "skillId": row["skillId"],
                        "skillName": row["skillName"],
                        "startDate": iso_time(session.state_since) if session else row["lastUpdateTime"],
                        "stationPhoneNumber": row["stationPhoneNumber"],
                        "teamId": agent.team_id,
                        "teamName": agent.team_name,
                        "userName": agent.user_name,
                    },
                    fields,
                )
            )
        return {"resultSet": {"lastPollTime": now, "agentState": rows}}

    def _state_row(self, agent: Agent, with_session_id: bool) -> dict[str, Any]:
        sid = self.active_session_of.get(agent.agent_id)
        session = self.sessions[sid] if sid is not None else None
        state_name = session.agent_state if session else "LoggedOut"
        state_id, category = AGENT_STATE_CODES.get(state_name, (99, "Unavailable"))
        skill = _CONTACT_SKILLS.get(state_name) if session else None
        row: dict[str, Any] = {
            "agentId": agent.agent_id,
            "agentStateId": state_id,
            "agentStateName": state_name,
            "agentStateCategory": category,
            "businessUnitId": self.business_unit_id,
            "contactId": 700_000 + agent.agent_id if skill else None,
            "isActive": agent.active,
            "firstName": agent.first_name,
            "lastName": agent.last_name,
            "lastUpdateTime": iso_time(agent.updated_at),
            "sessionStartTime": iso_time(session.started_at) if session else None,
            "skillId": skill[0] if skill else None,
            "skillName": skill[1] if skill else None,
            "stationId": session.station_id if session else None,
            "stationPhoneNumber": session.station_phone_number if session else None,
            "teamId": agent.team_id,
            "teamName": agent.team_name,
            "userName": agent.user_name,
        }
        if with_session_id:
            row["sessionId"] = session.session_id if session else None
        return row


def user_name(first_name: str, last_name: str) -> str:
    """The login name (and e-mail address) the sandbox gives an agent whose seed names none."""
    return f"{first_name}.{last_name}@{SANDBOX_DOMAIN}".lower().replace(" ", "")


def _sort_key(value: Any) -> tuple[int, Any]:
    # Numbers before text before nulls, so a column mixing them still sorts.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    if value is None:
        return (2, 0)
    return (1, str(value).lower())


def _row_key(name: str, row: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(row.get(name))


def only_fields(row: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """``row`` restricted to the comma-separated ``fields`` (matched without regard to case)."""
    if not fields or not fields.strip():
        return row
    wanted = {f.strip().lower() for f in fields.split(",") if f.strip()}
    return {k: v for k, v in row.items() if k.lower() in wanted}


def _order_keys(order_by: str | None) -> list[tuple[str, bool]]:
    """``"lastName asc, agentId desc"`` -> ``[("lastName", False), ("agentId", True)]``; unknown names dropped."""
    keys: list[tuple[str, bool]] = []
    by_lower = {name.lower(): name for name in AGENT_STATE_FIELDS}
    for part in (order_by or "").split(","):
        words = part.split()
        if not words or words[0].lower() not in by_lower:
            continue
        keys.append((by_lower[words[0].lower()], len(words) > 1 and words[1].lower() == "desc"))
    return keys
