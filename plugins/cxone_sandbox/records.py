"""The records of the sandbox's tenant: agents, their access keys (users) and their sessions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cxone_sandbox.params import iso_time


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
    #: the agent's login name and e-mail address (the seed's, else made from the name)
    user_name: str = ""
    email_address: str = ""
    #: when the agent's state last changed (a login or a logout), for ``updatedSince``
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class User:
    """An access key, bound to the agent it authenticates as."""

    access_key_id: str
    access_key_secret: str
    agent_id: int
    can_impersonate: bool

    def inspect(self) -> dict[str, Any]:
        """Its row of the admin state: never the secret."""
        return {"access_key_id": self.access_key_id, "agent_id": self.agent_id, "can_impersonate": self.can_impersonate}


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
    #: the reason of an Unavailable state (``POST …/state``'s ``reason``), ``""`` otherwise
    out_reason: str = ""
    #: when the agent entered its current state
    state_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: the id the next ``get-next-event`` must use: every answer to a poll issues a new one
    current_id: str = ""
    #: how many ids this session has had (the next one is ``<session_id>-<polls + 1>``)
    polls: int = 0
    #: events not yet delivered to a poll, oldest first (PascalCase keys, string values)
    events: list[dict[str, str]] = field(default_factory=list)
    #: kept alive by its agent's softphone (seeded or admin logins) until a client polls it
    softphone: bool = False
    #: time.monotonic() of the last poll's answer (or of the start): the idle clock
    alive_at: float = 0.0
    #: polls waiting on it now: a poll in progress keeps it alive
    waiting: int = 0
    #: set whenever an event is queued or the session ends, to wake the polls waiting on it
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.current_id:
            self.current_id = self.session_id

    def inspect(self) -> dict[str, Any]:
        """Its row of the admin state (``GET /_sandbox/state``)."""
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "state": "active" if self.active else "ended",
            "station_id": self.station_id,
            "station_phone_number": self.station_phone_number,
            "agent_state": self.agent_state,
            "out_reason": self.out_reason,
            "current_id": self.current_id,
            "events_pending": len(self.events),
            "kept_alive_by": "softphone" if self.softphone else "polls",
            "started_at": iso_time(self.started_at),
            "ended_at": iso_time(self.ended_at),
            "joined_agents": sorted(self.joined_agents),
            "join_calls": self.join_calls,
            "inactivity_timeout": self.inactivity_timeout,
            "inactivity_force_logout": self.inactivity_force_logout,
            "end_options": dict(self.end_options),
            "monitoring": self.monitoring,
        }
