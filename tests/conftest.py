"""Test set-up: a private AIRFLOW_HOME and DAGs folder, the sandbox fixtures, an Airflow DB on demand.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

REPO = Path(__file__).resolve().parent.parent
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
from cxone_provider.testing import LEGACY_EXTENSIONS  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

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


#: The sandbox's extensions of CXone's published behaviour that older provider tests rely on: joining a
#: session by its id (``join_mode="session"``), ``sessionId`` in ``agents/states`` rows, and the
#: ``{"error", "error_description"}`` body the provider's conditions were read from. Not CXone's defaults.
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
    from test_contract import contract_violations

    sent = [entry for entry in sandbox.journal() if entry.get("user_agent") == HOOK_USER_AGENT]
    violations = contract_violations(sent)
    assert violations == [], "the hook strayed from the published contract:\n" + "\n".join(violations)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
