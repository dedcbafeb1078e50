"""The sandbox's contact centre: a seed turned into in-memory state, and the API's rules over it.

The seed format (the shipped one is ``default_seed.json``, described in :mod:`cxone_provider.sandbox`)::

    {"tenant_id": "...",
     "applications": [{"client_id": "...", "client_secret": "..."}],
     "users": [{"access_key_id": "...", "access_key_secret": "...", "agent_id": 1001,
                "can_impersonate": true}],
     "agents": [{"agent_id": 1001, "active": true, "first_name": "...", "last_name": "...",
                 "team_id": 10, "time_zone": "UTC"}],
     "sessions": [{"session_id": "sess-2001", "agent_id": 2001, "state": "active",
                   "station_id": 7001, "agent_state": "Available"}]}

``time_zone``, ``station_id`` and ``agent_state`` are optional. All state lives on the event loop's
thread (every route is ``async``), so it needs no locks.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_SEED_PATH = Path(__file__).with_name("default_seed.json")

#: The supervise actions of the Agent API, as they appear in the path.
SUPERVISE_ACTIONS = ("monitor", "coach", "barge", "take-over")

_POSITIVE_INT = re.compile(r"^\d{1,18}$")
_AGENT_STATES_CYCLE = ("Available", "InboundContact", "Unavailable", "OutboundContact")

# Recognisable prefixes let a leak scan find any token the sandbox issued without knowing its value.
ACCESS_TOKEN_PREFIX = "sbx-at-"  # noqa: S105 - a marker, not a credential
REFRESH_TOKEN_PREFIX = "sbx-rt-"  # noqa: S105
#: the first segment of every id_token the sandbox issues (its JWT header), for the same purpose
ID_TOKEN_HEADER = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # noqa: S105 - {"alg":"none","typ":"JWT"}


class ApiError(Exception):
    """A failure the sandbox answers with CXone's error shape.

    :param status: the HTTP status.
    :param error: the ``error`` name of the body (``InvalidAgentId``…).
    :param description: the ``error_description`` text.
    :param headers: extra response headers.
    """

    def __init__(self, status: int, error: str, description: str, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        """The JSON body CXone sends for this error."""
        return {"error": self.error, "error_description": self.description}


# --------------------------------------------------------------------------------------------- seeds


def default_seed() -> dict[str, Any]:
    """A fresh copy of the shipped seed, which covers every Join Agent Session result condition."""
    return load_seed(None)


def load_seed(path: str | Path | None = None) -> dict[str, Any]:
    """Read and validate a seed file.

    :param path: a JSON seed file; ``None`` reads the shipped ``default_seed.json``.
    :raises ValueError: when the seed is malformed (the message says where).
    """
    source = DEFAULT_SEED_PATH if path is None else Path(path)
    with source.open(encoding="utf-8") as fh:
        seed = json.load(fh)
    validate_seed(seed)
    return seed


def generate_seed(
    live_sessions: int,
    *,
    base: Mapping[str, Any] | None = None,
    first_agent_id: int = 5001,
    team_ids: Sequence[int] = (40, 41, 42, 43),
) -> dict[str, Any]:
    """A seed with ``live_sessions`` extra active agents, each logged in with one active session.

    The generated agents get ids from ``first_agent_id`` upward and sessions ``sess-<agent id>``,
    so benchmarks can sweep a thousand sessions.

    :param live_sessions: how many agents and sessions to add.
    :param base: the seed to extend (copied, not changed); default: the shipped seed.
    :param first_agent_id: the id of the first generated agent.
    :param team_ids: the teams the generated agents cycle over.
    """
    if live_sessions < 0:
        raise ValueError(f"live_sessions must not be negative, got {live_sessions}")
    seed = copy.deepcopy(dict(base)) if base is not None else default_seed()
    agents = seed.setdefault("agents", [])
    sessions = seed.setdefault("sessions", [])
    taken_agents = {a["agent_id"] for a in agents}
    taken_sessions = {s["session_id"] for s in sessions}
    for n in range(live_sessions):
        agent_id = first_agent_id + n
        session_id = f"sess-{agent_id}"
        if agent_id in taken_agents or session_id in taken_sessions:
            raise ValueError(f"generated agent {agent_id} or session {session_id} is already in the seed")
        agents.append(
            {
                "agent_id": agent_id,
                "active": True,
                "first_name": "Live",
                "last_name": f"Agent{agent_id}",
                "team_id": team_ids[n % len(team_ids)],
                "time_zone": "UTC",
            }
        )
        sessions.append(
            {
                "session_id": session_id,
                "agent_id": agent_id,
                "state": "active",
                "station_id": 90000 + agent_id,
                "agent_state": _AGENT_STATES_CYCLE[n % len(_AGENT_STATES_CYCLE)],
            }
        )
    validate_seed(seed)
    return seed


def validate_seed(seed: Any) -> None:
    """Check a seed's shape and references.

    :raises ValueError: naming the first problem found.
    """
    if not isinstance(seed, dict):
        raise ValueError("a seed is a JSON object")
    if not isinstance(seed.get("tenant_id"), str) or not seed["tenant_id"]:
        raise ValueError("seed: tenant_id must be a non-empty string")
    required: dict[str, dict[str, type | tuple[type, ...]]] = {
        "applications": {"client_id": str, "client_secret": str},
        "users": {"access_key_id": str, "access_key_secret": str, "agent_id": int, "can_impersonate": bool},
        "agents": {"agent_id": int, "active": bool, "first_name": str, "last_name": str, "team_id": int},
        "sessions": {"session_id": str, "agent_id": int, "state": str},
    }
    for section, fields in required.items():
        items = seed.get(section, [])
        if not isinstance(items, list):
            raise ValueError(f"seed: {section} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"seed: {section}[{i}] must be an object")
            for name, kind in fields.items():
                value = item.get(name)
                # bool is an int subclass: an id of `true` is a typo, not agent 1.
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise ValueError(f"seed: {section}[{i}].{name} is missing or not a {_type_name(kind)}")
    agent_ids = [a["agent_id"] for a in seed.get("agents", [])]
    if len(agent_ids) != len(set(agent_ids)):
        raise ValueError("seed: agent ids must be unique")
    known = set(agent_ids)
    session_ids = [s["session_id"] for s in seed.get("sessions", [])]
    if len(session_ids) != len(set(session_ids)):
        raise ValueError("seed: session ids must be unique")
    for s in seed.get("sessions", []):
        if s["agent_id"] not in known:
            raise ValueError(f"seed: session {s['session_id']} belongs to unknown agent {s['agent_id']}")
        if s["state"] not in {"active", "ended"}:
            raise ValueError(f"seed: session {s['session_id']} state must be 'active' or 'ended'")
    for u in seed.get("users", []):
        if u["agent_id"] not in known:
            raise ValueError(f"seed: user {u['access_key_id']} refers to unknown agent {u['agent_id']}")
    keys = [u["access_key_id"] for u in seed.get("users", [])]
    if len(keys) != len(set(keys)):
        raise ValueError("seed: access key ids must be unique")


def _type_name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


# --------------------------------------------------------------------------------------------- state


@dataclass
class Agent:
    """An ACD user (employee profile)."""

    agent_id: int
    active: bool
    first_name: str
    last_name: str
    team_id: int
    time_zone: str = "UTC"


@dataclass
class User:
    """An access key, bound to the agent it authenticates as."""

    access_key_id: str
    access_key_secret: str
    agent_id: int
    can_impersonate: bool


@dataclass
class Session:
    """An agent's login session, with the supervisors that joined it."""

    session_id: str
    agent_id: int
    active: bool
    started_at: datetime
    station_id: Any = None
    station_phone_number: str | None = None
    agent_state: str = "Available"
    ended_at: datetime | None = None
    joined_agents: set[int] = field(default_factory=set)
    join_calls: int = 0


@dataclass
class Token:
    """An issued access token; the value itself is the key of :attr:`SandboxState.tokens`."""

    agent_id: int
    access_key_id: str
    expires_at: float  # time.monotonic()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _jwt_part(claims: Mapping[str, Any]) -> str:
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _parse_agent_id(raw: str | None, what: str = "agent") -> int:
    """Parse an agent id from a path or query, or raise CXone's 400 ``InvalidAgentId``."""
    if raw is None or not _POSITIVE_INT.match(raw) or int(raw) <= 0:
        shown = "missing" if raw is None else repr(raw)
        raise ApiError(400, "InvalidAgentId", f"The {what} id is not a positive integer: {shown}")
    return int(raw)


class SandboxState:
    """The tenant's state: apps, users, agents, sessions, tokens, joins and supervise actions.

    :param seed: a validated seed (see :func:`load_seed`).
    """

    def __init__(self, seed: Mapping[str, Any]) -> None:
        validate_seed(seed)
        self.tenant_id: str = seed["tenant_id"]
        self.applications: dict[str, str] = {a["client_id"]: a["client_secret"] for a in seed["applications"]}
        self.users: dict[str, User] = {
            u["access_key_id"]: User(u["access_key_id"], u["access_key_secret"], u["agent_id"], u["can_impersonate"])
            for u in seed.get("users", [])
        }
        self.agents: dict[int, Agent] = {
            a["agent_id"]: Agent(
                a["agent_id"],
                a["active"],
                a["first_name"],
                a["last_name"],
                a["team_id"],
                a.get("time_zone") or "UTC",
            )
            for a in seed.get("agents", [])
        }
        # Impersonation is a property of the agent's user record(s): any record allowing it will do.
        self.impersonators: set[int] = {u.agent_id for u in self.users.values() if u.can_impersonate}
        now = datetime.now(UTC).replace(microsecond=0)
        self.sessions: dict[str, Session] = {}
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
            )
            if active:
                self.active_session_of[s["agent_id"]] = s["session_id"]
        self.tokens: dict[str, Token] = {}
        self.tokens_issued = 0
        self.join_calls = 0
        self.supervise_actions: list[dict[str, Any]] = []
        self._session_counter = 0

    # ----------------------------------------------------------------------------------- auth

    def issue_token(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        grant_type: str | None,
        username: str | None,
        password: str | None,
        lifetime_s: int,
        issuer: str,
    ) -> dict[str, Any]:
        """The password grant of ``POST /auth/token``.

        :raises ApiError: 401 ``invalid_client``, 400 ``unsupported_grant_type``,
            ``invalid_request`` or ``invalid_grant``.
        """
        expected = self.applications.get(client_id or "")
        if client_id is None or expected is None or not secrets.compare_digest(expected, client_secret or ""):
            raise ApiError(
                401,
                "invalid_client",
                "Client authentication failed",
                {"WWW-Authenticate": 'Basic realm="cxone"'},
            )
        if grant_type != "password":
            raise ApiError(400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported")
        if not username or not password:
            raise ApiError(400, "invalid_request", "username and password are required")
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.access_key_secret, password):
            raise ApiError(400, "invalid_grant", "The access key id or secret is invalid")
        agent = self.agents.get(user.agent_id)
        if agent is None or not agent.active:
            raise ApiError(400, "invalid_grant", f"The user (agent {user.agent_id}) is inactive")
        if len(self.tokens) > 10_000:
            self._prune_tokens()
        access_token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.tokens[access_token] = Token(agent.agent_id, user.access_key_id, time.monotonic() + lifetime_s)
        self.tokens_issued += 1
        iat = int(time.time())
        claims = {
            "tenantId": self.tenant_id,
            "sub": f"user:{agent.agent_id}",
            "iss": issuer,
            "iat": iat,
            "exp": iat + lifetime_s,
        }
        # Unsigned (alg none): clients read the claims, nobody should trust them.
        id_token = ".".join([ID_TOKEN_HEADER, _jwt_part(claims), ""])
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime_s,
            "refresh_token": REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32),
            "id_token": id_token,
        }

    def check_token(self, authorization: str | None) -> Token:
        """Resolve an ``Authorization: Bearer`` header to its live token.

        :raises ApiError: 401 ``invalid_token`` when missing, unknown or expired.
        """
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= time.monotonic():
            raise ApiError(
                401,
                "invalid_token",
                "The access token is invalid or has expired",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return token

    def _prune_tokens(self) -> None:
        now = time.monotonic()
        self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now}

    # ----------------------------------------------------------------------------------- agents

    def _agent(self, agent_id: int) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "InvalidAgentId", f"Agent {agent_id} was not found")
        return agent

    def get_agent(self, raw_agent_id: str) -> dict[str, Any]:
        """``GET agents/{agentId}``."""
        agent = self._agent(_parse_agent_id(raw_agent_id))
        return {
            "agents": [
                {
                    "agentId": agent.agent_id,
                    "isActive": agent.active,
                    "firstName": agent.first_name,
                    "lastName": agent.last_name,
                    "teamId": agent.team_id,
                    "timeZone": agent.time_zone,
                }
            ]
        }

    def agent_states(self) -> dict[str, Any]:
        """``GET agents/states``: every agent, logged in or not."""
        states = []
        for agent in self.agents.values():
            sid = self.active_session_of.get(agent.agent_id)
            session = self.sessions[sid] if sid is not None else None
            states.append(
                {
                    "agentId": agent.agent_id,
                    "agentStateName": session.agent_state if session else "LoggedOut",
                    "sessionId": session.session_id if session else None,
                    "stationId": session.station_id if session else None,
                    "sessionStartTime": _iso(session.started_at) if session else None,
                    "teamId": agent.team_id,
                    "firstName": agent.first_name,
                    "lastName": agent.last_name,
                }
            )
        return {"agentStates": states}

    # ----------------------------------------------------------------------------------- sessions

    def _session(self, session_id: str | None) -> Session:
        session = self.sessions.get(session_id or "")
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
        self, raw_agent_id: str | None, station_id: str | None, station_phone: str | None
    ) -> dict[str, Any]:
        """``POST agent-sessions``: log an agent in; a previous login of the agent ends, as in CXone."""
        agent = self._agent(_parse_agent_id(raw_agent_id))
        if not agent.active:
            raise ApiError(403, "InvalidSecurityUser", f"Agent {agent.agent_id} is not active")
        if not station_id and not station_phone:
            raise ApiError(400, "InvalidStation", "stationId or stationPhoneNumber is required")
        previous = self.active_session_of.get(agent.agent_id)
        if previous is not None:
            self._end(self.sessions[previous])
        while True:
            self._session_counter += 1
            session_id = f"sess-{agent.agent_id}-{self._session_counter}"
            if session_id not in self.sessions:
                break
        station: Any = int(station_id) if station_id and station_id.isdigit() else station_id
        self.sessions[session_id] = Session(
            session_id=session_id,
            agent_id=agent.agent_id,
            active=True,
            started_at=datetime.now(UTC),
            station_id=station,
            station_phone_number=station_phone,
        )
        self.active_session_of[agent.agent_id] = session_id
        return {"sessionId": session_id}

    def join(self, raw_agent_id: str | None, session_id: str | None) -> dict[str, Any]:
        """``POST agent-sessions/join``: the supervisor ``asAgentId`` joins ``sessionId``.

        The checks run in a fixed order (agent id, agent, active, impersonation, session, ended) so
        that each seed row gives exactly one condition. Joining again is a no-op that answers the same.
        """
        agent = self._agent(_parse_agent_id(raw_agent_id))
        if not agent.active:
            raise ApiError(403, "InvalidSecurityUser", f"Agent {agent.agent_id} is not active")
        if agent.agent_id not in self.impersonators:
            raise ApiError(403, "ImpersonateNotEnabled", f"Impersonation is not enabled for agent {agent.agent_id}")
        session = self._live_session(session_id)
        session.joined_agents.add(agent.agent_id)
        session.join_calls += 1
        self.join_calls += 1
        return {"sessionId": session.session_id}

    def end_session(self, session_id: str) -> None:
        """``DELETE agent-sessions/{sessionId}``."""
        self._end(self._live_session(session_id))

    def _end(self, session: Session) -> None:
        session.active = False
        session.ended_at = datetime.now(UTC)
        if self.active_session_of.get(session.agent_id) == session.session_id:
            del self.active_session_of[session.agent_id]

    def supervise(self, session_id: str, action: str, raw_target: str | None) -> None:
        """``POST agent-sessions/{sessionId}/{monitor|coach|barge|take-over}``."""
        session = self._live_session(session_id)
        target = self._agent(_parse_agent_id(raw_target, "target agent"))
        if target.agent_id not in self.active_session_of:
            raise ApiError(409, "InvalidAgentSession", f"Agent {target.agent_id} has no active session")
        self.supervise_actions.append(
            {
                "seq": len(self.supervise_actions) + 1,
                "session_id": session.session_id,
                "action": action,
                "target_agent_id": target.agent_id,
                "target_session_id": self.active_session_of[target.agent_id],
                "at": _iso(datetime.now(UTC)),
            }
        )

    # ----------------------------------------------------------------------------------- inspection

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may inspect; never a token value or a secret."""
        return {
            "tenant_id": self.tenant_id,
            "applications": sorted(self.applications),
            "users": [
                {
                    "access_key_id": u.access_key_id,
                    "agent_id": u.agent_id,
                    "can_impersonate": u.can_impersonate,
                }
                for u in self.users.values()
            ],
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
            "sessions": [
                {
                    "session_id": s.session_id,
                    "agent_id": s.agent_id,
                    "state": "active" if s.active else "ended",
                    "station_id": s.station_id,
                    "station_phone_number": s.station_phone_number,
                    "agent_state": s.agent_state,
                    "started_at": _iso(s.started_at),
                    "ended_at": _iso(s.ended_at),
                    "joined_agents": sorted(s.joined_agents),
                    "join_calls": s.join_calls,
                }
                for s in self.sessions.values()
            ],
            "joins": sorted(
                ([s.session_id, agent_id] for s in self.sessions.values() for agent_id in s.joined_agents),
            ),
            "join_calls": self.join_calls,
            "supervise_actions": list(self.supervise_actions),
            "tokens_issued": self.tokens_issued,
        }
