"""AgentSessionEventTrigger: follow a CXone agent session's events in Airflow's triggerer.

CXone publishes a session's events as a long poll, ``get-next-event``: each answer names the session id
the next poll must use, and polling is what keeps a joined session alive. The trigger rebuilds the
sensor's hook from its connection id and polls with the hook's async client
(:meth:`~cxone_provider.hooks.cxone.CxoneHook.async_client`): the same poll, retries, token renewal
and reading as the hook's :meth:`~cxone_provider.hooks.cxone.CxoneHook.get_next_event`, on ``httpx``.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cxone_provider.client.answers import MAX_MESSAGE_CHARS
from cxone_provider.client.events import MAX_EVENT_WAIT_S, SESSION_END_EVENT
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError
from cxone_provider.hooks.cxone import CxoneHook

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from cxone_provider.client.async_api import AsyncCxoneClient


def wanted_event_types(event_types: str | Iterable[str] | None) -> tuple[str, ...]:
    """The event types to wait for (CXone's ``Type`` values, e.g. ``AgentSessionEnd``); default: the end."""
    if event_types is None:
        return (SESSION_END_EVENT,)
    values = [event_types] if isinstance(event_types, str) else list(event_types)
    types = tuple(dict.fromkeys(t.strip() for v in values for t in str(v).split(",") if t.strip()))
    if not types:
        raise ValueError(f"event_types {event_types!r} names no event type (e.g. 'AgentSessionEnd')")
    return types


def check_poll_timeout(value: object) -> int:
    """``get-next-event``'s ``timeout``: whole seconds from 0 to 60, as NICE publishes it."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EVENT_WAIT_S:
        raise ValueError(f"poll_timeout must be a whole number of seconds from 0 to {MAX_EVENT_WAIT_S}, got {value!r}")
    return value


def matching_event(events: list[dict[str, Any]], wanted: tuple[str, ...]) -> dict[str, Any] | None:
    """The first event whose ``Type`` is one of ``wanted`` (exact names, as CXone writes them)."""
    return next((e for e in events if str(e.get("Type", "")) in wanted), None)


class AgentSessionEventTrigger(BaseTrigger):
    """Poll ``get-next-event`` until an event of ``event_types`` arrives, the session ends, or ``timeout``.

    The event's payload: ``status`` (``success``, ``ended``, ``timeout``, ``auth_refused``, ``error``),
    ``session_id`` (the id the next poll would use), ``event`` (the matching event), ``polls``,
    ``events_seen`` and ``message``. A session that ends is ``success`` when ``AgentSessionEnd`` is
    wanted (the default), else ``ended``.

    :param session_id: the session to follow (a joined session's id).
    :param cxone_conn_id: the ``cxone`` connection.
    :param event_types: CXone event types to wait for.
    :param poll_timeout: seconds CXone may hold each poll (0 to 60).
    :param timeout: seconds from ``started_at`` after which the wait ends (``None``: no limit).
    :param started_at: when the wait began (epoch seconds), kept across the triggerer's restarts.
    """

    def __init__(
        self,
        *,
        session_id: str,
        cxone_conn_id: str,
        event_types: Iterable[str] = (SESSION_END_EVENT,),
        poll_timeout: int = 30,
        timeout: float | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self.cxone_conn_id = cxone_conn_id
        self.event_types = wanted_event_types(list(event_types))
        self.poll_timeout = check_poll_timeout(poll_timeout)
        self.timeout = None if timeout is None else float(timeout)
        self.started_at = time.time() if started_at is None else float(started_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "session_id": self.session_id,
                "cxone_conn_id": self.cxone_conn_id,
                "event_types": list(self.event_types),
                "poll_timeout": self.poll_timeout,
                "timeout": self.timeout,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Poll until something ends the wait; the event's payload."""
        progress: dict[str, Any] = {"session_id": self.session_id, "polls": 0, "events_seen": 0}
        async with AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(CxoneHook(self.cxone_conn_id).async_client())
            except Exception as exc:  # no such connection, or an unusable one: the message names it
                return {**progress, "status": "error", "message": str(exc)[:MAX_MESSAGE_CHARS]}
            try:
                ended = await self._follow(client, progress)  # updates progress as it polls
                return {**progress, **ended}
            except CxoneAuthError as exc:
                status = "auth_refused" if exc.refused else "error"
                return {**progress, "status": status, "message": client.redact(str(exc))}
            except CxoneApiError as exc:
                return {**progress, "status": "error", "message": client.redact(str(exc))}
            except Exception as exc:  # the unforeseen ends the wait with its cause, redacted
                return {**progress, "status": "error", "message": client.redact(f"{type(exc).__name__}: {exc}")}

    async def _follow(self, client: AsyncCxoneClient, progress: dict[str, Any]) -> dict[str, Any]:
        wanted = ", ".join(self.event_types)
        while True:
            waited = time.time() - self.started_at
            if self.timeout is not None and waited >= self.timeout:
                return {
                    "status": "timeout",
                    "message": f"no {wanted} event on session {self.session_id!r} within {self.timeout:g}s "
                    f"({progress['polls']} poll(s), {progress['events_seen']} event(s) seen)",
                }
            wait = self.poll_timeout
            if self.timeout is not None:
                wait = max(0, min(wait, int(self.timeout - waited)))
            answer = await client.next_event(progress["session_id"], wait)
            progress["polls"] += 1
            progress["events_seen"] += len(answer.events)
            found = matching_event(answer.events, self.event_types)
            if found is not None:
                progress["session_id"] = answer.next_session_id or progress["session_id"]
                self.log.info("Session %s: %s", self.session_id, found.get("Type"))
                return {"status": "success", "event": found, "message": f"{found.get('Type')} received"}
            if answer.ended:
                if SESSION_END_EVENT in self.event_types:
                    event = {"Type": SESSION_END_EVENT}
                    return {"status": "success", "event": event, "message": "the session has ended"}
                return {"status": "ended", "message": f"session {self.session_id!r} ended before any {wanted} event"}
            progress["session_id"] = answer.next_session_id or progress["session_id"]
