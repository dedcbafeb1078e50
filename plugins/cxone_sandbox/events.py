"""A session's events and its keep-alive: ``get-next-event``, ``POST …/state`` and the idle timeout.

As NICE publishes ``GET agent-sessions/{sessionId}/get-next-event?timeout=N`` (N from 0 to 60 seconds,
required): a long poll answered ``200 {"sessionId", "events"}`` as soon as the session has events,
``304`` with no body when none came within the timeout, and ``409`` once the session has ended (NICE's
SDK turns that into ``AgentSessionEnd``). Events have PascalCase keys and string values.

The sandbox's decisions where NICE is silent:

- **A new id per answer.** Every ``200`` carries a new ``sessionId``, ``<first id>-<n>``, which the next
  poll must use; a ``304`` has no body, so the id stays. A poll with any other id the session has had
  answers ``404 InvalidAgentSession`` ("Invalid agent session Id."): a client that ignores the new id
  is caught at once. Every other call (join, end, set state, monitor…) accepts any id the session has
  had, and the join answers the current one.
- **What a session says.** Its first poll gets ``AgentSessionStart`` and the current ``AgentState``;
  a state change (``POST …/state``, ``PUT /_sandbox/agents/{agentId}/state``) queues an ``AgentState``;
  an end wakes every waiting poll with ``409``.
- **Keep-alive.** A session started by ``POST agent-sessions`` belongs to its client, which must poll
  it: when no poll is waiting on it and none answered for ``session_timeout_s`` (a tenant setting,
  default 120 s), it ends. A seeded session, or one logged in through the admin route, is kept alive
  by its agent's own (simulated) softphone until a client first polls it; from then on the client
  keeps it alive. The clock is read whenever the sandbox is asked anything (no timer thread).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from cxone_sandbox.params import ApiError, iso_time, parse_int

if TYPE_CHECKING:
    from cxone_sandbox.records import Agent, Session

#: The states ``POST agent-sessions/{sessionId}/state`` accepts (the published enumeration).
SETTABLE_STATES: Final = ("Available", "Unavailable")
#: The longest ``timeout`` of a poll, in seconds (published).
MAX_POLL_TIMEOUT_S: Final = 60
_HOST: Final = "sandbox.local"


def _flag(value: bool) -> str:
    return "True" if value else "False"


class SessionEvents:
    """Events, polls and keep-alive, as a part of :class:`~cxone_sandbox.state.SandboxState`
    (which holds the attributes below)."""

    business_unit_id: int
    agents: dict[int, Agent]
    sessions: dict[str, Session]
    #: every id a session has had -> the key of the session in ``sessions``
    session_ids: dict[str, str]
    #: seconds an unpolled client session lives (the tenant setting ``session_timeout_s``)
    session_timeout_s: float
    #: monotonic time before which :meth:`expire_idle` does not look again
    expiry_scan_after: float

    if TYPE_CHECKING:  # SandboxState's

        def _session(self, session_id: str | None) -> Session: ...

        def _live_session(self, session_id: str | None) -> Session: ...

        def _end(self, session: Session) -> None: ...

    # ---------------------------------------------------------------------------------- events

    def _queue(self, session: Session, event: dict[str, str]) -> None:
        session.events.append({"IISHost": _HOST, "VCHost": _HOST, **event})
        _wake(session)

    def _queue_start(self, session: Session) -> None:
        """What a session's first poll reads: its start, then its state."""
        self._queue(
            session,
            {
                "Type": "AgentSessionStart",
                "BusNo": str(self.business_unit_id),
                "AgentId": str(session.agent_id),
                "SessionId": session.session_id,
                "StationId": "" if session.station_id is None else str(session.station_id),
                "StationPhoneNumber": session.station_phone_number or "",
                "StationCallerId": "",
                "SupervisorPermissionLevel": "0",
                "CanMask": "True",
                "CanRecord": "True",
                "CanMultiPartyConference": "False",
                "MaxConcurrentChats": "1",
                "EnabledForMCH": "False",
                "UseCustomerCard": "False",
            },
        )
        self._queue_state(session)

    def _queue_state(self, session: Session) -> None:
        self._queue(
            session,
            {
                "Type": "AgentState",
                "CurrentState": session.agent_state,
                "CurrentOutReason": session.out_reason,
                "StartTimeUTC": iso_time(session.state_since) or "",
                "IsAcw": "False",
                "NextIsAcw": "False",
                "AcwTimeout": "0",
                "IsOutbound": _flag(session.agent_state in {"OutboundContact", "OutboundConsult", "Dialer"}),
            },
        )

    def _change_state(self, session: Session, state: str, reason: str = "") -> None:
        """Move a live session's agent to ``state`` and tell its polls."""
        session.agent_state = state
        session.out_reason = reason
        session.state_since = datetime.now(UTC)
        self.agents[session.agent_id].updated_at = session.state_since
        self._queue_state(session)

    def set_session_state(self, session_id: str, raw_state: str | None, reason: str | None) -> None:
        """``POST agent-sessions/{sessionId}/state``: ``state`` ``Available`` or ``Unavailable`` (with
        an optional ``reason``, the unavailable code's name).

        :raises ApiError: 400 ``InvalidState`` ("Invalid state request.") for any other state; 404/409
            ``InvalidAgentSession`` for an unknown or ended session.
        """
        session = self._live_session(session_id)
        state = next((s for s in SETTABLE_STATES if s.lower() == (raw_state or "").strip().lower()), None)
        if state is None:
            shown = "missing" if raw_state is None else repr(raw_state)
            raise ApiError(400, "InvalidState", f"state must be Available or Unavailable, got {shown}")
        self._change_state(session, state, (reason or "") if state == "Unavailable" else "")

    # ---------------------------------------------------------------------------------- polls

    def _new_id(self, session: Session) -> str:
        session.polls += 1
        new_id = f"{session.session_id}-{session.polls}"
        while new_id in self.session_ids:  # a seed may hold such an id already
            session.polls += 1
            new_id = f"{session.session_id}-{session.polls}"
        self.session_ids[new_id] = session.session_id
        session.current_id = new_id
        return new_id

    async def next_event(
        self, session_id: str, raw_timeout: str | None, stopping: asyncio.Event
    ) -> dict[str, Any] | None:
        """``GET agent-sessions/{sessionId}/get-next-event?timeout=N``.

        :return: ``{"sessionId": <the next id>, "events": [...]}``, or ``None`` for a ``304``.
        :raises ApiError: 400 ``InvalidParameter`` for a missing or out-of-range timeout; 404
            ``InvalidAgentSession`` for an unknown id or one the session no longer answers to; 409
            ``InvalidAgentSession`` once the session has ended (also to a poll waiting when it ends).
        """
        if raw_timeout is None or raw_timeout == "":
            raise ApiError(400, "InvalidParameter", "timeout is required: a whole number of seconds from 0 to 60")
        timeout = parse_int(raw_timeout, "timeout")
        assert timeout is not None
        if timeout > MAX_POLL_TIMEOUT_S:
            raise ApiError(400, "InvalidParameter", f"timeout must be from 0 to 60 seconds, got {raw_timeout!r}")
        session = self._live_session(session_id)
        if session_id != session.current_id:
            raise ApiError(
                404,
                "InvalidAgentSession",
                f"Session id {session_id} was replaced by the id a later get-next-event answered",
            )
        session.softphone = False  # a client polls it now, and keeps it alive from here on
        session.waiting += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while session.active and not session.events and not stopping.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                woken = asyncio.ensure_future(session.wakeup.wait())
                stop = asyncio.ensure_future(stopping.wait())
                try:
                    await asyncio.wait({woken, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
                    stop.cancel()
        finally:
            session.waiting -= 1
            session.alive_at = time.monotonic()
        if not session.active:
            raise ApiError(409, "InvalidAgentSession", f"Session {session_id} has ended")
        if session.current_id != session_id:
            # Another poll with the same id answered first and took the events.
            raise ApiError(404, "InvalidAgentSession", f"Session id {session_id} was replaced by a concurrent poll")
        if not session.events:
            return None
        events, session.events = session.events, []
        return {"sessionId": self._new_id(session), "events": events}

    # ---------------------------------------------------------------------------------- keep-alive

    def expire_idle(self) -> None:
        """End every client session that nobody polls and that no poll answered for ``session_timeout_s``.

        Every Agent API call asks, so the look at every session is taken at most every tenth of the
        time-out (and at least once a second): looking on each call cost each join ~10 ms with 100,000
        live sessions, which made the sandbox, not the sweep, what ``make bench-scale`` measured."""
        now = time.monotonic()
        if now < self.expiry_scan_after:
            return
        self.expiry_scan_after = now + min(1.0, self.session_timeout_s / 10)
        for session in list(self.sessions.values()):
            if (
                session.active
                and not session.softphone
                and session.waiting == 0
                and now - session.alive_at > self.session_timeout_s
            ):
                session.end_options = {"timedOut": True}
                self._end(session)


def _wake(session: Session) -> None:
    """Wake every poll waiting on ``session`` (each waits on the event it found; a fresh one follows)."""
    session.wakeup.set()
    session.wakeup = asyncio.Event()
