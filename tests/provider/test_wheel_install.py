"""Installed as users install it: the sdist and the wheel that ``make dist`` builds, and the wheel in a fresh venv.

``python -m build`` (what ``make dist`` runs) builds both from a copy of the sources, with no setuptools
warning, and ``twine check --strict`` passes them. The wheel then goes, with its dependencies and the
``[sandbox]`` extra, into a venv of its own, where Airflow lists the provider and its plugin, a DAG routes
one join against the wheel's sandbox, and the plugin's UI serves its page and static files
(``wheel_smoke.py``, run by that venv's Python).

The venv is cached in ``.venvs/wheel-smoke-<key>/`` (git ignores it), the key a hash of the wheel's
requirements, the Airflow version this project is tested with and Python's: the first run installs
Airflow with pip's cache (about 70 s; the figure is printed), later runs only reinstall the wheel.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import REPO, source_copy

from cxone_provider import __version__

# Building the venv the first time outlasts the suite's 300 s per test on a slow machine.
pytestmark = pytest.mark.timeout(1200)

AIRFLOW_VERSION = importlib.metadata.version("apache-airflow")
VENVS = REPO / ".venvs"
MARKER = ".wheel-smoke-complete"
SMOKE = Path(__file__).with_name("wheel_smoke.py")


def run(*args: str | Path, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A command's result; its output in the failure."""
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``python -m build`` from a copy of the sources (the checkout gets no build/ or egg-info): the folder
    holding the sdist and the wheel, and what the build printed."""
    work = tmp_path_factory.mktemp("dist")
    source = source_copy(work)
    out = work / "dist"
    done = run(sys.executable, "-m", "build", "--outdir", out, source)
    return out, done.stdout + done.stderr


def test_build_makes_one_sdist_and_one_wheel_without_warnings(dist: tuple[Path, str]) -> None:
    out, log = dist
    assert sorted(p.name for p in out.iterdir()) == [
        f"airflow_provider_cxone-{__version__}-py3-none-any.whl",
        f"airflow_provider_cxone-{__version__}.tar.gz",
    ]
    # setuptools' warnings are Python warnings ("SetuptoolsDeprecationWarning", "Package ... is absent
    # from the packages configuration" under "_Warning"); distutils' byte-compiling notes are not theirs.
    warned = [line for line in log.splitlines() if "Warning" in line or "ambiguous" in line.lower()]
    assert warned == [], "\n".join(warned)


def test_twine_check_passes_both(dist: tuple[Path, str]) -> None:
    out, _ = dist
    done = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(out.iterdir()))
    assert done.stdout.count("PASSED") == 2, done.stdout


def requirements(wheel: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` lines that a ``[sandbox]`` install pulls in."""
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = Parser().parsestr(archive.read(info).decode()).get_all("Requires-Dist") or []
    return sorted(r for r in lines if "extra ==" not in r or 'extra == "sandbox"' in r)


@pytest.fixture(scope="module")
def venv(dist: tuple[Path, str]) -> Path:
    """A venv with the wheel and its dependencies (``[sandbox]``), Airflow pinned to this project's."""
    out, _ = dist
    (wheel,) = out.glob("*.whl")
    key_of = [f"{sys.version_info.major}.{sys.version_info.minor}", AIRFLOW_VERSION, *requirements(wheel)]
    key = hashlib.sha256(json.dumps(key_of).encode()).hexdigest()[:12]
    venv = VENVS / f"wheel-smoke-{key}"
    python = venv / "bin" / "python"
    VENVS.mkdir(exist_ok=True)
    started = time.monotonic()
    with (VENVS / "wheel-smoke.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions do not build one venv at once
        if (venv / MARKER).exists():
            run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", wheel)
            how = "reused; the wheel reinstalled"
        else:
            shutil.rmtree(venv, ignore_errors=True)
            run(sys.executable, "-m", "venv", venv)
            run(python, "-m", "pip", "install", "--quiet", f"{wheel}[sandbox]", f"apache-airflow=={AIRFLOW_VERSION}")
            (venv / MARKER).write_text(json.dumps(key_of), encoding="utf-8")  # last: only a complete venv has it
            how = "built with pip's cache"
    print(f"\nwheel-smoke venv {venv.name}: {how} in {time.monotonic() - started:.1f} s")
    return venv


@pytest.fixture(scope="module")
def env(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The fresh venv first on PATH, an AIRFLOW_HOME of its own with a migrated SQLite DB, and nothing of
    this session's Airflow settings or ``PYTHONPATH``."""
    home = tmp_path_factory.mktemp("airflow-home")
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "CXONE")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    environment = {
        **kept,
        "PATH": os.pathsep.join([str(venv / "bin"), *kept.get("PATH", "").split(os.pathsep)]),
        "VIRTUAL_ENV": str(venv),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-only-secret-" * 4,
    }
    run(venv / "bin" / "airflow", "db", "migrate", env=environment, cwd=home)
    return environment


def test_airflow_lists_the_provider_and_its_plugin(venv: Path, env: dict[str, str]) -> None:
    airflow = venv / "bin" / "airflow"
    providers = json.loads(run(airflow, "providers", "list", "-o", "json", env=env, cwd=env["AIRFLOW_HOME"]).stdout)
    assert "airflow-provider-cxone" in [p["package_name"] for p in providers], providers
    plugins = json.loads(run(airflow, "plugins", "-o", "json", env=env, cwd=env["AIRFLOW_HOME"]).stdout)
    assert "cxone" in [p["name"] for p in plugins], plugins


def test_a_dag_routes_a_join_and_the_ui_serves_its_pages(venv: Path, env: dict[str, str]) -> None:
    done = run(venv / "bin" / "python", SMOKE, env=env, cwd=env["AIRFLOW_HOME"])
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # the code that ran is the wheel's, installed in the venv, not the checkout's
    assert all(Path(f).is_relative_to(venv) for f in found["files"]), found["files"]
    assert found["states"] == {
        "run": "success",
        "set_security_user": "success",
        "join": "success",
        "on_success": "success",
        "on_default": "skipped",
    }
    page, css, js = (found["ui"][p] for p in ("/cxone/joins", "/cxone/static/cxone.css", "/cxone/static/cxone.js"))
    assert (page["status"], page["type"].split(";")[0]) == (200, "text/html"), page
    assert page["names_the_dag"], "the joins page does not show the join that ran"
    assert page["links_the_css"], "the page's template is not the wheel's base.html"
    assert (css["status"], css["type"].split(";")[0]) == (200, "text/css"), css
    assert (js["status"], "javascript" in js["type"]) == (200, True), js
    assert css["bytes"] > 0
    assert js["bytes"] > 0
