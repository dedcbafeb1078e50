"""QA sweeps: join hundreds of agent sessions inside one task.

A task instance per session costs about a second of Airflow overhead and a token each; the sweep
joins them all through one HTTP session and one token, with a bounded, self-adjusting number of
requests in flight, and returns ``{condition: [session ids]}`` for ``.expand()`` downstream.

.. seealso:: ``README.md``, section "QA sweeps".
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from cxone_provider.agent_sessions import AgentSessionItem, distinct_items
from cxone_provider.conditions import (
    InputRejected,
    JoinCondition,
    JoinOutcome,
    check_session_id,
    join_outcome,
    parse_security_user,
)
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneStopped
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.agent_states import ListAgentSessionsOperator, live_sessions
from cxone_provider.sweeps.checkpoint import SweepCheckpoint
from cxone_provider.operators.common import as_list, connection_for, join_agent_session, resolve_security_user_value
from cxone_provider.operators.mapped import (
    agents_with,
    chunk_sessions,
    chunked,
    merge_sweep_results,
    outcomes_with,
    session_key,
    sessions_with,
)
from cxone_provider.sweeps.pacing import AdaptiveLimiter
from cxone_provider.sweeps.report import report_location, write_report
from cxone_provider.ui.links import SweepOutcomeLink

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import Context, ObjectStoragePath

# ListAgentSessionsOperator lives in agent_states.py; it is also importable from here, where the
# README and the DAGs have always found it.
__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "JoinAgentSessionsOperator",
    "ListAgentSessionsOperator",
    "agents_with",
    "chunk_sessions",
    "chunked",
    "live_sessions",
    "merge_sweep_results",
    "outcomes_with",
    "sessions_with",
]

DEFAULT_MAX_CONCURRENCY = 16


class JoinAgentSessionsOperator(BaseOperator):
    """Check many agents' live sessions inside one task: a QA sweep.

    ``agents`` lists (agent, expected session) items (see :mod:`cxone_provider.agent_sessions`): each
    is joined *as its own agent* through the connection's access key, as NICE publishes the join,
    so the key's user needs impersonation for every agent but its own. An item with no session id is
    Success when CXone answers the agent's live session; one with a session id, when that is the
    session CXone answers. Every item ends in exactly one condition list of the XCom
    ``return_value``, by agent id; ``live_sessions`` maps each Success agent (as text) to its session.

    The older form, ``session_ids`` joined as one ``security_user``, is deprecated: CXone's published
    join cannot join another agent's session by id, so it works only against the sandbox's
    ``join_mode=session`` extension. In that form every session id of the input ends in exactly one
    condition list of the XCom ``return_value``:
    ``{"Success": [...], "InvalidAgentSession": [...], ..., "outcomes": [...], "duplicates": [...],
    "counts": {...}, "stats": {...}, "report": "..."}`` — all six condition keys are present, empty
    lists included. Map downstream work over one condition with
    ``.expand(session_id=sessions_with(sweep, "Success"))`` (an empty list skips the mapped task).
    Duplicated ids are joined once and listed under ``duplicates``; malformed ids get their condition
    without a request. The XCom stays small as sweeps grow: ``outcomes`` holds the full outcome of
    each session that did not succeed, in input order, and Success sessions are listed by id only;
    the report (``report``, see :mod:`cxone_provider.sweeps.report`) holds every session's outcome.

    :param agents: the (agent, session) items to check (templated): a list, or its JSON/repr
        rendering; typically ``ListAgentSessionsOperator(...).output``.
    :param session_ids: deprecated (templated): session ids joined as ``security_user``.
    :param security_user: with ``session_ids`` only, as for :class:`JoinAgentSessionOperator`
        (templated); default: the nearest upstream ``SetSecurityUserOperator``.
    :param max_concurrency: most joins in flight at once; halves while CXone answers 429/503.
    :param progress_interval_s: seconds between progress log lines.
    :param cxone_conn_id: overrides the SecurityUser's connection. (templated)
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`.
    :param checkpoint_path: where finished sessions are recorded, so that a retry joins only the rest
        (templated); default ``$AIRFLOW_HOME/cxone_checkpoints``; any path or fsspec URL.
    :param keep_checkpoint: keep the checkpoint after the sweep finished.
    :param report_path: the folder of the reports (templated; a path or fsspec URL), default
        ``$AIRFLOW_HOME/cxone_reports``; this sweep's is ``<dag>/<run>/<task>__<map index>.jsonl`` below it.
    :param deadline_s: the most seconds the sweep may take, from the start of the task; ``None`` (the
        default): no deadline of its own (each call is still bounded by the hook's ``max_wait_s``). When
        it passes, no further session is sent, the joins in flight finish their current attempt, and
        every session not joined ends in ``Default`` with the message "not joined: the sweep's
        deadline … passed"; the task succeeds with them listed, and ``stats.deadline_passed`` says so.
    """

    template_fields: Sequence[str] = (
        "agents",
        "session_ids",
        "security_user",
        "cxone_conn_id",
        "checkpoint_path",
        "report_path",
    )
    ui_color = "#d5f5e3"
    operator_extra_links = (SweepOutcomeLink(),)

    def __init__(
        self,
        *,
        agents: Any = None,
        session_ids: Any = None,
        security_user: Any = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        progress_interval_s: float = 5.0,
        cxone_conn_id: str | None = None,
        hook_params: dict[str, Any] | None = None,
        checkpoint_path: str | None = None,
        keep_checkpoint: bool = False,
        report_path: str | None = None,
        deadline_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if (agents is None) == (session_ids is None):
            raise ValueError(
                f"{self.task_id}: give agents (the (agent, session) items to check) or the deprecated "
                "session_ids, not both and not neither"
            )
        if agents is not None and security_user is not None:
            raise ValueError(
                f"{self.task_id}: security_user goes with session_ids only: with agents, each item is "
                "joined as its own agent through the connection's access key"
            )
        if session_ids is not None:
            warnings.warn(
                "JoinAgentSessionsOperator(session_ids=…, security_user=…) joins other agents' sessions by id, "
                "which CXone does not publish (only the sandbox's join_mode=session does): pass "
                "agents=[{'agent_id': …, 'session_id': …}, …] (e.g. ListAgentSessionsOperator's output)",
                AirflowProviderDeprecationWarning,
                stacklevel=2,
            )
        self.agents = agents
        _check_deadline(deadline_s)
        self.deadline_s = deadline_s
        self._deadline_at: float | None = None
        self.session_ids = session_ids
        self.security_user = security_user
        self.max_concurrency = max_concurrency
        self.progress_interval_s = progress_interval_s
        self.cxone_conn_id = cxone_conn_id
        self.hook_params = hook_params or {}
        self.checkpoint_path = checkpoint_path
        self.keep_checkpoint = keep_checkpoint
        self.report_path = report_path
        self._stop = threading.Event()
        self._report_to: ObjectStoragePath | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        self._deadline_at = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        self._report_to = report_location(self.report_path, context, self.task_id)
        if self.agents is not None:
            items, duplicates = distinct_items(as_list("agents", self.agents) or [])
            jobs: list[tuple[str, Any]] = [(item.key, item) for item in items]
            conn_id = self.cxone_conn_id or CxoneHook.default_conn_name
            # The checkpoint is of this input: these items, joined through this connection.
            fingerprint = [f"agents via {conn_id}"] + [f"{i.key} {i.session_id or ''}" for i in items]
            joiner: Callable[[CxoneHook, Any], JoinOutcome] = _join_item
        else:
            jobs, duplicates = _distinct(as_list("session_ids", self.session_ids) or [])
            try:
                user = parse_security_user(resolve_security_user_value(self, context, self.security_user))
            except InputRejected as rejected:
                outcomes = [JoinOutcome(rejected.condition, key, message=rejected.message) for key, _ in jobs]
                return self._result(outcomes, duplicates, {"requests": 0})
            conn_id = connection_for(user, self.cxone_conn_id)
            fingerprint = [f"agent {user.agent_id} via {conn_id}"] + [key for key, _ in jobs]
            agent_id = user.agent_id

            def joiner(hook: CxoneHook, value: Any) -> JoinOutcome:
                # A session id list: a blank or missing id is a bad id, not "the live session".
                try:
                    check_session_id(value)
                except InputRejected as rejected:
                    return JoinOutcome(rejected.condition, session_key(value), message=rejected.message)
                return join_agent_session(hook, value, agent_id)

        self._stop = threading.Event()  # a fresh one per try: on_kill of an earlier try is over
        limiter = AdaptiveLimiter(self.max_concurrency, stop=self._stop)
        hook_params = {"pool_size": self.max_concurrency, **self.hook_params}
        hook = CxoneHook(
            conn_id,
            **hook_params,
            retry_listener=limiter.on_retry,
            attempt_gate=limiter.slot,
            answer_listener=limiter.on_answer,
            stop=self._stop,
        )
        checkpoint = SweepCheckpoint.for_task(self.checkpoint_path, context, fingerprint, self.log)
        resumed = checkpoint.load() if checkpoint else {}
        if checkpoint is not None:
            self.log.info(
                "Checkpoint %s: %d of %d session(s) resumed from earlier tries, %d to join",
                checkpoint.folder,
                len(resumed),
                len(jobs),
                len(jobs) - len(resumed),
            )
        try:
            with hook:
                result = self.sweep(
                    hook,
                    limiter,
                    joiner,
                    jobs,
                    duplicates,
                    resumed,
                    checkpoint.record if checkpoint else None,
                )
        finally:
            # However execute() ends (an execution_timeout included), no worker sends anything more.
            self._stop.set()
            if checkpoint is not None:
                checkpoint.close()
        if checkpoint is not None and not self.keep_checkpoint:
            checkpoint.remove()
        return result

    def on_kill(self) -> None:
        """Stop sending: the workers finish the joins in flight and take no other session."""
        self.log.warning("Stopping the sweep on request: no further session is joined")
        self._stop.set()

    def sweep(
        self,
        hook: CxoneHook,
        limiter: AdaptiveLimiter,
        joiner: Callable[[CxoneHook, Any], JoinOutcome],
        sessions: list[tuple[str, Any]],
        duplicates: list[str],
        finished_before: dict[str, JoinOutcome] | None = None,
        record: Callable[[JoinOutcome], None] | None = None,
    ) -> dict[str, Any]:
        """Join each of ``sessions`` (report key, value) with ``joiner(hook, value)``, paced by ``limiter``.

        Items in ``finished_before`` (by an earlier try) are not joined again; ``record`` hears each
        item as it finishes (the checkpoint).
        """
        earlier = finished_before or {}
        started = time.monotonic()
        try:
            # One token and one API host for the whole sweep; when either is refused, every session
            # gets the same answer without a thousand attempts at it.
            hook.access_token()
            _ = hook.api_base_url
        except (CxoneAuthError, CxoneApiError) as refused:
            first = join_outcome("", refused, time.monotonic() - started)
            outcomes = [_same_answer(first, key, value) for key, value in sessions]
            return self._result(
                outcomes, duplicates, {"requests": first.attempts, "token_requests": hook.token_requests}
            )

        # The first answer about the SecurityUser or the URL rather than a session (route not found,
        # key refused, no impersonation) ends the sending: every other session would get it too.
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

        # Worker threads pulling from one queue: cheaper per session than a future each, which
        # matters at hundreds of joins a second on a GIL. One stop event ends them all: on_kill, or
        # a worker's failure.
        stop = self._stop
        queue = iter([item for item in sessions if item[0] not in earlier])
        lock = threading.Lock()
        finished = threading.Event()
        results: dict[str, JoinOutcome] = {}
        counts: Counter[str] = Counter()
        failures: list[BaseException] = []
        workers_left = min(self.max_concurrency, len(sessions) - len(earlier))

        def worker() -> None:
            nonlocal workers_left
            try:
                while not stop.is_set():
                    with lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    try:
                        outcome = join(*item)
                    except CxoneStopped:
                        return  # stopping: the session is not finished, the checkpoint does not have it
                    with lock:
                        results[item[0]] = outcome
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
        deadline_passed = self._wait_for_workers(finished, stop, started, len(sessions), lock, results, counts, limiter)
        if failures:
            raise failures[0]
        if deadline_passed:
            # Nothing silently dropped: every session not joined by the deadline is reported as such.
            for key, value in sessions:
                if key not in results and key not in earlier:
                    results[key] = _past_deadline(key, value, self.deadline_s)
        if len(results) + len(earlier) < len(sessions):
            raise AirflowException(f"sweep stopped after {len(results) + len(earlier)} of {len(sessions)} session(s)")
        elapsed = time.monotonic() - started
        outcomes = [results.get(key) or earlier[key] for key, _ in sessions]
        stats: dict[str, Any] = {
            "requests": sum(o.attempts for o in results.values()),
            "resumed": len(earlier),
            "retries": dict(limiter.retries),
            "token_requests": hook.token_requests,
            "max_concurrency": self.max_concurrency,
            "peak_in_flight": limiter.peak_in_flight,
            "lowest_concurrency_limit": limiter.lowest_limit,
            "concurrency_decreases": limiter.decreases,
            **limiter.figures(),
            "elapsed_s": round(elapsed, 3),
            "joins_per_s": round(len(results) / elapsed, 1) if elapsed > 0 else None,
            "stopped_early": verdict[0].condition.value if verdict else None,
            "deadline_passed": deadline_passed,
        }
        self._log_progress(len(results), len(sessions), elapsed, counts, limiter)
        return self._result(outcomes, duplicates, stats)

    def _wait_for_workers(
        self,
        finished: threading.Event,
        stop: threading.Event,
        started: float,
        total: int,
        lock: threading.Lock,
        results: dict[str, JoinOutcome],
        counts: Counter[str],
        limiter: AdaptiveLimiter,
    ) -> bool:
        """Wait for the workers, logging progress; stop them at the deadline. Whether it passed."""
        deadline_at = self._deadline_at
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
                stop.set()
            if now >= next_progress:  # a sweep stalled in backoff still reports
                next_progress = now + self.progress_interval_s
                with lock:
                    done, snapshot = len(results), Counter(counts)
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

    def _result(self, outcomes: list[JoinOutcome], duplicates: list[str], stats: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {condition.value: [] for condition in JoinCondition}
        by_agent = self.agents is not None
        for outcome in outcomes:
            result[outcome.condition.value].append(_listed(outcome) if by_agent else outcome.session_id)
        counts = {condition.value: len(result[condition.value]) for condition in JoinCondition}
        self.log.info("Sweep of %d session(s): %s", len(outcomes), counts)
        if duplicates:
            self.log.warning("%d duplicated session id(s) were joined once: %s", len(duplicates), duplicates[:20])
        report = None
        if self._report_to is not None:
            write_report(self._report_to, outcomes)
            report = str(self._report_to)
            self.log.info("Every session's outcome: %s", report)
        if by_agent:
            result["live_sessions"] = {
                o.key: o.session_id for o in outcomes if o.condition is JoinCondition.SUCCESS and o.session_id
            }
        result.update(
            outcomes=[o.to_dict() for o in outcomes if o.condition is not JoinCondition.SUCCESS],
            duplicates=duplicates,
            counts=counts,
            stats=stats,
            report=report,
        )
        return result


def _join_item(hook: CxoneHook, item: AgentSessionItem) -> JoinOutcome:
    """Join ``item``'s agent's live session as that agent; its outcome, keyed by the item."""
    if item.rejected is not None or item.agent_id is None:
        return _rejected_item(item)
    outcome = join_agent_session(hook, item.session_id, item.agent_id)
    outcome.agent_id = item.agent_id
    outcome.item_key = item.key
    return outcome


def _rejected_item(item: AgentSessionItem) -> JoinOutcome:
    """A malformed item's outcome: its documented condition, no request."""
    condition = item.rejected.condition if item.rejected else JoinCondition.INVALID_AGENT_ID
    message = item.rejected.message if item.rejected else f"sweep item {item.key!r} names no agent"
    return JoinOutcome(condition, item.session_id or "", message=message, agent_id=item.agent_id, item_key=item.key)


def _listed(outcome: JoinOutcome) -> int | str:
    """How an item of the agents form is listed under its condition: its agent id, else as given."""
    return outcome.agent_id if outcome.agent_id is not None else outcome.key


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
            return _rejected_item(value)
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


def _check_deadline(deadline_s: object) -> None:
    if deadline_s is None:
        return
    if (
        isinstance(deadline_s, bool)
        or not isinstance(deadline_s, int | float)
        or not math.isfinite(deadline_s)
        or deadline_s <= 0
    ):
        raise ValueError(f"deadline_s must be a positive number of seconds or None, got {deadline_s!r}")


def _past_deadline(key: str, value: Any, deadline_s: float | None) -> JoinOutcome:
    """The outcome of an item the sweep's deadline left unjoined; malformed ones keep their own condition."""
    what = f"agent {key}'s turn" if isinstance(value, AgentSessionItem) else "this session was joined"
    return _unsent(
        key,
        value,
        JoinCondition.DEFAULT,
        f"not joined: the sweep's deadline (deadline_s={deadline_s:g}) passed before {what}",
    )


def _distinct(raw_ids: list[Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Each session once, in input order, as ``(report key, value as given)``; and the duplicates.

    A well-formed id is keyed as it will be sent (trimmed), so ``" s1"`` and ``"s1"`` are one
    session joined once; a malformed one is keyed as given, to be reported with its condition.
    """
    seen: set[str] = set()
    sessions: list[tuple[str, Any]] = []
    duplicates: list[str] = []
    for raw in raw_ids:
        key = session_key(raw)
        if key in seen:
            if key not in duplicates:
                duplicates.append(key)
            continue
        seen.add(key)
        sessions.append((key, raw))
    return sessions, duplicates
