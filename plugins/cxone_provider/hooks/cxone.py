"""CxoneHook: NICE CXone's Agent API for Airflow, one ``cxone`` connection at a time.

The Airflow face of the provider: it turns the connection into settings and offers the API calls a
DAG needs. The API contract lives here — the Agent API paths and the wire parameter that carries
Studio's SessionId — over :mod:`cxone_provider.client` (token, discovery, transport, retries; the
paged ``agents/states`` and the ``get-next-event`` poll, which both of the client's faces serve). The
triggerer gets the same client on ``httpx`` from :meth:`CxoneHook.async_client`. What an answer means
for Studio is decided in :mod:`cxone_provider.domain.classification`, not here.

.. seealso:: ``docs/connection.md``, ``docs/retries.md`` and ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cxone_provider.client.api import CxoneClient
from cxone_provider.client.async_api import AsyncCxoneClient, shared_async_client
from cxone_provider.client.events import MAX_EVENT_WAIT_S, SESSION_END_EVENT, SessionEvents
from cxone_provider.client.pages import AGENT_STATES_PATH, MAX_STATE_PAGES
from cxone_provider.client.paths import path_segment
from cxone_provider.client.policy import DEFAULT_MAX_WAIT_S, RETRY_POLICY, RetryWhen, TransportOptions
from cxone_provider.client.settings import CxoneSettings
from cxone_provider.compat import BaseHook, aget_connection
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneConfigError
from cxone_provider.metrics import api_call_timer, count_answer, count_retry
from cxone_provider.response import ApiResponse

# The errors this hook raises, importable from here too (they are defined in cxone_provider.exceptions).
__all__ = [
    "AGENT_STATES_PATH",
    "ASYNC_HOOK_PARAMS",
    "MAX_EVENT_WAIT_S",
    "MAX_STATE_PAGES",
    "SESSION_END_EVENT",
    "CxoneApiError",
    "CxoneAuthError",
    "CxoneConfigError",
    "CxoneHook",
    "CxoneSettings",
    "SessionEvents",
]

if TYPE_CHECKING:
    import threading
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractContextManager

    import requests

    from cxone_provider.domain.condition_rules import ConditionRule

JOIN_PATH = "agent-sessions/join"
# Public specs name only asAgentId; Studio's SessionId input travels as this query parameter.
JOIN_SESSION_PARAM = "sessionId"
SUPERVISE_ACTIONS = ("monitor", "coach", "barge", "take-over")
#: The hook parameters that reach a trigger: plain values that mean the same on the async face. The
#: others are callables or events of the worker's process (the sweep's pacing, on_kill's stop) or,
#: like ``pool_size``, size what the triggerer shares between triggers.
ASYNC_HOOK_PARAMS = ("max_attempts", "backoff_initial_s", "backoff_max_s", "max_wait_s")


class CxoneHook(BaseHook):
    """Talks to NICE CXone's auth service and Agent API for one ``cxone`` connection.

    One instance holds one pooled HTTP session and one token, renewed before it expires and once on a
    401; it is safe to share between threads (the sweep operator does). Every call returns CXone's
    answer or raises :class:`~cxone_provider.exceptions.CxoneApiError` (an error answer, or none),
    :class:`~cxone_provider.exceptions.CxoneAuthError` (no token) or
    :class:`~cxone_provider.exceptions.CxoneConfigError` (an unusable connection).

    :param cxone_conn_id: the ``cxone`` connection to use.
    :param max_attempts: attempts per call on 429, 503 and connection errors before giving up.
    :param backoff_initial_s: first backoff; it doubles per attempt, with jitter, up to ``backoff_max_s``.
    :param backoff_max_s: longest single backoff (a ``Retry-After`` is honoured up to 30 s); a failed
        token request or discovery is also remembered this long.
    :param max_wait_s: the most one call waits in total between its attempts (backoffs and
        ``Retry-After``), default 60 s: a retry whose wait would pass it is not made, and the call ends
        with its last answer ("gave up after … wait budget"). A token renewal after a 401 starts a new
        budget, so a call waits at most twice this.
    :param pool_size: HTTP connections kept open; set it to the concurrency you call the hook with.
    :param retry_listener: called with the reason (``"429"``, ``"503"``, ``"connection"``, ``"401"``…)
        before each retry; the sweep uses it to shrink its concurrency when CXone throttles.
    :param attempt_gate: a context manager factory entered around every API attempt (not around the
        backoff sleeps between them); the sweep passes its limiter's slot.
    :param answer_listener: called with the status of every answer to a gated attempt; the sweep's
        limiter measures CXone's rate limit from them.
    :param stop: once set, no further attempt is sent and no backoff waited out; the call raises
        :class:`~cxone_provider.exceptions.CxoneStopped` (the sweep's ``on_kill`` sets it).
    """

    conn_name_attr = "cxone_conn_id"
    default_conn_name = "cxone_default"
    conn_type = "cxone"
    hook_name = "NICE CXone"

    def __init__(
        self,
        cxone_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 6,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        pool_size: int = 10,
        retry_listener: Callable[[str], None] | None = None,
        attempt_gate: Callable[[], AbstractContextManager[object]] | None = None,
        stop: threading.Event | None = None,
        answer_listener: Callable[[int | None], None] | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        super().__init__()
        self.cxone_conn_id = cxone_conn_id
        # Every other argument says how calls are retried and paced: the transport's options.
        self.options = TransportOptions(
            max_attempts=max_attempts,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            pool_size=pool_size,
            retry_listener=retry_listener,
            attempt_gate=attempt_gate,
            answer_listener=answer_listener,
            stop=stop,
            max_wait_s=max_wait_s,
        )

    # --- connection and client ---------------------------------------------------------------------

    @cached_property
    def settings(self) -> CxoneSettings:
        return CxoneSettings.from_connection(self.get_connection(self.cxone_conn_id))

    @cached_property
    def client(self) -> CxoneClient:
        return CxoneClient(self.settings, _metered(self.options), log=self.log)

    @property
    def session(self) -> requests.Session:
        return self.client.transport.session

    def get_conn(self) -> requests.Session:
        return self.session

    @asynccontextmanager
    async def async_client(self) -> AsyncIterator[AsyncCxoneClient]:
        """The same client on ``httpx``, for a trigger: the connection read without blocking the event
        loop, and one client (one token, one pool) shared by the loop's users of this connection and
        these options (:func:`~cxone_provider.client.async_api.shared_async_client`).

        :raises CxoneConfigError: the connection is unusable (the message names the field).
        :raises AirflowNotFoundException: there is no such connection.
        """
        conn = await aget_connection(self.cxone_conn_id)
        # Reading the extras registers secrets with the masker, which talks to the supervisor synchronously.
        settings = await asyncio.to_thread(CxoneSettings.from_connection, conn)
        async with shared_async_client(settings, self.options, log=self.log) as client:
            yield client

    def close(self) -> None:
        """Close the pooled HTTP connections (the token stays cached until the hook is dropped)."""
        if "client" in self.__dict__:
            self.client.close()

    def __enter__(self) -> CxoneHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def access_token(self) -> str:
        """A valid access token, requesting a new one when the cached one is close to expiry."""
        return self.client.auth.access_token()

    @property
    def api_base_url(self) -> str:
        """The Agent API base: the connection's ``api_base_url`` or the one CXone's discovery gives."""
        return self.client.auth.api_base_url

    @property
    def token_requests(self) -> int:
        """How many token requests this hook has made."""
        return self.client.auth.token_requests if "client" in self.__dict__ else 0

    def redact(self, text: str) -> str:
        """``text`` with every credential this hook has seen replaced by ``***``."""
        return self.client.secrets.redact(text)

    @property
    def tenant(self) -> str | None:
        """The tenant this connection acts on: its ``tenant_id`` extra, else the id_token's ``tenantId``
        (once a token was issued), else ``None``. Not a secret; never requests a token."""
        return self.client.auth.tenant_id if "client" in self.__dict__ else self.settings.tenant_id

    def _call(self, call: str, action: str, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """One Agent API call, retried by ``call``'s entry of :data:`RETRY_POLICY`, timed as ``cxone.api.<call>``."""
        return self._request(call, action, method, path, params, retry_when=RETRY_POLICY[call]).body

    def _request(
        self, call: str, action: str, method: str, path: str, params: Mapping[str, Any] | None, *, retry_when: RetryWhen
    ) -> ApiResponse:
        with api_call_timer(call):
            return self.client.request(action, method, path, params=params, retry_when=retry_when)

    # --- the Agent API ------------------------------------------------------------------------------

    def get_agent(self, agent_id: int) -> dict[str, Any]:
        """``GET agents/{agentId}``: the agent's record (``agentId``, ``isActive``, names, team...)."""
        segment = path_segment("get_agent", "agent_id", int(agent_id))
        body = self._call("get_agent", f"get agent {agent_id}", "GET", f"agents/{segment}")
        agents = body.get("agents") if isinstance(body, Mapping) else None
        if not isinstance(agents, list) or not agents or not isinstance(agents[0], Mapping):
            raise CxoneApiError(ApiResponse(status_code=200, message="answer holds no agent"), f"get agent {agent_id}")
        return dict(agents[0])

    def get_agent_states(self, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """``GET agents/states``: every agent's state row, following the answer's ``_links.next`` pages.

        Rows carry CXone's published fields (``agentId``, ``agentStateName``, ``teamId``…); the sandbox
        adds ``sessionId``, which a tenant's rows may not carry.
        """
        with api_call_timer("agent_states"):
            return self.client.agent_states(page_size=page_size)

    def start_agent_session(self, *, as_agent_id: int, station_id: str) -> str:
        """``POST agent-sessions``: log ``as_agent_id`` in at ``station_id``; returns the new session id."""
        body = self._call(
            "start_session",
            f"start a session for agent {as_agent_id}",
            "POST",
            "agent-sessions",
            {"stationId": station_id, "asAgentId": int(as_agent_id)},
        )
        session_id = body.get("sessionId") if isinstance(body, Mapping) else None
        if not session_id:
            answer = ApiResponse(status_code=200, message="answer holds no sessionId")
            raise CxoneApiError(answer, f"start a session for agent {as_agent_id}")
        return str(session_id)

    def end_agent_session(self, session_id: str, *, force_logoff: bool = False) -> None:
        """``DELETE agent-sessions/{sessionId}``: end the session.

        :raises UnsafePathIdError: ``session_id`` would change the path (``.``, ``..``, ``a/b``…); nothing is sent.
        """
        segment = path_segment("end_agent_session", "session_id", session_id)
        self._call(
            "end_session",
            f"end session {session_id!r}",
            "DELETE",
            f"agent-sessions/{segment}",
            {"forceLogoff": str(force_logoff).lower()},
        )

    def supervise(self, session_id: str, action: str, *, target_agent_id: int | None = None) -> None:
        """``POST agent-sessions/{sessionId}/{action}``: monitor, coach, barge or take over.

        ``session_id`` is the supervisor's own session. ``monitor`` names the agent to monitor
        (``targetAgentId``); the published ``coach``, ``barge`` and ``take-over`` declare no parameter
        and act on the agent being monitored, so ``target_agent_id`` is sent only when given.
        Never repeated once CXone may have acted (see :data:`RETRY_POLICY`).

        :raises UnsafePathIdError: ``session_id`` would change the path (``.``, ``..``, ``a/b``…); nothing is sent.
        """
        if action not in SUPERVISE_ACTIONS:
            raise ValueError(f"action {action!r} is not one of {', '.join(SUPERVISE_ACTIONS)}")
        segment = path_segment(action.replace("-", "_"), "session_id", session_id)
        params = None if target_agent_id is None else {"targetAgentId": int(target_agent_id)}
        whom = f"agent {target_agent_id}" if target_agent_id is not None else "the monitored agent"
        self._call(
            "supervise",
            f"{action} {whom} from session {session_id!r}",
            "POST",
            f"agent-sessions/{segment}/{action}",
            params,
        )

    def monitor(self, session_id: str, *, target_agent_id: int) -> None:
        self.supervise(session_id, "monitor", target_agent_id=target_agent_id)

    def coach(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "coach", target_agent_id=target_agent_id)

    def barge(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "barge", target_agent_id=target_agent_id)

    def take_over(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "take-over", target_agent_id=target_agent_id)

    def join_session(self, session_id: str | None, *, as_agent_id: int) -> ApiResponse:
        """``POST agent-sessions/join``: join as ``as_agent_id``; CXone's 2xx answer.

        ``session_id`` is the session expected (sent beside ``asAgentId``), or ``None`` to join the
        agent's live session, whichever it is (the published request: ``asAgentId`` only). Send checked
        inputs (:func:`~cxone_provider.domain.inputs.check_session_id`); what the answer means is
        :func:`~cxone_provider.domain.classification.join_outcome`'s to say.
        """
        params: dict[str, Any] = {"asAgentId": int(as_agent_id)}
        if session_id is not None:
            params[JOIN_SESSION_PARAM] = session_id
        what = f"session {session_id!r}" if session_id is not None else "the live session"
        return self._request(
            "join", f"join {what} as agent {as_agent_id}", "POST", JOIN_PATH, params, retry_when=RETRY_POLICY["join"]
        )

    def get_next_event(self, session_id: str, *, timeout: int = 30) -> SessionEvents:
        """``GET agent-sessions/{sessionId}/get-next-event?timeout=N``: the session's next events.

        CXone holds the poll up to ``timeout`` seconds (0 to 60) and answers 200 with events, 304 with
        none, or 409 once the session has ended. An answer names the session id the next poll must
        use (:attr:`SessionEvents.next_session_id`); polling is also what keeps a joined session alive.
        """
        with api_call_timer("get_next_event"):
            return self.client.next_event(session_id, timeout)

    def probe_agent(self, agent_id: int) -> ApiResponse | CxoneApiError | CxoneAuthError:
        """``GET agents/{agentId}`` once, read-only, as evidence: CXone's answer or the error, never raised.

        Tells an ambiguous 404 to a join apart (:func:`~cxone_provider.domain.classification.probe_verdict`): the
        route, the agent or the session. Retried as any read of an agent is (429, 503, no answer).
        """
        try:
            return self._request(
                "probe_agent",
                f"check agent {agent_id}",
                "GET",
                f"agents/{int(agent_id)}",
                None,
                retry_when=RETRY_POLICY["get_agent"],
            )
        except (CxoneApiError, CxoneAuthError) as error:
            return error

    @property
    def token_holder_agent_id(self) -> int | None:
        """The access key user's own agent (the id_token's ``icAgentId``); ``None`` before a token or
        when the id_token names none. Never requests a token."""
        return self.client.auth.token_holder_agent_id if "client" in self.__dict__ else None

    @property
    def condition_rules(self) -> tuple[ConditionRule, ...]:
        """The connection's ``condition_rules`` extra, parsed (a bad one raised ``CxoneConfigError``)."""
        return self.settings.condition_rules

    # --- the Airflow UI's Test button -------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Request a token, find the API host and list agent states: the three things every task does."""
        try:
            self.access_token()
            base = self.api_base_url
            states = self.get_agent_states()
        except Exception as exc:
            return False, self.redact(str(exc)) if "client" in self.__dict__ else str(exc)
        return True, f"Connected to {base}: token issued, {len(states)} agent state(s) visible"


def _metered(options: TransportOptions) -> TransportOptions:
    """``options`` whose listeners also count retries and 429s (:mod:`cxone_provider.metrics`).

    Only the sync face is metered: the async face's options key the client the triggerer's loop
    shares, and listeners made per hook would stop that sharing.
    """
    retry_listener, answer_listener = options.retry_listener, options.answer_listener

    def on_retry(reason: str) -> None:
        count_retry(reason)
        if retry_listener is not None:
            retry_listener(reason)

    def on_answer(status: int | None) -> None:
        count_answer(status)
        if answer_listener is not None:
            answer_listener(status)

    return dataclasses.replace(options, retry_listener=on_retry, answer_listener=on_answer)


def async_hook_params(hook_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of an operator's ``hook_params`` a trigger keeps (:data:`ASYNC_HOOK_PARAMS`), numbers only:
    it is serialized into the metadata DB and rebuilt in the triggerer, so nothing else may travel."""
    kept = {}
    for name in ASYNC_HOOK_PARAMS:
        value = (hook_params or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            kept[name] = value
    return kept
