"""Benchmark: the sweep against the hand-wired way, on a real scheduler (issue 24, item 4).

    .venv/bin/python bench/bench_vs_handwired.py [--sessions 1000] [--repeats 3] [--latency-ms 20]
        [--parallelism 8] [--approach both|provider|hand-wired] [--json bench-handwired.json]

One deployment, started for the run with the end-to-end tests' helpers (tests/e2e/airflow_stack.py):
PostgreSQL, ``airflow api-server``, ``scheduler`` (LocalExecutor) and ``dag-processor``, parsing
``bench/dags/``; one CXone sandbox with N live sessions answering every request after ``--latency-ms``.
Two DAGs join the same N agents (CXone's published join, each agent as itself):

- ``provider`` (bench_handwired_sweep): one ``JoinAgentSessionsOperator`` task over ``agents=``;
- ``hand-wired`` (bench_handwired_http): an ``HttpOperator`` gets a token (its bearer is that task's XCom),
  then a task group mapped over the sessions: an ``HttpOperator`` join, a ``BranchPythonOperator`` routing
  its answer, one ``EmptyOperator`` per result condition (the others skipped for that map index).

Each repeat triggers both (alternately, with the sandbox reset before each run) and measures:

- ``wall s``: from the trigger request to the run's ``end_date``; the median over ``--repeats``;
- ``joins``: join requests the sandbox's journal counted (the same N on both sides: nothing repeated);
- ``TIs``: the run's task instances, and how many ran in a task process (EmptyOperators are marked by the
  scheduler without one, skipped ones not at all);
- ``routed``: (hand-wired) sessions whose branch ran exactly one condition's task and skipped the rest. On
  Airflow 3.3.2 none are: a branch inside a mapped task group skips nothing, every condition's task runs
  (apache/airflow issue 67265, open: NotPreviouslySkippedDep reads the branch's decision at map index -1).
  The EmptyOperators cost no task process either way, so the wall time is what a working branch would take;
- ``bearer in XCom``: whether any XCom of the run holds a token the sandbox issued (its ``sbx-at-`` prefix),
  read from the metadata DB.

Then the ratio hand-wired / provider of the median walls. ``--json`` writes every run and the summary.

Deployment settings, the same for both DAGs, as a small deployment on this machine would set them:
LocalExecutor with ``--parallelism`` worker processes (``core.parallelism``; 8 = 4 per core: the tasks
wait on HTTP), ``core.max_active_tasks_per_dag`` the same, ``scheduler.max_tis_per_query`` 64 (how many
task instances one scheduler loop queues), the scheduler idling 0.5 s between loops. PostgreSQL runs
without fsync (a throwaway DB). The DAG processor parses once; the scheduler starts each run at once.

On a 2-core machine the hand-wired run costs ~2 task processes per session: measure N=20 and N=100
first (``--sessions 20 --repeats 1``) and extrapolate before a run at N=1,000: the deployment's cost per
session grows with N (the scheduler and the api-server work over every task instance of the run), so a
hand-wired run at N=1,000 takes hours there; ``--approach provider`` measures the sweep's side alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

from airflow_stack import (  # noqa: E402
    AirflowClient,
    Processes,
    StackError,
    airflow_env,
    free_port,
    postgres_bindir,
    start_airflow,
    start_postgres,
)
from bench_sweep import print_table  # noqa: E402

from cxone_provider.testing import SandboxServer  # noqa: E402
from cxone_sandbox.tokens import ACCESS_TOKEN_PREFIX  # noqa: E402

BENCH_DAGS = REPO / "bench" / "dags"
PROVIDER, HANDWIRED = "provider", "hand-wired"
DAG_IDS = {PROVIDER: "bench_handwired_sweep", HANDWIRED: "bench_handwired_http"}
JOIN_SUFFIX = "/agent-sessions/join"
FIRST_AGENT = 5001  # the sandbox's generated live agents: 5001…


@dataclass
class Run:
    approach: str
    repeat: int
    state: str
    wall_s: float
    joins: int
    task_instances: int
    task_processes: int
    routed: int | None
    bearer_in_xcom: bool


def connections(sandbox: SandboxServer) -> dict[str, str]:
    """The provider's connection, and the three a hand-wired DAG needs for the same tenant."""
    cxone = sandbox.connection()
    auth = {
        "conn_type": "http",
        "host": sandbox.url,
        "login": cxone["extra"]["client_id"],
        "password": cxone["extra"]["client_secret"],
    }
    key = {"conn_type": "generic", "login": cxone["login"], "password": cxone["password"]}
    api = {"conn_type": "http", "host": sandbox.api_base_url}
    return {
        "AIRFLOW_CONN_CXONE_DEFAULT": json.dumps(cxone),
        "AIRFLOW_CONN_CXONE_AUTH": json.dumps(auth),
        "AIRFLOW_CONN_CXONE_KEY": json.dumps(key),
        "AIRFLOW_CONN_CXONE_API": json.dumps(api),
    }


def tuned_env(env: dict[str, str], parallelism: int) -> dict[str, str]:
    """The deployment's settings (the same for both DAGs): see the module's docstring."""
    return {
        **env,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__MAX_MAP_LENGTH": "100000",
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    }


class MetadataDB:
    """Read-only queries on the deployment's PostgreSQL (task instances and XComs of a run)."""

    def __init__(self, database_url: str) -> None:
        import psycopg2

        self.conn = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
        self.conn.autocommit = True

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def bearer_in_xcom(self, dag_id: str, run_id: str) -> bool:
        found = self.rows(
            "SELECT count(*) FROM xcom WHERE dag_id = %s AND run_id = %s AND value::text LIKE %s",
            dag_id,
            run_id,
            f"%{ACCESS_TOKEN_PREFIX}%",
        )
        return bool(found[0][0])

    def task_instances(self, dag_id: str, run_id: str) -> tuple[int, int]:
        """All task instances of the run, and those that ran in a task process (they have a pid)."""
        total, ran = self.rows(
            "SELECT count(*), count(pid) FROM task_instance WHERE dag_id = %s AND run_id = %s", dag_id, run_id
        )[0]
        return int(total), int(ran)

    def routed(self, dag_id: str, run_id: str, branches: list[str]) -> int:
        """Sessions whose branch ran one condition's task and skipped every other one."""
        rows = self.rows(
            "SELECT map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = ANY(%s)",
            dag_id,
            run_id,
            [f"check.{name}" for name in branches],
        )
        states: dict[int, list[str]] = {}
        for map_index, state in rows:
            states.setdefault(map_index, []).append(str(state))
        good = sum(1 for s in states.values() if s.count("success") == 1 and s.count("skipped") == len(branches) - 1)
        if good != len(states):
            print(f"  (branch states of the sessions not routed: {[s for s in states.values()][:3]})")
        return good


def run_once(
    api: AirflowClient,
    sandbox: SandboxServer,
    db: MetadataDB,
    approach: str,
    repeat: int,
    agents: list[int],
    timeout: float,
) -> Run:
    dag_id = DAG_IDS[approach]
    sandbox.reset()
    triggered_at = time.time()
    run_id = api.trigger(dag_id, {"agents": agents})
    state = api.wait_for_run(dag_id, run_id, timeout)
    ended = api.request("GET", f"dags/{dag_id}/dagRuns/{run_id}")["end_date"]
    wall = datetime.fromisoformat(ended.replace("Z", "+00:00")).timestamp() - triggered_at
    joins = sum(1 for entry in sandbox.journal() if entry["path"].endswith(JOIN_SUFFIX))
    total, ran = db.task_instances(dag_id, run_id)
    routed = None
    if approach == HANDWIRED:
        sys.path.insert(0, str(BENCH_DAGS))
        from bench_handwired_http import BRANCHES

        routed = db.routed(dag_id, run_id, BRANCHES)
    result = Run(approach, repeat, state, wall, joins, total, ran, routed, db.bearer_in_xcom(dag_id, run_id))
    print(
        f"  {approach} #{repeat}: {state}, {wall:.1f} s, {joins} joins, {total} TIs ({ran} in a task process)"
        + ("" if routed is None else f", {routed} routed")
        + f", bearer in XCom: {'yes' if result.bearer_in_xcom else 'no'}",
        flush=True,
    )
    return result


def summary(runs: list[Run], sessions: int) -> list[dict[str, Any]]:
    rows = []
    for approach in (PROVIDER, HANDWIRED):
        mine = [run for run in runs if run.approach == approach]
        if not mine:
            continue
        wall = statistics.median(run.wall_s for run in mine)
        last = mine[-1]
        rows.append(
            {
                "approach": approach,
                "sessions": sessions,
                "runs": len(mine),
                "all_succeeded": all(run.state == "success" for run in mine),
                "wall_s_median": round(wall, 2),
                "wall_s_each": [round(run.wall_s, 2) for run in mine],
                "joins": last.joins,
                "task_instances": last.task_instances,
                "task_processes": last.task_processes,
                "s_per_task_process": round(wall / max(last.task_processes, 1), 3),
                "routed": last.routed,
                "bearer_in_xcom": any(run.bearer_in_xcom for run in mine),
            }
        )
    return rows


def print_summary(rows: list[dict[str, Any]]) -> None:
    header = [
        "approach",
        "wall s (median)",
        "each",
        "joins",
        "TIs (in a process)",
        "s per process",
        "routed",
        "bearer in XCom",
    ]
    cells = [
        [
            row["approach"],
            f"{row['wall_s_median']:.1f}",
            " ".join(f"{w:.1f}" for w in row["wall_s_each"]),
            str(row["joins"]),
            f"{row['task_instances']} ({row['task_processes']})",
            f"{row['s_per_task_process']:.2f}",
            "-" if row["routed"] is None else str(row["routed"]),
            "yes" if row["bearer_in_xcom"] else "no",
        ]
        for row in rows
    ]
    print_table(header, cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallelism", type=int, default=8, help="LocalExecutor worker processes")
    parser.add_argument("--run-timeout", type=float, default=7200.0, help="seconds one run may take")
    parser.add_argument("--json", type=Path, help="write the runs and the summary here")
    parser.add_argument(
        "--approach", choices=("both", PROVIDER, HANDWIRED), default="both", help="run one side only (extrapolating)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the services' logs)")
    args = parser.parse_args()
    if postgres_bindir() is None:
        print("bench_vs_handwired needs PostgreSQL's server programs (Debian: postgresql; make test-deps)")
        return 2
    print(
        f"{args.sessions} sessions, {args.repeats} repeat(s), {args.latency_ms:g} ms latency, LocalExecutor "
        f"parallelism {args.parallelism}; python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="cxone-bench-handwired-"))
    home = workdir / "airflow-home"
    home.mkdir()
    processes = Processes(workdir)
    agents = [FIRST_AGENT + n for n in range(args.sessions)]
    runs: list[Run] = []
    try:
        sandbox = SandboxServer(
            live_sessions=args.sessions,
            faults={"latency_ms": args.latency_ms},
            settings={"journal_size": 4 * args.sessions + 1000},
        ).start()
        processes.cleanups.append(sandbox.stop)
        database_url = start_postgres(processes)
        port = free_port()
        env = airflow_env(
            home, port, dags_folder=BENCH_DAGS, database_url=database_url, connections=connections(sandbox)
        )
        api = start_airflow(processes, tuned_env(env, args.parallelism), port)
        for dag_id in DAG_IDS.values():
            api.wait_for_dag(dag_id, f"{dag_id}.py", 180)
            api.unpause(dag_id)
        db = MetadataDB(database_url)
        for repeat in range(1, args.repeats + 1):
            order = (PROVIDER, HANDWIRED) if repeat % 2 else (HANDWIRED, PROVIDER)
            for approach in [a for a in order if args.approach in ("both", a)]:
                runs.append(run_once(api, sandbox, db, approach, repeat, agents, args.run_timeout))
    except (StackError, AssertionError) as exc:
        print(f"failed: {exc}\n{processes.log_tails()}\n(work folder: {workdir})")
        args.keep = True
        return 1
    finally:
        processes.stop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    rows = summary(runs, args.sessions)
    print()
    print_summary(rows)
    ratio = None
    if len(rows) == 2:
        provider, handwired = rows
        ratio = round(handwired["wall_s_median"] / provider["wall_s_median"], 2)
        print(f"\nhand-wired / provider: {ratio:.1f}x (median wall seconds, {args.sessions} sessions)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "sessions": args.sessions,
                    "repeats": args.repeats,
                    "latency_ms": args.latency_ms,
                    "parallelism": args.parallelism,
                    "cores": os.cpu_count(),
                    "ratio": ratio,
                    "summary": rows,
                    "runs": [asdict(run) for run in runs],
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"written: {args.json}")
    return 0 if all(run.state == "success" for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
