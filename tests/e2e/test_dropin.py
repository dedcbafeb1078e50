"""The drop-in install, end to end: ``plugins/cxone_provider`` and ``plugins/cxone_sandbox`` copied into
an Airflow's plugins folder, with no ``pip install`` of this package, run by Airflow's own plugin loader
and services.

Airflow comes from a venv that holds only ``apache-airflow`` (the version this venv has) and what it
pulls in, built once and cached in ``.airflow/`` (:func:`airflow_stack.airflow_venv`). In a temporary
AIRFLOW_HOME the module fixture puts both package folders into ``plugins/`` and the example DAG
``cxone_supervised_session`` (a join with one branch per result condition) into ``dags/``, then starts
``api-server``, ``scheduler`` and ``dag-processor`` of that venv (LocalExecutor on SQLite). The CXone
sandbox runs from this test session's venv; the Airflow processes get its connection as
``AIRFLOW_CONN_CXONE_DEFAULT``.

Airflow's loader imports **every** ``.py`` file under the plugins folder, each as a top-level module
named after its file (``app``, ``state``, ``cli``…), and registers every ``AirflowPlugin`` subclass
found in any of them; its failures are logged and kept, not raised, and ``airflow plugins`` hides them
unless ``--verbose``. So the tests look where the failures are kept: ``airflow plugins --verbose``, the
api-server's ``/api/v2/plugins/importErrors`` and the logs of every process, tasks included.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from airflow_stack import (
    DAGS_FOLDER,
    REPO,
    AirflowClient,
    Captured,
    Processes,
    StackError,
    airflow_command,
    airflow_env,
    airflow_venv,
    base_env,
    free_port,
    installed_airflow_version,
    report,
    start_airflow,
    task_log_tails,
    unavailable,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from cxone_provider.testing import SandboxServer

# The first run builds the venv (about a minute with pip) before the deployment starts.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PACKAGE = REPO / "plugins" / "cxone_provider"
#: The sandbox, a package of its own beside the provider: a drop-in install copies both folders.
PACKAGES = (PACKAGE, REPO / "plugins" / "cxone_sandbox")
DAG_ID = "cxone_supervised_session"
DAG_FILE = DAGS_FOLDER / f"{DAG_ID}.py"
PLUGIN_SOURCE = "$PLUGINS_FOLDER/cxone_provider/plugin.py"
RUN_TIMEOUT = 120.0  # seconds for one run to end, counted from the first wait on it
# What the loader writes when a file of the plugins folder fails, or a plugin name comes twice
# (airflow/_shared/plugins_manager/plugins_manager.py, airflow/plugins_manager.py).
LOADER_FAILURES = ("Failed to import plugin", "already registered")

# The scenarios: their conf, and the branch each one follows (every other branch is skipped).
SCENARIOS: dict[str, tuple[dict[str, Any], str]] = {
    "Success": ({}, "start_monitoring"),
    "InvalidAgentSession": ({"session_id": "sess-2007"}, "report_invalid_session"),
}


@dataclass
class DropIn:
    """An Airflow of the plain venv with the package in its plugins folder, running, and the runs triggered."""

    home: Path
    workdir: Path
    venv_bin: Path
    env: dict[str, str]
    api: AirflowClient
    processes: Processes
    sandbox: SandboxServer
    #: scenario name → run id
    runs: dict[str, str] = field(default_factory=dict)

    def airflow(self, name: str, *args: str, timeout: float = 120) -> Captured:
        """Run an ``airflow`` CLI command of the plain venv in the deployment's environment."""
        return self.processes.capture(name, airflow_command(*args, venv_bin=self.venv_bin), self.env, timeout=timeout)

    def wait_for_run(self, scenario: str) -> str:
        return self.api.wait_for_run(DAG_ID, self.runs[scenario], RUN_TIMEOUT)


def copy_package(plugins: Path) -> None:
    """Copy both package folders as a user would (``cp -r``), without bytecode caches."""
    for package in PACKAGES:
        shutil.copytree(package, plugins / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def json_output(result: Captured) -> Any:
    """The JSON document that ends a command's stdout (Airflow logs warnings to stdout before it)."""
    lines = result.stdout.splitlines()
    for start in range(len(lines)):
        try:
            return json.loads("\n".join(lines[start:]))
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document ends the output:\n{result}")


def plain_python(venv_bin: Path, code: str, *, timeout: float = 60) -> Any:
    """Run ``code`` with the plain venv's Python in a minimal environment; return what it prints as JSON."""
    done = subprocess.run(
        [str(venv_bin / "python"), "-c", textwrap.dedent(code)],
        env=base_env(venv_bin),
        cwd=venv_bin,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def plain_airflow(request: pytest.FixtureRequest) -> Path:
    """The ``bin`` folder of the cached venv with only apache-airflow in it (built on first use)."""
    version = installed_airflow_version()
    started = time.monotonic()
    try:
        venv_bin = airflow_venv(version)
    except StackError as exc:
        unavailable(f"no venv with only apache-airflow=={version}: {exc}")
    report(request, f"\ndrop-in: venv with only apache-airflow=={version} ready in {time.monotonic() - started:.1f}s")
    return venv_bin


@pytest.fixture(scope="module")
def dropin(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    plain_airflow: Path,
    cxone_sandbox_server: SandboxServer,
) -> Iterator[DropIn]:
    """The running deployment: the package copied into ``plugins/``, the join DAG parsed, both runs triggered."""
    workdir = tmp_path_factory.mktemp("e2e-dropin")
    home = workdir / "airflow-home"
    (home / "plugins").mkdir(parents=True)
    (home / "dags").mkdir()
    copy_package(home / "plugins")
    shutil.copy(DAG_FILE, home / "dags" / DAG_FILE.name)

    sandbox = cxone_sandbox_server
    sandbox.reset()  # the session's sandbox: its seed state, no faults, an empty journal
    processes = Processes(workdir)
    failed_before = request.session.testsfailed
    ready = False
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        port = free_port()
        env = airflow_env(
            home,
            port,
            dags_folder=home / "dags",
            database_url=f"sqlite:///{home / 'airflow.db'}",
            connections=dict([sandbox.connection_env("cxone_default")]),
            venv_bin=plain_airflow,
        )
        api = start_airflow(processes, env, port, venv_bin=plain_airflow, timings=timings)
        mark = time.monotonic()
        api.wait_for_dag(DAG_ID, DAG_FILE.name, 120)
        api.unpause(DAG_ID)
        timings["DAG parsed"] = time.monotonic() - mark
        deployment = DropIn(home, workdir, plain_airflow, env, api, processes, sandbox)
        audit_log = "audit.jsonl"
        for scenario, (conf, _branch) in SCENARIOS.items():
            deployment.runs[scenario] = api.trigger(DAG_ID, {**conf, "audit_log": audit_log})
        ready = True
        yield deployment
    finally:
        if not ready or request.session.testsfailed > failed_before:
            sandbox_log = "\n".join(sandbox.log().splitlines()[-40:])
            report(
                request,
                f"\n===== drop-in: logs of the services (in {workdir}) =====\n{processes.log_tails()}"
                f"\n----- CXone sandbox (last 40 lines) -----\n{sandbox_log}",
            )
        mark = time.monotonic()
        processes.stop_all()
        sandbox.reset()  # the next user of the session's sandbox starts from the seed
        timings["stop"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        report(request, "\ndrop-in timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


# ---------------------------------------------------------------------------------------- the tests


def test_plain_venv_has_neither_this_package_nor_test_tools(plain_airflow: Path) -> None:
    """The premise: without the plugins folder, the venv cannot import cxone_provider, has no
    distribution of it (no entry points: no provider, no policy, no plugin entry point), and has
    neither pytest nor hypothesis for a careless import to find."""
    found = plain_python(
        plain_airflow,
        """
        import importlib.metadata, importlib.util, json
        names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
        print(json.dumps({
            "importable": [
                m for m in ("cxone_provider", "cxone_sandbox", "pytest", "hypothesis") if importlib.util.find_spec(m)
            ],
            "distributions": sorted(n for n in names if "cxone" in n or n in ("pytest", "hypothesis")),
            "airflow.plugins": [str(e) for e in importlib.metadata.entry_points(group="airflow.plugins")],
        }))
        """,
    )
    assert found == {"importable": [], "distributions": [], "airflow.plugins": []}


def test_airflow_plugins_lists_cxone_once(dropin: DropIn) -> None:
    """``airflow plugins`` lists the cxone plugin from the copied folder, once, and (verbose, so that
    the loader's errors are not hidden) reports no file it could not import."""
    result = dropin.airflow("airflow-plugins", "plugins", "--verbose", "--output", "json")
    assert result.code == 0, result
    plugins = json_output(result)
    assert [(p["name"], p["source"]) for p in plugins] == [("cxone", PLUGIN_SOURCE)], result
    output = result.stdout + result.stderr
    assert not [marker for marker in (*LOADER_FAILURES, "Traceback", "[error") if marker in output], result


def test_api_server_loader_has_no_import_error(dropin: DropIn) -> None:
    """The api-server's own loader: the plugin registered once, and no import error kept."""
    plugins = dropin.api.request("GET", "plugins")["plugins"]
    assert [(p["name"], p["source"]) for p in plugins] == [("cxone", PLUGIN_SOURCE)]
    errors = dropin.api.request("GET", "plugins/importErrors")
    assert errors == {"import_errors": [], "total_entries": 0}


def test_dag_parsed_without_import_errors(dropin: DropIn) -> None:
    """The dag-processor parsed the join DAG (``airflow dags list`` shows it), with no import error."""
    errors = dropin.airflow("airflow-dags-list-import-errors", "dags", "list-import-errors", "--output", "json")
    assert errors.code == 0, errors
    assert json_output(errors) == [], errors

    listed = dropin.airflow("airflow-dags-list", "dags", "list", "--output", "json")
    assert listed.code == 0, listed
    assert [d["dag_id"] for d in json_output(listed)] == [DAG_ID], listed


def routed(dropin: DropIn, scenario: str) -> dict[str, Any]:
    """Wait for the scenario's run; assert the branch it must follow ran and every other one was
    skipped; return the join's outcome (its XCom)."""
    run_id = dropin.runs[scenario]
    state = dropin.wait_for_run(scenario)
    followed = SCENARIOS[scenario][1]
    states = {ti["task_id"]: ti["state"] for ti in dropin.api.task_instances(DAG_ID, run_id)}
    ran = ("set_security_user", "join_agent_session", followed, "finish")
    expected = {task_id: "success" if task_id in ran else "skipped" for task_id in states}
    logs = "".join(task_log_tails(dropin.home, DAG_ID, run_id, t) for t, s in states.items() if s != expected[t])
    assert set(ran) <= set(states), states
    assert len(states) == 11, states  # the optional wait and watch, and the join routes to six branches
    assert states == expected, logs
    assert state == "success"
    return dict(dropin.api.xcom(DAG_ID, run_id, "join_agent_session"))


def test_scheduler_routes_success(dropin: DropIn) -> None:
    """A join CXone accepts follows the Success branch: the supervisor joined their own session
    sess-1001, then monitored agent 2001 from it."""
    outcome = routed(dropin, "Success")
    assert (outcome["condition"], outcome["session_id"]) == ("Success", "sess-1001")
    assert dropin.api.xcom(DAG_ID, dropin.runs["Success"], "start_monitoring") == {
        "monitoring_agent_id": 2001,
        "session_id": "sess-1001",
    }
    state = dropin.sandbox.state()
    (session,) = [s for s in state["sessions"] if s["session_id"] == "sess-1001"]
    assert 1001 in session["joined_agents"]
    monitors = [(a["session_id"], a["target_agent_id"]) for a in state["supervise_actions"] if a["action"] == "monitor"]
    assert monitors == [("sess-1001", 2001)]


def test_scheduler_routes_invalid_agent_session(dropin: DropIn) -> None:
    """A join asking for an ended session that is not the supervisor's (sess-2007) follows the
    InvalidAgentSession branch; nobody joined it."""
    outcome = routed(dropin, "InvalidAgentSession")
    assert (outcome["condition"], outcome["session_id"]) == ("InvalidAgentSession", "sess-2007")
    (session,) = [s for s in dropin.sandbox.state()["sessions"] if s["session_id"] == "sess-2007"]
    assert session["joined_agents"] == []


def test_no_process_met_a_loader_failure(dropin: DropIn) -> None:
    """Every process that ran the loader (api-server, scheduler, dag-processor, each task's runner)
    imported the whole folder cleanly: no loader failure in any log, task logs included."""
    for scenario in SCENARIOS:
        dropin.wait_for_run(scenario)
    logs = sorted([*dropin.workdir.glob("*.log"), *(dropin.home / "logs").rglob("*.log")])
    assert any("task_id=" in str(log) for log in logs), "no task log written"
    found = {
        str(log.relative_to(dropin.workdir)): marker
        for log in logs
        for marker in LOADER_FAILURES
        if marker in log.read_text(encoding="utf-8", errors="replace")
    }
    assert found == {}


def run_the_loader(plugins: Path, report: str) -> Any:
    """Run Airflow's plugin loader over ``plugins`` in a fresh process of this venv; return what
    ``report`` (an expression over ``plugins``, ``errors`` and ``sys.modules``) evaluates to."""
    code = f"""
        import json, sys
        from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory
        plugins, errors = _load_plugins_from_plugin_directory(sys.argv[1])
        print(json.dumps({report}))
    """
    home = plugins.parent
    env = {**base_env(), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(plugins)],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loader_imports_no_test_tool_where_installed(tmp_path: Path) -> None:
    """Where pytest and hypothesis are installed (this venv), Airflow's loader still imports neither
    when it loads the folder (``testing.py`` offers pytest fixtures, defined only inside a pytest
    run), and finds the plugin once, with no import error."""
    missing = [name for name in ("pytest", "hypothesis") if importlib.util.find_spec(name) is None]
    assert not missing, f"this test needs {missing} installed in the test venv to mean anything"
    copy_package(tmp_path / "plugins")
    found = run_the_loader(
        tmp_path / "plugins",
        """{
            "plugins": [[p.name, str(p.source)] for p in plugins],
            "errors": errors,
            "test tools": sorted({m.split(".")[0] for m in sys.modules} & {"pytest", "_pytest", "hypothesis"}),
        }""",
    )
    assert found == {"plugins": [["cxone", PLUGIN_SOURCE]], "errors": {}, "test tools": []}


def test_the_loader_imports_only_the_plugin_module_and_shadows_no_user_module(tmp_path: Path) -> None:
    """``.airflowignore`` in each package keeps the loader to ``cxone_provider/plugin.py``: a user's own
    ``state.py`` beside the packages stays the module named ``state`` (without it, our
    ``cxone_sandbox/state.py``, imported under the same bare name, replaced it in every Airflow process)."""
    plugins = tmp_path / "plugins"
    copy_package(plugins)
    (plugins / "state.py").write_text('OWNER = "the user"\n')
    loaded = run_the_loader(
        plugins,
        """{
            "plugins": [p.name for p in plugins],
            "errors": errors,
            "state owner": getattr(sys.modules.get("state"), "OWNER", None),
            "bare names": sorted(
                m for m in ("app", "cli", "faults", "process", "tls", "cxone", "sweep", "testing") if m in sys.modules
            ),
        }""",
    )
    assert loaded == {"plugins": ["cxone"], "errors": {}, "state owner": "the user", "bare names": []}


def test_the_copied_sandbox_runs_from_the_plugins_folder(dropin: DropIn) -> None:
    """The sandbox a drop-in user starts by hand (``cd plugins && python -m cxone_sandbox.cli``) loads on
    the plain venv: what it imports, its TLS certificates' too, comes with Airflow."""
    plugins = dropin.home / "plugins"
    found = plain_python(
        dropin.venv_bin,
        f"""
        import json, sys
        sys.path.insert(0, {str(plugins)!r})
        import cxone_sandbox, cxone_sandbox.cli, cxone_sandbox.tls
        print(json.dumps({{"file": cxone_sandbox.__file__, "help": cxone_sandbox.cli.build_parser().format_help()}}))
        """,
    )
    assert found["file"] == str(plugins / "cxone_sandbox" / "__init__.py")
    assert "--live-sessions" in found["help"]
