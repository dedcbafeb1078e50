"""The client the hook stands on: settings, transport and auth together, and the one ``request()``.

``request()`` sends an Agent API call with the connection's token to the discovered (or configured)
API base, retries it as its policy allows, renews the token once on a 401, and either returns a 2xx
answer it could read or raises :class:`~cxone_provider.exceptions.CxoneApiError` — for an error answer
and for no answer alike. It knows the API's shape, not what any call means.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cxone_provider.client.auth import Auth
from cxone_provider.client.transport import RetryWhen, Secrets, Transport, TransportOptions
from cxone_provider.exceptions import CxoneApiError

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    import requests

    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


class CxoneClient:
    """Authenticated, retried access to one connection's Agent API; safe to share between threads."""

    def __init__(self, settings: CxoneSettings, options: TransportOptions, *, log: logging.Logger | Any) -> None:
        self.settings = settings
        self.secrets = Secrets()
        self.secrets.remember(settings.access_key_secret)
        self.secrets.remember(settings.client_secret)
        # The app's credentials travel as HTTP Basic: an echoing server sends their base64 back.
        self.secrets.remember_basic_auth(settings.client_id, settings.client_secret)
        self.retry_listener = options.retry_listener
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
        :param retry_when: the call's entry of :data:`~cxone_provider.client.transport.RETRY_POLICY`.
        :param wait_s: how long CXone may hold the answer on purpose (a long poll): added to the read
            timeout, which otherwise bounds every wait for an answer.
        :raises CxoneApiError: an error answer, a 2xx whose body could not be read, or no answer.
        :raises CxoneAuthError: no token; :raises CxoneConfigError: the connection is unusable.
        """
        base = self.auth.api_base_url
        url = path if path.startswith(base) else base + path.lstrip("/")
        started = time.monotonic()
        token_sent = ""
        connect_timeout, read_timeout = self.transport.timeout
        timeout = (connect_timeout, read_timeout + max(0.0, wait_s))

        def send() -> requests.Response:
            nonlocal token_sent
            token_sent = self.auth.access_token()
            return self.transport.session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {token_sent}"},
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )

        response = self.transport.send(retry_when, send, gated=True)
        if response.status_code == 401:
            # One renewal, one more try: the token may have been revoked or expired early.
            if self.retry_listener is not None:
                self.retry_listener("401")
            self.auth.renew_token(stale=token_sent)
            retried = self.transport.send(retry_when, send, gated=True)
            retried.attempts += response.attempts
            retried.retries = [*response.retries, "401", *retried.retries]
            response = retried
        response.elapsed_s = time.monotonic() - started
        if not response.ok or response.unreadable:
            raise CxoneApiError(response, action)
        return response

    def close(self) -> None:
        self.transport.close()
