"""End to end: a sweep of 2,000 sessions in 4 chunks of 500, mapped over two Celery workers.

One CeleryExecutor deployment (PostgreSQL metadata DB and result backend, Redis broker) with two
``airflow celery worker`` processes of 2 slots each, and one run of ``cxone_e2e_chunked_sweep``
against a sandbox with 2,000 live sessions and 20 ms latency per request. The test checks what
users rely on: the run succeeds, CXone received exactly one join per session, the chunks ran on
both workers, and the merged result counts every session.

Airflow records a task instance's ``hostname`` from ``[core] hostname_callable`` in the worker's
task process; both workers run on this machine, so each gets a callable returning its own name.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import airflow_stack
import pytest
from airflow_stack import (
    AirflowClient,
    Processes,
    airflow_command,
    free_port,
    missing_prerequisites,
    report,
    start_airflow,
    start_postgres,
    start_redis,
    task_log_tails,
    unavailable,
    wait_until,
)
from conftest import LEGACY_SANDBOX_EXTENSIONS

from cxone_provider.testing import SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

DAG_ID = "cxone_e2e_chunked_sweep"
DAG_FILE = Path(__file__).with_name("dags") / f"{DAG_ID}.py"
SESSIONS = 2000
CHUNKS = 4
WORKERS = ("worker-1", "worker-2")
SLOTS_PER_WORKER = 2
RUN_TIMEOUT = 240.0
# The task processes' hostname_callable: the name their worker was started with.
WORKER_NAME_MODULE = """
import os


def hostname() -> str:
    return os.environ["CXONE_E2E_WORKER_NAME"]
"""


def test_chunks_of_a_mapped_sweep_run_on_both_workers_and_join_every_session_once(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    missing = missing_prerequisites("CeleryExecutor")
    if missing:
        unavailable(f"CeleryExecutor end to end needs: {'; '.join(missing)}")
    workdir = tmp_path_factory.mktemp("e2e-celery-chunks")
    home = workdir / "airflow-home"
    home.mkdir()
    processes = Processes(workdir)
    timings: dict[str, float] = {}
    started = time.monotonic()
    failed_before = request.session.testsfailed
    passed = False
    sandbox = SandboxServer(
        live_sessions=SESSIONS,
        # The chunked sweep joins sessions by id as 1001 (the deprecated session_ids form): it relies on
        # the sandbox's extensions (join by sessionId), not on CXone's published join.
        faults={**LEGACY_SANDBOX_EXTENSIONS, "latency_ms": 20},
        settings={"journal_size": 3 * SESSIONS},  # every join and token request of the run, none dropped
    )
    run_id = ""
    try:
        sandbox.start()
        processes.cleanups.append(sandbox.stop)
        database_url = start_postgres(processes)
        broker_url = start_redis(processes)
        timings["postgres+redis"] = time.monotonic() - started

        dags_folder = workdir / "dags"
        dags_folder.mkdir()
        shutil.copy(DAG_FILE, dags_folder / DAG_FILE.name)  # only this DAG: one file to parse
        port = free_port()
        env = airflow_stack.airflow_env(
            home,
            port,
            dags_folder=dags_folder,
            database_url=database_url,
            executor="CeleryExecutor",
            connections=dict([sandbox.connection_env("cxone_default")]),
        )
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{database_url}"
        env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(SLOTS_PER_WORKER)
        api = start_airflow(processes, env, port, timings=timings)

        mark = time.monotonic()
        pylib = workdir / "pylib"
        pylib.mkdir()
        (pylib / "cxone_e2e_worker_name.py").write_text(WORKER_NAME_MODULE, encoding="utf-8")
        logs = [start_worker(processes, env, name, pylib) for name in WORKERS]
        for name, log in zip(WORKERS, logs, strict=True):
            # Both consume before the run is queued. Each then holds at most its 2 slots' worth of the 4
            # chunks (Airflow's Celery defaults: prefetch multiplier 1, acks late), so both get some.
            wait_until(
                f"celery {name} to be ready",
                lambda log=log: " ready." in log.read_text(),
                90,
                alive=processes.check_alive,
            )
        timings["workers ready"] = time.monotonic() - mark

        mark = time.monotonic()
        api.wait_for_dag(DAG_ID, DAG_FILE.name, 90)
        api.unpause(DAG_ID)
        timings["DAG parsed"] = time.monotonic() - mark

        mark = time.monotonic()
        run_id = api.trigger(DAG_ID, {})
        state = api.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT)
        timings["run"] = time.monotonic() - mark
        assert state == "success", f"the run ended {state}:\n{task_log_tails(home, DAG_ID, run_id, 'sweep')}"

        sweeps = mapped_task_instances(api, run_id, "sweep")
        assert sorted(ti["map_index"] for ti in sweeps) == list(range(CHUNKS))
        assert {ti["state"] for ti in sweeps} == {"success"}
        hosts = Counter(ti["hostname"] for ti in sweeps)
        assert set(hosts) == set(WORKERS), f"the chunks ran on {dict(hosts)}, not on both workers"
        report(request, f"\nchunks per worker: {dict(sorted(hosts.items()))}")

        joins = Counter(
            e["params"]["sessionId"] for e in sandbox.journal() if e["path"].endswith("agent-sessions/join")
        )
        assert sandbox.journal_dropped() == 0
        assert joins == Counter(f"sess-{5001 + n}" for n in range(SESSIONS))  # each session joined exactly once

        summary = api.xcom(DAG_ID, run_id, "summary")
        assert summary["chunks"] == CHUNKS
        assert summary["joined"] == SESSIONS
        assert summary["counts"]["Success"] == SESSIONS
        assert sum(summary["counts"].values()) == SESSIONS
        passed = True
    finally:
        if not passed or request.session.testsfailed > failed_before:
            report(
                request,
                f"\n===== CeleryExecutor, two workers: logs (in {workdir}) =====\n{processes.log_tails()}"
                f"\n----- CXone sandbox (last 40 lines) -----\n{tail_text(sandbox.log())}",
            )
        mark = time.monotonic()
        processes.stop_all()
        timings["stop"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        report(request, "\nCelery chunks timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def start_worker(processes: Processes, env: dict[str, str], name: str, pylib: Path) -> Path:
    """An ``airflow celery worker`` whose task instances record ``name`` as their hostname; its log."""
    worker_env = {
        **env,
        "PYTHONPATH": str(pylib),
        "CXONE_E2E_WORKER_NAME": name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cxone_e2e_worker_name.hostname",
    }
    # A Celery node name and a pid file of its own: two workers on one machine otherwise collide.
    args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(SLOTS_PER_WORKER)]
    args += ["--pid", str(processes.workdir / f"{name}.pid")]
    args += ["--skip-serve-logs", "--without-mingle", "--without-gossip"]
    service = processes.start(f"celery-{name}", airflow_command(*args), worker_env)
    return service.log


def mapped_task_instances(api: AirflowClient, run_id: str, task_id: str) -> list[dict]:
    """Every map index of ``task_id`` in the run, as the REST API lists them."""
    body = api.request("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped")
    return list(body["task_instances"])


def tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
