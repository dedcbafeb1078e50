"""End to end on a real Airflow: the example DAGs run by Airflow's own services, driven by its REST API.

For each executor, the ``airflow`` fixture starts, in a temporary AIRFLOW_HOME with the repository's
``dags/`` folder, the CXone sandbox, ``airflow api-server``, ``airflow scheduler`` and
``airflow dag-processor`` on loopback ports, the way users deploy them:

- ``LocalExecutor`` on SQLite (what ``airflow standalone`` runs);
- ``CeleryExecutor`` on PostgreSQL (metadata DB and Celery result backend) with Redis as the broker
  and an ``airflow celery worker``, the distributed setup of ``docker/docker-compose.yaml``.

The tests trigger runs through ``/api/v2`` as the simple auth manager's admin, wait for them to end,
and check every task instance's state there, and in the sandbox what CXone really received. Every
process started is stopped again, also on failure, when the log tails are printed.

The sandbox answers as NICE publishes CXone (the join attaches ``asAgentId`` to that agent's own live
session); only the sweeps of the e2e DAGs, which join sessions by id, turn its extensions on.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import airflow_stack
import pytest
from airflow_stack import (
    DAGS_FOLDER,
    AirflowClient,
    Processes,
    free_port,
    missing_prerequisites,
    report,
    start_airflow,
    start_postgres,
    start_redis,
    task_log_tails,
    unavailable,
)
from conftest import LEGACY_SANDBOX_EXTENSIONS

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.testing import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXECUTORS = ["LocalExecutor", "CeleryExecutor"]
SUPERVISED = "cxone_supervised_session"
SWEEP = "cxone_qa_sweep"
SWEEP_FILE = DAGS_FOLDER / f"{SWEEP}.py"
# DAGs only these tests need, parsed beside the examples from a copy of both folders.
E2E_DAGS = Path(__file__).with_name("dags")
LONG_SWEEP = "cxone_e2e_long_sweep"
RESUMABLE_SWEEP = "cxone_e2e_resumable_sweep"
RUN_TIMEOUT = 150.0  # seconds for one run to end, counted from the first wait on it

# The supervised-session scenarios run here: their conf, and the branch each one follows. The
# supervisor (1001) joins its own live session, sess-1001, and monitors agent 2001 from it.
SCENARIOS: dict[str, tuple[dict[str, Any], str]] = {
    "Success": ({}, "start_monitoring"),
    "InvalidAgentSession": ({"session_id": "sess-2007"}, "report_invalid_session"),
}
BRANCH_TASKS = [
    "start_monitoring",
    "report_invalid_session",
    "alert_security_user",
    "alert_impersonation_disabled",
    "alert_invalid_agent_id",
    "retry_later",
]


# ---------------------------------------------------------------------------------------- deployment


@dataclass
class Deployment:
    """A running Airflow: its executor, home, REST client, the sandbox it talks to, and its processes."""

    executor: str
    home: Path
    workdir: Path
    api: AirflowClient
    sandbox: SandboxServer
    processes: Processes
    #: DAGs that could not be prepared (missing file, import error): dag id → why.
    dag_errors: dict[str, str]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        """Poll the run until it is ``success`` or ``failed``; its final state."""
        return self.api.wait_for_run(dag_id, run_id, timeout)

    def task_log_tails(self, dag_id: str, run_id: str, task_id: str) -> str:
        """The end of the task's log files (every attempt, every map index), for a failure message."""
        return task_log_tails(self.home, dag_id, run_id, task_id)


def airflow_env(
    home: Path, port: int, executor: str, database_url: str, sandbox: SandboxServer, dags_folder: Path
) -> dict[str, str]:
    """The full environment of every Airflow process of one deployment (nothing else is inherited)."""
    env = airflow_stack.airflow_env(
        home,
        port,
        dags_folder=dags_folder,
        database_url=database_url,
        executor=executor,
        connections=dict([sandbox.connection_env("cxone_default")]),
    )
    if executor == "CeleryExecutor":
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{database_url}"
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "4"
    return env


@pytest.fixture(scope="module", params=EXECUTORS)
def airflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A running Airflow deployment with the given executor, its DAGs parsed and unpaused."""
    executor: str = request.param
    missing = missing_prerequisites(executor)
    if missing:
        unavailable(f"{executor} end to end needs: {'; '.join(missing)}")
    workdir = tmp_path_factory.mktemp(f"e2e-{executor}")
    home = workdir / "airflow-home"
    home.mkdir()
    processes = Processes(workdir)
    failed_before = request.session.testsfailed
    ready = False
    timings: dict[str, float] = {}
    started = time.monotonic()
    sandbox: SandboxServer | None = None
    try:
        sandbox = SandboxServer().start()
        processes.cleanups.append(sandbox.stop)
        broker_url = None
        if executor == "CeleryExecutor":
            database_url = start_postgres(processes)
            broker_url = start_redis(processes)
            timings["postgres+redis"] = time.monotonic() - started
        else:
            database_url = f"sqlite:///{home / 'airflow.db'}"
        port = free_port()
        dags_folder = workdir / "dags"
        shutil.copytree(DAGS_FOLDER, dags_folder, ignore=shutil.ignore_patterns("__pycache__"))
        for extra in E2E_DAGS.glob("*.py"):
            shutil.copy(extra, dags_folder / extra.name)
        env = airflow_env(home, port, executor, database_url, sandbox, dags_folder)
        if broker_url is not None:
            env["AIRFLOW__CELERY__BROKER_URL"] = broker_url

        workers = {"celery-worker": ["celery", "worker", "--skip-serve-logs", "--without-mingle", "--without-gossip"]}
        api = start_airflow(
            processes, env, port, timings=timings, more_services=workers if executor == "CeleryExecutor" else None
        )
        mark = time.monotonic()
        api.wait_for_dag(SUPERVISED, f"{SUPERVISED}.py", 120)
        api.unpause(SUPERVISED)
        # The sweep DAG's own problems fail its own test, not the whole deployment.
        dag_errors: dict[str, str] = {}
        if not SWEEP_FILE.exists():
            dag_errors[SWEEP] = f"{SWEEP_FILE.relative_to(DAGS_FOLDER.parent)} does not exist"
        else:
            try:
                api.wait_for_dag(SWEEP, SWEEP_FILE.name, 60)
                api.unpause(SWEEP)
            except AssertionError as exc:
                dag_errors[SWEEP] = str(exc)
        for dag_id in (LONG_SWEEP, RESUMABLE_SWEEP):
            api.wait_for_dag(dag_id, f"{dag_id}.py", 60)
            api.unpause(dag_id)
        timings["DAGs parsed"] = time.monotonic() - mark
        ready = True
        yield Deployment(executor, home, workdir, api, sandbox, processes, dag_errors)
    finally:
        failed = not ready or request.session.testsfailed > failed_before
        if failed:
            sandbox_log = "\n".join(sandbox.log().splitlines()[-40:]) if sandbox is not None else ""
            report(
                request,
                f"\n===== {executor}: logs of the services (in {workdir}) =====\n{processes.log_tails()}"
                f"\n----- CXone sandbox (last 40 lines) -----\n{sandbox_log}",
            )
        mark = time.monotonic()
        processes.stop_all()
        timings["stop"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        report(request, f"\n{executor} timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


@pytest.fixture(scope="module")
def runs(airflow: Deployment) -> dict[str, str]:
    """Every run of this module, triggered at once so that they overlap like real traffic: name → run id."""
    triggered = {
        name: airflow.api.trigger(SUPERVISED, {**conf, "audit_log": "audit.jsonl"})
        for name, (conf, _branch) in SCENARIOS.items()
    }
    if SWEEP not in airflow.dag_errors:
        triggered[SWEEP] = airflow.api.trigger(SWEEP, {})
    return triggered


# ---------------------------------------------------------------------------------------- the tests


def supervised_states(airflow: Deployment, run_id: str, followed: str) -> None:
    """The run succeeded and every task instance is in the state the branch implies."""
    state = airflow.wait_for_run(SUPERVISED, run_id)
    tis = airflow.api.task_instances(SUPERVISED, run_id)
    assert all(ti["map_index"] == -1 for ti in tis)
    states = {ti["task_id"]: ti["state"] for ti in tis}
    expected = {task_id: "skipped" for task_id in BRANCH_TASKS}
    expected.update(
        {"set_security_user": "success", "join_agent_session": "success", followed: "success", "finish": "success"}
    )
    expected["wait_for_agent"] = "skipped"  # the optional wait, off without wait_for_agent_id
    expected["watch_session"] = "skipped"  # the optional watch, off without watch_session
    logs = "".join(airflow.task_log_tails(SUPERVISED, run_id, t) for t, s in states.items() if s != expected.get(t))
    assert states == expected, logs
    assert state == "success"


def test_supervised_session_success(airflow: Deployment, runs: dict[str, str]) -> None:
    """Defaults: the supervisor joins their own session sess-1001 and monitors agent 2001 from it, for real."""
    run_id = runs["Success"]
    supervised_states(airflow, run_id, followed=SCENARIOS["Success"][1])

    outcome = airflow.api.xcom(SUPERVISED, run_id, "join_agent_session")
    assert outcome["condition"] == "Success"
    assert outcome["session_id"] == "sess-1001"
    assert airflow.api.xcom(SUPERVISED, run_id, "start_monitoring") == {
        "monitoring_agent_id": 2001,
        "session_id": "sess-1001",
    }
    state = airflow.sandbox.state()
    (session,) = [s for s in state["sessions"] if s["session_id"] == "sess-1001"]
    assert 1001 in session["joined_agents"]
    monitors = [(a["session_id"], a["target_agent_id"]) for a in state["supervise_actions"] if a["action"] == "monitor"]
    assert ("sess-1001", 2001) in monitors
    # The agent's own session was not joined: the supervisor watches it from theirs.
    (watched,) = [s for s in state["sessions"] if s["session_id"] == "sess-2001"]
    assert 1001 not in watched["joined_agents"]


def test_supervised_session_invalid_agent_session(airflow: Deployment, runs: dict[str, str]) -> None:
    """A session that is not the supervisor's live one (sess-2007, ended, another agent's): CXone joins the
    supervisor's own session as published, the provider sees it is not the one asked for, and the run
    follows report_invalid_session and still succeeds."""
    run_id = runs["InvalidAgentSession"]
    supervised_states(airflow, run_id, followed=SCENARIOS["InvalidAgentSession"][1])

    outcome = airflow.api.xcom(SUPERVISED, run_id, "join_agent_session")
    assert outcome["condition"] == "InvalidAgentSession"
    assert outcome["session_id"] == "sess-2007"
    # The message names the session CXone joined and the one asked for.
    assert "'sess-1001'" in outcome["message"], outcome["message"]
    assert "'sess-2007'" in outcome["message"], outcome["message"]
    joins = [
        entry
        for entry in airflow.sandbox.journal()
        if entry["path"].endswith("/agent-sessions/join") and entry["params"].get("sessionId") == "sess-2007"
    ]
    assert joins, "no join request for sess-2007 reached the sandbox"
    # The published join answers 202 with the caller's own session whatever session id was sent.
    assert all(entry["status"] == 202 for entry in joins)
    (session,) = [s for s in airflow.sandbox.state()["sessions"] if s["session_id"] == "sess-2007"]
    assert session["joined_agents"] == []

    records = [json.loads(line) for line in (airflow.home / "cxone_audit" / "audit.jsonl").read_text().splitlines()]
    (record,) = [r for r in records if r["dag_run"] == run_id]
    assert record["condition"] == "InvalidAgentSession"
    assert record["action"] == "report_invalid_session"


def test_qa_sweep(airflow: Deployment, runs: dict[str, str]) -> None:
    """The QA sweep with its defaults: the run succeeds, every task instance (mapped ones too) ran or
    skipped, every logged-in agent the sweep reports as joined was joined in CXone to their own live
    session, as themselves, and gets one review_live_session task instance each."""
    if not SWEEP_FILE.exists():
        unavailable(airflow.dag_errors[SWEEP])
    assert SWEEP in runs, airflow.dag_errors[SWEEP]
    run_id = runs[SWEEP]
    state = airflow.wait_for_run(SWEEP, run_id)
    tis = airflow.api.task_instances(SWEEP, run_id)
    unexpected = {
        (ti["task_id"], ti["map_index"]): ti["state"] for ti in tis if ti["state"] not in ("success", "skipped")
    }
    logs = "".join(airflow.task_log_tails(SWEEP, run_id, task_id) for task_id in {t for t, _ in unexpected})
    assert unexpected == {}, logs
    assert state == "success"

    # The sweep's return value: {condition: [agent ids], ..., "live_sessions": {agent: session}}.
    result = airflow.api.xcom(SWEEP, run_id, "sweep")
    joined = result["Success"]
    state = airflow.sandbox.state()
    logged_in = {a["agent_id"]: a["session_id"] for a in state["agents"] if a["session_id"]}
    assert sorted(joined) == sorted(logged_in)  # the seed's logged-in agents, every one
    assert result["live_sessions"] == {str(agent): logged_in[agent] for agent in joined}
    sessions = {s["session_id"]: s for s in state["sessions"]}
    assert all(agent in sessions[logged_in[agent]]["joined_agents"] for agent in joined)
    # One mapped review_live_session task instance per joined agent: the mapping happened on the scheduler.
    reviews = sorted(ti["map_index"] for ti in tis if ti["task_id"] == "review_live_session")
    assert reviews == list(range(len(joined)))


def test_task_logs_hold_no_secret_or_token(airflow: Deployment, runs: dict[str, str]) -> None:
    """The task logs a real deployment writes (every run above, every task) hold no credential: not the
    connection's secrets, not any token the sandbox issued (they carry recognisable prefixes)."""
    from cxone_sandbox.state import ACCESS_TOKEN_PREFIX, ID_TOKEN_HEADER, REFRESH_TOKEN_PREFIX

    for name, run_id in runs.items():
        airflow.wait_for_run(SWEEP if name == SWEEP else SUPERVISED, run_id)
    logs = sorted((airflow.home / "logs").rglob("*.log"))
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    # The scan reads real task logs: the join's outcome line is in them.
    assert "Join Agent Session 'sess-1001' as agent 1001 (from set_security_user): Success" in text
    connection = airflow.sandbox.connection()
    needles = (
        connection["password"],
        connection["extra"]["client_secret"],
        ACCESS_TOKEN_PREFIX,
        REFRESH_TOKEN_PREFIX,
        ID_TOKEN_HEADER,
    )
    found = [needle for needle in needles if needle in text]
    assert not found, f"{found} found in the task logs of {len(logs)} files"


def test_a_sweep_stopped_through_the_rest_api_sends_no_join_after_it_stops(airflow: Deployment) -> None:
    """Marking a running sweep failed (as a user does in the UI) kills its task: ``on_kill`` stops the
    workers through one event, the log says so, and CXone receives no join after the task stopped."""
    sandbox = airflow.sandbox
    # The long sweep joins sessions by id as 1001 (the deprecated session_ids form): it relies on the
    # sandbox's extensions, on for this test only. 400 joins, 2 at a time: ~20 s.
    sandbox.set_faults(**LEGACY_SANDBOX_EXTENSIONS, latency_ms=100, path_filter="agent-sessions/join")
    sandbox.clear_journal()

    def joins() -> list[dict[str, Any]]:
        return [e for e in sandbox.journal() if e["path"].endswith("agent-sessions/join")]

    run_id = airflow.api.trigger(LONG_SWEEP, {})
    deadline = time.monotonic() + 60
    while len(joins()) < 10:
        assert time.monotonic() < deadline, "the sweep never got going"
        time.sleep(0.2)
    airflow.api.request(
        "PATCH", f"dags/{LONG_SWEEP}/dagRuns/{run_id}/taskInstances/sweep", json={"new_state": "failed"}
    )
    deadline = time.monotonic() + 60
    logs = airflow.home / "logs" / f"dag_id={LONG_SWEEP}" / f"run_id={run_id}"
    while not any(
        "Stopping on request: no further CXone request is sent" in log.read_text(errors="replace")
        for log in logs.rglob("*.log")
    ):
        assert time.monotonic() < deadline, airflow.task_log_tails(LONG_SWEEP, run_id, "sweep")
        time.sleep(0.5)
    time.sleep(1.0)  # the joins in flight when it stopped (two at most) are answered
    stopped_at = len(joins())
    time.sleep(3.0)  # long enough for another thirty joins, had the workers gone on
    try:
        assert len(joins()) == stopped_at
        assert stopped_at < 400
        states = {ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(LONG_SWEEP, run_id)}
        assert states["sweep"] == "failed"
    finally:
        sandbox.set_faults()


def test_a_sweep_killed_halfway_is_retried_and_joins_each_session_once(airflow: Deployment) -> None:
    """SIGKILL of the sweep's task process halfway (a worker lost): Airflow retries the task, the retry
    reads the checkpoint and joins only what was not finished — no session joined twice beyond the
    joins in flight when the process died, none missing — and its result lists every session once."""
    import signal

    import psutil

    sandbox = airflow.sandbox
    # The resumable sweep joins sessions by id as 1001 (the deprecated session_ids form): it relies on
    # the sandbox's extensions, on for this test only.
    sandbox.set_faults(**LEGACY_SANDBOX_EXTENSIONS, latency_ms=20, path_filter="agent-sessions/join")
    sandbox.clear_journal()
    sessions = [f"e2e-resume-{n}" for n in range(2000)]

    def joins() -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in sandbox.journal():
            if entry["path"].endswith("agent-sessions/join"):
                session = entry["params"]["sessionId"]
                counts[session] = counts.get(session, 0) + 1
        return counts

    try:
        run_id = airflow.api.trigger(RESUMABLE_SWEEP, {})
        deadline = time.monotonic() + 60
        while sum(joins().values()) < 800:
            assert time.monotonic() < deadline, "the sweep never got going"
            time.sleep(0.1)
        ti_id = airflow.api.request("GET", f"dags/{RESUMABLE_SWEEP}/dagRuns/{run_id}/taskInstances/sweep")["id"]
        # Airflow titles a task's process "airflow worker -- <task instance id>".
        (task_process,) = [
            p
            for p in psutil.process_iter(["cmdline"])
            if f"airflow worker -- {ti_id}" in " ".join(p.info["cmdline"] or [])
        ]
        task_process.send_signal(signal.SIGKILL)
        killed_at = sum(joins().values())
        assert killed_at < 2000, "the sweep ended before it could be killed"

        assert airflow.wait_for_run(RESUMABLE_SWEEP, run_id) == "success", airflow.task_log_tails(
            RESUMABLE_SWEEP, run_id, "sweep"
        )
        time.sleep(0.5)  # the last answers are journaled
        sent = joins()
        assert sorted(sent) == sorted(sessions)  # none missing
        twice = sorted(s for s, n in sent.items() if n > 1)
        assert len(twice) <= 8, twice  # at most the joins in flight (max_concurrency) when it died
        assert all(n <= 2 for n in sent.values())

        result = airflow.api.xcom(RESUMABLE_SWEEP, run_id, "sweep")
        listed = [s for condition in JoinCondition for s in result[condition.value]]
        assert sorted(listed) == sorted(sessions)
        assert result["stats"]["resumed"] >= killed_at - 8
        logs = airflow.home / "logs" / f"dag_id={RESUMABLE_SWEEP}" / f"run_id={run_id}" / "task_id=sweep"
        retried = "".join(log.read_text(errors="replace") for log in logs.rglob("attempt=2*.log"))
        assert f"{result['stats']['resumed']} of 2000 session(s) resumed from earlier tries" in retried
    finally:
        sandbox.set_faults()
