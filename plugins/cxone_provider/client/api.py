"""The sync face: settings, transport and auth together, the one ``request()`` and the paged calls.

``request()`` sends an Agent API call with the connection's token to the discovered (or configured)
API base, retries it as its policy allows, renews the token once on a 401, and either returns a 2xx
answer it could read or raises :class:`~cxone_provider.exceptions.CxoneApiError` — for an error answer
and for no answer alike. It knows the API's shape, not what any call means.
:class:`~cxone_provider.client.async_api.AsyncCxoneClient` is the same client on ``httpx``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cxone_provider.client.auth import Auth
from cxone_provider.client.core import api_request, checked
from cxone_provider.client.events import event_poll, events_of_answer, events_of_error
from cxone_provider.client.pages import ACTION, StatePages
from cxone_provider.client.policy import RETRY_POLICY, RetryWhen, TransportOptions, after_renewal, needs_renewal
from cxone_provider.client.secrets import Secrets
from cxone_provider.client.transport import Transport
from cxone_provider.exceptions import CxoneApiError

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    from cxone_provider.client.core import HttpRequest
    from cxone_provider.client.events import SessionEvents
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


def connection_secrets(settings: CxoneSettings) -> Secrets:
    """The connection's secrets, registered with the masker: both faces start from these."""
    secrets = Secrets()
    secrets.remember(settings.access_key_secret)
    secrets.remember(settings.client_secret)
    # The app's credentials travel as HTTP Basic: an echoing server sends their base64 back.
    secrets.remember_basic_auth(settings.client_id, settings.client_secret)
    return secrets


class CxoneClient:
    """Authenticated, retried access to one connection's Agent API; safe to share between threads."""

    def __init__(self, settings: CxoneSettings, options: TransportOptions, *, log: logging.Logger | Any) -> None:
        self.settings, self.options, self.secrets = settings, options, connection_secrets(settings)
        self.transport = Transport(settings, self.secrets, log, options)
        self.auth = Auth(settings, self.transport, failure_memory_s=options.backoff_max_s)

    def request(
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
        """Call the Agent API at ``path`` (relative to the API base, or an absolute URL under it).

        :param action: what the call does, for the error message ("get agent 1001").
        :param retry_when: the call's entry of :data:`~cxone_provider.client.policy.RETRY_POLICY`.
        :param wait_s: how long CXone may hold the answer on purpose (a long poll): added to the read
            timeout, which otherwise bounds every wait for an answer.
        :raises CxoneApiError: an error answer, a 2xx whose body could not be read, or no answer.
        :raises CxoneAuthError: no token; :raises CxoneConfigError: the connection is unusable.
        """
        base = self.auth.api_base_url
        build = api_request(
            base, method, path, self.transport.timeout, wait_s=wait_s, params=params, json_body=json_body
        )
        started = time.monotonic()
        sent: list[str] = []

        def attempt() -> HttpRequest:
            sent.append(self.auth.access_token())
            return build(sent[-1])

        response = self.transport.send(retry_when, attempt, gated=True)
        if needs_renewal(response, self.options.retry_listener):
            self.auth.renew_token(stale=sent[-1])
            response = after_renewal(response, self.transport.send(retry_when, attempt, gated=True))
        return checked(response, action, started)

    def agent_states(self, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every agent's state row, following ``_links.next`` (see :mod:`~cxone_provider.client.pages`)."""
        pages = StatePages(self.auth.api_base_url, page_size, self.transport)
        while pages.next is not None:
            path, params = pages.next
            pages.take(self.request(ACTION, "GET", path, params=params, retry_when=RETRY_POLICY["agent_states"]).body)
        return pages.rows

    def next_event(self, session_id: str, timeout: int) -> SessionEvents:
        """One ``get-next-event`` poll (:mod:`~cxone_provider.client.events`)."""
        action, path, params = event_poll(session_id, timeout)
        try:
            answer = self.request(
                action, "GET", path, params=params, retry_when=RETRY_POLICY["get_next_event"], wait_s=timeout
            )
        except CxoneApiError as error:
            return events_of_error(session_id, error)
        return events_of_answer(session_id, answer.body)

    def close(self) -> None:
        self.transport.close()
