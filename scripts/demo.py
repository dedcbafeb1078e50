"""The main job: run the supervised-session DAG through Airflow once per result condition.

Starts the embedded CXone sandbox, points ``cxone_default`` at it, runs ``cxone_supervised_session``
with ``dag.test()`` for six scenarios (one per Studio result condition) in a throw-away
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

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "dags" / "cxone_supervised_session.py"
DAG_ID = "cxone_supervised_session"


@dataclass
class Scenario:
    name: str
    conf: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    #: the connection's access key (default: the sandbox's default, which may impersonate)
    key: str | None = None


SCENARIOS = (
    Scenario("supervisor joins a live session"),
    Scenario("session has ended", {"session_id": "sess-2007"}),
    Scenario("connection's key may not impersonate the supervisor", key="SANDBOX-NOIMP-KEY"),
    Scenario("stored SecurityUser is now inactive", {"join_as": 1003}),
    Scenario("stored SecurityUser's agent does not exist", {"join_as": {"agent_id": 9999}}),
    Scenario(
        "CXone answers 503 to every join",
        faults={"rate_503": 1.0, "path_filter": "agent-sessions/join"},
    ),
)


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
    from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer

    rows = []
    # The demo's DAG still joins the agent's session by id: the sandbox's extensions, until it moves
    # onto the published join (issue 21).
    with SandboxServer(faults=LEGACY_EXTENSIONS) as sandbox:
        name, value = sandbox.connection_env()
        os.environ[name] = value
        print(f"CXone sandbox at {sandbox.url}; {name} points at it.\n")
        for number, scenario in enumerate(SCENARIOS, start=1):
            sandbox.reset()
            os.environ[name] = sandbox.connection_env(key=scenario.key)[1]
            if scenario.faults:
                sandbox.set_faults(**LEGACY_EXTENSIONS, **scenario.faults)
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
