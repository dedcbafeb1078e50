"""DAGs that wait for an agent with AgentStateSensor.

- ``cxone_e2e_agent_wait``: deferrable, run by a real triggerer in ``tests/e2e/test_triggerer.py``;
  the join downstream takes its ``session_id`` from the sensor's row, which needs the sandbox's
  extensions (``states_session_id``, ``join_mode="session"``; ``LEGACY_SANDBOX_EXTENSIONS``).
- ``t_wait_<mode>``, ``t_wait_<mode>_timeout`` (3 s) and ``t_wait_<mode>_soft`` (3 s, ``soft_fail``) for
  ``poke``, ``reschedule`` and ``deferrable``, run with ``dag.test()`` in
  ``tests/sensors/test_agent_state_sensor.py`` (copied into its DAGs folder).

Every DAG retries its tasks twice, so that a test sees that a refused key, an unknown agent or a
timeout fails the sensor without a retry.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.sensors.agent_state import AgentStateSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: every DAG of this file by id, for the tests
DAGS: dict[str, DAG] = {}
MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}
E2E_POLL_INTERVAL = 2.0


def _dag(dag_id: str) -> DAG:
    dag = DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params={"agent_id": 2009, "states": None},
        render_template_as_native_obj=True,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
    )
    DAGS[dag_id] = dag
    return dag


with _dag("cxone_e2e_agent_wait"):
    wait = AgentStateSensor(
        task_id="wait_for_agent",
        agent_id="{{ params.agent_id }}",
        states="{{ params.states }}",
        poll_interval=E2E_POLL_INTERVAL,
        timeout=240,
        deferrable=True,
    )
    join = JoinAgentSessionOperator(
        task_id="join_agent_session",
        session_id="{{ ti.xcom_pull(task_ids='wait_for_agent')['sessionId'] }}",
        security_user=1001,
    )
    wait >> join

for mode, kwargs in MODES.items():
    for suffix, timeout, soft_fail in (("", 60, False), ("_timeout", 3, False), ("_soft", 3, True)):
        with _dag(f"t_wait_{mode}{suffix}"):
            AgentStateSensor(
                task_id="wait_for_agent",
                agent_id="{{ params.agent_id }}",
                states="{{ params.states }}",
                poll_interval=1,
                timeout=timeout,
                soft_fail=soft_fail,
                **kwargs,
            )
