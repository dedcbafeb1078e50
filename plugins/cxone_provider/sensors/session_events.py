"""AgentSessionEventSensor: keep a joined CXone session alive and wait for one of its events.

A joined session lives while someone polls its events (``get-next-event``); its end, a state change or
a contact arrives as an event. The sensor polls and returns the first event of ``event_types`` —
by default the session's end — so a DAG notices it. Deferrable (the default follows
``[operators] default_deferrable``): the polling happens in Airflow's triggerer
(:class:`~cxone_provider.triggers.session_events.AgentSessionEventTrigger`) and holds no worker slot.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from cxone_provider.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
)
from cxone_provider.domain.conditions import InputRejected
from cxone_provider.domain.inputs import check_session_id
from cxone_provider.hooks.cxone import SESSION_END_EVENT, CxoneHook
from cxone_provider.operators.base import CxoneTaskMixin, cxone_template_fields
from cxone_provider.triggers.session_events import (
    AgentSessionEventTrigger,
    check_poll_timeout,
    matching_event,
    wanted_event_types,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow.sdk import Context


class AgentSessionEventSensor(CxoneTaskMixin, BaseSensorOperator):
    """Poll a CXone agent session's events until one of ``event_types``; return it.

    The XCom ``return_value`` is ``{"session_id", "event", "polls", "events_seen"}``: ``session_id`` is
    the id the session's next poll must use (CXone names a new one in each answer), ``event`` the
    event as CXone sends it (PascalCase keys, string values). A session that ends is an
    ``AgentSessionEnd`` event; waiting for other events, it fails the task naming the session.

    :param session_id: the session to follow, e.g. a join's
        ``"{{ ti.xcom_pull(task_ids='join_agent_session')['session_id'] }}"``. (templated)
    :param event_types: CXone event types (``"AgentSessionEnd"``, ``"AgentState"``…), exact names;
        default: the session's end. (templated)
    :param cxone_conn_id: the ``cxone`` connection. (templated)
    :param poll_timeout: seconds CXone may hold each poll (0 to 60); the polls follow one another
        without a pause, which is what keeps the session alive.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`
        (poke mode; the triggerer builds its own from the connection).
    :param kwargs: :class:`~airflow.sdk.BaseSensorOperator`'s: ``timeout``, ``soft_fail``… ``mode``
        must stay ``"poke"``: the session id moves on with every poll, so it cannot wait rescheduled.

    Failures follow :mod:`cxone_provider.operators.base`: a bad session id, an unusable connection,
    a refused access key or an error answer no retry can change fails the task without retries.
    """

    template_fields: Sequence[str] = cxone_template_fields("session_id", "event_types")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        session_id: str,
        event_types: str | Iterable[str] | None = None,
        cxone_conn_id: str = CxoneHook.default_conn_name,
        poll_timeout: int = 30,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 0.0)  # the long poll is the wait
        super().__init__(**kwargs)
        if self.mode == "reschedule":
            raise ValueError(
                f"{self.task_id}: mode='reschedule' cannot follow a CXone session (each poll names the id "
                "the next must use): use deferrable=True to free the worker slot"
            )
        self._init_cxone(cxone_conn_id, hook_params)
        self.session_id = session_id
        self.event_types = event_types
        self.poll_timeout = check_poll_timeout(poll_timeout)
        self.deferrable = deferrable
        self._current: str | None = None
        self._polls = 0
        self._events_seen = 0

    def _checked_session(self) -> str:
        try:
            return check_session_id(self.session_id)
        except InputRejected as rejected:
            raise AirflowFailException(f"{self.task_id}: {rejected.message}") from None

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            finally:
                self.close_hooks()
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout
        self.defer(
            trigger=AgentSessionEventTrigger(
                session_id=self._checked_session(),
                cxone_conn_id=self.hook_conn_id,
                event_types=wanted_event_types(self.event_types),
                poll_timeout=self.poll_timeout,
                timeout=timeout,
            ),
            method_name="execute_complete",
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        wanted = wanted_event_types(self.event_types)
        session = self._current or self._checked_session()
        with self.cxone_failures(self.task_id):
            answer = self.hook.get_next_event(session, timeout=self.poll_timeout)
        self._polls += 1
        self._events_seen += len(answer.events)
        self._current = answer.next_session_id or session
        found = matching_event(answer.events, wanted)
        if found is None and answer.ended:
            if SESSION_END_EVENT not in wanted:
                raise AirflowFailException(f"session {self.session_id!r} ended before any {', '.join(wanted)} event")
            found = {"Type": SESSION_END_EVENT}
        if found is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._result(self._current, found))

    def _result(self, session_id: str, event: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": session_id, "event": event, "polls": self._polls, "events_seen": self._events_seen}

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        message = str(event.get("message") or "")
        if status == "success":
            return {key: event.get(key) for key in ("session_id", "event", "polls", "events_seen")}
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        if status in ("ended", "auth_refused"):
            raise AirflowFailException(message)
        raise AirflowException(f"{self.task_id}: {message or 'the session could not be followed'}")
