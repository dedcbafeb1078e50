"""The sync face's transport: one pooled ``requests`` session, bounded reading, the per-call retries.

The bottom layer of the sync client: it sends a :class:`~cxone_provider.client.core.HttpRequest` with
the retry rules of :mod:`~cxone_provider.client.policy` and reads its answer with
:mod:`~cxone_provider.client.answers`; it knows nothing of tokens, of the Agent API's paths or of Studio.
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions as urllib3_exceptions
from requests.adapters import HTTPAdapter
from tenacity import Retrying

from cxone_provider.client.answers import (
    BASE_HEADERS,
    body_limit,
    is_redirect,
    redirect_answer,
    still_arriving,
)
from cxone_provider.client.core import TransportBase
from cxone_provider.exceptions import CxoneStopped

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from cxone_provider.client.core import HttpRequest
    from cxone_provider.client.policy import RetryWhen, TransportOptions
    from cxone_provider.client.secrets import Secrets
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


class Transport(TransportBase):
    """Sends requests over one pooled session and reads their answers, retrying as the call allows."""

    def __init__(
        self, settings: CxoneSettings, secrets: Secrets, log: logging.Logger | Any, options: TransportOptions
    ) -> None:
        super().__init__(settings, secrets, log, options)
        self.attempt_gate = options.attempt_gate or nullcontext
        self.answer_listener = options.answer_listener
        self.stop = options.stop or threading.Event()
        self.session = _EnvironmentOnceSession()
        # Retries are ours (tenacity): urllib3 must not retry behind our back and skew counts.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(options.pool_size, 1), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = settings.verify_ssl
        self.session.headers.update(BASE_HEADERS)

    def close(self) -> None:
        self.session.close()

    def send(self, retry_when: RetryWhen, request: Callable[[], HttpRequest], *, gated: bool = False) -> ApiResponse:
        """Send with ``retry_when``'s retries; the final answer, or ``status_code=None`` when none came.

        ``request`` is asked for each attempt (the token may have been renewed meanwhile). ``gated``
        calls enter the ``attempt_gate`` around each attempt (not around the backoff sleeps).
        """
        retries = self.retries(retry_when)
        # Token and discovery calls happen inside an API attempt's slot: gating them too would deadlock.
        gate = self.attempt_gate if gated else nullcontext

        def one_attempt() -> ApiResponse:
            if self.stop.is_set():
                raise CxoneStopped("stopped before the request was sent")
            retries.attempts += 1
            with gate():
                response = self._read(self._send(request()))
            if gated and self.answer_listener is not None:
                self.answer_listener(response.status_code)
            return response

        try:
            response: ApiResponse = Retrying(sleep=self._sleep, **retries.arguments(self.backoff))(one_attempt)
        except (requests.ConnectionError, requests.Timeout) as exc:
            response = retries.no_answer_response(exc, self.secrets.redact)
        return retries.finish(response)

    def _send(self, request: HttpRequest) -> requests.Response:
        return self.session.request(
            request.method,
            request.url,
            params=request.params,
            json=request.json_body,
            data=request.form,
            headers=request.headers,
            timeout=request.timeout,
            stream=True,
            allow_redirects=False,  # a redirect would re-send the credentials to wherever it points
        )

    def no_answer(self, error: BaseException) -> bool:
        return isinstance(error, requests.ConnectionError | requests.Timeout)

    def not_received(self, error: BaseException) -> bool:
        """A failure before the request could reach CXone: the connection was refused or never opened.

        ``requests`` reports a refused connection as a ``ConnectionError`` whose reason is urllib3's
        ``NewConnectionError``; a connection lost mid-answer carries another reason and is not retried.
        """
        if isinstance(error, requests.ConnectTimeout):
            return True
        if not isinstance(error, requests.ConnectionError):
            return False
        reason = error.args[0] if error.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, urllib3_exceptions.NewConnectionError)

    def is_timeout(self, error: BaseException) -> bool:
        return isinstance(error, requests.Timeout)

    def _sleep(self, seconds: float) -> None:
        """Wait out a backoff, unless told to stop meanwhile."""
        if self.stop.wait(seconds):
            raise CxoneStopped("stopped while waiting to retry")

    def _read(self, response: requests.Response) -> ApiResponse:
        """Turn a streamed response into an :class:`ApiResponse`, reading a bounded body in bounded time.

        The read timeout of ``requests`` bounds each socket read, so a body that trickles in a byte at
        a time would never time out; here ``read_timeout`` also bounds the whole body, and more than
        :func:`~cxone_provider.client.answers.body_limit` is not read at all.
        """
        if is_redirect(response.status_code):
            response.close()
            return redirect_answer(
                response.status_code, response.url or "", response.headers.get("Location"), self.secrets.redact
            )
        deadline = time.monotonic() + self.settings.read_timeout
        limit = body_limit(response.status_code)
        raw = bytearray()
        complete = False
        try:
            while len(raw) <= limit:
                # read1 returns what has arrived (blocking only for the first byte), so the deadline
                # is checked between trickles.
                chunk = response.raw.read1(16 * 1024, decode_content=True)
                if not chunk:
                    complete = True
                    break
                raw += chunk
                if time.monotonic() > deadline:
                    raise requests.ReadTimeout(still_arriving(self.settings.read_timeout, len(raw)))
        except urllib3_exceptions.HTTPError as broken:
            # A connection dropped mid-body surfaces from urllib3 directly when reading raw.
            response.close()
            raise requests.ConnectionError(broken) from None
        finally:
            if complete:
                response.raw.release_conn()  # the connection is reusable: back to the pool
            else:
                response.close()
        status, reason = response.status_code, response.reason or ""
        return self.answer(bytes(raw), complete, limit, status, reason, response.headers, response.encoding)


class _EnvironmentOnceSession(requests.Session):
    """A session that follows no redirect and reads proxy and CA-bundle settings once per host.

    ``requests`` scans every environment variable on every request to find proxies; at sweep rates
    that scan costs more CPU than the rest of our request handling, and the environment of a running
    task does not change.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment_settings: dict[tuple[Any, ...], dict[str, Any]] = {}

    def get_redirect_target(self, resp: requests.Response) -> None:
        """No redirect is ever followed, nor its body read.

        ``allow_redirects=False`` alone is not enough: ``requests`` still reads a redirect's whole body
        to prepare the next request, however large or slow it is.
        """
        return None

    def merge_environment_settings(  # type: ignore[override]  # the stub's TypedDict is private
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if verify is None and self.verify is not True:
            # The connection's CA bundle (or verification off) wins: ``requests`` would otherwise let
            # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment replace it on every request.
            verify = self.verify
        if proxies:  # per-request proxies are never cached
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        target = urlsplit(url if isinstance(url, str) else (url or b"").decode())
        key = (target.scheme, target.netloc, stream, verify, repr(cert))
        settings = self._environment_settings.get(key)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            self._environment_settings[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}
