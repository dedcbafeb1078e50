"""The retry policy, once for both faces of the client: which call may be sent again, when, and how long
to wait in between.

Sans-IO: nothing here sends or sleeps. :func:`retrying_arguments` gives tenacity's ``Retrying`` (the
sync face) and ``AsyncRetrying`` (the async face) the same stop, wait and retry rules; each face only
says which of its library's errors mean "no answer" and "not received".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from cxone_provider.client.answers import MAX_MESSAGE_CHARS
from cxone_provider.response import ApiResponse

if TYPE_CHECKING:
    import logging
    import threading
    from collections.abc import Callable, Mapping
    from contextlib import AbstractContextManager


class RetryWhen(Enum):
    """When a call may be sent again after a failed attempt."""

    #: 429, 503, connection errors and timeouts of any kind: the call changes nothing, or changing
    #: it twice is the same as once.
    ANY_FAILURE = "429, 503, connection errors, timeouts"
    #: 429, 503, a refused connection or a connect timeout only: never after a read timeout or a
    #: connection lost mid-answer, when CXone may already have acted.
    NOT_RECEIVED = "429, 503, connection refused, connect timeout"


#: The retry policy of every call, in one place (docs/retries.md's table is generated from it).
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
#: The most one call waits in total between its attempts (backoffs and Retry-After), by default.
DEFAULT_MAX_WAIT_S = 60.0


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


class Backoff:
    """The wait before a retry: the answer's ``Retry-After`` (capped, with jitter) when it gave a usable
    one, else capped exponential backoff plus jitter, so throttled workers do not retry in lockstep."""

    def __init__(self, options: TransportOptions) -> None:
        self.jitter_s = options.backoff_initial_s
        self._exponential = wait_exponential(multiplier=options.backoff_initial_s, max=options.backoff_max_s) + (
            wait_random(0, options.backoff_initial_s)
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._exponential(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after_s
            if retry_after is not None:
                return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.jitter_s)
        return float(backoff)


class CallRetries:
    """One call's retry bookkeeping, and tenacity's arguments for it (the same for ``Retrying`` and
    ``AsyncRetrying``).

    :param no_answer: the face's test for an error that means no answer came (any failure).
    :param not_received: the face's test for an error before the request reached CXone.
    :param is_timeout: the face's test for a timeout, to name the retry's reason.
    """

    def __init__(
        self,
        options: TransportOptions,
        retry_when: RetryWhen,
        log: logging.Logger | Any,
        *,
        no_answer: Callable[[BaseException], bool],
        not_received: Callable[[BaseException], bool],
        is_timeout: Callable[[BaseException], bool],
    ) -> None:
        self.options = options
        self.log = log
        self.retry_when = retry_when
        self.no_answer = no_answer
        self.not_received = not_received
        self.is_timeout = is_timeout
        self.attempts = 0
        self.reasons: list[str] = []
        self.not_waited: list[float] = []

    def arguments(self, backoff: Backoff) -> dict[str, Any]:
        transport_failure = self.no_answer if self.retry_when is RetryWhen.ANY_FAILURE else self.not_received
        return {
            "stop": stop_after_attempt(self.options.max_attempts)
            | wait_budget(self.options.max_wait_s, self.not_waited.append),
            "wait": backoff,
            "retry": retry_if_result(lambda r: r.status_code in RETRYABLE_STATUS)
            | retry_if_exception(transport_failure),
            "before_sleep": self.before_sleep,
            # Out of attempts: hand back the last answer (a 429 or 503) or re-raise the last error.
            "retry_error_callback": lambda state: state.outcome.result() if state.outcome else None,
        }

    def before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            reason = "unknown"
        elif outcome.failed:
            reason = "timeout" if self.is_timeout(outcome.exception()) else "connection"  # type: ignore[arg-type]
        else:
            reason = str(outcome.result().status_code)
        self.reasons.append(reason)
        self.log.info(
            "CXone call not answered (%s); retry %d of %d in %.2fs",
            reason,
            state.attempt_number,
            self.options.max_attempts - 1,
            state.upcoming_sleep,
        )
        if self.options.retry_listener is not None:
            self.options.retry_listener(reason)

    def no_answer_response(self, error: BaseException, redact: Callable[[str], str]) -> ApiResponse:
        """The answer of a call that got none: the last error, named and redacted."""
        described = redact(f"{type(error).__name__}: {error}")[:MAX_MESSAGE_CHARS]
        return ApiResponse(
            status_code=None,
            error=type(error).__name__,
            message=f"no answer from CXone after {plural(self.attempts, 'attempt')}: {described}",
        )

    def finish(self, response: ApiResponse) -> ApiResponse:
        """The final answer with its attempts and retries; exhausted retries on 429/503 say so."""
        if response.status_code in RETRYABLE_STATUS and self.not_waited:
            over = over_budget_message(self.attempts, self.not_waited[0], self.options.max_wait_s)
            response.message = f"{over}: {response.message}"
        elif response.status_code in RETRYABLE_STATUS and self.attempts >= self.options.max_attempts:
            response.message = f"gave up after {self.attempts} attempts: {response.message}"
        response.attempts = self.attempts
        response.retries = self.reasons
        return response


def needs_renewal(response: ApiResponse, retry_listener: Callable[[str], None] | None) -> bool:
    """A 401: the token may have been revoked or expired early; one renewal, one more try (told to
    the retry listener like any retry)."""
    if response.status_code != 401:
        return False
    if retry_listener is not None:
        retry_listener("401")
    return True


def after_renewal(first: ApiResponse, retried: ApiResponse) -> ApiResponse:
    """The answer of a call sent again after a 401 renewed the token, counting both sendings."""
    retried.attempts += first.attempts
    retried.retries = [*first.retries, "401", *retried.retries]
    return retried


def over_budget_message(attempts: int, wait_s: float, max_wait_s: float) -> str:
    return (
        f"gave up after {plural(attempts, 'attempt')}: waiting {wait_s:.1f}s more would pass the call's "
        f"wait budget (max_wait_s={max_wait_s:g})"
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
