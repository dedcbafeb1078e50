"""A 2,000-session sweep whose task process the e2e test kills with SIGKILL halfway; Airflow retries it.

The session ids are unknown to the sandbox (each join is answered ``InvalidAgentSession``): every one
is a join request the journal counts, and nothing else in the deployment sees 2,000 live sessions.

It uses the deprecated ``session_ids`` form (sessions joined by id as 1001), which needs the sandbox's
``join_mode="session"`` extension: the tests that run it start or set their sandbox with
``LEGACY_SANDBOX_EXTENSIONS`` (tests/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from cxone_provider.operators.sweep import JoinAgentSessionsOperator

SESSIONS = 2000

with DAG("cxone_e2e_resumable_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    JoinAgentSessionsOperator(
        task_id="sweep",
        session_ids=[f"e2e-resume-{n}" for n in range(SESSIONS)],
        security_user={"agent_id": 1001},
        max_concurrency=8,
        progress_interval_s=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
