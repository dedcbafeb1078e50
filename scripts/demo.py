"""The main job: run the supervised-session DAG through Airflow once per result condition.

Starts the embedded CXone sandbox, points ``cxone_default`` at it, runs ``cxone_supervised_session``
with ``dag.test()`` for one scenario per Studio result condition (a row of the conditions table) in a throw-away
AIRFLOW_HOME, and prints which branch each run followed. No credentials, no CXone tenant.

    make demo            # or: .venv/bin/python scripts/demo.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.conditions import CONDITION_TABLE, JoinCondition

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "dags" / "cxone_supervised_session.py"
DAG_ID = "cxone_supervised_session"


@dataclass
class Scenario:
    name: str
    #: the condition the scenario shows; every row of the conditions table has a scenario
    condition: JoinCondition
    conf: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    #: the access key of the connection (default: the sandbox's key whose user may impersonate)
    key: str | None = None


# CXone's published join attaches the SecurityUser to its own live session: the supervisor (1001)
# joins sess-1001 and monitors agent 2001 from it.
SCENARIOS = (
    Scenario("supervisor joins their live session", JoinCondition.SUCCESS),
    Scenario("not the supervisor's live session", JoinCondition.INVALID_AGENT_SESSION, {"session_id": "sess-2007"}),
    Scenario(
        "access key may not act as the supervisor", JoinCondition.IMPERSONATE_NOT_ENABLED, key="SANDBOX-NOIMP-KEY"
    ),
    Scenario("stored SecurityUser is now inactive", JoinCondition.INVALID_SECURITY_USER, {"join_as": 1003}),
    Scenario(
        "stored SecurityUser's agent does not exist", JoinCondition.INVALID_AGENT_ID, {"join_as": {"agent_id": 9999}}
    ),
    Scenario(
        "CXone answers 503 to every join",
        JoinCondition.DEFAULT,
        faults={"rate_503": 1.0, "path_filter": "agent-sessions/join"},
    ),
)


def checked_scenarios() -> tuple[Scenario, ...]:
    """:data:`SCENARIOS`, once every row of the conditions table has one (a new condition needs a scenario)."""
    shown = {scenario.condition for scenario in SCENARIOS}
    missing = [row.studio_name for row in CONDITION_TABLE if row.condition not in shown]
    if missing:
        raise SystemExit(f"demo: no scenario shows {', '.join(missing)}; add one to SCENARIOS")
    return SCENARIOS


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors included) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def load_dag_module() -> Any:
    """A freshly executed DAG file: ``dag.test(run_conf=...)`` writes the conf into the DAG's params."""
    spec = importlib.util.spec_from_file_location(DAG_ID, DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_scenarios(logs: Path) -> list[dict[str, Any]]:
    from cxone_provider.testing import SandboxServer

    rows = []
    with SandboxServer() as sandbox:
        name = sandbox.connection_env()[0]
        print(f"CXone sandbox at {sandbox.url}; {name} points at it.\n")
        for number, scenario in enumerate(checked_scenarios(), start=1):
            os.environ[name] = sandbox.connection_env(key=scenario.key)[1]
            sandbox.reset()
            if scenario.faults:
                sandbox.set_faults(**scenario.faults)
            log_path = logs / f"{number}.log"
            started = time.monotonic()
            module = load_dag_module()
            with output_to(log_path):
                dag_run = module.dag.test(run_conf=scenario.conf or None)
            states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
            outcome = dag_run.get_task_instance("join_agent_session").xcom_pull(task_ids="join_agent_session")
            rows.append(
                {
                    "scenario": scenario.name,
                    "expected": scenario.condition.value,
                    "condition": (outcome or {}).get("condition", "-"),
                    "branch": ", ".join(t for t in module.BRANCH_TASKS.values() if states.get(t) == "success") or "-",
                    "skipped": len([t for t, s in states.items() if s == "skipped"]),
                    "run": str(dag_run.state),
                    "seconds": f"{time.monotonic() - started:.1f}",
                    "log": str(log_path),
                }
            )
            print(f"  [{number}/{len(SCENARIOS)}] {scenario.name}: {rows[-1]['condition']}", flush=True)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("scenario", "scenario"),
        ("expected", "expected"),
        ("condition", "condition"),
        ("branch", "branch followed"),
        ("skipped", "tasks skipped"),
        ("run", "run"),
        ("seconds", "s"),
    ]
    widths = [max(len(title), *(len(str(row[key])) for row in rows)) for key, title in columns]
    line = "  ".join(title.ljust(width) for (_, title), width in zip(columns, widths, strict=True))
    print("\n" + line + "\n" + "  ".join("-" * width for width in widths))
    for row in rows:
        print("  ".join(str(row[key]).ljust(width) for (key, _), width in zip(columns, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME and its logs")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="cxone-demo-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    logs = home / "demo-logs"
    logs.mkdir()
    print(f"Airflow home {home}: migrating the metadata DB...", flush=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    rows = run_scenarios(logs)
    print_table(rows)
    print(f"\nTask logs: {logs}" if args.keep else "\n(run with --keep to keep the task logs)")
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    failed = [row["scenario"] for row in rows if row["run"] != "success"]
    if failed:
        print(f"\nRuns that did not succeed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
