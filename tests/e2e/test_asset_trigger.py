"""End to end: a sweep's Asset event triggers the DAG scheduled on it, in a real Airflow.

The ``deployment`` fixture starts, in a temporary AIRFLOW_HOME, the CXone sandbox and ``airflow
api-server``, ``scheduler`` and ``dag-processor`` (LocalExecutor, SQLite) on loopback ports, with
``tests/dags/cxone_asset_dags.py`` as the only DAG file. The test triggers the sweep through
``/api/v2``; the scheduler alone then starts ``cxone_asset_consumer``, whose task reads the sweep's
summary from the triggering event's ``extra``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow_stack import AirflowClient, Processes, airflow_env, free_port, report, start_airflow, wait_until

from cxone_provider.testing import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DAG_FILE = Path(__file__).parents[1] / "dags" / "cxone_asset_dags.py"
SWEEP, CONSUMER = "cxone_asset_sweep", "cxone_asset_consumer"


@dataclass
class Deployment:
    workdir: Path
    api: AirflowClient
    sandbox: SandboxServer


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("e2e-assets")
    home = workdir / "airflow-home"
    home.mkdir()
    dags = workdir / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    processes = Processes(workdir)
    ok = False
    try:
        sandbox = SandboxServer().start()
        processes.cleanups.append(sandbox.stop)
        port = free_port()
        env = airflow_env(
            home,
            port,
            dags_folder=dags,
            database_url=f"sqlite:///{home / 'airflow.db'}",
            connections=dict([sandbox.connection_env("cxone_default")]),
        )
        api = start_airflow(processes, env, port)
        for dag_id in (SWEEP, CONSUMER):
            api.wait_for_dag(dag_id, DAG_FILE.name, 120)
            api.unpause(dag_id)
        ok = True
        yield Deployment(workdir, api, sandbox)
    finally:
        if not ok or request.session.testsfailed:
            report(request, f"\n===== logs of the services (in {workdir}) =====\n{processes.log_tails()}")
        processes.stop_all()


def test_the_sweeps_event_triggers_the_dag_scheduled_on_its_asset(deployment: Deployment) -> None:
    api = deployment.api
    run_id = api.trigger(SWEEP, {"report_path": str(deployment.workdir / "reports")})
    assert api.wait_for_run(SWEEP, run_id, 150) == "success"
    result = api.xcom(SWEEP, run_id, "sweep")

    def consumer_run() -> dict[str, Any] | None:
        runs = api.request("GET", f"dags/{CONSUMER}/dagRuns")["dag_runs"]
        return runs[0] if runs else None

    started = time.monotonic()
    run = wait_until("the scheduler to start the DAG scheduled on the sweep's Asset", consumer_run, 90)
    assert run["run_type"] == "asset_triggered", run
    assert api.wait_for_run(CONSUMER, run["dag_run_id"], 150 - (time.monotonic() - started)) == "success"

    summary = api.xcom(CONSUMER, run["dag_run_id"], "read_summary")
    assert summary["counts"] == result["counts"]
    assert summary["total"] == sum(result["counts"].values()) > 0
    assert summary["report"] == result["report"]
    assert summary["figures"]["requests"] == result["stats"]["requests"]
