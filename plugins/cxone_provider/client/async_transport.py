"""The async face's transport: one ``httpx.AsyncClient`` pool, bounded reading, the per-call retries.

The same rules as :class:`~cxone_provider.client.transport.Transport` (they live in
:mod:`~cxone_provider.client.policy`, :mod:`~cxone_provider.client.answers` and
:mod:`~cxone_provider.client.core`); only the library differs. The ``attempt_gate``, ``answer_listener``
and ``stop`` options are the sweep's and are not used here.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import AsyncRetrying

from cxone_provider.client.answers import (
    BASE_HEADERS,
    BoundedDecoder,
    body_limit,
    is_redirect,
    redirect_answer,
    still_arriving,
)
from cxone_provider.client.core import TransportBase

if TYPE_CHECKING:
    import logging
    from collections.abc import Awaitable, Callable

    from cxone_provider.client.core import HttpRequest
    from cxone_provider.client.policy import RetryWhen, TransportOptions
    from cxone_provider.client.secrets import Secrets
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


class AsyncTransport(TransportBase):
    """Sends requests over one ``httpx`` pool and reads their answers, retrying as the call allows.

    Made in a worker thread (loading a CA bundle reads files); used in one event loop.
    """

    def __init__(
        self, settings: CxoneSettings, secrets: Secrets, log: logging.Logger | Any, options: TransportOptions
    ) -> None:
        super().__init__(settings, secrets, log, options)
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=settings.verify_ssl)
            if isinstance(settings.verify_ssl, str)
            else settings.verify_ssl
        )
        self.http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            headers=dict(BASE_HEADERS),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(
        self, retry_when: RetryWhen, request: Callable[[], HttpRequest | Awaitable[HttpRequest]]
    ) -> ApiResponse:
        """Send with ``retry_when``'s retries; the final answer, or ``status_code=None`` when none came.

        ``request`` is asked for each attempt (it may await the token).
        """
        retries = self.retries(retry_when)

        async def one_attempt() -> ApiResponse:
            retries.attempts += 1
            built = request()
            response = await self._send(await built if inspect.isawaitable(built) else built)
            try:
                return await self._read(response)
            finally:
                await response.aclose()

        try:
            response: ApiResponse = await AsyncRetrying(**retries.arguments(self.backoff))(one_attempt)
        except httpx.TransportError as exc:
            response = retries.no_answer_response(exc, self.secrets.redact)
        return retries.finish(response)

    async def _send(self, request: HttpRequest) -> httpx.Response:
        connect, read = request.timeout
        built = self.http.build_request(
            request.method,
            request.url,
            params=request.params,
            json=request.json_body,
            data=request.form,
            headers=request.headers,
            timeout=httpx.Timeout(read, connect=connect),
        )
        return await self.http.send(built, stream=True)

    def no_answer(self, error: BaseException) -> bool:
        return isinstance(error, httpx.TransportError)

    def not_received(self, error: BaseException) -> bool:
        """A failure before the request could reach CXone: the connection was refused or never opened."""
        return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)

    def is_timeout(self, error: BaseException) -> bool:
        return isinstance(error, httpx.TimeoutException)

    async def _read(self, response: httpx.Response) -> ApiResponse:
        """The answer as an :class:`ApiResponse`: at most ``body_limit`` read, within ``read_timeout``."""
        status = response.status_code
        if is_redirect(status):
            return redirect_answer(status, str(response.url), response.headers.get("Location"), self.secrets.redact)
        limit = body_limit(status)
        raw = bytearray()
        complete = False
        try:
            # The read timeout bounds each read; this bounds the whole body (a trickle never ends otherwise).
            async with asyncio.timeout(self.settings.read_timeout):
                # Raw bytes, decoded here within the limit: httpx would inflate each chunk whole.
                decoder = BoundedDecoder(response.headers.get("Content-Encoding"))
                async for chunk in response.aiter_raw():
                    raw += decoder.decode(chunk, limit + 1 - len(raw))
                    if len(raw) > limit:
                        break
                else:
                    complete = True
        except TimeoutError:
            raise httpx.ReadTimeout(still_arriving(self.settings.read_timeout, len(raw))) from None
        except ValueError as undecodable:
            raise httpx.DecodingError(str(undecodable), request=response.request) from None
        status, reason = response.status_code, response.reason_phrase
        return self.answer(bytes(raw), complete, limit, status, reason, response.headers, response.encoding)
