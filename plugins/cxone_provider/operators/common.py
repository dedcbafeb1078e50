"""What both join operators share: the SecurityUser they join as, the connection they use, the join itself.

- :func:`join_agent_session` — Studio's *Join Agent Session* for one session: the checks made before
  any request, the call through the hook, and the outcome :mod:`cxone_provider.domain.classification` decides;
- :func:`resolve_security_user_value` — Studio's default SecurityUser: the nearest upstream
  :class:`~cxone_provider.operators.security_user.SetSecurityUserOperator`'s return value;
- :func:`connection_for`, :func:`as_list` — the connection a join uses, and templated lists.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cxone_provider.compat import AirflowFailException
from cxone_provider.domain.classification import JoinFacts, join_outcome, needs_probe
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_agent_id, check_session_id, parse_list, session_label
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import uses_default_security_user
from cxone_provider.exceptions import AmbiguousSecurityUserError, CxoneApiError, CxoneAuthError, CxoneDiscoveryError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.security_user import SetSecurityUserOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from airflow.sdk.definitions._internal.abstractoperator import AbstractOperator

    from cxone_provider.domain.condition_rules import ConditionRule
    from cxone_provider.domain.security_user import SecurityUser


def join_agent_session(
    hook: CxoneHook,
    session_id: object | None,
    agent_id: object,
    *,
    condition_rules: Sequence[ConditionRule] = (),
) -> JoinOutcome:
    """Studio's *Join Agent Session*: join as ``agent_id``, expecting ``session_id``; its outcome, never
    raising for what CXone answers.

    ``session_id`` ``None`` or ``""`` expects none: ``Success`` is CXone answering the agent's live
    session, whose id the outcome carries. Inputs that cannot be valid (a blank or malformed session id,
    a non-positive agent id) get their condition without a request. A 404 that names no condition costs
    one read-only ``GET agents/{agent_id}`` to tell a wrong route, an unknown agent and an unknown
    session apart. ``condition_rules`` (the operator's) are tried before the connection's extra
    ``condition_rules``, and both before the published table. Only an unusable connection raises
    (``CxoneConfigError``).
    """
    started = time.monotonic()
    try:
        checked_session = None if session_id is None or session_id == "" else check_session_id(session_id)
        checked_agent = check_agent_id(agent_id)
    except InputRejected as rejected:
        shown = session_label(session_id) if session_id is not None else ""
        return JoinOutcome(rejected.condition, shown, message=rejected.message)
    try:
        answer: Any = hook.join_session(checked_session, as_agent_id=checked_agent)
    except (CxoneAuthError, CxoneApiError) as error:
        answer = error
    facts = JoinFacts(
        as_agent_id=checked_agent,
        token_holder_agent_id=hook.token_holder_agent_id,
        rules=(*condition_rules, *hook.condition_rules),
    )
    probe = None
    if (
        isinstance(answer, CxoneApiError)
        and not isinstance(answer, CxoneDiscoveryError)
        and needs_probe(answer.http_status, answer.response.body, answer.response.status_description, facts)
    ):
        probe = hook.probe_agent(checked_agent)
    return join_outcome(checked_session, answer, time.monotonic() - started, facts=facts, probe=probe)


def connection_for(user: SecurityUser, override: str | None) -> str:
    """The connection a join calls CXone with: the operator's, else the SecurityUser's, else the default."""
    return override or user.conn_id or CxoneHook.default_conn_name


def resolve_security_user_value(task: AbstractOperator, context: Context, value: Any) -> Any:
    """``value``, or Studio's default: the return value of the nearest upstream SetSecurityUser."""
    if not uses_default_security_user(value):
        return value
    provider = nearest_set_security_user(task)
    if provider is None:
        raise InputRejected(
            JoinCondition.INVALID_SECURITY_USER,
            f"security_user is not set and no SetSecurityUserOperator is upstream of {task.task_id!r}",
        )
    pulled = context["ti"].xcom_pull(task_ids=provider.task_id)
    if pulled is None:
        raise InputRejected(
            JoinCondition.INVALID_SECURITY_USER,
            f"SetSecurityUserOperator {provider.task_id!r} returned no SecurityUser",
        )
    return pulled


def security_user_source(task: AbstractOperator, value: Any) -> str:
    """Where a join's SecurityUser comes from, for the log: a task id, or ``security_user=``."""
    if not uses_default_security_user(value):
        return "security_user="
    try:
        provider = nearest_set_security_user(task)
    except AmbiguousSecurityUserError:
        return "ambiguous"
    return f"from {provider.task_id}" if provider is not None else "no SetSecurityUserOperator upstream"


def nearest_set_security_user(task: AbstractOperator) -> AbstractOperator | None:
    """The closest upstream SetSecurityUserOperator, by the number of edges between them.

    Two at the same distance raise :class:`AmbiguousSecurityUserError` naming both: picking one
    would depend on set order, which changes from one process to the next.
    """
    if not task.has_dag():
        return None
    seen: set[str] = {task.task_id}
    level: list[AbstractOperator] = list(task.upstream_list)
    while level:
        fresh = {t.task_id: t for t in level if t.task_id not in seen}
        seen.update(fresh)
        found = sorted(tid for tid, t in fresh.items() if isinstance(t, SetSecurityUserOperator))
        if len(found) > 1:
            raise AmbiguousSecurityUserError(
                f"{task.task_id}: SetSecurityUserOperators {', '.join(map(repr, found))} are equally near "
                f"upstream, so the SecurityUser to join as is ambiguous; pass security_user= explicitly, "
                f"e.g. security_user=\"{{{{ ti.xcom_pull(task_ids='{found[0]}') }}}}\""
            )
        if found:
            return fresh[found[0]]
        level = [up for t in fresh.values() for up in t.upstream_list]
    return None


def as_list(field_name: str, value: Any) -> list[Any] | None:
    """A list-valued template field's items, by :func:`~cxone_provider.domain.inputs.parse_list`'s rule.

    :raises AirflowFailException: naming the field and the value (a bad list does not get better on retry).
    """
    try:
        return parse_list(field_name, value)
    except ValueError as bad:
        raise AirflowFailException(str(bad)) from None
