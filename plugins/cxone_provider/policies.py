"""Airflow cluster policy (entry point ``airflow.policy``): reject join tasks that cannot work as wired.

``branches`` targets and the default SecurityUser can only be checked once the DAG's dependencies
exist, which is after the operator is built; Airflow runs this for every task when it bags a parsed
DAG, so a wrong target, or two SetSecurityUserOperators equally near a join that relies on the
default, becomes an import error on the DAG file rather than a surprise at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.policies import hookimpl

if TYPE_CHECKING:
    from airflow.models.baseoperator import BaseOperator

_OUR_OPERATORS = "cxone_provider.operators."


@hookimpl
def task_policy(task: BaseOperator) -> None:
    # Airflow calls this for every task of every DAG: a task that is not ours costs one look at its
    # class's modules and never imports the provider (a broken dependency of ours must not break them).
    if not any(cls.__module__.startswith(_OUR_OPERATORS) for cls in type(task).__mro__):
        return
    from airflow.exceptions import AirflowClusterPolicyViolation

    from cxone_provider.domain.security_user import uses_default_security_user
    from cxone_provider.exceptions import AmbiguousSecurityUserError, BranchConfigError
    from cxone_provider.operators.agent_session import JoinAgentSessionOperator
    from cxone_provider.operators.common import nearest_set_security_user
    from cxone_provider.operators.sweep import JoinAgentSessionsOperator

    try:
        if isinstance(task, JoinAgentSessionOperator):
            task.validate_branches()
        # A sweep of agents joins each as itself: no SecurityUser, so none to look for upstream.
        by_agents = isinstance(task, JoinAgentSessionsOperator) and task.agents is not None
        if (
            isinstance(task, JoinAgentSessionOperator | JoinAgentSessionsOperator)
            and not by_agents
            and uses_default_security_user(task.security_user)
        ):
            nearest_set_security_user(task)
    except (BranchConfigError, AmbiguousSecurityUserError) as error:
        raise AirflowClusterPolicyViolation(str(error)) from None
