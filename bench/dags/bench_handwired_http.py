"""The hand-wired way, for bench/bench_vs_handwired.py: what a user builds from apache-airflow-providers-http.

1. **token**: an ``HttpOperator`` posts the password grant to the token endpoint (connection ``cxone_auth``:
   the application's client id and secret; the access key in connection ``cxone_key``). Its
   ``response_filter`` returns the access token, so the bearer is the task's XCom: every mapped join
   reads it from there.
2. **endpoints**: the run's ``conf["agents"]`` as join endpoints (CXone's published join: ``asAgentId``,
   each agent joined as itself).
3. **check**, a task group mapped over them, per session: ``join`` (an ``HttpOperator`` on connection
   ``cxone_api``, the Agent API's base URL; any status is an answer, not a failure), then ``route`` (a
   ``BranchPythonOperator``) picks one ``EmptyOperator`` per result condition and skips the others for
   that map index. On Airflow 3.3.2 the skip does not happen: every condition's task runs for every session
   (apache/airflow issue 67265: a branch inside a mapped task group; bench_vs_handwired.py counts it).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import DAG, get_current_context, task, task_group

#: The join's answers a user would route on, by status; anything else is retried later.
ROUTES = {202: "joined", 400: "invalid_agent", 401: "refused", 403: "refused", 404: "no_live_session"}
OTHERWISE = "retry_later"
BRANCHES = sorted({*ROUTES.values(), OTHERWISE})


def bearer_of(response: Any) -> str:
    return str(response.json()["access_token"])


def status_of(response: Any) -> int:
    return int(response.status_code)


def route(status: int) -> str:
    return f"check.{ROUTES.get(status, OTHERWISE)}"


with DAG("bench_handwired_http", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    token = HttpOperator(
        task_id="token",
        http_conn_id="cxone_auth",
        endpoint="/auth/token",
        method="POST",
        data={
            "grant_type": "password",
            "username": "{{ conn.cxone_key.login }}",
            "password": "{{ conn.cxone_key.password }}",
        },
        response_filter=bearer_of,
    )

    @task
    def endpoints() -> list[str]:
        agents = (get_current_context()["dag_run"].conf or {})["agents"]
        return [f"agent-sessions/join?asAgentId={agent}" for agent in agents]

    @task_group
    def check(endpoint: str) -> None:
        join = HttpOperator(
            task_id="join",
            http_conn_id="cxone_api",
            endpoint=endpoint,
            method="POST",
            headers={"Authorization": "Bearer {{ ti.xcom_pull(task_ids='token') }}"},
            extra_options={"check_response": False},
            response_filter=status_of,
        )
        branch = BranchPythonOperator(task_id="route", python_callable=route, op_args=[join.output])
        branch >> [EmptyOperator(task_id=name) for name in BRANCHES]

    token >> check.expand(endpoint=endpoints())
