"""A sweep that updates its Asset, a join that opts in, and a DAG scheduled on the sweep's Asset."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from cxone_provider.assets import sweep_asset
from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: the shipped sandbox seed's tenant: the connection's tenant_id extra names it
SANDBOX_TENANT = "11ee0000-0000-4000-8000-00000000cx01"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2}

with DAG(
    "cxone_asset_sweep", schedule=None, start_date=START, catchup=False, params={"report_path": "/tmp"}
) as sweep_dag:
    JoinAgentSessionsOperator(
        task_id="sweep",
        agents=ListAgentSessionsOperator(task_id="list_sessions").output,
        report_path="{{ params.report_path }}",
        hook_params=FAST,
    )

with DAG("cxone_asset_join", schedule=None, start_date=START, catchup=False) as join_dag:
    (
        JoinAgentSessionOperator(
            task_id="join",
            session_id="sess-2001",
            security_user={"agent_id": 1001},
            branches={"Default": "anything"},
            emit_asset=True,
            hook_params=FAST,
        )
        >> task(task_id="anything")(lambda: None)()
    )


@task
def read_summary(**context: Any) -> dict[str, Any]:
    """What a downstream DAG reads: the sweep's summary, from the event that triggered the run."""
    events = context["triggering_asset_events"][sweep_asset(SANDBOX_TENANT, "cxone_asset_sweep", "sweep")]
    return dict(events[-1].extra)


with DAG(
    "cxone_asset_consumer",
    schedule=[sweep_asset(SANDBOX_TENANT, "cxone_asset_sweep", "sweep")],
    start_date=START,
    catchup=False,
) as consumer_dag:
    read_summary()

with DAG("cxone_asset_mapped_sweep", schedule=None, start_date=START, catchup=False) as mapped_sweep_dag:
    # Two chunks at once: a mapped sweep adds no asset event (docs/assets.md says why).
    JoinAgentSessionsOperator.partial(task_id="sweep", hook_params=FAST).expand(agents=[[2001], [2002]])
