"""One virtualenv per supported Airflow version, the constraints files we test with, and the floor run.

    python scripts/airflow_versions.py constraints [VERSION ...]  # make constraints: resolve afresh, write them
    python scripts/airflow_versions.py venv VERSION               # build or reuse .venvs/airflow-VERSION
    python scripts/airflow_versions.py test VERSION [PYTEST ARGS] # pytest inside that venv
    python scripts/airflow_versions.py test-floor                 # make test-floor: unit tests + one real run
    python scripts/airflow_versions.py test-versions              # make test-versions: the floor, then 3.1 and 3.2

Airflow's published constraints files cannot be downloaded here (only the package index is reachable), so
``constraints/apache-airflow-<v>.txt`` is what we resolved and tested with: ``pip install apache-airflow==<v>``
plus the provider's requirements and its ``test`` extra, frozen, minus the provider itself. A venv is reused
while its stamp (the Airflow version, setup.cfg and the constraints file) matches; otherwise it is rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".venvs"
CONSTRAINTS = REPO / "constraints"
# Every minor we support, at the patch release CI tests; the first is the floor, the last the newest.
VERSIONS = ("3.0.6", "3.1.8", "3.2.2", "3.3.2")
FLOOR = VERSIONS[0]
PROVIDER = "airflow-provider-cxone"
# Caps that stand in for Airflow's own constraints of that release where its requirements are too loose for
# what the index holds now: Airflow 3.0.x's execution API (Cadwyn) fails every task-state call ("Input should
# be a valid dictionary") with FastAPI >= 0.126 and Cadwyn >= 5.6 (its own 3.0.6 constraints had FastAPI 0.116), and
# its JWTs carry an empty-list issuer that PyJWT >= 2.11 refuses to sign ("Issuer (iss) must be a string"),
# and its Fernet wrapper sets an attribute on MultiFernet that cryptography 46+ (Rust) no longer allows.
# Airflow 3.2's in-process execution API (dag.test, the triggerer) finds no registry with svcs >= 26, and
# breaks on the newest FastAPI/Cadwyn (a pydantic discriminator error): 3.3.2's resolved set works there.
RESOLVE_CAPS: dict[str, tuple[str, ...]] = {
    "3.0.6": ("fastapi<0.117", "cadwyn<5.5", "PyJWT<2.11", "cryptography<46"),
    "3.2.2": ("svcs<26", "fastapi<0.137", "cadwyn<8"),
}

# What the floor run covers, to fit CI's time: the unit tests that run Airflow or the provider's Airflow
# code, then one real-scheduler run. Left to the newest version, where the whole suite runs: the files
# that never touch Airflow (the sandbox, pure domain rules, packaging, Docker lint, soak and hostile-server
# runs) and the browser, Celery, triggerer and drop-in e2e files.
FLOOR_NOT_AIRFLOW = (
    "tests/e2e",
    "tests/sandbox",
    "tests/system/test_docker.py",
    "tests/sweeps/test_soak.py",
    "tests/client/test_hostile.py",
    "tests/sweeps/test_pacing.py",
    "tests/provider/test_packaging.py",
    "tests/provider/test_wheel_install.py",
    "tests/domain/test_timezones.py",
    "tests/domain/test_conditions.py",
    "tests/domain/test_condition_table.py",
)
FLOOR_UNIT_ARGS = ("tests", *(f"--ignore={path}" for path in FLOOR_NOT_AIRFLOW), "-q", "-p", "no:cacheprovider")
FLOOR_E2E_ARGS = (
    "tests/e2e/test_real_airflow.py",
    "-k",
    "LocalExecutor and (supervised_session_success or qa_sweep)",
    "-q",
    "-p",
    "no:cacheprovider",
)


def constraints_file(version: str) -> Path:
    return CONSTRAINTS / f"apache-airflow-{version}.txt"


def venv_dir(version: str) -> Path:
    return VENVS / f"airflow-{version}"


def stamp_of(version: str) -> str:
    """What a venv was built from: when any of it changes, the venv is rebuilt."""
    digest = hashlib.sha256(version.encode())
    for path in (REPO / "setup.cfg", constraints_file(version)):
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def run(*cmd: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(part) for part in cmd), flush=True)
    subprocess.run([str(part) for part in cmd], check=True, **kwargs)  # type: ignore[call-overload]


def build(version: str, *, constrained: bool) -> Path:
    """A fresh venv with Airflow ``version`` and the provider editable with its ``test`` extra.

    Unconstrained (``make constraints``), the resolver picks the newest of everything within the caps."""
    venv = venv_dir(version)
    shutil.rmtree(venv, ignore_errors=True)
    run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    run(pip, "install", "--quiet", "--upgrade", "pip")
    args: list[str | Path] = [pip, "install", "--quiet", f"apache-airflow=={version}", "-e", f"{REPO}[test]"]
    if constrained:
        args += ["-c", constraints_file(version)]
    else:
        args += RESOLVE_CAPS.get(version, ())
    run(*args)
    return venv


def ensure_venv(version: str) -> Path:
    """``.venvs/airflow-<version>``, rebuilt only when its stamp no longer matches."""
    if not constraints_file(version).exists():
        sys.exit(f"no {constraints_file(version).relative_to(REPO)}: run `make constraints` first")
    venv = venv_dir(version)
    stamp = venv / ".stamp"
    if stamp.exists() and stamp.read_text() == stamp_of(version):
        return venv
    build(version, constrained=True)
    stamp.write_text(stamp_of(version))
    return venv


def write_constraints(version: str) -> None:
    """Resolve afresh (no old constraints), freeze the result, and keep the venv as the cached one."""
    freeze(build(version, constrained=False), version)


def freeze(venv: Path, version: str) -> None:
    frozen = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze", "--exclude", PROVIDER, "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = sorted((line for line in frozen.splitlines() if line and not line.startswith("#")), key=str.lower)
    CONSTRAINTS.mkdir(exist_ok=True)
    caps = ", ".join(RESOLVE_CAPS.get(version, ())) or "none"
    header = (
        f"# The resolved set {PROVIDER} is tested with on apache-airflow=={version}: Airflow, the provider's\n"
        f"# requirements and its [test] extra, frozen (the provider itself left out). Caps: {caps}.\n"
        "# Regenerate with `make constraints`; install with `pip install -c <this file> ...`.\n"
    )
    constraints_file(version).write_text(header + "\n".join(pins) + "\n")
    (venv / ".stamp").write_text(stamp_of(version))
    print(f"wrote {constraints_file(version).relative_to(REPO)} ({len(pins)} pins)", flush=True)


def pytest_in(version: str, *args: str) -> int:
    venv = ensure_venv(version)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VIRTUAL_ENV", None)
    print(f"+ [airflow {version}] pytest {' '.join(args)}", flush=True)
    return subprocess.run([str(venv / "bin" / "pytest"), *args], cwd=REPO, env=env, check=False).returncode


# Between the floor and the newest, the tests of what moved between Airflow versions, kept to what CI's
# time allows: the example DAGs through dag.test() (every condition, branching, the task runner's
# exceptions), the sensor in each mode (the triggerer in-process), the UI in the api-server, provider
# registration and the Assets.
MIDDLE_ARGS = (
    "tests/system/test_example_dags.py",
    "tests/sensors/test_agent_state_sensor.py",
    "tests/ui/test_ui.py",
    "tests/provider/test_provider.py",
    "tests/sweeps/test_sweep_assets.py",
    "-q",
    "-p",
    "no:cacheprovider",
)


def timed(label: str, runs: list[tuple[str, tuple[str, ...]]]) -> int:
    """Run each (version, pytest args) in turn, stopping at the first failure; print what each took."""
    code = 0
    for version, args in runs:
        started = time.monotonic()
        code = pytest_in(version, *args)
        took = time.monotonic() - started
        print(f"airflow {version}: {label} {'passed' if code == 0 else 'FAILED'} in {took:.0f} s", flush=True)
        if code:
            break
    return code


def test_floor() -> int:
    return timed("floor run", [(FLOOR, FLOOR_UNIT_ARGS), (FLOOR, FLOOR_E2E_ARGS)])


def test_versions() -> int:
    """CI's matrix beside the newest version's whole suite: the floor run, then the middle versions."""
    return test_floor() or timed("version run", [(version, MIDDLE_ARGS) for version in VERSIONS[1:-1]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("constraints").add_argument("versions", nargs="*", default=list(VERSIONS))
    sub.add_parser("venv").add_argument("version")
    test = sub.add_parser("test")
    test.add_argument("version")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    sub.add_parser("test-floor")
    sub.add_parser("test-versions")
    args = parser.parse_args(argv)
    if args.command == "constraints":
        for version in args.versions:
            write_constraints(version)
        return 0
    if args.command == "venv":
        print(ensure_venv(args.version))
        return 0
    if args.command == "test":
        return pytest_in(args.version, *args.pytest_args)
    if args.command == "test-versions":
        return test_versions()
    return test_floor()


if __name__ == "__main__":
    sys.exit(main())
