"""JoinAgentSessionOperator: Studio's *Join Agent Session*, routed by its result condition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from cxone_provider.assets import join_extra
from cxone_provider.client.policy import plural
from cxone_provider.compat import AirflowException, AirflowFailException, BaseBranchOperator
from cxone_provider.domain.condition_rules import parse_condition_rules
from cxone_provider.domain.conditions import InputRejected, JoinCondition, condition_names
from cxone_provider.domain.inputs import check_session_id, session_label
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import SecurityUser, parse_security_user
from cxone_provider.exceptions import BranchConfigError, ConditionRulesError, describe_status
from cxone_provider.links import JoinOutcomeLink
from cxone_provider.metrics import count_outcomes
from cxone_provider.operators.base import CxoneBaseOperator, cxone_template_fields
from cxone_provider.operators.common import (
    connection_for,
    join_agent_session,
    resolve_security_user_value,
    security_user_source,
)
from cxone_provider.sweeps.pacing import AdaptiveLimiter
from cxone_provider.sweeps.shared import share_budget

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_RETURN_KEY = "return_value"
BranchTargets: TypeAlias = str | Sequence[str]
# Mapping is invariant in its key: spell out the three ways DAG authors write the keys.
Branches: TypeAlias = (
    Mapping[str, BranchTargets] | Mapping[JoinCondition, BranchTargets] | Mapping[str | JoinCondition, BranchTargets]
)


def normalise_branches(
    branches: Branches | None,
) -> dict[JoinCondition, list[str]]:
    """Check ``branches`` keys and value types; raise naming every unknown condition at once."""
    result: dict[JoinCondition, list[str]] = {}
    unknown: list[str] = []
    for key, targets in (branches or {}).items():
        try:
            condition = JoinCondition.parse(key)
        except ValueError:
            unknown.append(repr(key))
            continue
        ids = [targets] if isinstance(targets, str) else list(targets)
        if not ids or not all(isinstance(task_id, str) and task_id for task_id in ids):
            raise BranchConfigError(
                f"branches[{condition.value!r}] must be a task id, a task group id or a list of them, got {targets!r}"
            )
        result[condition] = ids
    if unknown:
        names = condition_names()
        raise BranchConfigError(f"branches has unknown condition(s) {', '.join(unknown)}; expected: {names}")
    return result


def route(
    branches: Mapping[JoinCondition, list[str]], condition: JoinCondition, downstream_ids: Iterable[str]
) -> tuple[list[str] | None, str]:
    """The task (group) ids to follow for ``condition`` (``None`` when the task must fail), and which
    rule chose them, for the log.

    1. the condition's own entry; 2. else the ``Default`` entry (Studio: Default is also taken when
    the branch for the condition that occurred is not defined); 3. else Success follows every direct
    downstream task, and any other condition has nowhere to go.
    """
    if condition in branches:
        return branches[condition], "own branch"
    if JoinCondition.DEFAULT in branches:
        return branches[JoinCondition.DEFAULT], "Default fallback"
    if condition is JoinCondition.SUCCESS:
        return sorted(downstream_ids), "every downstream task"
    return None, "no branch"


class JoinAgentSessionOperator(CxoneBaseOperator, BaseBranchOperator):
    """Join an agent's live session as the SecurityUser and follow the branch for the result condition.

    Result conditions (``JoinCondition``): ``Default``, ``Success``, ``InvalidSecurityUser``,
    ``InvalidAgentSession``, ``InvalidAgentId``, ``ImpersonateNotEnabled``. Routing by ``branches``:

    1. the condition that occurred has an entry: follow it;
    2. otherwise a ``Default`` entry exists: follow it;
    3. otherwise ``Success`` follows every direct downstream task (so a DAG with failure branches
       should give ``Success`` an entry too), and any other condition fails the task with a message
       naming the condition, the session id and the API's message. ``Default`` failures may be
       retried by Airflow (they are usually transient); the others fail without retry.

    CXone's answers, and inputs Studio would reject, are conditions, never exceptions. What is not an
    answer follows the failure policy of :mod:`cxone_provider.operators.base`: an unusable connection or
    a ``branches`` target that is not downstream fails the task without retries.

    Direct downstream tasks not followed are skipped. The XCom ``return_value`` is the outcome:
    ``{"condition", "session_id", "status_code", "message", "attempts", "elapsed_s"}``.

    .. seealso:: ``docs/operators.md`` and ``docs/conditions.md``.

    :param session_id: the CXone agent session to join (Studio's SessionId). (templated)
    :param security_user: the SecurityUser mapping (or its JSON / repr string, or a bare agent id).
        Default: the return value of the nearest upstream :class:`SetSecurityUserOperator`, like
        Studio's default ``SecurityUser``. (templated)
    :param branches: condition name (or ``JoinCondition``) to a task id, task group id or list of them.
    :param cxone_conn_id: overrides the connection named by the SecurityUser (else ``cxone_default``).
        (templated)
    :param hook_params: extra keyword arguments for :class:`~cxone_provider.hooks.cxone.CxoneHook`.
    :param condition_rules: the tenant's own readings of error answers, tried before the connection's
        extra ``condition_rules`` and the published table (``docs/conditions.md``): a list of
        ``{"status": 404, "pattern": "<regex over CXone's error text>", "condition": "InvalidAgentSession"}``.
        Checked when the DAG is parsed; a bad rule is an import error naming the field and the value.
    :param emit_asset: when the join is routed, add an event to its Asset
        ``cxone://<tenant>/joins/<dag_id>/<task_id>`` whose ``extra`` holds the condition and its figures
        (``docs/assets.md``); default off.
    """

    template_fields: Sequence[str] = cxone_template_fields("session_id", "security_user")
    ui_color = "#d5f5e3"
    # "CXone outcome": this join's row in the CXone UI (condition, branch followed, SecurityUser).
    operator_extra_links = (JoinOutcomeLink(),)

    def __init__(
        self,
        *,
        session_id: Any,
        security_user: Any = None,
        branches: Branches | None = None,
        cxone_conn_id: str | None = None,
        hook_params: dict[str, Any] | None = None,
        condition_rules: Sequence[Mapping[str, Any]] | str | None = None,
        emit_asset: bool = False,
        **kwargs: Any,
    ) -> None:
        # choose_branch() pushes the outcome as return_value itself (a branching execute may end by
        # raising); Airflow's own push would overwrite it with the list of branches followed.
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(cxone_conn_id=cxone_conn_id, hook_params=hook_params, **kwargs)
        self.session_id = session_id
        self.security_user = security_user
        self.branches = normalise_branches(branches)
        self.condition_rules = condition_rules
        self.emit_asset = emit_asset
        if emit_asset:
            self.declare_asset("joins")
        try:
            self._rules = parse_condition_rules(condition_rules)
        except ValueError as bad:
            raise ConditionRulesError(f"{self.task_id}: {bad}") from None

    # --- parse-time checks --------------------------------------------------------------------------

    def validate_branches(self) -> None:
        """Raise :class:`BranchConfigError` naming every target that is not directly downstream.

        Airflow calls this while parsing the DAG (through this package's cluster policy); it also
        runs before each join, for DAGs loaded from a plugins folder without the policy.
        """
        downstream = set(self.downstream_task_ids)
        groups = self.dag.task_group_dict if self.has_dag() else {}
        bad: list[str] = []
        for condition, targets in self.branches.items():
            for target in targets:
                if target in downstream:
                    continue
                group = groups.get(target)
                if group is not None and {root.task_id for root in group.roots} <= downstream:
                    continue
                bad.append(f"{condition.value} -> {target!r}")
        if bad:
            raise BranchConfigError(
                f"{self.task_id}: branches target(s) not directly downstream: {', '.join(bad)}; "
                f"direct downstream tasks are {sorted(downstream)}"
            )

    # --- run time -----------------------------------------------------------------------------------

    def choose_branch(self, context: Context) -> list[str]:
        """Join, then the task (group) ids the result condition routes to; fail when none does."""
        try:
            with self.cxone_failures("Join Agent Session"):
                self.validate_branches()
                outcome, user, source = self._join(context)
            if self.emit_asset:
                self.add_asset_event(context, "joins", join_extra(outcome.to_dict()))
        finally:
            self.close_hooks()
        # Pushed here, not returned: a branching execute() ends by raising DownstreamTasksSkipped, and
        # a failed route should still leave the outcome for reports.
        context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=outcome.to_dict())
        targets, rule = route(self.branches, outcome.condition, self.downstream_task_ids)
        self.log.info(
            "Join Agent Session %r as %s (%s): %s (%s, %s, %.3f s) → %s%s",
            outcome.session_id,
            f"agent {user.agent_id}" if user else "no SecurityUser",
            source,
            outcome.condition.value,
            describe_status(outcome.status_code),
            plural(outcome.attempts, "attempt"),
            outcome.elapsed_s,
            ", ".join(targets) if targets is not None else "no branch",
            f" ({rule})" if targets is not None else "",
        )
        if outcome.condition is not JoinCondition.SUCCESS:
            self.log.info("CXone said: %s", outcome.message)
        if targets is None:
            wanted = outcome.condition.value
            hint = (
                "add branches['Default']"
                if outcome.condition is JoinCondition.DEFAULT
                else f"add branches[{wanted!r}] or branches['Default']"
            )
            message = (
                f"Join Agent Session ended in {wanted} for session_id "
                f"{outcome.session_id!r} and no branch handles it ({hint}): {outcome.message}"
            )
            if outcome.condition is JoinCondition.DEFAULT:
                raise AirflowException(message)
            raise AirflowFailException(message)
        return targets

    def join(self, context: Context) -> JoinOutcome:
        """Resolve the SecurityUser, then join through the hook; bad input is answered without a call."""
        try:
            return self._join(context)[0]
        finally:
            self.close_hooks()

    def _join(self, context: Context) -> tuple[JoinOutcome, SecurityUser | None, str]:
        """:meth:`join`, plus the SecurityUser (``None`` when unusable) and where it came from, for the log."""
        outcome, user, source = self._join_once(context)
        count_outcomes([outcome])  # the join's one outcome, however it ended
        return outcome, user, source

    def _join_once(self, context: Context) -> tuple[JoinOutcome, SecurityUser | None, str]:
        source = security_user_source(self, self.security_user)
        try:
            user = parse_security_user(resolve_security_user_value(self, context, self.security_user))
            # Studio's SessionId is required here: a blank one is a template that rendered to nothing,
            # not a wish to join whichever session the agent has (join_agent_session's None).
            session_id = check_session_id(self.session_id)
        except InputRejected as rejected:
            return (
                JoinOutcome(rejected.condition, session_label(self.session_id), message=rejected.message),
                None,
                source,
            )
        # The connection comes from the SecurityUser unless cxone_conn_id overrides it.
        # One join, paced by the connection's one budget like every sweep on it.
        limiter = AdaptiveLimiter(1, stop=self._stop_event)
        hook = self.make_hook(
            connection_for(user, self.cxone_conn_id),
            attempt_gate=limiter.slot,
            answer_listener=limiter.on_answer,
            retry_listener=limiter.on_retry,
        )
        share_budget(limiter, hook)
        outcome = join_agent_session(hook, session_id, user.agent_id, condition_rules=self._rules)
        self.keep_run_facts("agent-sessions", {outcome.condition.value: 1})
        return outcome, user, source
