"""A sweep long enough to be stopped halfway: 400 joins, two in flight, against a slowed sandbox.

The session ids are unknown to the sandbox (each join is answered ``InvalidAgentSession``), so the
sweep sends every one of them and nothing else in the deployment sees 400 more live sessions.

It uses the deprecated ``session_ids`` form (sessions joined by id as 1001), which needs the sandbox's
``join_mode="session"`` extension: the tests that run it start or set their sandbox with
``LEGACY_SANDBOX_EXTENSIONS`` (tests/conftest.py).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from cxone_provider.operators.sweep import JoinAgentSessionsOperator

SESSIONS = 400

with DAG("cxone_e2e_long_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    JoinAgentSessionsOperator(
        task_id="sweep",
        session_ids=[f"e2e-stop-{n}" for n in range(SESSIONS)],
        security_user={"agent_id": 1001},
        max_concurrency=2,
        progress_interval_s=1,
    )
