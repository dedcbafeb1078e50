"""QA sweeps: join hundreds of agent sessions inside one task.

A task instance per session costs about a second of Airflow overhead and a token each; the sweep
joins them all through one HTTP session and one token, with a bounded, self-adjusting number of
requests in flight, and returns ``{condition: [session ids]}`` for ``.expand()`` downstream.

.. seealso:: ``docs/sweeps.md``.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowProviderDeprecationWarning

from cxone_provider.assets import sweep_extra
from cxone_provider.domain.agent_sessions import AgentSessionItem, distinct_items
from cxone_provider.domain.condition_rules import parse_condition_rules
from cxone_provider.domain.conditions import InputRejected
from cxone_provider.domain.inputs import check_session_id
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import parse_security_user
from cxone_provider.exceptions import ConditionRulesError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.links import SweepOutcomeLink
from cxone_provider.operators.agent_states import ListAgentSessionsOperator, live_sessions
from cxone_provider.operators.base import CxoneBaseOperator, cxone_template_fields
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
from cxone_provider.sweeps.checkpoint import SweepCheckpoint
from cxone_provider.sweeps.engine import DEFAULT_MAX_CONCURRENCY, SweepEngine, rejected_item
from cxone_provider.sweeps.report import report_location
from cxone_provider.sweeps.result import distinct_sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from airflow.sdk import Context

    from cxone_provider.domain.condition_rules import ConditionRule

# ListAgentSessionsOperator lives in agent_states.py; it is also importable from here, where the
# docs and the DAGs have always found it.
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


class JoinAgentSessionsOperator(CxoneBaseOperator):
    """Check many agents' live sessions inside one task: a QA sweep.

    ``agents`` lists (agent, expected session) items (see :mod:`cxone_provider.domain.agent_sessions`): each
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

    :param agents: the (agent, session) items to check (templated): a list, a rendered JSON or Python list
        (``"[...]"``) or comma-separated text (the rule of :func:`~cxone_provider.domain.inputs.parse_list`);
        typically ``ListAgentSessionsOperator(...).output``.
    :param session_ids: deprecated (templated): session ids joined as ``security_user``, read as
        ``agents`` is.
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
    :param condition_rules: the tenant's own readings of error answers, as for
        :class:`~cxone_provider.operators.agent_session.JoinAgentSessionOperator`: tried for every join before
        the connection's extra ``condition_rules`` and the published table (``docs/conditions.md``);
        checked when the DAG is parsed.
    :param emit_asset: when the sweep succeeds, add an event to its Asset
        ``cxone://<tenant>/sweeps/<dag_id>/<task_id>`` whose ``extra`` summarises it (``docs/assets.md``);
        default on.
    """

    template_fields: Sequence[str] = cxone_template_fields(
        "agents", "session_ids", "security_user", "checkpoint_path", "report_path"
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
        condition_rules: Sequence[Mapping[str, Any]] | str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(cxone_conn_id=cxone_conn_id, hook_params=hook_params, **kwargs)
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
        self.session_ids = session_ids
        self.security_user = security_user
        self.max_concurrency = max_concurrency
        self.progress_interval_s = progress_interval_s
        self.checkpoint_path = checkpoint_path
        self.keep_checkpoint = keep_checkpoint
        self.report_path = report_path
        self.emit_asset = emit_asset
        self.condition_rules = condition_rules
        try:
            self._rules = parse_condition_rules(condition_rules)
        except ValueError as bad:
            raise ConditionRulesError(f"{self.task_id}: {bad}") from None
        if emit_asset:
            self.declare_asset("sweeps")

    def execute(self, context: Context) -> dict[str, Any]:
        # An answer never fails the sweep (each becomes its item's condition); a bad input or an
        # unusable connection does, at once, by the operators' one failure policy.
        try:
            with self.cxone_failures("JoinAgentSessions"):
                result = self._sweep(context)
                self.keep_run_facts("agent-sessions", result["counts"], result["report"])
            self.add_asset_event(context, "sweeps", sweep_extra(result))
            return result
        finally:
            self.close_hooks()

    def _sweep(self, context: Context) -> dict[str, Any]:
        engine = SweepEngine(
            by_agent=self.agents is not None,
            max_concurrency=self.max_concurrency,
            progress_interval_s=self.progress_interval_s,
            deadline_s=self.deadline_s,
            stop=self._stop_event,
            log=self.log,
            report_to=report_location(self.report_path, context, self.task_id),
        )
        if self.agents is not None:
            items, duplicates = distinct_items(as_list("agents", self.agents) or [])
            jobs: list[tuple[str, Any]] = [(item.key, item) for item in items]
            conn_id = self.cxone_conn_id or CxoneHook.default_conn_name
            # The checkpoint is of this input: these items, joined through this connection.
            fingerprint: Iterable[str] = chain(
                [f"agents via {conn_id}"], (f"{i.key} {i.session_id or ''}" for i in items)
            )
            joiner: Callable[[CxoneHook, Any], JoinOutcome] = partial(_join_item, rules=self._rules)
        else:
            jobs, duplicates = distinct_sessions(as_list("session_ids", self.session_ids) or [])
            try:
                user = parse_security_user(resolve_security_user_value(self, context, self.security_user))
            except InputRejected as rejected:
                outcomes = [JoinOutcome(rejected.condition, key, message=rejected.message) for key, _ in jobs]
                return engine.result(outcomes, duplicates, {"requests": 0}).to_xcom()
            conn_id = connection_for(user, self.cxone_conn_id)
            fingerprint = chain([f"agent {user.agent_id} via {conn_id}"], (key for key, _ in jobs))
            joiner = _session_joiner(user.agent_id, self._rules)

        checkpoint = SweepCheckpoint.for_task(self.checkpoint_path, context, fingerprint, self.log)
        result = engine.run(lambda **pacing: self._hook(conn_id, **pacing), joiner, jobs, duplicates, checkpoint)
        if checkpoint is not None and not self.keep_checkpoint:
            checkpoint.remove()
        return result.to_xcom()

    def _hook(self, conn_id: str, *, pool_size: int, **pacing: Any) -> CxoneHook:
        """The sweep's one hook: the engine's pool size unless ``hook_params`` names one, with its pacing.

        ``on_kill`` (the base's) stops it: the workers finish the joins in flight and take no other session.
        """
        return self.make_hook(conn_id, pool_size=self.hook_params.get("pool_size", pool_size), **pacing)


def _join_item(hook: CxoneHook, item: AgentSessionItem, *, rules: Sequence[ConditionRule] = ()) -> JoinOutcome:
    """Join ``item``'s agent's live session as that agent; its outcome, keyed by the item."""
    if item.rejected is not None or item.agent_id is None:
        return rejected_item(item)
    outcome = join_agent_session(hook, item.session_id, item.agent_id, condition_rules=rules)
    outcome.agent_id = item.agent_id
    outcome.item_key = item.key
    return outcome


def _session_joiner(agent_id: int, rules: Sequence[ConditionRule]) -> Callable[[CxoneHook, Any], JoinOutcome]:
    """Join session ids as ``agent_id`` (the deprecated form)."""

    def joiner(hook: CxoneHook, value: Any) -> JoinOutcome:
        # A session id list: a blank or missing id is a bad id, not "the live session".
        try:
            check_session_id(value)
        except InputRejected as rejected:
            return JoinOutcome(rejected.condition, session_key(value), message=rejected.message)
        return join_agent_session(hook, value, agent_id, condition_rules=rules)

    return joiner


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
