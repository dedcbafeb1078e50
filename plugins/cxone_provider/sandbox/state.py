"""The sandbox's contact centre: a seed turned into in-memory state, and the API's rules over it.

The seed format (the shipped one is ``default_seed.json``, described in :mod:`cxone_provider.sandbox`)::

    {"tenant_id": "...", "business_unit_id": 4600001,
     "applications": [{"client_id": "...", "client_secret": "..."}],
     "users": [{"access_key_id": "...", "access_key_secret": "...", "agent_id": 1001,
                "can_impersonate": true}],
     "agents": [{"agent_id": 1001, "active": true, "first_name": "...", "last_name": "...",
                 "team_id": 10, "team_name": "Supervisors", "time_zone": "UTC"}],
     "sessions": [{"session_id": "sess-2001", "agent_id": 2001, "state": "active",
                   "station_id": 7001, "agent_state": "Available"}]}

``business_unit_id``, ``team_name``, ``time_zone``, ``station_id`` and ``agent_state`` are optional.
All state lives on the event loop's thread (every route is ``async``), so it needs no locks.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
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
#: The business unit of a seed that names none.
DEFAULT_BUSINESS_UNIT_ID = 4600001
#: The domain of the sandbox's user names and of its discovery answer.
SANDBOX_DOMAIN = "sandbox.local"

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
_MAX_REFRESH_TOKENS = 50_000

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
    bu = seed.get("business_unit_id", DEFAULT_BUSINESS_UNIT_ID)
    if not isinstance(bu, int) or isinstance(bu, bool) or bu <= 0:
        raise ValueError("seed: business_unit_id must be a positive integer")
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
    for i, a in enumerate(seed.get("agents", [])):
        if not isinstance(a.get("team_name", ""), str):
            raise ValueError(f"seed: agents[{i}].team_name is not a str")
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
    team_name: str = ""
    #: when the agent's state last changed (a login or a logout), for ``updatedSince``
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


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
    inactivity_timeout: int | None = None
    inactivity_force_logout: bool | None = None
    #: the options of the ``DELETE`` that ended it (forceLogoff, endContacts, ignorePersonalQueue)
    end_options: dict[str, bool] = field(default_factory=dict)
    #: the agent this (supervisor's) session monitors since its last ``monitor``
    monitoring: int | None = None


@dataclass
class Token:
    """An issued access token; the value itself is the key of :attr:`SandboxState.tokens`."""

    agent_id: int
    access_key_id: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class RefreshGrant:
    """What an issued refresh token stands for; kept under the token's SHA-256, never the value."""

    agent_id: int
    access_key_id: str
    client_id: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def iso_time(moment: datetime | None) -> str | None:
    """CXone's form of a time: UTC, milliseconds, ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _jwt_part(claims: Mapping[str, Any]) -> str:
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_bool(raw: str | None, name: str) -> bool | None:
    """A boolean parameter as CXone takes it (``true``/``false``); ``None`` when absent."""
    if raw is None or raw == "":
        return None
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise ApiError(400, "InvalidParameter", f"{name} must be true or false, got {raw!r}")


def parse_int(raw: str | None, name: str, *, minimum: int = 0) -> int | None:
    """A whole-number parameter; ``None`` when absent."""
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"-?\d{1,18}", raw) or int(raw) < minimum:
        raise ApiError(400, "InvalidParameter", f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def parse_datetime(raw: str, name: str) -> datetime:
    """An ISO 8601 date-time parameter (``Z`` or an offset; a naive one is UTC).

    :raises ApiError: 400 ``InvalidParameter`` when it is not one.
    """
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} is not an ISO 8601 date-time: {raw!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Numbers before text before nulls, so a column mixing them still sorts.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    if value is None:
        return (2, 0)
    return (1, str(value).lower())


def _row_key(name: str, row: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(row.get(name))


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
                day_start,
            )
            for a in seed.get("agents", [])
        }
        # Impersonation is a property of the agent's user record(s): any record allowing it will do.
        self.impersonators: set[int] = {u.agent_id for u in self.users.values() if u.can_impersonate}
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
            self.agents[s["agent_id"]].updated_at = started if active else now
        self.tokens: dict[str, Token] = {}
        # SHA-256 of each unused refresh token -> its grant: never the value, so neither a snapshot
        # nor a memory dump of the sandbox holds a usable refresh token.
        self.refresh_grants: dict[str, RefreshGrant] = {}
        self.tokens_issued = 0
        self.join_calls = 0
        self.supervise_actions: list[dict[str, Any]] = []
        self._session_counter = 0

    # ----------------------------------------------------------------------------------- auth

    def authenticate_client(self, client_id: str | None, client_secret: str | None, *, public: bool = False) -> str:
        """Check the application's credentials; return its client id.

        :param public: accept a ``client_id`` without a secret (the published refresh request carries
            ``client_id`` only); a secret, when sent, must still match.
        :raises ApiError: 401 ``invalid_client``.
        """
        expected = self.applications.get(client_id or "")
        secret_ok = (public and client_secret is None) or secrets.compare_digest(
            (expected or "").encode(), (client_secret or "").encode()
        )
        if client_id is None or expected is None or not secret_ok:
            raise ApiError(
                401,
                "invalid_client",
                "Client authentication failed",
                {"WWW-Authenticate": 'Basic realm="cxone"'},
            )
        return client_id

    def issue_token(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        grant_type: str | None,
        form: Mapping[str, str],
        lifetime_s: int,
        issuer: str,
    ) -> dict[str, Any]:
        """``POST /auth/token``: the ``password`` grant (an access key) and the ``refresh_token`` grant.

        A refresh token is good once: using it answers a new access token and a new refresh token.

        :param client_id: the application, from HTTP Basic or the ``client_id`` field.
        :param client_secret: its secret (``None`` when the request carried none).
        :param form: the request's other fields (``username``, ``password``, ``refresh_token``…).
        :raises ApiError: 401 ``invalid_client``, 400 ``unsupported_grant_type``,
            ``invalid_request`` or ``invalid_grant``.
        """
        client = self.authenticate_client(client_id, client_secret, public=grant_type == "refresh_token")
        if grant_type == "password":
            username, password = form.get("username"), form.get("password")
            if not username or not password:
                raise ApiError(400, "invalid_request", "username and password are required")
            user = self.users.get(username)
            if user is None or not secrets.compare_digest(user.access_key_secret.encode(), password.encode()):
                raise ApiError(400, "invalid_grant", "The access key id or secret is invalid")
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise ApiError(400, "invalid_request", "refresh_token is required")
            grant = self.refresh_grants.get(_digest(refresh_token))
            if grant is None or grant.client_id != client:
                raise ApiError(400, "invalid_grant", "The refresh token is invalid, expired or already used")
            del self.refresh_grants[_digest(refresh_token)]
            user = self.users[grant.access_key_id]
        else:
            raise ApiError(400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported")
        agent = self.agents.get(user.agent_id)
        if agent is None or not agent.active:
            raise ApiError(400, "invalid_grant", f"The user (agent {user.agent_id}) is inactive")
        return self._issue(agent, user, client, lifetime_s, issuer)

    def _issue(self, agent: Agent, user: User, client_id: str, lifetime_s: int, issuer: str) -> dict[str, Any]:
        if len(self.tokens) > 10_000:
            self._prune_tokens()
        access_token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.tokens[access_token] = Token(agent.agent_id, user.access_key_id, time.monotonic() + lifetime_s)
        refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        if len(self.refresh_grants) >= _MAX_REFRESH_TOKENS:  # the oldest go first (dicts keep order)
            del self.refresh_grants[next(iter(self.refresh_grants))]
        self.refresh_grants[_digest(refresh_token)] = RefreshGrant(agent.agent_id, user.access_key_id, client_id)
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
            "refresh_token": refresh_token,
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

    def get_agent(self, raw_agent_id: str, fields: str | None = None) -> dict[str, Any]:
        """``GET agents/{agentId}``; ``fields`` (comma-separated) keeps only the fields named."""
        agent = self._agent(_parse_agent_id(raw_agent_id))
        row = {
            "agentId": agent.agent_id,
            "isActive": agent.active,
            "firstName": agent.first_name,
            "lastName": agent.last_name,
            "teamId": agent.team_id,
            "timeZone": agent.time_zone,
        }
        return {"agents": [_only_fields(row, fields)]}

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
        since = parse_datetime(updated_since, "updatedSince") if updated_since else None
        units: set[int] | None = None
        if req_bu_ids:
            parts = [p.strip() for p in req_bu_ids.split(",") if p.strip()]
            if not all(_POSITIVE_INT.match(p) for p in parts):
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
        return [_only_fields(row, fields) for row in rows]

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
            "userName": f"{agent.first_name}.{agent.last_name}@{SANDBOX_DOMAIN}".lower().replace(" ", ""),
        }
        if with_session_id:
            row["sessionId"] = session.session_id if session else None
        return row

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
        self,
        raw_agent_id: str | None,
        station_id: str | None,
        station_phone: str | None,
        inactivity_timeout: str | None = None,
        inactivity_force_logout: str | None = None,
    ) -> dict[str, Any]:
        """``POST agent-sessions``: log an agent in; a previous login of the agent ends, as in CXone."""
        agent = self._agent(_parse_agent_id(raw_agent_id))
        if not agent.active:
            raise ApiError(403, "InvalidSecurityUser", f"Agent {agent.agent_id} is not active")
        if not station_id and not station_phone:
            raise ApiError(400, "InvalidStation", "stationId or stationPhoneNumber is required")
        timeout = parse_int(inactivity_timeout, "inactivityTimeout", minimum=1)
        force_logout = parse_bool(inactivity_force_logout, "inactivityForceLogout")
        previous = self.active_session_of.get(agent.agent_id)
        if previous is not None:
            self._end(self.sessions[previous])
        while True:
            self._session_counter += 1
            session_id = f"sess-{agent.agent_id}-{self._session_counter}"
            if session_id not in self.sessions:
                break
        station: Any = int(station_id) if station_id and station_id.isdigit() else station_id
        now = datetime.now(UTC)
        self.sessions[session_id] = Session(
            session_id=session_id,
            agent_id=agent.agent_id,
            active=True,
            started_at=now,
            station_id=station,
            station_phone_number=station_phone,
            inactivity_timeout=timeout,
            inactivity_force_logout=force_logout,
        )
        self.active_session_of[agent.agent_id] = session_id
        agent.updated_at = now
        return {"sessionId": session_id}

    def join(self, raw_agent_id: str | None, session_id: str | None, *, mode: str = "session") -> dict[str, Any]:
        """``POST agent-sessions/join``: the agent ``asAgentId`` joins a session.

        The checks run in a fixed order (agent id, agent, active, impersonation, then the session) so
        that each seed row gives exactly one condition. Joining again is a no-op that answers the same.

        :param mode: ``"session"``: join ``session_id`` (the project's decision, see the README), or,
            when the request names none (the published request, ``asAgentId`` only), the agent's own
            live session; ``"spec"``: always the agent's own live session, ``session_id`` ignored, as
            NICE publishes the call. No own live session: ``404 InvalidAgentSession``.
        """
        agent = self._agent(_parse_agent_id(raw_agent_id))
        if not agent.active:
            raise ApiError(403, "InvalidSecurityUser", f"Agent {agent.agent_id} is not active")
        if agent.agent_id not in self.impersonators:
            raise ApiError(403, "ImpersonateNotEnabled", f"Impersonation is not enabled for agent {agent.agent_id}")
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
        return {"sessionId": session.session_id}

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
            target = self._agent(_parse_agent_id(raw_target, "target agent"))
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
                    "started_at": iso_time(s.started_at),
                    "ended_at": iso_time(s.ended_at),
                    "joined_agents": sorted(s.joined_agents),
                    "join_calls": s.join_calls,
                    "inactivity_timeout": s.inactivity_timeout,
                    "inactivity_force_logout": s.inactivity_force_logout,
                    "end_options": dict(s.end_options),
                    "monitoring": s.monitoring,
                }
                for s in self.sessions.values()
            ],
            "joins": sorted(
                ([s.session_id, agent_id] for s in self.sessions.values() for agent_id in s.joined_agents),
            ),
            "join_calls": self.join_calls,
            "supervise_actions": list(self.supervise_actions),
            "tokens_issued": self.tokens_issued,
            "refresh_tokens_unused": len(self.refresh_grants),
        }


def _only_fields(row: dict[str, Any], fields: str | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------- connection


def default_access_key(seed: Mapping[str, Any]) -> str:
    """The access key a connection to this seed logs in with: the first that may impersonate.

    :raises ValueError: when the seed has no access key at all.
    """
    users = list(seed.get("users", []))
    if not users:
        raise ValueError("the seed has no access key (users) to log in with")
    return str(next((u for u in users if u["can_impersonate"]), users[0])["access_key_id"])


def sandbox_connection(
    seed: Mapping[str, Any], url: str, *, key: str | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Airflow ``cxone`` connection, in Airflow's JSON form, for a sandbox at ``url`` serving ``seed``.

    The one place both :class:`cxone_provider.testing.SandboxServer` and ``cxone-sandbox``'s
    ``AIRFLOW_CONN_CXONE_DEFAULT=…`` line build it from.

    :param key: the access key (``login``); default: :func:`default_access_key`.
    :param extra: further extras, set after ``client_id``, ``client_secret`` and ``tenant_id``.
    :raises KeyError: when the seed has no such access key.
    """
    key = key or default_access_key(seed)
    users = {u["access_key_id"]: u for u in seed.get("users", [])}
    if key not in users:
        raise KeyError(f"no access key {key!r} in the sandbox seed (known: {', '.join(users)})")
    app = seed["applications"][0]
    extras: dict[str, Any] = {
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "tenant_id": seed["tenant_id"],
    }
    extras.update(extra or {})
    return {
        "conn_type": "cxone",
        "host": url,
        "login": key,
        "password": str(users[key]["access_key_secret"]),
        "extra": extras,
    }
