"""AgentStateTrigger: waits in Airflow's triggerer until a CXone agent is in one of the given states.

The deferrable half of :class:`~cxone_provider.sensors.agent_state.AgentStateSensor`. It polls
``GET agents/states`` with ``httpx.AsyncClient`` on the hook's rules: the same connection settings,
token life cycle, API host discovery, per-call retry policy (``RETRY_POLICY["agent_states"]``),
bounded answers, redirects refused, one token renewal after a 401, and every credential masked.

**Tokens.** The token and the discovery stay with the hook's own :class:`~cxone_provider.client.auth.Auth`
(one per connection in the process, shared by every trigger) and run in a worker thread
(``asyncio.to_thread``), behind one ``asyncio.Lock`` per connection and event loop. That keeps one
implementation of the token life cycle (renewal before expiry, single flight, a refused key remembered
for the backoff window, secrets registered with the masker) instead of an async copy of it; it costs
one thread hop per poll, and a blocking request only once per token lifetime. The frequent calls,
the ``agents/states`` polls, are native async and never block the event loop.

**What is stored.** The serialized kwargs (kept in the metadata DB's trigger table) are the connection
id and plain parameters; events carry the agent's row, a state name or a redacted message. Never a
token, never a secret.

.. seealso:: ``README.md``, section "AgentStateSensor".
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from cxone_provider.client.api import CxoneClient
from cxone_provider.client.settings import CxoneSettings
from cxone_provider.client.transport import (
    MAX_ANSWER_BYTES,
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_RETRY_AFTER_S,
    RETRY_POLICY,
    RETRYABLE_STATUS,
    USER_AGENT,
    RetryWhen,
    TransportOptions,
    over_budget_message,
    plural,
    read_answer,
    wait_budget,
)
from cxone_provider.compat import aget_connection
from cxone_provider.domain.inputs import parse_list
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError
from cxone_provider.hooks.cxone import AGENT_STATES_PATH, MAX_STATE_PAGES, next_page_url
from cxone_provider.response import ApiResponse

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from airflow.sdk import Connection

log = logging.getLogger(__name__)

LOGGED_OUT = "LoggedOut"
#: ``agents/states`` rows per page asked for (CXone and the sandbox may send fewer: pages are followed).
PAGE_SIZE = 1000

# --- what the sensor and the trigger both decide ---------------------------------------------------


def wanted_states(states: str | Iterable[str] | None) -> tuple[str, ...]:
    """The agent state names to wait for; ``()`` means any state but ``LoggedOut``.

    Read by the one rule of list-valued template fields (:func:`~cxone_provider.domain.inputs.parse_list`):
    a name, names separated by commas, or a list, also as plain Jinja renders one
    (``"['Available', 'Unavailable']"``). Each name is kept once.

    :raises ValueError: naming the value, for a state that is not a non-empty name.
    """
    given = list(states) if isinstance(states, Iterable) and not isinstance(states, str | Mapping) else states
    names = []
    for item in parse_list("states", given) or []:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"states {states!r}: every state must be an agent state name such as 'Available'")
        names.append(item.strip())
    return tuple(dict.fromkeys(names))


def describe_wanted(states: Sequence[str]) -> str:
    """``"any state but LoggedOut"``, or the names joined with ``or``."""
    return f"any state but {LOGGED_OUT}" if not states else " or ".join(states)


def state_matches(row: Mapping[str, Any], states: Sequence[str]) -> bool:
    """Whether the row's ``agentStateName`` is one of ``states`` (without regard to case)."""
    name = str(row.get("agentStateName") or "").lower()
    if not states:
        return bool(name) and name != LOGGED_OUT.lower()
    return name in {s.lower() for s in states}


def find_agent(rows: Iterable[Mapping[str, Any]], agent_id: int) -> dict[str, Any] | None:
    """The row of ``agent_id`` in an ``agents/states`` listing, or ``None`` when CXone lists no such agent."""
    for row in rows:
        try:
            if int(row.get("agentId")) == agent_id:  # type: ignore[arg-type]
                return dict(row)
        except (TypeError, ValueError):
            continue
    return None


def unknown_agent_message(agent_id: int, listed: int) -> str:
    return (
        f"AgentStateSensor: agent_id {agent_id} is not among the {listed} agent(s) CXone lists in agents/states; "
        "check the agent id"
    )


def last_seen(agent_id: int, last_state: Any, states: Sequence[str]) -> str:
    """What a timeout message adds to Airflow's: the last state seen, and what the sensor waited for."""
    return f"Agent {agent_id} was last seen in state {last_state!r}; waiting for {describe_wanted(states)}."


def timeout_message(run_duration: float, timeout: float, agent_id: int, last_state: Any, states: Sequence[str]) -> str:
    """Airflow's sensor timeout message (as ``BaseSensorOperator.execute`` words it), then the last state seen."""
    return (
        f"Sensor has timed out; run duration of {run_duration} seconds exceeds the specified timeout of "
        f"{timeout}. {last_seen(agent_id, last_state, states)}"
    )


# --- one connection's agents/states over httpx ----------------------------------------------------

# One hook client per connection in the process: it owns the token (thread-safe), whatever the loop.
_CLIENTS: dict[str, CxoneClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client_for(conn: Connection) -> CxoneClient:
    """The process's client for ``conn``; a new one when the connection's fields changed (a rotated key).

    Runs in a worker thread: reading the connection's extras and creating the client register secrets
    with Airflow's masker, which talks to the supervisor synchronously.
    """
    settings = CxoneSettings.from_connection(conn)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(settings.conn_id)
        if client is None or client.settings != settings:
            client = CxoneClient(settings, TransportOptions(), log=log)
            _CLIENTS[settings.conn_id] = client
        return client


def _http_client(settings: CxoneSettings) -> httpx.AsyncClient:
    """An HTTP pool as the hook's session: TLS as the connection says, no redirects, the hook's User-Agent.

    Built in a worker thread: loading a CA bundle reads files.
    """
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=settings.verify_ssl)
        if isinstance(settings.verify_ssl, str)
        else settings.verify_ssl
    )
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        follow_redirects=False,
    )


class _Shared:
    """What the triggers of one event loop share for one connection."""

    def __init__(self, client: CxoneClient, http: httpx.AsyncClient) -> None:
        self.client = client
        self.http = http
        # One thread hop at a time per connection: 200 triggers polling together queue here for the
        # token instead of filling the default thread pool.
        self.token_lock = asyncio.Lock()
        self.users = 0


class _LoopRegistry:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.shared: dict[str, _Shared] = {}


# Per event loop: asyncio locks and httpx pools belong to the loop they were made in (``dag.test()``
# runs each trigger in a loop of its own; the triggerer runs them all in one).
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRegistry] = weakref.WeakKeyDictionary()


def _wait_exponential_with_jitter(options: TransportOptions) -> Any:
    # The transport's backoff: capped exponential plus jitter, so throttled triggers do not retry in lockstep.
    return wait_exponential(multiplier=options.backoff_initial_s, max=options.backoff_max_s) + wait_random(
        0, options.backoff_initial_s
    )


class AsyncAgentStates:
    """``GET agents/states`` for one connection, every page, on the hook's token, retry and masking rules.

    Get one with :meth:`open` and give it back with :meth:`close`; triggers of the same event loop and
    connection share the HTTP pool, and every trigger of the process shares the token.
    """

    def __init__(self, shared: _Shared, registry: _LoopRegistry, logger: logging.Logger | Any) -> None:
        self._shared = shared
        self._registry = registry
        self.client = shared.client
        self.settings = shared.client.settings
        self.log = logger
        self.options = TransportOptions()
        self._backoff = _wait_exponential_with_jitter(self.options)

    @classmethod
    async def open(cls, conn_id: str, logger: logging.Logger | Any = log) -> AsyncAgentStates:
        """The reader for ``conn_id``.

        :raises CxoneConfigError: the connection is unusable (the message names the field).
        :raises AirflowNotFoundException: there is no such connection.
        """
        conn = await aget_connection(conn_id)
        client = await asyncio.to_thread(_client_for, conn)
        registry = _LOOPS.setdefault(asyncio.get_running_loop(), _LoopRegistry())
        async with registry.lock:
            shared = registry.shared.get(conn_id)
            if shared is None or shared.client is not client:
                shared = _Shared(client, await asyncio.to_thread(_http_client, client.settings))
                registry.shared[conn_id] = shared
            shared.users += 1
        return cls(shared, registry, logger)

    async def close(self) -> None:
        """Give the reader back; the last user of a pool closes it."""
        shared = self._shared
        async with self._registry.lock:
            shared.users -= 1
            if shared.users > 0:
                return
            if self._registry.shared.get(self.settings.conn_id) is shared:
                del self._registry.shared[self.settings.conn_id]
        await shared.http.aclose()

    def redact(self, text: str) -> str:
        return self.client.secrets.redact(text)

    async def _access_token(self) -> str:
        async with self._shared.token_lock:
            return await asyncio.to_thread(self.client.auth.access_token)

    async def _renew_token(self, stale: str) -> None:
        async with self._shared.token_lock:
            await asyncio.to_thread(self.client.auth.renew_token, stale)

    async def _api_base(self) -> str:
        async with self._shared.token_lock:  # discovery may need the token first
            return await asyncio.to_thread(lambda: self.client.auth.api_base_url)

    async def rows(self) -> list[dict[str, Any]]:
        """Every agent's state row, following ``_links.next``, as :meth:`CxoneHook.get_agent_states`.

        :raises CxoneApiError: an error answer or none (after retries and one token renewal).
        :raises CxoneAuthError: no token; :raises CxoneConfigError: the connection is unusable.
        """
        base = await self._api_base()
        rows: list[dict[str, Any]] = []
        url: str | None = base + AGENT_STATES_PATH
        params: dict[str, Any] | None = {"top": PAGE_SIZE, "skip": 0}
        seen: set[str] = set()
        for _ in range(MAX_STATE_PAGES):
            if url is None:
                return rows
            body = (await self._request(url, params)).body
            if not isinstance(body, Mapping):  # 204 No Content: nobody to list
                return rows
            rows.extend(dict(row) for row in body.get("agentStates") or [] if isinstance(row, Mapping))
            url, params = next_page_url(body, base, seen), None
        raise CxoneApiError(
            ApiResponse(status_code=200, message=f"more than {MAX_STATE_PAGES} pages"), "list agent states"
        )

    async def _request(self, url: str, params: Mapping[str, Any] | None) -> ApiResponse:
        retry_when = RETRY_POLICY["agent_states"]
        started = time.monotonic()
        response, token = await self._send(url, params, retry_when)
        if response.status_code == 401:
            # One renewal, one more try: the token may have been revoked or expired early.
            await self._renew_token(token)
            retried, _ = await self._send(url, params, retry_when)
            retried.attempts += response.attempts
            retried.retries = [*response.retries, "401", *retried.retries]
            response = retried
        response.elapsed_s = time.monotonic() - started
        if not response.ok or response.unreadable:
            raise CxoneApiError(response, "list agent states")
        return response

    async def _send(self, url: str, params: Mapping[str, Any] | None, retry_when: RetryWhen) -> tuple[ApiResponse, str]:
        """One call with ``retry_when``'s retries; the final answer (``status_code=None``: none came)."""
        attempts = 0
        token = ""
        reasons: list[str] = []
        not_waited: list[float] = []

        async def one_attempt() -> ApiResponse:
            nonlocal attempts, token
            attempts += 1
            token = await self._access_token()
            request = self._shared.http.build_request(
                "GET", url, params=params, headers={"Authorization": f"Bearer {token}"}
            )
            response = await self._shared.http.send(request, stream=True)
            try:
                return await self._read(response)
            finally:
                await response.aclose()

        def before_sleep(state: RetryCallState) -> None:
            reason = _retry_reason(state)
            reasons.append(reason)
            self.log.info(
                "CXone call not answered (%s); retry %d of %d in %.2fs",
                reason,
                state.attempt_number,
                self.options.max_attempts - 1,
                state.upcoming_sleep,
            )

        transport_failure = _any_failure if retry_when is RetryWhen.ANY_FAILURE else _not_received
        retrying = AsyncRetrying(
            stop=(
                stop_after_attempt(self.options.max_attempts) | wait_budget(self.options.max_wait_s, not_waited.append)
            ),
            wait=self._wait,
            retry=retry_if_result(lambda r: r.status_code in RETRYABLE_STATUS) | retry_if_exception(transport_failure),
            before_sleep=before_sleep,
            # Out of attempts: hand back the last answer (a 429 or 503) or re-raise the last error.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response: ApiResponse = await retrying(one_attempt)
        except httpx.TransportError as exc:
            response = ApiResponse(
                status_code=None,
                error=type(exc).__name__,
                message=f"no answer from CXone after {plural(attempts, 'attempt')}: "
                + self.redact(f"{type(exc).__name__}: {exc}")[:MAX_MESSAGE_CHARS],
            )
        if response.status_code in RETRYABLE_STATUS and not_waited:
            response.message = (
                f"{over_budget_message(attempts, not_waited[0], self.options.max_wait_s)}: {response.message}"
            )
        elif response.status_code in RETRYABLE_STATUS and attempts >= self.options.max_attempts:
            response.message = f"gave up after {attempts} attempts: {response.message}"
        response.attempts = attempts
        response.retries = reasons
        return response, token

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after_s
            if retry_after is not None:
                # A little jitter on top, so triggers throttled together do not come back together.
                return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.options.backoff_initial_s)
        return float(self._backoff(state))

    async def _read(self, response: httpx.Response) -> ApiResponse:
        """The answer as an :class:`ApiResponse`: at most ``MAX_BODY_BYTES`` read, within ``read_timeout``."""
        status = response.status_code
        if 300 <= status < 400:
            # Not followed and not read: a redirect's body can be as large or as slow as its sender likes.
            where = urlsplit(urljoin(str(response.url), response.headers.get("Location") or "")).hostname
            return ApiResponse(
                status_code=status,
                error=f"HTTP {status}",
                message=self.redact(
                    f"redirected (HTTP {status}) to {where or 'no Location'}; calls to CXone follow no redirect"
                )[:MAX_MESSAGE_CHARS],
            )
        limit = MAX_ANSWER_BYTES if 200 <= status < 300 else MAX_BODY_BYTES
        raw = bytearray()
        complete = False
        try:
            # The read timeout bounds each read; this bounds the whole body (a trickle never ends otherwise).
            async with asyncio.timeout(self.settings.read_timeout):
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) > limit:
                        break
                else:
                    complete = True
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the answer was still arriving after {self.settings.read_timeout:g}s (read_timeout); "
                f"{len(raw)} bytes read"
            ) from None
        answer = read_answer(
            bytes(raw),
            complete,
            limit=limit,
            status=status,
            reason=response.reason_phrase,
            headers=response.headers,
            encoding=response.encoding,
            redact=self.redact,
        )
        self.client.transport.check_retry_after(response.headers, answer)
        return answer


def _retry_reason(state: RetryCallState) -> str:
    outcome = state.outcome
    if outcome is None:
        return "unknown"
    if outcome.failed:
        return "timeout" if isinstance(outcome.exception(), httpx.TimeoutException) else "connection"
    return str(outcome.result().status_code)


def _any_failure(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)


def _not_received(exc: BaseException) -> bool:
    """A failure before the request could reach CXone: the connection was refused or never opened."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


# --- the trigger ----------------------------------------------------------------------------------


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
    """

    def __init__(
        self,
        *,
        agent_id: int,
        cxone_conn_id: str = "cxone_default",
        states: Sequence[str] = (),
        poll_interval: float = 30.0,
        timeout: float | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.agent_id = int(agent_id)
        self.cxone_conn_id = cxone_conn_id
        self.states = wanted_states(states)
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        self.started_at = time.time() if started_at is None else float(started_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "agent_id": self.agent_id,
                "cxone_conn_id": self.cxone_conn_id,
                "states": list(self.states),
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Poll until something ends the wait; the event's payload."""
        base: dict[str, Any] = {"agent_id": self.agent_id, "cxone_conn_id": self.cxone_conn_id}
        try:
            reader = await AsyncAgentStates.open(self.cxone_conn_id, self.log)
        except Exception as exc:  # no such connection, or an unusable one: the message names it
            return {**base, "status": "error", "message": str(exc)[:MAX_MESSAGE_CHARS]}
        try:
            return {**base, **await self._poll(reader)}
        except CxoneAuthError as exc:
            # A refused key fails the task without retries: asking again cannot help.
            status = "auth_refused" if exc.refused else "error"
            return {**base, "status": status, "message": reader.redact(str(exc))}
        except CxoneApiError as exc:
            return {**base, "status": "error", "message": reader.redact(str(exc))}
        except Exception as exc:  # CxoneConfigError and the unforeseen: ends the wait with the cause, redacted
            return {**base, "status": "error", "message": reader.redact(f"{type(exc).__name__}: {exc}")}
        finally:
            await reader.close()

    async def _poll(self, reader: AsyncAgentStates) -> dict[str, Any]:
        wanted = describe_wanted(self.states)
        last_state: Any = None
        while True:
            rows = await reader.rows()
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
