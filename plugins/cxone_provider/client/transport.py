"""Transport: one pooled HTTP session, bounded reading of answers, and the per-call retry policy.

The bottom layer of the client: it knows HTTP and CXone's error shape, and nothing of tokens, of the
Agent API's paths or of Studio. Answers become :class:`ApiResponse` values; the layers above decide
what they mean.
"""

from __future__ import annotations

import base64
import html
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import requests
import urllib3.exceptions as urllib3_exceptions
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from cxone_provider.exceptions import CxoneStopped
from cxone_provider.response import STATUS_DESCRIPTION_HEADER, ApiResponse, error_name_and_message

if TYPE_CHECKING:
    import logging

    from cxone_provider.client.settings import CxoneSettings


class RetryWhen(Enum):
    """When a call may be sent again after a failed attempt."""

    #: 429, 503, connection errors and timeouts of any kind: the call changes nothing, or changing
    #: it twice is the same as once.
    ANY_FAILURE = "429, 503, connection errors, timeouts"
    #: 429, 503, a refused connection or a connect timeout only: never after a read timeout or a
    #: connection lost mid-answer, when CXone may already have acted.
    NOT_RECEIVED = "429, 503, connection refused, connect timeout"


#: The retry policy of every call, in one place (the README's retry table mirrors it).
RETRY_POLICY: Mapping[str, RetryWhen] = {
    "token": RetryWhen.ANY_FAILURE,  # a second token is harmless
    "discovery": RetryWhen.ANY_FAILURE,
    "get_agent": RetryWhen.ANY_FAILURE,
    "agent_states": RetryWhen.ANY_FAILURE,
    "join": RetryWhen.ANY_FAILURE,  # idempotent by contract: joining the same session again answers the same
    "start_session": RetryWhen.NOT_RECEIVED,  # a second start would end the first session
    "end_session": RetryWhen.NOT_RECEIVED,
    "supervise": RetryWhen.NOT_RECEIVED,  # monitor, coach, barge, take-over
    # A poll that CXone answered moves the session to a new id: a repeat would use a spent one.
    "get_next_event": RetryWhen.NOT_RECEIVED,
}

RETRYABLE_STATUS = frozenset({429, 503})
# Never wait longer than this on one Retry-After, whatever the server asks: a task must stay bounded.
MAX_RETRY_AFTER_S = 30.0
# A Retry-After further away than this (or negative, or not a finite number) is no advice: treated
# as missing, so the call's own backoff decides.
RETRY_AFTER_RANGE_S = 24 * 3600.0
#: The most one call waits in total between its attempts (backoffs and Retry-After), by default.
DEFAULT_MAX_WAIT_S = 60.0
# Error bodies are for messages; a proxy's multi-megabyte HTML page is not read past this.
MAX_BODY_BYTES = 64 * 1024
# A 2xx body is data: a page of 1,000 agent-state rows with CXone's published fields is ~600 KB.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_CHARS = 300
# icStatusDescription is a short sentence ("Invalid agent session Id."); a server may send anything.
MAX_STATUS_DESCRIPTION_CHARS = 200
USER_AGENT = "airflow-provider-cxone"


def secret_forms(value: str) -> list[str]:
    """``value`` in every form the provider sends it in, or a server that echoes it sends it back in.

    As is (a JSON body, a header); URL-encoded as a path or query part and form-encoded (``+`` for a
    space), each with upper- and lower-case hex (a proxy may normalise either way); HTML-escaped (an
    error page that quotes the request in its ``<title>``).
    """
    forms = [value]
    for encoded in (quote(value, safe=""), quote_plus(value)):
        forms += [encoded, _PERCENT_ESCAPE.sub(lambda hit: hit.group().lower(), encoded)]
    escaped = html.escape(value)
    forms += [escaped, escaped.replace("&#x27;", "&#39;"), html.escape(value, quote=False)]
    return list(dict.fromkeys(forms))


def basic_credentials(user: str, password: str) -> str:
    """The base64 of ``user:password`` as ``requests`` sends it in an HTTP Basic ``Authorization`` header."""
    pair = f"{user}:{password}"
    try:
        raw = pair.encode("latin-1")
    except UnicodeEncodeError:
        raw = pair.encode()
    return base64.b64encode(raw).decode("ascii")


_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


class Secrets:
    """The credentials one hook has seen: registered with Airflow's log masker, and cut out of texts.

    Each credential is registered in every form of :func:`secret_forms`, once: the connection's secrets
    when the hook's client is made, a token when it is issued. Airflow's masker recompiles its pattern
    for every new form, so nothing is registered per call.
    """

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._longest_first: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def remember(self, value: str | None) -> None:
        """Register a credential in all its forms (:func:`secret_forms`)."""
        if not value or value in self._known:
            return
        self._register(secret_forms(value))

    def remember_basic_auth(self, user: str, password: str) -> None:
        """Register the HTTP Basic pair ``user:password`` as the ``Authorization`` header carries it."""
        self.remember(basic_credentials(user, password))

    def _register(self, forms: list[str]) -> None:
        with self._lock:
            fresh = [form for form in forms if form not in self._known]
            if not fresh:
                return
            self._known.update(fresh)
            # Longest first: a form that holds a shorter one is cut out whole, not around it.
            self._longest_first = tuple(sorted(self._known, key=len, reverse=True))
        from airflow.sdk.log import mask_secret

        every_form: Any = fresh
        mask_secret(every_form)  # one message to the supervisor for all of them

    def redact(self, text: str) -> str:
        """``text`` with every credential seen replaced by ``***``."""
        for secret in self._longest_first:  # a snapshot: another thread may add a renewed token
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class TransportOptions:
    """How a hook's calls are retried and paced (the hook's keyword arguments; see there)."""

    max_attempts: int = 6
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 8.0
    pool_size: int = 10
    retry_listener: Callable[[str], None] | None = None
    attempt_gate: Callable[[], AbstractContextManager[object]] | None = None
    #: hears the status of every gated attempt's answer (``None``: no answer came)
    answer_listener: Callable[[int | None], None] | None = None
    #: set to stop: no further attempt is made and no backoff is waited out (the sweep's on_kill)
    stop: threading.Event | None = None
    #: the most one call waits in total between attempts; a retry whose wait would pass it is not made
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not (isinstance(self.max_wait_s, int | float) and math.isfinite(self.max_wait_s) and self.max_wait_s >= 0):
            raise ValueError(f"max_wait_s must be a finite number of seconds, 0 or more, got {self.max_wait_s!r}")


class wait_budget(stop_base):  # named like tenacity's own stop conditions
    """A tenacity stop condition: stop when the next wait would take the call's waits past ``max_wait_s``.

    Tenacity computes the wait before it asks the stop conditions, so ``upcoming_sleep`` is known;
    ``over`` hears the wait that was not made.
    """

    def __init__(self, max_wait_s: float, over: Callable[[float], None] | None = None) -> None:
        self.max_wait_s = max_wait_s
        self.over = over

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.idle_for + retry_state.upcoming_sleep <= self.max_wait_s:
            return False
        if self.over is not None:
            self.over(retry_state.upcoming_sleep)
        return True


class Transport:
    """Sends requests over one pooled session and reads their answers, retrying as the call allows.

    :param settings: the connection's settings (timeouts, TLS verification).
    :param secrets: what to redact from every message.
    :param log: where retries are logged (the hook's task log).
    :param options: attempts, backoff, pool size and the pacing collaborators.
    """

    def __init__(
        self, settings: CxoneSettings, secrets: Secrets, log: logging.Logger | Any, options: TransportOptions
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.log = log
        self.max_attempts = options.max_attempts
        self.backoff_initial_s = options.backoff_initial_s
        self.retry_listener = options.retry_listener
        self.attempt_gate = options.attempt_gate or nullcontext
        self.answer_listener = options.answer_listener
        self.stop = options.stop or threading.Event()
        self.max_wait_s = options.max_wait_s
        self._ignored: set[str] = set()
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        # Capped exponential backoff plus jitter, so that throttled workers do not retry in lockstep.
        self._backoff = wait_exponential(multiplier=options.backoff_initial_s, max=options.backoff_max_s) + wait_random(
            0, options.backoff_initial_s
        )
        self.session = _EnvironmentOnceSession()
        # Retries are ours (tenacity, below): urllib3 must not retry behind our back and skew counts.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(options.pool_size, 1), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = settings.verify_ssl
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        if settings.verify_ssl is False:
            log.warning(
                "Connection %r: TLS certificate verification is off; tokens and the access key secret "
                "go to a server whose identity is not checked (give verify_ssl a CA bundle path instead)",
                settings.conn_id,
            )

    def close(self) -> None:
        self.session.close()

    def send(self, retry_when: RetryWhen, send: Callable[[], requests.Response], *, gated: bool = False) -> ApiResponse:
        """Send with ``retry_when``'s retries; the final answer, or ``status_code=None`` when none came.

        ``gated`` calls enter the ``attempt_gate`` around each attempt (not around the backoff sleeps).
        """
        attempts = 0
        # Token and discovery calls happen inside an API attempt's slot: gating them too would deadlock.
        gate = self.attempt_gate if gated else nullcontext
        reasons: list[str] = []
        not_waited: list[float] = []

        def one_attempt() -> ApiResponse:
            nonlocal attempts
            if self.stop.is_set():
                raise CxoneStopped("stopped before the request was sent")
            attempts += 1
            with gate():
                response = self._read(send())
            if gated and self.answer_listener is not None:
                self.answer_listener(response.status_code)
            return response

        def before_sleep(state: RetryCallState) -> None:
            reason = _retry_reason(state)
            reasons.append(reason)
            self.log.info(
                "CXone call not answered (%s); retry %d of %d in %.2fs",
                reason,
                state.attempt_number,
                self.max_attempts - 1,
                state.upcoming_sleep,
            )
            if self.retry_listener is not None:
                self.retry_listener(reason)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | wait_budget(self.max_wait_s, not_waited.append),
            wait=self._wait,
            retry=(
                retry_if_result(lambda r: r.status_code in RETRYABLE_STATUS)
                | retry_if_exception(
                    _transport_failure if retry_when is RetryWhen.ANY_FAILURE else _not_received_by_cxone
                )
            ),
            before_sleep=before_sleep,
            sleep=self._sleep,
            # Out of attempts: hand back the last answer (a 429 or 503) or re-raise the last error.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response: ApiResponse = retrying(one_attempt)
        except (requests.ConnectionError, requests.Timeout) as exc:
            response = ApiResponse(
                status_code=None,
                error=type(exc).__name__,
                message=f"no answer from CXone after {plural(attempts, 'attempt')}: {self._describe(exc)}",
            )
        # Exhausted retries on 429/503 come back as the last answer; say so in the message.
        if response.status_code in RETRYABLE_STATUS and not_waited:
            response.message = f"{over_budget_message(attempts, not_waited[0], self.max_wait_s)}: {response.message}"
        elif response.status_code in RETRYABLE_STATUS and attempts >= self.max_attempts:
            response.message = f"gave up after {attempts} attempts: {response.message}"
        response.attempts = attempts
        response.retries = reasons
        return response

    def note_ignored(self, name: str, value: object, instead: str) -> None:
        """Log, once per hook and name, that a server's ``value`` for ``name`` was not usable."""
        if name in self._ignored:
            return
        self._ignored.add(name)
        self.log.warning("CXone sent %s %.80r, which is not usable: %s (logged once)", name, value, instead)

    def _sleep(self, seconds: float) -> None:
        """Wait out a backoff, unless told to stop meanwhile."""
        if self.stop.wait(seconds):
            raise CxoneStopped("stopped while waiting to retry")

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after_s
            if retry_after is not None:
                # A little jitter on top, so workers throttled together do not come back together.
                return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.backoff_initial_s)
        return float(backoff)

    def _read(self, response: requests.Response) -> ApiResponse:
        """Turn a streamed response into an :class:`ApiResponse`, reading a bounded body in bounded time.

        The read timeout of ``requests`` bounds each socket read, so a body that trickles in a byte at
        a time would never time out; here ``read_timeout`` also bounds the whole body, and more than
        ``MAX_BODY_BYTES`` is not read at all.
        """
        if 300 <= response.status_code < 400:
            # Not followed and not read: a redirect's body can be as large or as slow as its sender likes.
            response.close()
            return ApiResponse(
                status_code=response.status_code,
                error=f"HTTP {response.status_code}",
                message=self.secrets.redact(_describe_redirect(response))[:MAX_MESSAGE_CHARS],
            )
        deadline = time.monotonic() + self.settings.read_timeout
        limit = MAX_ANSWER_BYTES if 200 <= response.status_code < 300 else MAX_BODY_BYTES
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
                    raise requests.ReadTimeout(
                        f"the answer was still arriving after {self.settings.read_timeout:g}s "
                        f"(read_timeout); {len(raw)} bytes read"
                    )
        except urllib3_exceptions.HTTPError as broken:
            # A connection dropped mid-body surfaces from urllib3 directly when reading raw.
            response.close()
            raise requests.ConnectionError(broken) from None
        finally:
            if complete:
                response.raw.release_conn()  # the connection is reusable: back to the pool
            else:
                response.close()
        answer = read_answer(
            bytes(raw),
            complete,
            limit=limit,
            status=response.status_code,
            reason=response.reason or "",
            headers=response.headers,
            encoding=response.encoding,
            redact=self.secrets.redact,
        )
        self.check_retry_after(response.headers, answer)
        return answer

    def check_retry_after(self, headers: Mapping[str, str], answer: ApiResponse) -> None:
        """Log once when the answer's ``Retry-After`` was ignored (:func:`_retry_after` found it unusable)."""
        value = headers.get("Retry-After")
        if value and answer.retry_after_s is None:
            self.note_ignored("Retry-After", value, "the call's own backoff decides")

    def _describe(self, exc: BaseException) -> str:
        return self.secrets.redact(f"{type(exc).__name__}: {exc}")[:MAX_MESSAGE_CHARS]


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


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` when missing or
    unusable: not a number or date, not finite, negative, or more than a day away."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        # A date already past means "now"; a date in a month's time is no advice.
        seconds = max(moment.timestamp() - time.time(), 0.0)
    if not math.isfinite(seconds) or not 0.0 <= seconds <= RETRY_AFTER_RANGE_S:
        return None
    return seconds


def over_budget_message(attempts: int, wait_s: float, max_wait_s: float) -> str:
    return (
        f"gave up after {plural(attempts, 'attempt')}: waiting {wait_s:.1f}s more would pass the call's "
        f"wait budget (max_wait_s={max_wait_s:g})"
    )


def _retry_reason(state: RetryCallState) -> str:
    outcome = state.outcome
    if outcome is None:
        return "unknown"
    if outcome.failed:
        return "timeout" if isinstance(outcome.exception(), requests.Timeout) else "connection"
    return str(outcome.result().status_code)


def _describe_redirect(response: requests.Response) -> str:
    location = response.headers.get("Location") or ""
    target = urlsplit(urljoin(response.url or "", location))
    where = f"{target.hostname}:{target.port}" if target.hostname and target.port else target.hostname or "no Location"
    return f"redirected (HTTP {response.status_code}) to {where}; calls to CXone follow no redirect"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_answer(
    raw: bytes,
    complete: bool,
    *,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    encoding: str | None,
    redact: Callable[[str], str],
    limit: int = MAX_BODY_BYTES,
) -> ApiResponse:
    """An answer's body (at most ``limit`` bytes; ``complete``: all of it) as an :class:`ApiResponse`.

    The one reading of an answer, whatever client fetched it (the hook's requests, the trigger's httpx):
    JSON when it parses, CXone's error name and message from it, else a one-line summary; CXone's
    ``icStatusDescription`` header is kept, and is the message of an answer with no body. Every text
    the server chose is redacted before it is cut.
    """
    text = raw[:limit].decode(encoding or "utf-8", errors="replace")
    content_type = headers.get("Content-Type", "")
    body: Any = None
    problem = ""
    if not complete:
        problem = f"answer larger than {limit // 1024} KiB ({content_type or 'no type'}), not read"
    elif text:
        try:
            body = json.loads(text)
        except RecursionError:
            problem = f"invalid JSON ({len(raw)} bytes): nested too deeply"
        except ValueError:
            if "json" in content_type:
                problem = f"invalid JSON ({len(raw)} bytes): {_one_line(text)[:80]}"
    # Redacted before it is cut, like every text the server chose.
    description = redact(_one_line(headers.get(STATUS_DESCRIPTION_HEADER) or ""))[:MAX_STATUS_DESCRIPTION_CHARS]
    # The text summary only matters when there is no JSON object to read the error from.
    if isinstance(body, Mapping):
        fallback = ""
    elif not text.strip() and description:
        fallback = description  # CXone's way: no body, the error text in the header
    else:
        fallback = problem or _summarise_text(text, status, reason, content_type)
    name, message = error_name_and_message(body, fallback)
    if not message and description:
        message = description
    return ApiResponse(
        status_code=status,
        body=body,
        # The error name is the server's text too: a proxy may echo the request body in it.
        error=redact(name)[:80] if name and not (200 <= status < 300) else None,
        message=redact(message)[:MAX_MESSAGE_CHARS],
        retry_after_s=_retry_after(headers.get("Retry-After")),
        unreadable=problem,
        status_description=description,
        body_size=len(raw),
    )


def _summarise_text(text: str, status: int, reason: str, content_type: str) -> str:
    """A one-line description of a non-JSON body (an HTML error page from a proxy, say)."""
    stripped = _one_line(text)
    if not stripped:
        return f"HTTP {status} {reason}".strip()
    if "json" not in content_type and stripped.startswith("<"):
        title = re.search(r"<title>(.*?)</title>", stripped, re.IGNORECASE)
        label = title.group(1).strip() if title else "no title"
        return f"non-JSON answer ({content_type or 'unknown type'}): {label}"
    return stripped  # cut by the caller, after redaction: a cut could split a secret the redaction would miss


def _transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _not_received_by_cxone(exc: BaseException) -> bool:
    """A failure before the request could reach CXone: the connection was refused or never opened.

    ``requests`` reports a refused connection as a ``ConnectionError`` whose reason is urllib3's
    ``NewConnectionError``; a connection lost mid-answer carries another reason and is not retried.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, urllib3_exceptions.NewConnectionError)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
