"""Airflow cluster policy (entry point ``airflow.policy``): reject bad ``branches`` when a DAG is parsed.

``branches`` targets can only be checked once the DAG's dependencies exist, which is after the
operator is built; Airflow runs this for every task when it bags a parsed DAG, so a wrong target
becomes an import error on the DAG file rather than a surprise at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.policies import hookimpl

if TYPE_CHECKING:
    from airflow.models.baseoperator import BaseOperator


@hookimpl
def task_policy(task: BaseOperator) -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation

    from cxone_provider.operators.agent_session import BranchConfigError, JoinAgentSessionOperator

    if isinstance(task, JoinAgentSessionOperator):
        try:
            task.validate_branches()
        except BranchConfigError as error:
            raise AirflowClusterPolicyViolation(str(error)) from None
