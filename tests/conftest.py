"""Test set-up: a private AIRFLOW_HOME and DAGs folder, the sandbox fixtures, an Airflow DB on demand,
and the helpers tests in several folders share (imported as ``from conftest import ...``).

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports it. The tests are laid out like the package (``domain/``, ``client/``, ``hooks/``,
``sweeps/``, ``operators/``, ``sensors/``, ``triggers/``, ``ui/``, ``provider/``, ``system/``,
``sandbox/``, ``e2e/``) under pytest's default import mode: each folder is put on ``sys.path``, so
test file names stay unique across folders, and the modules tests share (this one,
``published_contract.py``, ``hostile_server.py``, ``client_faces.py``) stay here at the top.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import requests

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="cxone-tests-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
# dag.test() serialises the DAG it runs from the DAGs folder: the example DAGs and the test DAGs
# both live there for the whole session.
DAGS_FOLDER.mkdir()
for source in [*REPO.joinpath("dags").glob("*.py"), *REPO.joinpath("tests", "dags").glob("*.py")]:
    shutil.copy(source, DAGS_FOLDER / source.name)
sys.path.insert(0, str(DAGS_FOLDER))

from airflow.sdk import DAG  # noqa: E402 - Airflow must see the environment above first

from cxone_provider.compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_2_PLUS  # noqa: E402
from cxone_provider.hooks.cxone import CxoneHook  # noqa: E402
from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytest_plugins = ["cxone_provider.testing"]

#: Where Airflow keeps DagBag, for the tests that parse DAG files the way the dag-processor does (moved in 3.2).
DAGBAG_MODULE = "airflow.dag_processing.dagbag" if AIRFLOW_V_3_2_PLUS else "airflow.models.dagbag"
#: For a test that reads a task's log or error from what ``dag.test()`` prints: Airflow 3.0 prints neither
#: (they go to the task's log file only); the task states those tests also check hold on 3.0 too.
reads_task_output = pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS, reason="Airflow 3.0's dag.test() prints no task log or error (3.1+ does)"
)
#: For a test that counts log lines or compares printed output: Airflow 3.0 also prints every log record
#: (and its plugin set-up) to the console, so each line is seen twice there.
counts_printed_lines = pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS, reason="Airflow 3.0 prints every log record to the console besides capturing it"
)

T = TypeVar("T")


def fresh_dag(module_name: str, dag_id: str) -> Any:
    """The DAG ``dag_id`` from a newly executed ``module_name`` of the DAGs folder.

    ``dag.test(run_conf=...)`` writes the run's conf into the DAG's Param objects, so a DAG object
    must not be reused across runs (Airflow re-parses the file for every real task anyway).
    """
    module = importlib.reload(importlib.import_module(module_name))
    dags = getattr(module, "DAGS", None) or {v.dag_id: v for v in vars(module).values() if isinstance(v, DAG)}
    return dags[dag_id]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME (about 4 s, once)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return AIRFLOW_HOME


#: The sandbox's extensions of CXone's published behaviour: joining a session by its id
#: (``join_mode="session"``), ``sessionId`` in ``agents/states`` rows, and the old ``{"error",
#: "error_description"}`` error body. Not CXone's defaults: for tests of the extensions themselves, of a
#: deprecated form built on them (the sweep's ``session_ids=``), and of DAGs not yet moved off them.
LEGACY_SANDBOX_EXTENSIONS: dict[str, Any] = dict(LEGACY_EXTENSIONS)


@pytest.fixture
def legacy_sandbox_extensions(cxone_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Turn on the sandbox's extensions (:data:`LEGACY_SANDBOX_EXTENSIONS`) for a test that relies on
    them, and keep them on through the test's own ``set_faults`` calls (which otherwise put every knob
    not given back to its default); return them."""
    return keep_legacy_extensions(cxone_sandbox, monkeypatch)


def keep_legacy_extensions(server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Turn on :data:`LEGACY_SANDBOX_EXTENSIONS` on ``server`` (a ``SandboxServer``) for one test, through
    its ``set_faults`` calls too; for modules that run a server of their own."""
    set_faults = server.set_faults

    def set_faults_keeping_the_extensions(**knobs: Any) -> dict[str, Any]:
        return dict(set_faults(**{**LEGACY_SANDBOX_EXTENSIONS, **knobs}))

    monkeypatch.setattr(server, "set_faults", set_faults_keeping_the_extensions)
    server.set_faults()
    return dict(LEGACY_SANDBOX_EXTENSIONS)


#: The fixtures under which a test's CXone traffic goes to a sandbox whose journal is checked.
_SANDBOX_FIXTURES = ("cxone_sandbox", "sandbox")
HOOK_USER_AGENT = "airflow-provider-cxone"


@pytest.fixture(autouse=True)
def hook_speaks_the_published_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that talks to a sandbox: each request the hook sent (its User-Agent) uses only
    the published methods, paths and parameter names, plus this project's documented decisions.

    Tests that misconfigure the hook on purpose (a mistyped URL, an unknown API version) are marked
    ``off_contract``.
    """
    names = [name for name in _SANDBOX_FIXTURES if name in request.fixturenames]
    if not names or request.node.get_closest_marker("off_contract"):
        yield
        return
    # Requested here so that it is torn down (and its journal cleared) after this check.
    sandbox = request.getfixturevalue(names[0])
    yield
    from published_contract import contract_violations

    sent = [entry for entry in sandbox.journal() if entry.get("user_agent") == HOOK_USER_AGENT]
    violations = contract_violations(sent)
    assert violations == [], "the hook strayed from the published contract:\n" + "\n".join(violations)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory: ``face(hook)`` is the hook's client on the face the test runs with (requests or httpx),
    behind one blocking interface (``client_faces.py``); closed after the test."""
    from client_faces import AsyncFace, SyncFace

    made: list[Any] = []

    def make(hook: Any) -> Any:
        made.append(SyncFace(hook) if request.param == "sync" else AsyncFace(hook))
        return made[-1]

    yield make
    for one in made:
        one.close()


# ------------------------------------------------------------------------- no silent skips of end-to-end tests

#: ``CXONE_E2E=0`` (``make test E2E=0``) is the one way to leave the end-to-end tests out: the tests that
#: need Debian's redis-server, PostgreSQL, chromium or Node.js. Without it a missing program fails them.
E2E_OPT_OUT = "CXONE_E2E"
#: Test files that need those programs beside ``tests/e2e`` (NICE's SDK runs on Node.js).
NEEDS_SYSTEM_PROGRAMS = ("test_sdk_contract.py",)


def end_to_end_opted_out() -> bool:
    return os.environ.get(E2E_OPT_OUT) == "0"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not end_to_end_opted_out():
        return
    left_out = [
        item
        for item in items
        if item.get_closest_marker("e2e") or "e2e" in item.path.parts or item.path.name in NEEDS_SYSTEM_PROGRAMS
    ]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    config.stash[_LEFT_OUT] = len(left_out)


_LEFT_OUT = pytest.StashKey[int]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Say, last of all, how many end-to-end tests ``CXONE_E2E=0`` left out and why."""
    left_out = config.stash.get(_LEFT_OUT, 0)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if left_out and reporter is not None:
        reporter.write_line(
            f"{left_out} end-to-end test(s) NOT run: {E2E_OPT_OUT}=0 (make test E2E=0) leaves out the tests that "
            "need redis-server, PostgreSQL, chromium and Node.js; `make test-deps` installs them, then `make test` "
            "runs everything CI runs",
            yellow=True,
            bold=True,
        )


# ------------------------------------------------------------------------------------------ connections


def changed_connection(sandbox: Any, **changes: Any) -> dict[str, Any]:
    """``sandbox``'s connection (a dict as in ``AIRFLOW_CONN_*``) with ``changes``; ``extra`` is merged
    into the connection's extra, every other key replaced."""
    conn = sandbox.connection()
    for key, value in changes.items():
        if key == "extra":
            conn["extra"].update(value)
        else:
            conn[key] = value
    return dict(conn)


# ------------------------------------------------------------------------------------------ sweeps

#: Hook parameters for sweeps under test: backoff in hundredths of a second, not seconds.
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


def sandbox_with_live_sessions(live_sessions: int) -> Any:
    """A module-scoped fixture: one sandbox with ``live_sessions`` more live sessions for a module's
    tests (seeding hundreds of sessions per test would cost more than the tests)."""

    @pytest.fixture(scope="module")
    def live_sandbox() -> Iterator[SandboxServer]:
        with SandboxServer(live_sessions=live_sessions) as server:
            yield server

    return live_sandbox


def fresh_sandbox(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, conn_id: str, *, legacy: bool = False
) -> SandboxServer:
    """``server`` reset for one test, as connection ``conn_id``; with ``legacy``, its extensions of the
    published behaviour on (:func:`keep_legacy_extensions`)."""
    server.reset()
    if legacy:
        keep_legacy_extensions(server, monkeypatch)
    monkeypatch.setenv(*server.connection_env(conn_id))
    return server


#: How long a test waits for something it expects: only a hang gets this far, so a loaded machine never fails a
#: test by being slow, and a missing event still ends the test instead of stalling the run.
HANG_S = 60.0


def wait_for(condition: Callable[[], T], what: str, timeout: float = HANG_S) -> T:
    """``condition()`` once it is truthy; fails, naming ``what``, only if not within ``timeout`` s (a hang)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(0.02)
    return value


def idle(sandbox: Any) -> dict[str, Any]:
    """``sandbox``'s state once no request is in flight: every request it received is in its journal."""
    return wait_for(lambda: (state := sandbox.state())["inflight"] == 0 and state, "the sandbox finishing its requests")


def source_copy(work: Path) -> Path:
    """What a build reads (setup.cfg, pyproject.toml, README, plugins/), copied into ``work/source``: a build
    from the copy leaves the checkout without build/ or egg-info."""
    source = work / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "plugins", source / "plugins", ignore=ignored)
    return source


def joins_sent(sandbox: Any) -> list[dict[str, Any]]:
    """The join requests in ``sandbox``'s journal."""
    return [e for e in sandbox.journal() if e["path"].endswith("agent-sessions/join")]


class PushedXComs:
    """A task instance that only collects what an operator pushes under keys of its own."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


# ------------------------------------------------------------------------------------------ agent states


def set_agent_state(sandbox: Any, agent_id: int, state: str) -> dict[str, Any]:
    """What an agent does at their phone: ``PUT /_sandbox/agents/{agent_id}/state``."""
    response = requests.put(
        f"{sandbox.url}/_sandbox/agents/{agent_id}/state",
        json={"state": state},
        headers=sandbox.admin_headers(),
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def states_reads(sandbox: Any) -> list[dict[str, Any]]:
    """The ``agents/states`` reads in ``sandbox``'s journal."""
    return [e for e in sandbox.journal() if e["path"].endswith("/agents/states")]


def token_requests(sandbox: Any) -> int:
    return sum(1 for e in sandbox.journal() if e["path"] == "/auth/token")


# ------------------------------------------------------------------------------------------ session events


def polls(sandbox: Any) -> list[dict[str, Any]]:
    """The ``get-next-event`` polls in ``sandbox``'s journal."""
    return [e for e in sandbox.journal() if e["path"].endswith("/get-next-event")]


def polled_ids(sandbox: Any) -> list[str]:
    return [e["path"].rsplit("/", 2)[-2] for e in polls(sandbox)]


def end_after_polls(sandbox: Any, session_id: str, count: int) -> threading.Thread:
    """End ``session_id`` (as an agent logging off would) once it has been polled ``count`` times."""

    def end() -> None:
        deadline = time.monotonic() + 60
        while len(polls(sandbox)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        with CxoneHook() as hook:
            hook.end_agent_session(session_id, force_logoff=True)

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------ triggers


async def first_payload(trigger: Any) -> dict[str, Any]:
    """The payload of the first event ``trigger`` fires, run in the current event loop."""
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def first_event(trigger: Any) -> dict[str, Any]:
    """The payload of the first event ``trigger`` fires, run in an event loop of its own."""
    return asyncio.run(first_payload(trigger))
