"""The records of the sandbox's tenant: agents, their access keys (users) and their sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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
