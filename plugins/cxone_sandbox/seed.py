"""Seeds: the tenant a sandbox starts from, read, checked and generated, and the connection to it.

The seed format (the shipped one is ``default_seed.json``, described in :mod:`cxone_sandbox`)::

    {"tenant_id": "...", "business_unit_id": 4600001,
     "applications": [{"client_id": "...", "client_secret": "..."}],
     "users": [{"access_key_id": "...", "access_key_secret": "...", "agent_id": 1001,
                "can_impersonate": true}],
     "agents": [{"agent_id": 1001, "active": true, "first_name": "...", "last_name": "...",
                 "team_id": 10, "team_name": "Supervisors", "time_zone": "UTC"}],
     "sessions": [{"session_id": "sess-2001", "agent_id": 2001, "state": "active",
                   "station_id": 7001, "agent_state": "Available"}]}

``business_unit_id``, ``team_name``, ``time_zone``, ``user_name``, ``email_address``, ``station_id``
and ``agent_state`` are optional. ``time_zone`` is served as given: a CXone display name
(``"(GMT-05:00) Eastern Time (US & Canada)"``), a Windows id (``"Eastern Standard Time"``) or an IANA
name (see :mod:`cxone_sandbox.timezones`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_SEED_PATH = Path(__file__).with_name("default_seed.json")

#: The business unit of a seed that names none.
DEFAULT_BUSINESS_UNIT_ID = 4600001
#: The domain of the sandbox's user names and of its discovery answer.
SANDBOX_DOMAIN = "sandbox.local"
_AGENT_STATES_CYCLE = ("Available", "InboundContact", "Unavailable", "OutboundContact")


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
