"""What ``pip install`` ships: one wheel with two top-level packages, the provider and the sandbox
beside it, the sandbox's dependencies behind the ``[sandbox]`` extra, and a provider whose runtime
never imports the sandbox (only ``cxone_provider.testing`` does).

The wheel is built from a copy of the sources (so the checkout gets no ``build/`` or egg-info), then
installed with ``pip install --no-deps --target`` into a folder that comes first on ``PYTHONPATH``:
the code that runs is the wheel's, its dependencies this venv's.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import REPO, source_copy
from packaging.requirements import Requirement

PROVIDER = REPO / "plugins" / "cxone_provider"
#: The one module of the provider that may import the sandbox: it starts it for tests.
SANDBOX_USERS = {PROVIDER / "testing.py"}


def imported_modules(source: Path) -> set[str]:
    """Every module ``source`` imports, at any depth (inside functions too), or names as a string
    starting with ``cxone_sandbox`` (an ``importlib.import_module`` or a ``-m`` argument)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("cxone_sandbox"):
            names.add(node.value)
    return names


def test_no_runtime_module_of_the_provider_imports_the_sandbox() -> None:
    """Read: no module of ``cxone_provider`` but ``testing.py`` names ``cxone_sandbox``."""
    modules = sorted(PROVIDER.rglob("*.py"))
    assert len(modules) > 20, modules
    found = {
        str(module.relative_to(PROVIDER)): sorted(
            name for name in imported_modules(module) if name.startswith("cxone_sandbox")
        )
        for module in modules
        if module not in SANDBOX_USERS
    }
    assert {module: names for module, names in found.items() if names} == {}
    assert any(name.startswith("cxone_sandbox") for name in imported_modules(PROVIDER / "testing.py"))


def test_importing_the_whole_provider_loads_no_sandbox_module() -> None:
    """Run: a fresh process imports every module of ``cxone_provider`` but ``testing``; not one module of
    ``cxone_sandbox`` (nor uvicorn, which only the sandbox runs on) is loaded."""
    code = """
        import importlib, json, pkgutil, sys
        import cxone_provider
        names = [m.name for m in pkgutil.walk_packages(cxone_provider.__path__, "cxone_provider.")]
        for name in names:
            if name != "cxone_provider.testing":
                importlib.import_module(name)
        print(json.dumps({
            "imported": len(names),
            "sandbox": sorted(m for m in sys.modules if m.split(".")[0] in ("cxone_sandbox", "uvicorn")),
        }))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["imported"] > 20
    assert found["sandbox"] == []


# ------------------------------------------------------------------------------------------ the wheel


def pip(*args: str) -> None:
    """This venv's pip, quietly; its output in the failure."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the sources (setup.cfg, pyproject.toml, README, plugins/)."""
    work = tmp_path_factory.mktemp("wheel")
    source = source_copy(work)
    out = work / "dist"
    pip("wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("airflow_provider_cxone-*.whl")
    return built


def wheel_metadata(wheel: Path) -> tuple[set[str], dict[str, list[str]], str]:
    """The wheel's file names, its METADATA headers (name -> values) and its entry_points.txt."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        headers = {key: message.get_all(key) or [] for key in set(message.keys())}
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    return names, headers, entry_points


def test_the_wheel_holds_both_packages_and_their_data(wheel: Path) -> None:
    names, _, entry_points = wheel_metadata(wheel)
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"cxone_provider", "cxone_sandbox"}
    for needed in (
        "cxone_provider/__init__.py",
        "cxone_provider/py.typed",
        "cxone_provider/testing.py",
        "cxone_provider/ui/templates/base.html",
        "cxone_sandbox/__init__.py",
        "cxone_sandbox/py.typed",
        "cxone_sandbox/default_seed.json",
        "cxone_sandbox/cli.py",
        "cxone_sandbox/process.py",
    ):
        assert needed in names, f"{needed} is not in {wheel.name}"
    assert not [name for name in names if name.startswith("cxone_provider/sandbox/")]
    assert "cxone-sandbox = cxone_sandbox.cli:main" in entry_points
    assert "cxone-doctor = cxone_provider.doctor:main" in entry_points


def project(requirement: str) -> str:
    """The project a ``Requires-Dist`` line names (``uvicorn<1,>=0.29; extra == "sandbox"`` -> ``uvicorn``)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match[0]


def test_the_sandbox_extra_declares_what_the_sandbox_imports(wheel: Path) -> None:
    """``[sandbox]`` names the sandbox's own third-party imports; the provider's core does not need them."""
    _, headers, _ = wheel_metadata(wheel)
    assert "sandbox" in headers["Provides-Extra"]
    requires = headers["Requires-Dist"]
    extra = sorted(project(r) for r in requires if 'extra == "sandbox"' in r)
    core = sorted(project(r) for r in requires if "extra ==" not in r)
    assert extra == ["cryptography", "starlette", "uvicorn"]
    assert not set(extra) & set(core), core
    # The test extra brings the sandbox: the tests start it.
    assert any(
        Requirement(r).name == "airflow-provider-cxone"
        and "sandbox" in Requirement(r).extras
        and 'extra == "test"' in r
        for r in requires
    ), requires


def test_the_sandbox_imports_nothing_third_party_but_its_extra_and_the_core() -> None:
    """Every top-level third-party module the sandbox imports is declared: by the ``[sandbox]`` extra or
    the provider's ``install_requires`` (FastAPI)."""
    sandbox = REPO / "plugins" / "cxone_sandbox"
    tops = {name.split(".")[0] for module in sandbox.glob("*.py") for name in imported_modules(module)}
    third_party = sorted(tops - set(sys.stdlib_module_names) - {"cxone_sandbox", "__future__"})
    assert third_party == ["cryptography", "fastapi", "starlette", "uvicorn"]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (``--no-deps``) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    pip("install", "--no-deps", "--target", str(target), str(wheel))
    return target


def run_installed(installed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env, cwd=installed, check=False)


def test_the_installed_wheel_starts_a_sandbox_and_logs_in(installed: Path) -> None:
    """The wheel's own code: ``SandboxServer`` starts the wheel's sandbox, whose token endpoint answers."""
    code = """
        import json, requests
        import cxone_provider, cxone_sandbox
        from cxone_provider.testing import SandboxServer
        with SandboxServer() as sandbox:
            conn = sandbox.connection()
            answer = requests.post(
                f"{sandbox.url}/auth/token",
                data={"grant_type": "password", "username": conn["login"], "password": conn["password"]},
                auth=(conn["extra"]["client_id"], conn["extra"]["client_secret"]),
                timeout=10,
            )
        print(json.dumps({
            "files": [cxone_provider.__file__, cxone_sandbox.__file__],
            "status": answer.status_code,
            "token_type": answer.json().get("token_type"),
        }))
    """
    done = run_installed(installed, sys.executable, "-c", textwrap.dedent(code))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(Path(f).is_relative_to(installed) for f in found["files"]), found
    assert (found["status"], found["token_type"]) == (200, "bearer")


def test_the_installed_console_script_runs_the_sandbox_cli(installed: Path) -> None:
    done = run_installed(installed, str(installed / "bin" / "cxone-sandbox"), "--help")
    assert done.returncode == 0, done.stderr
    assert "--live-sessions" in done.stdout
    assert "--tls" in done.stdout
