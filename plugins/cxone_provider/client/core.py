"""The core both faces of the client share: what a request is, and what every transport knows.

A :class:`HttpRequest` is built once (URL, params, body, the ``Authorization`` header) and sent by
either face: :class:`~cxone_provider.client.transport.Transport` over ``requests``, or
:class:`~cxone_provider.client.async_transport.AsyncTransport` over ``httpx``. :class:`TransportBase`
holds what they have in common: settings, secrets, options, the retry bookkeeping and the notes
logged once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.client.answers import MAX_MESSAGE_CHARS, read_answer
from cxone_provider.client.policy import Backoff, CallRetries, RetryWhen, TransportOptions
from cxone_provider.client.secrets import basic_credentials
from cxone_provider.exceptions import CxoneApiError

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

    from cxone_provider.client.secrets import Secrets
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.response import ApiResponse


@dataclass(frozen=True)
class HttpRequest:
    """One request as either face sends it: never followed on a redirect, its answer streamed."""

    method: str
    url: str
    timeout: tuple[float, float]  # (connect, read)
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    # Never in a repr: the token request's form carries the access key secret.
    form: Mapping[str, str] | None = field(default=None, repr=False)
    authorization: str = field(default="", repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}


def bearer(token: str) -> str:
    return f"Bearer {token}"


def basic(user: str, password: str) -> str:
    return f"Basic {basic_credentials(user, password)}"


def api_request(
    base: str,
    method: str,
    path: str,
    timeout: tuple[float, float],
    wait_s: float,
    params: Mapping[str, Any] | None,
    json_body: Any,
) -> Callable[[str], HttpRequest]:
    """An Agent API call at ``path`` (relative to ``base``, or an absolute URL under it), awaiting its
    token; ``wait_s`` (a long poll's hold) is added to the read timeout."""
    url = path if path.startswith(base) else base + path.lstrip("/")
    connect_timeout, read_timeout = timeout
    timeouts = (connect_timeout, read_timeout + max(0.0, wait_s))
    return lambda token: HttpRequest(
        method, url, timeouts, params=params, json_body=json_body, authorization=bearer(token)
    )


def checked(response: ApiResponse, action: str, started: float) -> ApiResponse:
    """A 2xx answer that could be read; else :class:`CxoneApiError` (an error answer, or none)."""
    response.elapsed_s = time.monotonic() - started
    if not response.ok or response.unreadable:
        raise CxoneApiError(response, action)
    return response


class TransportBase:
    """What both faces' transports share: settings, secrets, options and the notes logged once.

    :param settings: the connection's settings (timeouts, TLS verification).
    :param secrets: what to redact from every message.
    :param log: where retries are logged (the hook's task log, the trigger's log).
    :param options: attempts, backoff, pool size and the pacing collaborators.
    """

    def __init__(
        self, settings: CxoneSettings, secrets: Secrets, log: logging.Logger | Any, options: TransportOptions
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.log = log
        self.options = options
        self.max_attempts = options.max_attempts
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        self.backoff = Backoff(options)
        self._ignored: set[str] = set()
        if settings.verify_ssl is False:
            log.warning(
                "Connection %r: TLS certificate verification is off; tokens and the access key secret "
                "go to a server whose identity is not checked (give verify_ssl a CA bundle path instead)",
                settings.conn_id,
            )

    def retries(self, retry_when: RetryWhen) -> CallRetries:
        """One call's retry bookkeeping, with this face's tests of its library's errors."""
        return CallRetries(
            self.options,
            retry_when,
            self.log,
            no_answer=self.no_answer,
            not_received=self.not_received,
            is_timeout=self.is_timeout,
        )

    # Each face names its library's errors.
    def no_answer(self, error: BaseException) -> bool:
        raise NotImplementedError

    def not_received(self, error: BaseException) -> bool:
        raise NotImplementedError

    def is_timeout(self, error: BaseException) -> bool:
        raise NotImplementedError

    def note_ignored(self, name: str, value: object, instead: str) -> None:
        """Log, once per client and name, that a server's ``value`` for ``name`` was not usable."""
        if name in self._ignored:
            return
        self._ignored.add(name)
        self.log.warning("CXone sent %s %.80r, which is not usable: %s (logged once)", name, value, instead)

    def answer(
        self,
        raw: bytes,
        complete: bool,
        limit: int,
        status: int,
        reason: str,
        headers: Mapping[str, str],
        encoding: str | None,
    ) -> ApiResponse:
        """The body read (``complete``: all of it, at most ``limit`` bytes) as an answer (:func:`read_answer`);
        a ``Retry-After`` that is not usable is logged once."""
        answer = read_answer(
            raw,
            complete,
            limit=limit,
            status=status,
            reason=reason,
            headers=headers,
            encoding=encoding,
            redact=self.secrets.redact,
        )
        value = headers.get("Retry-After")
        if value and answer.retry_after_s is None:
            self.note_ignored("Retry-After", value, "the call's own backoff decides")
        return answer

    def describe(self, exc: BaseException) -> str:
        return self.secrets.redact(f"{type(exc).__name__}: {exc}")[:MAX_MESSAGE_CHARS]
