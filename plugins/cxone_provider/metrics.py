"""The provider's metrics, through Airflow's ``Stats`` (StatsD, Datadog or OpenTelemetry, as configured).

Every name lives in :data:`METRICS` (``docs/metrics.md`` is its table) and is emitted from one place
each: the API calls, their retries and their 429s from :class:`~cxone_provider.hooks.cxone.CxoneHook`;
the join conditions where an outcome becomes final (the join operator, the sweep engine); the sweep's
timer from the engine. Nothing here names an agent, a session, a token or a secret: a metric carries
a name, a number and at most the retry's reason.

A metric never fails a task: a backend that cannot send is Airflow's to log, not ours to raise.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from cxone_provider.domain.outcomes import JoinOutcome

PREFIX = "cxone"

#: name (``<…>`` is filled in) → (kind, what it counts). The table of ``docs/metrics.md``.
METRICS: Mapping[str, tuple[str, str]] = {
    "cxone.join.<condition>": (
        "counter",
        "joins that ended in the condition (Success, InvalidAgentSession, …, Default): one per join operator run, "
        "one per sweep item joined in this try (items resumed from a checkpoint are not counted twice)",
    ),
    "cxone.api.<call>": (
        "timer",
        "one Agent API call of the worker's hook, retries and backoff included: get_agent, agent_states (every "
        "page), join, probe_agent, start_session, end_session, supervise, get_next_event",
    ),
    "cxone.api.429": ("counter", "429 answers to Agent API attempts (each attempt, retried or not)"),
    "cxone.api.retries": (
        "counter",
        "retries of any call, the token's included; tag ``reason``: 429, 503, connection, timeout, 401",
    ),
    "cxone.sweep": ("timer", "one sweep (JoinAgentSessionsOperator or a chunk of it), token and report included"),
}


def stats() -> Any:
    """Airflow's ``Stats``. Its home moved in Airflow 3.2 (``airflow.stats`` became a deprecated shim of
    ``airflow.sdk.observability.stats``): the one version-dependent import of this module."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.stats import Stats
    return Stats


@contextmanager
def api_call_timer(call: str) -> Iterator[None]:
    """Time one API call as ``cxone.api.<call>``, also when it raises."""
    started = time.monotonic()
    try:
        yield
    finally:
        stats().timing(f"{PREFIX}.api.{call}", timedelta(seconds=time.monotonic() - started))


def count_retry(reason: str) -> None:
    """One retry of a call, for ``reason`` (``"429"``, ``"503"``, ``"connection"``, ``"timeout"``, ``"401"``)."""
    stats().incr(f"{PREFIX}.api.retries", tags={"reason": reason})


def count_answer(status: int | None) -> None:
    """One answer to an Agent API attempt: a 429 is counted."""
    if status == 429:
        stats().incr(f"{PREFIX}.api.429")


def count_outcomes(outcomes: Iterable[JoinOutcome]) -> None:
    """One ``cxone.join.<condition>`` per outcome, sent as one increment per condition."""
    count_conditions(Counter(outcome.condition.value for outcome in outcomes))


def count_conditions(counts: Mapping[str, int]) -> None:
    for condition, count in counts.items():
        if count:
            stats().incr(f"{PREFIX}.join.{condition}", count)


@contextmanager
def sweep_timer() -> Iterator[None]:
    """Time one sweep as ``cxone.sweep``, also when it fails or is stopped."""
    started = time.monotonic()
    try:
        yield
    finally:
        stats().timing(f"{PREFIX}.sweep", timedelta(seconds=time.monotonic() - started))
