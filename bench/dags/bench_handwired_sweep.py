"""The provider's way, for bench/bench_vs_handwired.py: one sweep task joins every agent in the run's conf.

CXone's published join, each agent joined as itself (``agents=``), through one HTTP session and one token
that never leaves the task.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from cxone_provider.operators.sweep import JoinAgentSessionsOperator

with DAG("bench_handwired_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    JoinAgentSessionsOperator(task_id="sweep", agents="{{ dag_run.conf['agents'] }}", progress_interval_s=3600)
