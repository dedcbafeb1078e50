"""Benchmark: the CXone sweeps page with 1,000 sweep runs in the metadata DB.

    .venv/bin/python bench/bench_ui.py [--runs 1000] [--requests 60] [--database-url URL]

Builds a metadata DB in a throw-away AIRFLOW_HOME (SQLite unless ``--database-url`` names another,
already-empty database), migrates it, and inserts what 1,000 runs of the QA-sweep DAG leave behind:
per run a DagRun, the sweep's task instance with its ``return_value`` XCom (50 to 1,000 sessions, the
slimmer shape whose ``outcomes`` lists only the sessions that did not succeed) and ten other task
instances, spread over three DAGs. Then it serves Airflow's own api-server app (``create_app()``, this
plugin mounted at ``/cxone``, the simple auth manager) in-process under a test client, and times, as
the admin, each page shown below: the whole request through Airflow's middlewares and the plugin's
auth dependencies, without a network in between. Median and p95 are printed; the target for the
sweeps page is under 300 ms, and nothing is asserted: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

# Airflow reads its configuration on first import: a throw-away home keeps this run self-contained.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cxone-bench-ui-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no access log line per timed request
os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
# A passwords file of our own, so that the auth manager does not generate and print one.
_PASSWORDS = os.path.join(os.environ["AIRFLOW_HOME"], "simple_auth_manager_passwords.json")
with open(_PASSWORDS, "w", encoding="utf-8") as _file:
    _file.write(json.dumps({"admin": secrets.token_urlsafe(16)}))
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = _PASSWORDS
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))

CONDITIONS = (
    "Success",
    "InvalidAgentSession",
    "Default",
    "InvalidSecurityUser",
    "ImpersonateNotEnabled",
    "InvalidAgentId",
)
DAG_IDS = ("cxone_qa_sweep", "cxone_qa_sweep_emea", "cxone_qa_sweep_apac")
OTHER_TASKS = 10
TARGET_MS = 300.0


def sweep_result(rng: random.Random, run: int) -> dict[str, Any]:
    """One sweep's XCom: mostly Success (ids only), some sessions ended or throttled, with their outcomes."""
    from cxone_provider.sweeps.result import SCHEMA, SCHEMA_KEY  # after the throw-away home is set

    sessions = rng.randint(50, 1000)
    ids = [f"sess-{run:04d}-{n:04d}" for n in range(sessions)]
    result: dict[str, Any] = {SCHEMA_KEY: SCHEMA, **{c: [] for c in CONDITIONS}}
    outcomes = []
    for session_id in ids:
        roll = rng.random()
        condition = "Success" if roll < 0.9 else "InvalidAgentSession" if roll < 0.97 else "Default"
        result[condition].append(session_id)
        if condition != "Success":
            status = 409 if condition == "InvalidAgentSession" else 503
            message = "Session has ended" if status == 409 else "HTTP 503 after 5 attempts"
            outcomes.append(
                {
                    "condition": condition,
                    "session_id": session_id,
                    "status_code": status,
                    "message": message,
                    "attempts": 1 if status == 409 else 5,
                    "elapsed_s": round(rng.uniform(0.05, 2.0), 3),
                }
            )
    counts = {c: len(result[c]) for c in CONDITIONS}
    elapsed = round(sessions / rng.uniform(80, 160), 2)
    result.update(
        outcomes=outcomes,
        duplicates=[],
        counts=counts,
        stats={
            "requests": sessions + counts["Default"] * 4,
            "retries": {"503": counts["Default"] * 4, "429": rng.randint(0, 20)},
            "token_requests": 1,
            "elapsed_s": elapsed,
            "joins_per_s": round(sessions / elapsed, 1),
        },
        report=f"/opt/airflow/cxone_reports/qa_sweep_run_{run}.jsonl",
    )
    return result


def fill(runs: int, other_tasks: int = OTHER_TASKS, seed: int = 7) -> None:
    """Insert ``runs`` sweep runs (DagRun, task instances, the sweep's XCom) in a few transactions."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    rng = random.Random(seed)
    start = datetime(2026, 11, 28, 6, 0, tzinfo=UTC) - timedelta(days=runs)
    with create_session() as session:
        session.execute(insert(DagBundleModel.__table__).values(name="dags-folder"))
        session.execute(
            insert(DagModel.__table__),
            [
                {
                    "dag_id": dag_id,
                    "bundle_name": "dags-folder",
                    "max_active_tasks": 16,
                    "max_consecutive_failed_dag_runs": 0,
                    "has_task_concurrency_limits": False,
                    "is_paused": False,
                }
                for dag_id in DAG_IDS
            ],
        )
    for first in range(0, runs, 200):
        dag_runs, task_instances, xcoms = [], [], []
        batch = range(first, min(first + 200, runs))
        for n in batch:
            dag_id = DAG_IDS[n % len(DAG_IDS)]
            began = start + timedelta(days=n, minutes=rng.randint(0, 59))
            run_id = f"scheduled__{began.isoformat()}"
            result = sweep_result(rng, n)
            took = result["stats"]["elapsed_s"]
            dag_runs.append(
                {
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "run_type": "scheduled",
                    "state": "success",
                    "start_date": began,
                    "end_date": began + timedelta(seconds=took + 30),
                    "logical_date": began,
                    "run_after": began,
                    "data_interval_start": began - timedelta(days=1),
                    "data_interval_end": began,
                }
            )
            tasks = [("sweep", "JoinAgentSessionsOperator")] + [
                (f"follow_up_{k}", "_PythonDecoratedOperator") for k in range(other_tasks)
            ]
            for task_id, operator in tasks:
                task_instances.append(
                    {
                        "id": uuid.uuid4(),
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": task_id,
                        "map_index": -1,
                        "state": "success",
                        "start_date": began,
                        "end_date": began + timedelta(seconds=took),
                        "duration": took,
                        "operator": operator,
                        "pool": "default_pool",
                        "pool_slots": 1,
                        "try_number": 1,
                    }
                )
            xcoms.append((dag_id, run_id, result))
        with create_session() as session:
            session.execute(insert(DagRun.__table__), dag_runs)
            session.execute(insert(TaskInstance.__table__), task_instances)
            ids = {
                (d, r): i
                for i, d, r in session.execute(
                    select(DagRun.id, DagRun.dag_id, DagRun.run_id).where(DagRun.run_id.in_([x[1] for x in xcoms]))
                )
            }
            session.execute(
                insert(XComModel.__table__),
                [
                    {
                        "dag_run_id": ids[(dag_id, run_id)],
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "task_id": "sweep",
                        "map_index": -1,
                        "key": "return_value",
                        "value": result,
                        "timestamp": datetime.now(UTC),
                    }
                    for dag_id, run_id, result in xcoms
                ],
            )


def timed(client: Any, url: str, requests: int) -> tuple[float, float, int]:
    """Median and p95 milliseconds of ``requests`` GETs of ``url`` (after two warm-up requests)."""
    for _ in range(2):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.text[:300]}")
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="sweep runs in the metadata DB (default 1000)")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page (default 60)")
    parser.add_argument(
        "--other-tasks", type=int, default=OTHER_TASKS, help=f"other task instances per run (default {OTHER_TASKS})"
    )
    parser.add_argument("--database-url", help="an empty database to use instead of a new SQLite file")
    args = parser.parse_args()
    if args.database_url:
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = args.database_url

    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    migrated = time.perf_counter()
    fill(args.runs, args.other_tasks)
    filled = time.perf_counter()
    database = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"SQLite in {os.environ['AIRFLOW_HOME']}"
    print(
        f"metadata DB: {database}; "
        f"migrated in {migrated - began:.1f} s, {args.runs} sweep runs (+{args.other_tasks} other task instances each) "
        f"inserted in {filled - migrated:.1f} s"
    )

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    client.cookies.set("_token", get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin")))

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        newest = session.execute(select(DagRun.dag_id, DagRun.run_id).order_by(DagRun.start_date.desc())).first()
    assert newest is not None
    pages = {
        "sweeps page (newest 25)": "/cxone/sweeps",
        "sweeps page 40 of 40": "/cxone/sweeps?page=40",
        "sweeps page, one DAG, one month": f"/cxone/sweeps?dag_id={DAG_IDS[0]}&since=2026-10-01&until=2026-10-31",
        "run page of the newest sweep": f"/cxone/sweeps/{newest.dag_id}/{newest.run_id}/sweep",
    }
    print(f"{'page':<36} {'median ms':>10} {'p95 ms':>8} {'bytes':>9}")
    for name, url in pages.items():
        median, p95, size = timed(client, url, args.requests)
        print(f"{name:<36} {median:>10.1f} {p95:>8.1f} {size:>9}")
    # Every TASKS_TTL_S one request also searches the XComs for new sweep tasks: time a cold search too.
    from cxone_provider.ui import airflow_access

    cold = []
    for _ in range(5):
        airflow_access.forget_tasks()
        began = time.perf_counter()
        client.get("/cxone/sweeps")
        cold.append((time.perf_counter() - began) * 1000)
    print(f"{'sweeps page, task list rebuilt':<36} {statistics.median(cold):>10.1f} {max(cold):>8.1f}  (5 requests)")
    print(f"target: the sweeps page under {TARGET_MS:.0f} ms (server time, {args.requests} requests per page)")


if __name__ == "__main__":
    main()
