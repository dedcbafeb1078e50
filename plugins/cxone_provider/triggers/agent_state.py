"""AgentStateTrigger: waits in Airflow's triggerer until a CXone agent is in one of the given states.

The deferrable half of :class:`~cxone_provider.sensors.agent_state.AgentStateSensor`. Like the amazon
providers' triggers, it rebuilds the sensor's hook from serialized settings (the connection id and the
hook's plain parameters) and polls ``GET agents/states`` with the hook's async client
(:meth:`~cxone_provider.hooks.cxone.CxoneHook.async_client`): the same token life cycle, discovery,
retry policy, bounded and redacted reads and paging as the sensor's pokes, written once in
:mod:`cxone_provider.client`. The triggers of one event loop share one client per connection, so one
token. What a poll means is decided in :mod:`cxone_provider.domain.agent_states`, as in the sensor.

**What is stored.** The serialized kwargs (kept in the metadata DB's trigger table) are the connection
id and plain parameters; events carry the agent's row, a state name or a redacted message. Never a
token, never a secret.

.. seealso:: ``docs/sensors.md``.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cxone_provider.client.answers import MAX_MESSAGE_CHARS
from cxone_provider.domain.agent_states import (
    describe_wanted,
    find_agent,
    state_matches,
    timeout_message,
    unknown_agent_message,
    wanted_states,
)
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError
from cxone_provider.hooks.cxone import CxoneHook, async_hook_params

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from cxone_provider.client.async_api import AsyncCxoneClient

#: ``agents/states`` rows per page asked for (CXone and the sandbox may send fewer: pages are followed).
PAGE_SIZE = 1000


class AgentStateTrigger(BaseTrigger):
    """Fires once: when the agent is in one of ``states``, when ``timeout`` has passed, or on an error.

    The event's payload is a mapping whose ``status`` says which: ``success`` (with the agent's
    ``row``), ``timeout`` (with ``message``, the sensor's timeout message naming the last state seen),
    ``unknown_agent``, ``auth_refused`` or ``error`` (each with a ``message`` free of secrets).

    :param agent_id: the agent to wait for.
    :param cxone_conn_id: the ``cxone`` connection (only its id is stored).
    :param states: agent state names to wait for; empty: any state but ``LoggedOut``.
    :param poll_interval: seconds between two reads of ``agents/states``.
    :param timeout: seconds from ``started_at`` after which the wait ends; ``None``: no end.
    :param started_at: when the sensor started waiting (seconds since the epoch).
    :param hook_params: the hook's retry parameters
        (:func:`~cxone_provider.hooks.cxone.async_hook_params`); others are dropped.
    """

    def __init__(
        self,
        *,
        agent_id: int,
        cxone_conn_id: str = CxoneHook.default_conn_name,
        states: Sequence[str] = (),
        poll_interval: float = 30.0,
        timeout: float | None = None,
        started_at: float | None = None,
        hook_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.agent_id = int(agent_id)
        self.cxone_conn_id = cxone_conn_id
        self.states = wanted_states(states)
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        self.started_at = time.time() if started_at is None else float(started_at)
        self.hook_params = async_hook_params(hook_params)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "agent_id": self.agent_id,
            "cxone_conn_id": self.cxone_conn_id,
            "states": list(self.states),
            "poll_interval": self.poll_interval,
            "timeout": self.timeout,
            "started_at": self.started_at,
        }
        if self.hook_params:  # only when given: a trigger stored before them still loads
            kwargs["hook_params"] = dict(self.hook_params)
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def hook(self) -> CxoneHook:
        """The sensor's hook, rebuilt in the triggerer from the serialized settings."""
        return CxoneHook(self.cxone_conn_id, **self.hook_params)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Poll until something ends the wait; the event's payload."""
        base: dict[str, Any] = {"agent_id": self.agent_id, "cxone_conn_id": self.cxone_conn_id}
        async with AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(self.hook().async_client())
            except Exception as exc:  # no such connection, or an unusable one: the message names it
                return {**base, "status": "error", "message": str(exc)[:MAX_MESSAGE_CHARS]}
            try:
                return {**base, **await self._poll(client)}
            except CxoneAuthError as exc:
                # A refused key fails the task without retries: asking again cannot help.
                status = "auth_refused" if exc.refused else "error"
                return {**base, "status": status, "message": client.redact(str(exc))}
            except CxoneApiError as exc:
                return {**base, "status": "error", "message": client.redact(str(exc))}
            except Exception as exc:  # CxoneConfigError and the unforeseen: ends the wait with the cause, redacted
                return {**base, "status": "error", "message": client.redact(f"{type(exc).__name__}: {exc}")}

    async def _poll(self, client: AsyncCxoneClient) -> dict[str, Any]:
        wanted = describe_wanted(self.states)
        last_state: Any = None
        while True:
            rows = await client.agent_states(page_size=PAGE_SIZE)
            row = find_agent(rows, self.agent_id)
            if row is None:
                return {"status": "unknown_agent", "message": unknown_agent_message(self.agent_id, len(rows))}
            state = row.get("agentStateName")
            if state_matches(row, self.states):
                self.log.info("Agent %s is %s (waited for %s)", self.agent_id, state, wanted)
                return {"status": "success", "row": row}
            if state != last_state:  # one line per change, not per poll: many triggers share this log
                self.log.info("Agent %s is %s; waiting for %s", self.agent_id, state, wanted)
                last_state = state
            run_duration = time.time() - self.started_at
            if self.timeout is not None and run_duration >= self.timeout:
                message = timeout_message(run_duration, self.timeout, self.agent_id, state, self.states)
                return {"status": "timeout", "last_state": state, "message": message}
            pause = self.poll_interval
            if self.timeout is not None:
                pause = min(pause, self.timeout - run_duration)  # one last look at the deadline
            await asyncio.sleep(pause)
