"""The async face: :class:`AsyncCxoneClient`, the sync client's twin on ``httpx`` for the triggerer.

Built from the same :class:`~cxone_provider.client.settings.CxoneSettings` and
:class:`~cxone_provider.client.policy.TransportOptions` as :class:`~cxone_provider.client.api.CxoneClient`,
it sends the same requests with the same retry policy, reads answers the same bounded and redacted
way, renews the token once on a 401 and pages ``agents/states`` by the same rules: each of those is
written once, in the modules the two faces share. Secrets are registered with Airflow's masker from a
worker thread (the masker talks to the supervisor synchronously); nothing else leaves the event loop.

:func:`shared_async_client` lends the triggers of one event loop one client per connection and
options: one token and one HTTP pool for hundreds of waits.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from cxone_provider.client.api import connection_secrets
from cxone_provider.client.async_transport import AsyncTransport
from cxone_provider.client.auth import AuthRules
from cxone_provider.client.core import api_request, checked
from cxone_provider.client.events import event_poll, events_of_answer, events_of_error
from cxone_provider.client.pages import ACTION, StatePages
from cxone_provider.client.policy import RETRY_POLICY, RetryWhen, TransportOptions, after_renewal, needs_renewal
from cxone_provider.exceptions import CxoneApiError, CxoneDiscoveryError

if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncIterator, Mapping

    from cxone_provider.client.auth import _Token
    from cxone_provider.client.core import HttpRequest
    from cxone_provider.client.events import SessionEvents
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


class AsyncAuth(AuthRules):
    """The async face's token and API base URL; single-flight across the tasks of one event loop."""

    def __init__(self, settings: CxoneSettings, transport: AsyncTransport, *, failure_memory_s: float) -> None:
        super().__init__(settings, transport, failure_memory_s=failure_memory_s)
        self.transport = transport
        self._token_lock = asyncio.Lock()
        self._discovery_lock = asyncio.Lock()

    async def access_token(self) -> str:
        """A valid access token, requesting a new one when the cached one is close to expiry."""
        token = self._valid_token() or await self.renew_token(stale=self._stale())
        return token.access_token

    async def renew_token(self, stale: str | None) -> _Token:
        async with self._token_lock:
            current = self._reusable(stale)
            if current is not None:
                return current
            self.token_requests += 1
            response = await self.transport.send(RETRY_POLICY["token"], self._token_request)
            token, credentials = self._read_token(response)
            await asyncio.to_thread(self._remember, credentials)
            return self._keep(token)

    async def api_base_url(self) -> str:
        """The Agent API base: the connection's ``api_base_url`` or the one CXone's discovery gives."""
        if self._api_base is None:
            async with self._discovery_lock:  # concurrent first calls discover once
                if self._api_base is None:
                    self._remembered_discovery_failure()
                    try:
                        self._api_base = self.settings.api_base_url or await self._discover_api_base()
                    except CxoneDiscoveryError as failure:
                        self._discovery_failed(failure)
                        raise
        return self._api_base

    async def _discover_api_base(self) -> str:
        if not self.settings.tenant_id:
            await self.access_token()
        tenant_id = self._tenant_id()
        response = await self.transport.send(RETRY_POLICY["discovery"], lambda: self._discovery_request(tenant_id))
        return self._read_discovery(response, tenant_id)


class AsyncCxoneClient:
    """Authenticated, retried access to one connection's Agent API from one event loop.

    Make it with :meth:`open` (a worker thread registers the secrets and loads the CA bundle) and
    close it with :meth:`aclose`.
    """

    def __init__(self, settings: CxoneSettings, options: TransportOptions, *, log: logging.Logger | Any) -> None:
        self.settings, self.options, self.secrets = settings, options, connection_secrets(settings)
        self.transport = AsyncTransport(settings, self.secrets, log, options)
        self.auth = AsyncAuth(settings, self.transport, failure_memory_s=options.backoff_max_s)

    @classmethod
    async def open(
        cls, settings: CxoneSettings, options: TransportOptions, *, log: logging.Logger | Any
    ) -> AsyncCxoneClient:
        return await asyncio.to_thread(lambda: cls(settings, options, log=log))

    async def aclose(self) -> None:
        await self.transport.aclose()

    def redact(self, text: str) -> str:
        return self.secrets.redact(text)

    async def request(
        self,
        action: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry_when: RetryWhen = RetryWhen.ANY_FAILURE,
        wait_s: float = 0.0,
    ) -> ApiResponse:
        """:meth:`CxoneClient.request <cxone_provider.client.api.CxoneClient.request>`, awaited."""
        base = await self.auth.api_base_url()
        build = api_request(
            base, method, path, self.transport.timeout, wait_s=wait_s, params=params, json_body=json_body
        )
        started = time.monotonic()
        sent: list[str] = []

        async def attempt() -> HttpRequest:
            sent.append(await self.auth.access_token())
            return build(sent[-1])

        response = await self.transport.send(retry_when, attempt)
        if needs_renewal(response, self.options.retry_listener):
            await self.auth.renew_token(stale=sent[-1])
            response = after_renewal(response, await self.transport.send(retry_when, attempt))
        return checked(response, action, started)

    async def agent_states(self, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every agent's state row, following ``_links.next``, as the sync client's."""
        pages = StatePages(await self.auth.api_base_url(), page_size, self.transport)
        while pages.next is not None:
            path, params = pages.next
            answer = await self.request(ACTION, "GET", path, params=params, retry_when=RETRY_POLICY["agent_states"])
            pages.take(answer.body)
        return pages.rows

    async def next_event(self, session_id: str, timeout: int) -> SessionEvents:
        """One ``get-next-event`` poll, as the sync client's."""
        action, path, params = event_poll(session_id, timeout)
        try:
            answer = await self.request(
                action, "GET", path, params=params, retry_when=RETRY_POLICY["get_next_event"], wait_s=timeout
            )
        except CxoneApiError as error:
            return events_of_error(session_id, error)
        return events_of_answer(session_id, answer.body)


class _Lease:
    def __init__(self, client: AsyncCxoneClient) -> None:
        self.client = client
        self.users = 0


class _LoopClients:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.leases: dict[tuple[str, TransportOptions], _Lease] = {}


# Per event loop: asyncio locks and httpx pools belong to the loop they were made in (``dag.test()``
# runs each trigger in a loop of its own; the triggerer runs them all in one).
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_async_client(
    settings: CxoneSettings, options: TransportOptions, *, log: logging.Logger | Any
) -> AsyncIterator[AsyncCxoneClient]:
    """The event loop's client for this connection and these options, lent for the ``async with``.

    A connection whose fields changed (a rotated key) gets a new client; the last user of a client
    closes its pool.
    """
    loop_clients = _LOOPS.setdefault(asyncio.get_running_loop(), _LoopClients())
    key = (settings.conn_id, options)
    async with loop_clients.lock:
        lease = loop_clients.leases.get(key)
        if lease is None or lease.client.settings != settings:
            lease = _Lease(await AsyncCxoneClient.open(settings, options, log=log))
            loop_clients.leases[key] = lease
        lease.users += 1
    try:
        yield lease.client
    finally:
        async with loop_clients.lock:
            lease.users -= 1
            last = lease.users == 0
            if last and loop_clients.leases.get(key) is lease:
                del loop_clients.leases[key]
        if last:
            await lease.client.aclose()
