"""Real services for the end-to-end tests: PostgreSQL, Redis and Airflow's own processes.

Everything runs as a child process on 127.0.0.1 with a free port, in its own process group, logging
to a file in the deployment's work folder; :class:`Processes` stops them all again (SIGTERM, then
SIGKILL), including the task processes Airflow started in process groups of their own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import requests

from cxone_provider.testing import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
VENV_BIN = Path(sys.executable).parent
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"
# The environment variables a child may inherit; everything else it gets is set explicitly, so the
# parent test session's AIRFLOW_HOME, DAGS_FOLDER, proxies and the like never leak into the services.
_INHERITED = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


class StackError(RuntimeError):
    """A service did not start, died, or a command failed; the message carries its log's tail."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """A minimal environment: the venv's ``bin`` first on ``PATH``, unbuffered Python output."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(what: str, check: Callable[[], Any], timeout: float, *, alive: Callable[[], None] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; ``alive`` raises when a service died meanwhile."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            result = check()
        except (OSError, requests.RequestException, StackError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(0.25)
    raise StackError(
        f"timed out after {timeout:g}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


# ---------------------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A started child process, the leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    infrastructure: bool = False  # stopped after the Airflow services that use it

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise StackError(f"{self.name} exited with code {code}; the end of {self.log}:\n{tail(self.log)}")


@dataclass
class Processes:
    """Starts commands with their output in ``workdir/<name>.log`` and stops all of them on :meth:`stop_all`."""

    workdir: Path
    services: list[Service] = field(default_factory=list)
    #: Every descendant seen while the services ran (task processes live in process groups of their own).
    _descendants: dict[int, psutil.Process] = field(default_factory=dict)
    #: Run after every process has stopped (removing folders the services wrote to).
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        *,
        as_user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        infrastructure: bool = False,
    ) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(cmd),
                env=dict(env),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one killpg reaches its children
                **_user_kwargs(as_user),
            )
        service = Service(name, proc, log, stop_signal, infrastructure)
        self.services.append(service)
        return service

    def run(
        self, name: str, cmd: Sequence[str], env: Mapping[str, str], *, timeout: float, as_user: str | None = None
    ) -> None:
        """Run a command to completion, its output in ``<name>.log``; raise with the log's tail on failure."""
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            try:
                code = subprocess.run(
                    list(cmd),
                    env=dict(env),
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                    start_new_session=True,
                    **_user_kwargs(as_user),
                ).returncode
            except subprocess.TimeoutExpired:
                raise StackError(f"{name} did not finish within {timeout:g}s:\n{tail(log)}") from None
        if code != 0:
            raise StackError(f"{name} failed with code {code}: {' '.join(cmd)}\n{tail(log)}")

    def check_alive(self) -> None:
        """Raise if any long-running service has exited; remember the current descendants."""
        for service in self.services:
            service.check_alive()
            self._remember_descendants(service)

    def _remember_descendants(self, service: Service) -> None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(service.proc.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)

    def stop_all(self, timeout: float = 20.0) -> None:
        """Stop the Airflow services, then the infrastructure: signal each group, wait, then SIGKILL."""
        for service in self.services:
            self._remember_descendants(service)
        airflow = [s for s in self.services if not s.infrastructure]
        infrastructure = [s for s in self.services if s.infrastructure]
        _stop_groups(airflow, timeout)
        # Stragglers outside the groups (a task process, a worker's child): nothing may outlive the test.
        for proc in self._descendants.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()
        _stop_groups(infrastructure, timeout)
        self.services.clear()
        self._descendants.clear()
        while self.cleanups:
            self.cleanups.pop()()

    def log_tails(self, lines: int = 40) -> str:
        """The end of every log in the work folder, for a failure report."""
        parts = []
        for log in sorted(self.workdir.glob("*.log")):
            parts.append(f"----- {log.name} (last {lines} lines) -----\n{tail(log, lines)}")
        return "\n".join(parts)


def _user_kwargs(as_user: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"preexec_fn": die_with_parent}
    if as_user is not None:
        kwargs.update(user=as_user, group=as_user if _has_group(as_user) else None, extra_groups=[])
    return kwargs


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _signal_group(service: Service, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(service.proc.pid, sig)


def _group_alive(service: Service) -> bool:
    try:
        os.killpg(service.proc.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_groups(services: Sequence[Service], timeout: float) -> None:
    for service in services:
        _signal_group(service, service.stop_signal)
    deadline = time.monotonic() + timeout
    for service in services:
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(max(0.0, deadline - time.monotonic()))
        # The leader may be gone while its children still wind down: give them the same deadline.
        while _group_alive(service) and time.monotonic() < deadline:
            time.sleep(0.1)
    for service in services:
        if _group_alive(service) or service.proc.poll() is None:
            _signal_group(service, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(5)


# ---------------------------------------------------------------------------------------- infrastructure


def postgres_bindir() -> Path | None:
    """Where PostgreSQL's server programs are: on ``PATH``, or Debian's ``/usr/lib/postgresql/<v>/bin``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def missing_prerequisites(executor: str) -> list[str]:
    """What this machine lacks to run ``executor`` end to end (empty when nothing)."""
    missing = []
    if executor == "CeleryExecutor":
        if postgres_bindir() is None:
            missing.append("PostgreSQL server programs (initdb, postgres; Debian package postgresql)")
        elif os.geteuid() == 0 and not _has_user("postgres"):
            missing.append("a 'postgres' user to run PostgreSQL as (initdb refuses to run as root)")
        if shutil.which("redis-server") is None:
            missing.append("redis-server (Debian package redis-server)")
        try:
            import airflow.providers.celery  # noqa: F401
            import psycopg2  # noqa: F401
        except ImportError as exc:
            missing.append(f"the Python package of {exc.name} (pip install -e '.[test]')")
    return missing


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def start_postgres(processes: Processes) -> str:
    """Initialise a throwaway cluster, start it on a free loopback port, create the ``airflow`` DB.

    :return: the SQLAlchemy URL of the ``airflow`` database.
    """
    bindir = postgres_bindir()
    assert bindir is not None
    # The cluster lives outside the (private) pytest work folder: as root, it belongs to the
    # 'postgres' user, and that user must reach it.
    root = Path(tempfile.mkdtemp(prefix="cxone-e2e-postgres-", dir="/tmp" if os.geteuid() == 0 else None))
    processes.cleanups.append(lambda: shutil.rmtree(root, ignore_errors=True))
    as_user = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        import pwd

        as_user = "postgres"
        entry = pwd.getpwnam(as_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    env = base_env()
    processes.run(
        "postgres-initdb",
        [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "--no-locale", "-E", "UTF8"],
        env,
        timeout=120,
        as_user=as_user,
    )
    port = free_port()
    server = processes.start(
        "postgres",
        [
            str(bindir / "postgres"),
            *("-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(root)),
            # A throwaway database: durability buys nothing here and costs the migration seconds.
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
            *("-c", "max_connections=200"),
        ],
        env,
        as_user=as_user,
        stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM would wait for every client to leave
        infrastructure=True,
    )
    wait_until(
        "PostgreSQL to accept connections",
        lambda: "ready to accept connections" in tail(server.log, 200),
        60,
        alive=server.check_alive,
    )
    processes.run(
        "postgres-createdb",
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
        env,
        timeout=60,
    )
    return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"


def start_redis(processes: Processes) -> str:
    """Start a Redis without persistence on a free loopback port; return its URL."""
    port = free_port()
    data = processes.workdir / "redis"
    data.mkdir()
    server = processes.start(
        "redis",
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ],
        base_env(),
        infrastructure=True,
    )

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    wait_until("Redis to answer PING", pong, 30, alive=server.check_alive)
    return f"redis://127.0.0.1:{port}/0"


# ---------------------------------------------------------------------------------------- Airflow


def airflow_command(*args: str) -> list[str]:
    """The ``airflow`` command of the interpreter running the tests."""
    script = VENV_BIN / "airflow"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "airflow", *args]


class AirflowClient:
    """A small client of Airflow's public REST API (``/api/v2``), authenticated as the admin user."""

    def __init__(self, base_url: str, check_alive: Callable[[], None]) -> None:
        self.base_url = base_url.rstrip("/")
        self.check_alive = check_alive
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: no proxy from the environment

    def login(self) -> None:
        """Get a JWT from the simple auth manager (``POST /auth/token``) and send it from now on."""
        response = self.http.post(
            f"{self.base_url}/auth/token", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}, timeout=30
        )
        assert response.status_code == 201, f"POST /auth/token: {response.status_code} {response.text}"
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/api/v2/{path}", timeout=30, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} /api/v2/{path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, filename: str, timeout: float) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; fail fast on an import error of its file."""

        def parsed() -> dict[str, Any] | None:
            response = self.http.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
            if response.status_code == 200:
                return dict(response.json())
            errors = self.request("GET", "importErrors")["import_errors"]
            for error in errors:
                if error["filename"] == filename:
                    raise AssertionError(f"the dag-processor could not import {filename}:\n{error['stack_trace']}")
            return None

        return dict(wait_until(f"the dag-processor to parse {dag_id}", parsed, timeout, alive=self.check_alive))

    def unpause(self, dag_id: str) -> None:
        body = self.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        assert body["is_paused"] is False

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        """Trigger a manual run (no logical date); return its run id."""
        body = self.request("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf)})
        return str(body["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.request("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included, all pages."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": len(found)}
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        body = self.request(
            "GET",
            f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"deserialize": True},
        )
        return body["value"]
