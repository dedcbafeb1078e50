"""``get-next-event``: the long poll that follows an agent session, for both faces (sans-IO).

CXone holds the poll up to ``timeout`` seconds and answers 200 with events, 304 with none, or 409
once the session has ended; each answer with a body names the session id the next poll must use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.client.paths import path_segment

if TYPE_CHECKING:
    from cxone_provider.exceptions import CxoneApiError

#: ``get-next-event``'s ``timeout`` (seconds CXone may hold the poll), as NICE publishes its range.
MAX_EVENT_WAIT_S = 60
#: The event type of a session's end (NICE's SDK also turns a poll's 409 into it).
SESSION_END_EVENT = "AgentSessionEnd"


@dataclass(frozen=True)
class SessionEvents:
    """What one ``get-next-event`` poll answered.

    :param session_id: the session id the poll used.
    :param next_session_id: the id the next poll must use (CXone names a new one in each answer with
        a body; a 304 keeps the one used); ``None`` once the session has ended.
    :param events: the events, as CXone sends them (PascalCase keys, string values).
    :param ended: the session has ended (409, or an ``AgentSessionEnd`` event).
    """

    session_id: str
    next_session_id: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False


def event_poll(session_id: str, timeout: int) -> tuple[str, str, dict[str, Any]]:
    """The poll's action (for messages), path and query parameters.

    :raises ValueError: ``timeout`` is not a whole number of seconds from 0 to 60.
    :raises UnsafePathIdError: ``session_id`` would change the path; nothing is sent.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= MAX_EVENT_WAIT_S:
        raise ValueError(f"get_next_event timeout must be a whole number of seconds from 0 to 60, got {timeout!r}")
    path = f"agent-sessions/{path_segment('get_next_event', 'session_id', session_id)}/get-next-event"
    return f"get the next event of session {session_id!r}", path, {"timeout": timeout}


def events_of_error(session_id: str, error: CxoneApiError) -> SessionEvents:
    """A 304 (nothing happened within the timeout) or a 409 (the session is over) as events; any
    other error is raised again."""
    if error.http_status == 304:
        return SessionEvents(session_id, session_id, [])
    if error.http_status == 409:  # NICE's SDK reports AgentSessionEnd
        return SessionEvents(session_id, None, [], ended=True)
    raise error


def events_of_answer(session_id: str, body: object) -> SessionEvents:
    """A 2xx poll answer as events, with the session id the next poll must use."""
    body = body if isinstance(body, Mapping) else {}
    events = [dict(e) for e in body.get("events") or [] if isinstance(e, Mapping)]
    next_id = body.get("sessionId")
    ended = any(str(e.get("Type", "")) == SESSION_END_EVENT for e in events)
    return SessionEvents(session_id, str(next_id) if next_id else session_id, events, ended=ended)
