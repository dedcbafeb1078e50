"""DAGs the operator tests run with ``dag.test()``: one per routing rule, templating and bad input."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, TaskGroup, task

from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.security_user import SetSecurityUserOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
# Fast retries: these DAGs test routing, not backoff.
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3}


@task
def mark() -> str:
    return "ran"


#: every DAG of this file by id, for the tests
DAGS: dict[str, DAG] = {}


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    params = {"session_id": "sess-2001", "agent_id": 1001, **kwargs.pop("params", {})}
    dag = DAG(dag_id, schedule=None, start_date=START, catchup=False, params=params, **kwargs)
    DAGS[dag_id] = dag
    return dag


# Rule 1 (own entry) and rule 2 (Default when the condition has no entry of its own).
with _dag("t_rules_1_2"):
    (
        SetSecurityUserOperator(task_id="set_security_user", agent_id="{{ params.agent_id }}")
        >> JoinAgentSessionOperator(
            task_id="join",
            session_id="{{ params.session_id }}",
            branches={"Success": "on_success", "InvalidAgentSession": ["on_invalid_session"], "Default": "on_default"},
            hook_params=FAST,
        )
        >> [mark.override(task_id=t)() for t in ("on_success", "on_invalid_session", "on_default")]
    )

# Rule 3: no branches at all — Success runs everything downstream, anything else fails the task.
with _dag("t_rule_3"):
    join = JoinAgentSessionOperator(
        task_id="join", session_id="{{ params.session_id }}", security_user="{{ params.agent_id }}", hook_params=FAST
    )
    join >> [mark.override(task_id="work_a")(), mark.override(task_id="work_b")()]

# Rule 3 with only a failure branch defined: Success (no entry, no Default) runs every direct downstream.
with _dag("t_rule_3_claimed"):
    join = JoinAgentSessionOperator(
        task_id="join",
        session_id="{{ params.session_id }}",
        security_user="{{ params.agent_id }}",
        branches={"InvalidAgentSession": "alert"},
        hook_params=FAST,
    )
    join >> [mark.override(task_id="work")(), mark.override(task_id="alert")()]

# A task group as a branch target.
with _dag("t_task_group"):
    join = JoinAgentSessionOperator(
        task_id="join",
        session_id="{{ params.session_id }}",
        security_user="{{ params.agent_id }}",
        branches={"Success": "supervise", "Default": "fallback"},
        hook_params=FAST,
    )
    with TaskGroup("supervise") as supervise:
        mark.override(task_id="first")() >> mark.override(task_id="second")()
    join >> [supervise, mark.override(task_id="fallback")()]


@task
def pick_session() -> str:
    # Agent 1001's live session (the seed's): CXone's join attaches an agent to its own session only.
    return "sess-1001"


@task
def make_user() -> dict[str, Any]:
    return {"agent_id": 1001, "conn_id": "cxone_default", "time_zone": "UTC"}


def _templating_joins() -> None:
    user = make_user()
    session = pick_session()
    JoinAgentSessionOperator(task_id="xcomarg_inputs", session_id=session, security_user=user)
    (
        JoinAgentSessionOperator(
            task_id="pulled_user",
            session_id="{{ params.session_id }}",
            security_user="{{ ti.xcom_pull(task_ids='make_user') }}",
        )
        << user
    )
    (
        JoinAgentSessionOperator(
            task_id="pulled_session",
            session_id="{{ ti.xcom_pull(task_ids='pick_session') }}",
            security_user='{"agent_id": 1001}',
        )
        << session
    )
    SetSecurityUserOperator(task_id="set_security_user", agent_id=2004) >> JoinAgentSessionOperator(
        task_id="default_user", session_id="sess-2004"
    )


# The same joins rendered to strings (the default) and to native objects.
with _dag("t_templating_plain"):
    _templating_joins()
with _dag("t_templating_native", render_template_as_native_obj=True):
    _templating_joins()

# Bad input: every condition routed, so the test reads the branch that was followed.
with _dag("t_bad_input", params={"security_user": {"agent_id": 1001}}):
    JoinAgentSessionOperator(
        task_id="join",
        session_id="{{ params.session_id }}",
        security_user="{{ params.security_user }}",
        branches={
            "Success": "ok",
            "InvalidAgentSession": "bad_session",
            "InvalidSecurityUser": "bad_user",
            "InvalidAgentId": "bad_agent",
            "Default": "other",
        },
    ) >> [mark.override(task_id=t)() for t in ("ok", "bad_session", "bad_user", "bad_agent", "other")]
