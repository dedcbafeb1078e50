"""A sweep of 2,000 live sessions in 4 chunks of 500, mapped over the Celery workers.

The ids are the sandbox's generated live sessions (``SandboxServer(live_sessions=2000)``:
``sess-5001`` … ``sess-7000``), split when the file is parsed. ``joined`` merges the chunks' results
with ``sessions_with``; ``summary`` returns the merged counts for the test to read over the REST API.
Other deployments parse this file too (it is not scheduled, and nothing there triggers it).

It uses the deprecated ``session_ids`` form (sessions joined by id as 1001), which needs the sandbox's
``join_mode="session"`` extension: the tests that run it start or set their sandbox with
``LEGACY_SANDBOX_EXTENSIONS`` (tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from cxone_provider.operators.mapped import chunked, merge_sweep_results, sessions_with
from cxone_provider.operators.sweep import JoinAgentSessionsOperator

SESSIONS = 2000
CHUNK_SIZE = 500
FIRST_AGENT_ID = 5001  # the sandbox's first generated agent, whose session is sess-5001


@task
def summary(results: Any, joined: list[str]) -> dict[str, Any]:
    """The chunks' results merged, as counts, beside the merged Success list's length."""
    merged = merge_sweep_results(results)
    return {"chunks": len(merged["stats"]["chunks"]), "counts": merged["counts"], "joined": len(joined)}


with DAG("cxone_e2e_chunked_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    # [START howto_operator_sweep_chunked]
    sweep = JoinAgentSessionsOperator.partial(
        task_id="sweep", security_user={"agent_id": 1001}, max_concurrency=8, progress_interval_s=2
    ).expand(session_ids=chunked([f"sess-{FIRST_AGENT_ID + n}" for n in range(SESSIONS)], CHUNK_SIZE))
    sweep_output: Any = sweep.output
    summary(sweep_output, sessions_with(sweep, "Success"))
    # [END howto_operator_sweep_chunked]
