"""The sweep engine: join many items through one hook, paced, with a deadline, without an operator.

:class:`SweepEngine` takes what an operator would give it — a way to build the hook, a join function,
the items, the concurrency, a deadline, a checkpoint, a stop event and a logger — and returns a
:class:`~cxone_provider.sweeps.result.SweepResult`. It needs no Airflow context: a test or a script runs
it as it is; :class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator` only wires context, XCom
and reports to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol, cast

from cxone_provider.compat import AirflowException
from cxone_provider.domain.agent_sessions import AgentSessionItem
from cxone_provider.domain.classification import join_outcome
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_session_id
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneStopped
from cxone_provider.metrics import count_outcomes, sweep_timer
from cxone_provider.sweeps.pacing import AdaptiveLimiter
from cxone_provider.sweeps.report import write_report
from cxone_provider.sweeps.result import Item, SweepResult
from cxone_provider.sweeps.shared import share_budget

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import ObjectStoragePath

    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.sweeps.checkpoint import SweepCheckpoint

DEFAULT_MAX_CONCURRENCY = 16


class SweepLog(Protocol):
    """Where the engine logs: a :class:`logging.Logger`, or an operator's ``self.log``."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class HookFactory(Protocol):
    """Builds the sweep's one hook, given the engine's pacing callbacks and pool size as keywords."""

    def __call__(self, **pacing: Any) -> CxoneHook: ...


class SweepEngine:
    """Join ``items`` with a bounded, self-adjusting number of requests in flight; one result for all.

    :param by_agent: the items are :class:`~cxone_provider.domain.agent_sessions.AgentSessionItem` (each joined
        as its own agent, listed by agent id) rather than session ids joined as one SecurityUser.
    :param max_concurrency: most joins in flight at once; halves while CXone answers 429/503.
    :param progress_interval_s: seconds between progress log lines.
    :param deadline_s: the most seconds the sweep may take, counted from the engine's creation; ``None``:
        none. When it passes, nothing more is sent and every item not joined ends in ``Default``.
    :param stop: set by whoever wants the sweep stopped (an operator's ``on_kill``): the workers finish
        the joins in flight and take no other item. The engine sets it too when it ends, however it ends.
    :param log: where progress and warnings go.
    :param report_to: where every item's outcome is written when the sweep ends; ``None``: nowhere.
    """

    def __init__(
        self,
        *,
        by_agent: bool,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress_interval_s: float = 5.0,
        deadline_s: float | None = None,
        stop: threading.Event | None = None,
        log: SweepLog | None = None,
        report_to: ObjectStoragePath | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.by_agent = by_agent
        self.max_concurrency = max_concurrency
        self.progress_interval_s = progress_interval_s
        self.deadline_s = deadline_s
        self.deadline_at = None if deadline_s is None else time.monotonic() + deadline_s
        self.stop = stop if stop is not None else threading.Event()
        self.log: SweepLog = log if log is not None else logging.getLogger(__name__)
        self.report_to = report_to
        #: keys of the items an earlier try finished (the checkpoint's): not counted again in the metrics
        self.resumed: frozenset[str] = frozenset()

    def run(
        self,
        make_hook: HookFactory,
        joiner: Callable[[CxoneHook, Any], JoinOutcome],
        items: list[Item],
        duplicates: list[str],
        checkpoint: SweepCheckpoint | None = None,
    ) -> SweepResult:
        """Join each of ``items`` with ``joiner(hook, value)`` through one hook from ``make_hook``.

        Items ``checkpoint`` has from earlier tries are not joined again, and it hears each item as it
        finishes; it is closed when the sweep ends (removing it is the caller's choice).
        """
        limiter = AdaptiveLimiter(self.max_concurrency, stop=self.stop)
        hook = make_hook(
            pool_size=self.max_concurrency,
            retry_listener=limiter.on_retry,
            attempt_gate=limiter.slot,
            answer_listener=limiter.on_answer,
            stop=self.stop,
        )
        share_budget(limiter, hook)  # the connection's one pacer, which every sweep and join on it shares
        resumed = checkpoint.load() if checkpoint else {}
        self.resumed = frozenset(resumed)
        if checkpoint is not None:
            self.log.info(
                "Checkpoint %s: %d of %d session(s) resumed from earlier tries, %d to join",
                checkpoint.folder,
                len(resumed),
                len(items),
                len(items) - len(resumed),
            )
        try:
            with hook, sweep_timer():
                return self.sweep(
                    hook, limiter, joiner, items, duplicates, resumed, checkpoint.record if checkpoint else None
                )
        finally:
            # However the sweep ends (an execution_timeout included), no worker sends anything more.
            self.stop.set()
            if checkpoint is not None:
                checkpoint.close()

    def sweep(
        self,
        hook: CxoneHook,
        limiter: AdaptiveLimiter,
        joiner: Callable[[CxoneHook, Any], JoinOutcome],
        items: list[Item],
        duplicates: list[str],
        finished_before: dict[str, JoinOutcome] | None = None,
        record: Callable[[JoinOutcome], None] | None = None,
    ) -> SweepResult:
        """Join each of ``items`` (report key, value) with ``joiner(hook, value)``, paced by ``limiter``.

        Items in ``finished_before`` (by an earlier try) are not joined again; ``record`` hears each
        item as it finishes (the checkpoint).
        """
        earlier = finished_before or {}
        started = time.monotonic()
        try:
            # One token and one API host for the whole sweep; when either is refused, every item gets
            # the same answer without a thousand attempts at it.
            hook.access_token()
            _ = hook.api_base_url
        except (CxoneAuthError, CxoneApiError) as refused:
            first = join_outcome("", refused, time.monotonic() - started)
            outcomes = [_same_answer(first, key, value) for key, value in items]
            return self.result(
                outcomes, duplicates, {"requests": first.attempts, "token_requests": hook.token_requests}
            )

        # The first answer about the SecurityUser or the URL rather than a session (route not found,
        # key refused, no impersonation) ends the sending: every other item would get it too.
        verdict: list[JoinOutcome] = []

        def join(key: str, value: Any) -> JoinOutcome:
            if verdict:
                return _same_answer(verdict[0], key, value)
            outcome = joiner(hook, value)
            if not isinstance(value, AgentSessionItem):
                outcome.session_id = key
            # Items of the agents form are joined each as its own agent: an answer about one agent
            # (unknown, inactive) says nothing of the next; only the URL or the key's missing
            # impersonation right repeats for all of them.
            about_all = outcome.same_for_every_session and (
                not isinstance(value, AgentSessionItem)
                or outcome.condition in (JoinCondition.DEFAULT, JoinCondition.IMPERSONATE_NOT_ENABLED)
            )
            if about_all and not verdict:
                verdict.append(outcome)
                self.log.warning(
                    "Stopping the sweep after %s on session %r: every session would get it (%s)",
                    outcome.condition.value,
                    key,
                    outcome.message,
                )
            if outcome.status_code is not None and outcome.status_code not in (429, 503):
                limiter.succeeded()
            return outcome

        # Worker threads pulling from one queue: cheaper per item than a future each, which matters at
        # hundreds of joins a second on a GIL. One stop event ends them all: a stop request, or a
        # worker's failure.
        stop = self.stop
        # Each outcome goes to its item's place: no dict by key nor copy of the items beside the list
        # (a sweep of 100,000 holds them all until it ends).
        queue = ((n, key, value) for n, (key, value) in enumerate(items) if key not in earlier)
        lock = threading.Lock()
        finished = threading.Event()
        slots: list[JoinOutcome | None] = [None] * len(items)
        counts: Counter[str] = Counter()
        failures: list[BaseException] = []
        workers_left = min(self.max_concurrency, len(items) - len(earlier))

        def worker() -> None:
            nonlocal workers_left
            try:
                while not stop.is_set():
                    with lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    try:
                        outcome = join(item[1], item[2])
                    except CxoneStopped:
                        return  # stopping: the item is not finished, the checkpoint does not have it
                    with lock:
                        slots[item[0]] = outcome
                        counts[outcome.condition.value] += 1
                        if record is not None:
                            record(outcome)
            except BaseException as error:  # a bug, not an answer: stop the sweep, fail the task
                failures.append(error)
                stop.set()
            finally:
                with lock:
                    workers_left -= 1
                    if workers_left == 0:
                        finished.set()

        if workers_left == 0:
            finished.set()
        for number in range(workers_left):
            threading.Thread(target=worker, name=f"cxone-sweep-{number}", daemon=True).start()
        deadline_passed = self._wait_for_workers(finished, started, len(items), lock, counts, limiter)
        if failures:
            raise failures[0]
        joined, requests = sum(counts.values()), sum(o.attempts for o in slots if o is not None)
        for n, (key, value) in enumerate(items):
            if slots[n] is None and key in earlier:
                slots[n] = earlier[key]
            elif slots[n] is None and deadline_passed:
                # Nothing silently dropped: every item not joined by the deadline is reported as such.
                slots[n], joined = _past_deadline(key, value, self.deadline_s), joined + 1
        if joined + len(earlier) < len(items):
            raise SweepStopped(f"sweep stopped after {joined + len(earlier)} of {len(items)} session(s)")
        elapsed = time.monotonic() - started
        outcomes = cast("list[JoinOutcome]", slots)  # every place filled: checked just above
        stats: dict[str, Any] = {
            "requests": requests,
            "resumed": len(earlier),
            "retries": dict(limiter.retries),
            "token_requests": hook.token_requests,
            "max_concurrency": self.max_concurrency,
            "peak_in_flight": limiter.peak_in_flight,
            "lowest_concurrency_limit": limiter.lowest_limit,
            "concurrency_decreases": limiter.decreases,
            **limiter.figures(),
            "elapsed_s": round(elapsed, 3),
            "joins_per_s": round(joined / elapsed, 1) if elapsed > 0 else None,
            "stopped_early": verdict[0].condition.value if verdict else None,
            "deadline_passed": deadline_passed,
        }
        self._log_progress(joined, len(items), elapsed, counts, limiter)
        return self.result(outcomes, duplicates, stats)

    def result(self, outcomes: list[JoinOutcome], duplicates: list[str], stats: dict[str, Any]) -> SweepResult:
        """The sweep's result for ``outcomes`` (every item, in input order); the report written."""
        result = SweepResult.of(outcomes, duplicates, stats, by_agent=self.by_agent)
        count_outcomes(o for o in outcomes if o.key not in self.resumed)
        self.log.info("Sweep of %d session(s): %s", len(outcomes), result.counts)
        if duplicates:
            self.log.warning("%d duplicated session id(s) were joined once: %s", len(duplicates), duplicates[:20])
        if self.report_to is not None:
            write_report(self.report_to, outcomes)
            result.report = str(self.report_to)
            self.log.info("Every session's outcome: %s", result.report)
        return result

    def _wait_for_workers(
        self,
        finished: threading.Event,
        started: float,
        total: int,
        lock: threading.Lock,
        counts: Counter[str],
        limiter: AdaptiveLimiter,
    ) -> bool:
        """Wait for the workers, logging progress; stop them at the deadline. Whether it passed."""
        deadline_at = self.deadline_at
        deadline_passed = False
        next_progress = time.monotonic() + self.progress_interval_s
        while True:
            now = time.monotonic()
            wake = next_progress if deadline_at is None or deadline_passed else min(next_progress, deadline_at)
            if finished.wait(timeout=max(wake - now, 0.0)):
                return deadline_passed
            now = time.monotonic()
            if deadline_at is not None and not deadline_passed and now >= deadline_at:
                deadline_passed = True
                self.log.warning(
                    "The sweep's deadline (deadline_s=%g) has passed: no further session is sent; the joins in "
                    "flight finish their attempt, the rest end in Default",
                    self.deadline_s,
                )
                self.stop.set()
            if now >= next_progress:  # a sweep stalled in backoff still reports
                next_progress = now + self.progress_interval_s
                with lock:
                    done, snapshot = sum(counts.values()), Counter(counts)
                self._log_progress(done, total, now - started, snapshot, limiter)

    def _log_progress(
        self, done: int, total: int, elapsed: float, counts: Counter[str], limiter: AdaptiveLimiter
    ) -> None:
        by_condition = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        self.log.info(
            "Sweep %d/%d joined in %.1fs (%.0f/s, %d in flight, limit %d): %s",
            done,
            total,
            elapsed,
            done / elapsed if elapsed > 0 else 0.0,
            limiter.in_flight,
            limiter.limit,
            by_condition or "nothing yet",
        )


class SweepStopped(AirflowException):
    """The sweep was stopped (on request) before every item had an outcome: the task fails, a retry resumes."""


def rejected_item(item: AgentSessionItem) -> JoinOutcome:
    """A malformed item's outcome: its documented condition, no request."""
    condition = item.rejected.condition if item.rejected else JoinCondition.INVALID_AGENT_ID
    message = item.rejected.message if item.rejected else f"sweep item {item.key!r} names no agent"
    return JoinOutcome(condition, item.session_id or "", message=message, agent_id=item.agent_id, item_key=item.key)


def _same_answer(first: JoinOutcome, key: str, value: Any) -> JoinOutcome:
    """The outcome of an item not sent because ``first`` answered for every item.

    Malformed ids keep their own condition: they would never have been sent anyway.
    """
    # ``key`` is the session id in a sweep of session ids, the agent in a sweep of agents.
    cause = first.message if first.key in ("", key) else f"{first.key!r} was answered: {first.message}"
    return _unsent(key, value, first.condition, f"not sent: {cause}", first.status_code)


def _unsent(
    key: str, value: Any, condition: JoinCondition, message: str, status_code: int | None = None
) -> JoinOutcome:
    """The outcome of an item the sweep did not send, in either form; malformed ones keep their own condition."""
    if isinstance(value, AgentSessionItem):
        if value.rejected is not None or value.agent_id is None:
            return rejected_item(value)
        return JoinOutcome(
            condition,
            value.session_id or "",
            status_code=status_code,
            message=message,
            agent_id=value.agent_id,
            item_key=key,
        )
    try:
        check_session_id(value)
    except InputRejected as rejected:
        return JoinOutcome(rejected.condition, key, message=rejected.message)
    return JoinOutcome(condition, key, status_code=status_code, message=message)


def _past_deadline(key: str, value: Any, deadline_s: float | None) -> JoinOutcome:
    """The outcome of an item the sweep's deadline left unjoined; malformed ones keep their own condition."""
    what = f"agent {key}'s turn" if isinstance(value, AgentSessionItem) else "this session was joined"
    return _unsent(
        key,
        value,
        JoinCondition.DEFAULT,
        f"not joined: the sweep's deadline (deadline_s={deadline_s:g}) passed before {what}",
    )
