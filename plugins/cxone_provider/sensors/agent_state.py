"""AgentStateSensor: wait until a CXone agent is in a given state (logged in, Available…).

A supervised-session DAG is scheduled at shift start; the agent logs in when they log in. The sensor
reads ``GET agents/states`` (every page) until the agent's row shows one of ``states``, and returns that
row. CXone's rows carry no session id: a downstream join as that agent leaves ``session_id`` empty, and
CXone's answer names the agent's live session.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from cxone_provider.compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    conf,
    usable_sensor_mode,
)
from cxone_provider.domain.agent_states import (
    describe_wanted,
    find_agent,
    last_seen,
    state_matches,
    unknown_agent_message,
    wanted_states,
)
from cxone_provider.domain.conditions import InputRejected
from cxone_provider.domain.inputs import check_agent_id
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.base import CxoneTaskMixin, cxone_template_fields
from cxone_provider.triggers.agent_state import AgentStateTrigger

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow.sdk import Context

# Airflow's own sensor timeout message starts so; the sensor adds the last state it saw.
_TIMEOUT_PREFIX = "Sensor has timed out"


class AgentStateSensor(CxoneTaskMixin, BaseSensorOperator):
    """Wait until a CXone agent is in one of ``states``; return the agent's ``agents/states`` row.

    The XCom ``return_value`` is the row as CXone lists it (``agentId``, ``agentStateName``,
    ``stationId``, ``sessionStartTime``…), e.g.
    ``security_user="{{ ti.xcom_pull(task_ids='wait_for_agent')['agentId'] }}"`` on a join whose
    ``session_id`` is left empty (the agent's own live session).

    With ``deferrable=True`` (the default follows ``[operators] default_deferrable``) the sensor
    checks once, then hands the wait to Airflow's triggerer
    (:class:`~cxone_provider.triggers.agent_state.AgentStateTrigger`) and frees its worker slot.
    Otherwise it waits in ``mode="poke"`` (holding the slot) or ``mode="reschedule"``.

    Errors: an agent CXone does not list, or an access key CXone refuses, fails the task without
    retries, naming the agent or the access key id; so do an unusable connection and an error answer
    no retry can change (the failure policy of :mod:`cxone_provider.operators.base`); a timeout fails
    it with Airflow's sensor timeout message and the last state seen (skipped with ``soft_fail=True``).

    .. seealso:: ``docs/sensors.md``.

    :param agent_id: the agent to wait for. (templated)
    :param states: agent state names (``"Available"``, ``["Available", "Unavailable"]``,
        ``"Available,Unavailable"``…): a list, a rendered JSON or Python list (``"[...]"``) or comma-separated text
        (the rule of :func:`~cxone_provider.domain.inputs.parse_list`); matched without regard to case; default: any
        state but ``LoggedOut``, i.e. logged in. (templated)
    :param cxone_conn_id: the ``cxone`` connection. (templated)
    :param poll_interval: seconds between two reads of ``agents/states`` (Airflow's ``poke_interval``).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`.
        The trigger of a deferrable sensor gets the retry parameters among them (``max_attempts``,
        ``backoff_initial_s``, ``backoff_max_s``, ``max_wait_s``: serialized, never a secret).
    :param kwargs: :class:`~airflow.sdk.BaseSensorOperator`'s: ``timeout``, ``mode``, ``soft_fail``…
    """

    template_fields: Sequence[str] = cxone_template_fields("agent_id", "states")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        agent_id: int | str,
        states: str | Iterable[str] | None = None,
        cxone_conn_id: str = CxoneHook.default_conn_name,
        poll_interval: float | timedelta = 30.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if "poke_interval" in kwargs:
            raise TypeError("AgentStateSensor takes poll_interval, not poke_interval")
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.mode = usable_sensor_mode(self.mode)
        self._init_cxone(cxone_conn_id, hook_params)
        self.agent_id = agent_id
        self.states = states
        self.deferrable = deferrable
        self._last_state: Any = None

    @property
    def poll_interval(self) -> float:
        return float(self.poke_interval)

    def _checked_inputs(self) -> tuple[int, tuple[str, ...]]:
        try:
            agent_id = check_agent_id(self.agent_id)
            states = wanted_states(self.states)
        except (InputRejected, ValueError) as rejected:
            raise AirflowFailException(f"AgentStateSensor: {rejected}") from None
        return agent_id, states

    def poke(self, context: Context) -> PokeReturnValue:
        agent_id, states = self._checked_inputs()
        # One hook, so one token, for every poke of one execution (closed when it ends).
        with self.cxone_failures("AgentStateSensor"):
            rows = self.hook.get_agent_states()
        row = find_agent(rows, agent_id)
        if row is None:
            raise AirflowFailException(unknown_agent_message(agent_id, len(rows)))
        self._last_state = row.get("agentStateName")
        if state_matches(row, states):
            self.log.info("Agent %s is %s (waited for %s)", agent_id, self._last_state, describe_wanted(states))
            return PokeReturnValue(is_done=True, xcom_value=row)
        self.log.info("Agent %s is %s; waiting for %s", agent_id, self._last_state, describe_wanted(states))
        return PokeReturnValue(is_done=False)

    def execute(self, context: Context) -> Any:
        try:
            return self._execute(context)
        finally:
            self.close_hooks()

    def _execute(self, context: Context) -> Any:
        agent_id, states = self._checked_inputs()
        started_at = time.time()
        if not self.deferrable:
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowSkipException) as stopped:
                if not str(stopped).startswith(_TIMEOUT_PREFIX):
                    raise
                # Airflow's message, then what the sensor saw last: the first thing a reader asks.
                raise type(stopped)(f"{stopped} {last_seen(agent_id, self._last_state, states)}") from None
        # Deferrable: an agent already there costs no deferral.
        try:
            first = self.poke(context)
        except AirflowFailException as failed:
            if self.soft_fail or self.never_fail:  # as BaseSensorOperator.execute treats a failed poke
                raise AirflowSkipException(f"Skipping: {failed}") from failed
            raise
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=AgentStateTrigger(
                agent_id=agent_id,
                cxone_conn_id=self.hook_conn_id,
                states=states,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
                started_at=started_at,
                hook_params=self.hook_params,
            ),
            method_name="execute_complete",
            # A backstop only, should no triggerer run the trigger: the trigger ends the wait itself at
            # `timeout`, with the last state seen, and a poll may take its retries.
            timeout=timedelta(seconds=self.timeout + self.poll_interval + 120),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: the agent's row, or the error the trigger met."""
        status = (event or {}).get("status")
        message = str((event or {}).get("message") or f"AgentStateSensor: unexpected trigger event {event!r}")
        if status == "success":
            row: dict[str, Any] = event["row"]  # type: ignore[index]
            self.log.info("Agent %s is %s", row.get("agentId"), row.get("agentStateName"))
            return row
        if status == "timeout":
            if self.soft_fail:  # the skip's reason will be Airflow's generic one: the log keeps the cause
                self.log.warning("%s", message)
            raise AirflowSensorTimeout(message)
        if status in ("unknown_agent", "auth_refused"):
            raise AirflowFailException(message if status == "unknown_agent" else f"AgentStateSensor: {message}")
        raise AirflowException(f"AgentStateSensor: {message}")
