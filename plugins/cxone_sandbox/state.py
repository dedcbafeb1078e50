"""The sandbox's contact centre: a seed turned into in-memory state, and the API's rules over it.

The rules live beside it by role: the token endpoint's in :mod:`~cxone_sandbox.tokens`, the
``agents/states`` listing in :mod:`~cxone_sandbox.agent_states`, a session's events, polls and
keep-alive in :mod:`~cxone_sandbox.events`, time zones in
:mod:`~cxone_sandbox.timezones`, the parameter rules and the error shape in
:mod:`~cxone_sandbox.params`; the seed it starts from in
:mod:`~cxone_sandbox.seed`. All state lives on the event loop's thread (every route is
``async``), so it needs no locks.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cxone_sandbox.agent_states import AgentStatesListing, only_fields, user_name
from cxone_sandbox.events import SessionEvents
from cxone_sandbox.faults import DEFAULT_SESSION_TIMEOUT_S
from cxone_sandbox.params import ApiError, iso_time, parse_agent_id, parse_bool, parse_int
from cxone_sandbox.records import Agent, Session, User
from cxone_sandbox.seed import DEFAULT_BUSINESS_UNIT_ID, validate_seed
from cxone_sandbox.timezones import current_offset
from cxone_sandbox.tokens import (
    ACCESS_TOKEN_PREFIX,
    ID_TOKEN_HEADER,
    REFRESH_TOKEN_PREFIX,
    RefreshGrant,
    Token,
    TokenRules,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The supervise actions of the Agent API, as they appear in the path. The hook keeps its own copy
#: (``cxone_provider.hooks.cxone``): the sandbox imports nothing of the hook, so that it imitates CXone's
#: contract rather than the client's idea of it; a test checks that the two agree.
SUPERVISE_ACTIONS = ("monitor", "coach", "barge", "take-over")

# The token markers are a leak scan's, which has always imported them from here.
__all__ = ["ACCESS_TOKEN_PREFIX", "ID_TOKEN_HEADER", "REFRESH_TOKEN_PREFIX", "SUPERVISE_ACTIONS", "SandboxState"]


class SandboxState(TokenRules, AgentStatesListing, SessionEvents):
    """The tenant's state: apps, users, agents, sessions, tokens, joins and supervise actions.

    :param seed: a validated seed (see :func:`~cxone_sandbox.seed.load_seed`).
    """

    def __init__(self, seed: Mapping[str, Any]) -> None:
        validate_seed(seed)
        self.tenant_id: str = seed["tenant_id"]
        self.business_unit_id: int = seed.get("business_unit_id", DEFAULT_BUSINESS_UNIT_ID)
        self.applications: dict[str, str] = {a["client_id"]: a["client_secret"] for a in seed["applications"]}
        self.users: dict[str, User] = {
            u["access_key_id"]: User(u["access_key_id"], u["access_key_secret"], u["agent_id"], u["can_impersonate"])
            for u in seed.get("users", [])
        }
        now = datetime.now(UTC).replace(microsecond=0)
        # An agent who never logs in changed state at the start of the day.
        day_start = now - timedelta(hours=8)
        self.agents: dict[int, Agent] = {
            a["agent_id"]: Agent(
                a["agent_id"],
                a["active"],
                a["first_name"],
                a["last_name"],
                a["team_id"],
                a.get("time_zone") or "UTC",
                a.get("team_name") or f"Team {a['team_id']}",
                a.get("user_name") or user_name(a["first_name"], a["last_name"]),
                a.get("email_address") or user_name(a["first_name"], a["last_name"]),
                day_start,
            )
            for a in seed.get("agents", [])
        }
        self.session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
        self.expiry_scan_after = float("-inf")
        self.sessions: dict[str, Session] = {}
        self.session_ids: dict[str, str] = {}
        # The agent's current login; an agent has at most one active session, as in CXone.
        self.active_session_of: dict[int, str] = {}
        for i, s in enumerate(seed.get("sessions", [])):
            active = s["state"] == "active"
            # Stagger the seeded logins so the states list looks like a real shift.
            started = now - timedelta(minutes=3 * (len(seed["sessions"]) - i))
            self.sessions[s["session_id"]] = Session(
                session_id=s["session_id"],
                agent_id=s["agent_id"],
                active=active,
                started_at=started,
                station_id=s.get("station_id"),
                agent_state=s.get("agent_state") or "Available",
                ended_at=None if active else now,
                state_since=started,
                softphone=True,
                alive_at=time.monotonic(),
            )
            self.session_ids[s["session_id"]] = s["session_id"]
            if active:
                self._queue_start(self.sessions[s["session_id"]])
                self.active_session_of[s["agent_id"]] = s["session_id"]
            self.agents[s["agent_id"]].updated_at = started if active else now
        self.tokens: dict[str, Token] = {}
        # SHA-256 of each unused refresh token -> its grant: never the value, so neither a snapshot
        # nor a memory dump of the sandbox holds a usable refresh token.
        self.refresh_grants: dict[str, RefreshGrant] = {}
        self.tokens_issued = 0
        self.join_calls = 0
        self.supervise_actions: list[dict[str, Any]] = []
        self._session_counter = 0

    def _agent(self, agent_id: int) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "InvalidAgentId", f"Agent {agent_id} was not found")
        return agent

    def _acting_agent(self, holder: Token, raw_agent_id: str | None) -> Agent:
        """The agent a call acts as: ``asAgentId``, or the token holder's own when it is missing or ``""``.

        The checks run in a fixed order (agent id, agent, active, impersonation) so that each seed row
        gives exactly one condition. Impersonation belongs to the token holder: acting as another agent
        needs the access key's user to be allowed to impersonate; acting as its own agent needs nothing.

        :raises ApiError: 400/404 ``InvalidAgentId``, 403 ``InvalidSecurityUser`` (inactive agent),
            403 ``ImpersonateNotEnabled``.
        """
        agent_id = holder.agent_id if raw_agent_id is None or raw_agent_id == "" else parse_agent_id(raw_agent_id)
        agent = self._agent(agent_id)
        if not agent.active:
            raise ApiError(403, "InvalidSecurityUser", f"Agent {agent.agent_id} is not active")
        user = self.users.get(holder.access_key_id)
        if agent.agent_id != holder.agent_id and not (user is not None and user.can_impersonate):
            raise ApiError(
                403,
                "ImpersonateNotEnabled",
                f"The access key's user (agent {holder.agent_id}) may not act as agent {agent.agent_id}: "
                "impersonation is not enabled for it",
            )
        return agent

    def get_agent(self, raw_agent_id: str, fields: str | None = None) -> dict[str, Any]:
        """``GET agents/{agentId}`` with the published fields; ``fields`` (comma-separated) keeps only
        the fields named. ``timeZone`` is served as seeded (CXone writes display names)."""
        agent = self._agent(parse_agent_id(raw_agent_id))
        row: dict[str, Any] = {
            "agentId": agent.agent_id,
            "userName": agent.user_name,
            "firstName": agent.first_name,
            "middleName": "",
            "lastName": agent.last_name,
            "emailAddress": agent.email_address,
            "isActive": agent.active,
            "teamId": agent.team_id,
            "teamName": agent.team_name,
            "reportToId": None,
            "isSupervisor": any(u.agent_id == agent.agent_id and u.can_impersonate for u in self.users.values()),
            "lastUpdated": iso_time(agent.updated_at),
            "timeZone": agent.time_zone,
            "timeZoneOffset": current_offset(agent.time_zone),
            "country": "US",
            "internalId": "",
            "profileName": "Agent",
        }
        return {"businessUnitId": self.business_unit_id, "agents": [only_fields(row, fields)]}

    def agent_settings(self, raw_agent_id: str) -> dict[str, Any]:
        """``GET agents/{agentId}/agent-settings``: the fields NICE's SDK reads before it polls (the
        sandbox has no softphone, so the WebRTC settings are empty)."""
        agent = self._agent(parse_agent_id(raw_agent_id))
        return {
            "agentId": agent.agent_id,
            "cxaClientVersion": "",
            "webRTCType": "",
            "webRTCWSSUrls": [],
            "webRTCServerDomain": "",
            "webRTCICEUrls": [],
            "webRTCDNIS": "",
            "deleteCommitmentString": "",
            "persistentPanels": "",
            "maxConferenceParties": 1,
            "VQMIntegratedSoftPhoneMonitoring": False,
            "EnableUIQueue": False,
        }

    # ----------------------------------------------------------------------------------- sessions

    def _session(self, session_id: str | None) -> Session:
        """The session that has (or had) the id ``session_id``: every id a poll issued names it too."""
        key = self.session_ids.get(session_id or "")
        session = self.sessions.get(key) if key is not None else None
        if session is None:
            shown = session_id if session_id else "(missing)"
            raise ApiError(404, "InvalidAgentSession", f"Session {shown} was not found")
        return session

    def _live_session(self, session_id: str | None) -> Session:
        session = self._session(session_id)
        if not session.active:
            raise ApiError(409, "InvalidAgentSession", f"Session {session.session_id} has ended")
        return session

    def start_session(
        self,
        holder: Token,
        raw_agent_id: str | None,
        station_id: str | None,
        station_phone: str | None,
        inactivity_timeout: str | None = None,
        inactivity_force_logout: str | None = None,
    ) -> dict[str, Any]:
        """``POST agent-sessions``: log an agent in (``asAgentId``, or the token holder's own agent).

        :raises ApiError: those of :meth:`_acting_agent`; 400 ``InvalidStation`` without a station;
            409 ``InvalidState`` when the agent already has a live session (NICE's SDK then joins it).
        """
        agent = self._acting_agent(holder, raw_agent_id)
        if not station_id and not station_phone:
            raise ApiError(400, "InvalidStation", "stationId or stationPhoneNumber is required")
        timeout = parse_int(inactivity_timeout, "inactivityTimeout", minimum=1)
        force_logout = parse_bool(inactivity_force_logout, "inactivityForceLogout")
        live = self.active_session_of.get(agent.agent_id)
        if live is not None:
            raise ApiError(409, "InvalidState", f"Agent {agent.agent_id} already has a live session: join it instead")
        session = self._login(agent, station_id, station_phone, softphone=False)
        session.inactivity_timeout = timeout
        session.inactivity_force_logout = force_logout
        return {"sessionId": session.current_id}

    def _login(self, agent: Agent, station_id: str | None, station_phone: str | None, *, softphone: bool) -> Session:
        """A new live session for ``agent`` (who has none), its first events queued.

        :param softphone: kept alive by the agent's own phone (an admin login) rather than by polls.
        """
        while True:
            self._session_counter += 1
            session_id = f"sess-{agent.agent_id}-{self._session_counter}"
            if session_id not in self.session_ids:
                break
        station: Any = int(station_id) if station_id and station_id.isdigit() else (station_id or None)
        now = datetime.now(UTC)
        session = Session(
            session_id=session_id,
            agent_id=agent.agent_id,
            active=True,
            started_at=now,
            station_id=station,
            station_phone_number=station_phone or None,
            state_since=now,
            softphone=softphone,
            alive_at=time.monotonic(),
        )
        self.sessions[session_id] = session
        self.session_ids[session_id] = session_id
        self.active_session_of[agent.agent_id] = session_id
        agent.updated_at = now
        self._queue_start(session)
        return session

    def join(
        self, holder: Token, raw_agent_id: str | None, session_id: str | None, *, mode: str = "spec"
    ) -> dict[str, Any]:
        """``POST agent-sessions/join``: attach to a session as ``asAgentId`` (missing or ``""``: the
        token holder's own agent). Joining again is a no-op that answers the same session.

        :param mode: ``"spec"`` (NICE's published join): the agent's own live session, ``session_id``
            ignored; ``"session"`` (this project's extension): join ``session_id`` (any id it has had),
            or, when the request names none, the agent's own live session. No own live session:
            ``404 InvalidAgentSession``.
        :return: ``{"sessionId": …}``, the session's current id (the one its next poll must use).
        """
        agent = self._acting_agent(holder, raw_agent_id)
        if mode == "spec" or not session_id:
            own = self.active_session_of.get(agent.agent_id)
            if own is None:
                raise ApiError(404, "InvalidAgentSession", f"Agent {agent.agent_id} has no live session to join")
            session = self.sessions[own]
        else:
            session = self._live_session(session_id)
        session.joined_agents.add(agent.agent_id)
        session.join_calls += 1
        self.join_calls += 1
        return {"sessionId": session.current_id}

    def end_session(
        self,
        session_id: str,
        force_logoff: str | None = None,
        end_contacts: str | None = None,
        ignore_personal_queue: str | None = None,
    ) -> None:
        """``DELETE agent-sessions/{sessionId}``; the options are recorded on the session."""
        session = self._live_session(session_id)
        options = {
            "forceLogoff": parse_bool(force_logoff, "forceLogoff"),
            "endContacts": parse_bool(end_contacts, "endContacts"),
            "ignorePersonalQueue": parse_bool(ignore_personal_queue, "ignorePersonalQueue"),
        }
        session.end_options = {k: v for k, v in options.items() if v is not None}
        self._end(session)

    def _end(self, session: Session) -> None:
        session.active = False
        session.ended_at = datetime.now(UTC)
        session.events.clear()
        session.wakeup.set()  # its waiting polls answer 409
        if self.active_session_of.get(session.agent_id) == session.session_id:
            del self.active_session_of[session.agent_id]
            self.agents[session.agent_id].updated_at = session.ended_at

    def supervise(self, session_id: str, action: str, raw_target: str | None) -> dict[str, Any]:
        """``POST agent-sessions/{sessionId}/{monitor|coach|barge|take-over}``.

        ``monitor`` names its agent (``targetAgentId``) and the session remembers it. The published
        ``coach``, ``barge`` and ``take-over`` take no parameter: they act on the agent the session
        monitors, else, for a session a supervisor joined, on the session's own agent. A
        ``targetAgentId`` sent to them anyway (not in the published spec) names the agent explicitly.

        :return: the recorded action.
        :raises ApiError: 404/409 ``InvalidAgentSession`` for an unknown or ended session, one with no
            agent to act on, or a target that is not logged in; 400/404 ``InvalidAgentId``.
        """
        session = self._live_session(session_id)
        if raw_target is not None or action == "monitor":
            target = self._agent(parse_agent_id(raw_target, "target agent"))
            source = "targetAgentId"
        elif session.monitoring is not None:
            target, source = self._agent(session.monitoring), "monitor"
        elif session.joined_agents:
            target, source = self._agent(session.agent_id), "join"
        else:
            raise ApiError(
                409,
                "InvalidAgentSession",
                f"Session {session.session_id} monitors no agent and was joined by none: "
                "monitor an agent first (targetAgentId)",
            )
        if target.agent_id not in self.active_session_of:
            raise ApiError(409, "InvalidAgentSession", f"Agent {target.agent_id} has no active session")
        if action == "monitor":
            session.monitoring = target.agent_id
        recorded = {
            "seq": len(self.supervise_actions) + 1,
            "session_id": session.session_id,
            "action": action,
            "target_agent_id": target.agent_id,
            "target_session_id": self.active_session_of[target.agent_id],
            "target_from": source,
            "at": iso_time(datetime.now(UTC)),
        }
        self.supervise_actions.append(recorded)
        return recorded

    # ----------------------------------------------------------------------------------- inspection

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may inspect; never a token value or a secret."""
        self.expire_idle()
        return {
            "tenant_id": self.tenant_id,
            "applications": sorted(self.applications),
            "users": [u.inspect() for u in self.users.values()],
            "agents": [
                {
                    "agent_id": a.agent_id,
                    "active": a.active,
                    "first_name": a.first_name,
                    "last_name": a.last_name,
                    "team_id": a.team_id,
                    "time_zone": a.time_zone,
                    "session_id": self.active_session_of.get(a.agent_id),
                }
                for a in self.agents.values()
            ],
            "sessions": [s.inspect() for s in self.sessions.values()],
            "joins": sorted(
                ([s.session_id, agent_id] for s in self.sessions.values() for agent_id in s.joined_agents),
            ),
            "join_calls": self.join_calls,
            "supervise_actions": list(self.supervise_actions),
            "tokens_issued": self.tokens_issued,
            "refresh_tokens_unused": len(self.refresh_grants),
        }
