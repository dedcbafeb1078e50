"""Real services for the end-to-end tests: PostgreSQL, Redis and Airflow's own processes.

Airflow runs from this test session's venv by default, or from any other venv's ``bin`` folder
(``venv_bin=``): :func:`airflow_venv` builds and caches one that holds nothing but ``apache-airflow``.

Everything runs as a child process on 127.0.0.1 with a free port, in its own process group, logging
to a file in the deployment's work folder; :class:`Processes` stops them all again (SIGTERM, then
SIGKILL), including the task processes Airflow started in process groups of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import psutil
import pytest
import requests

from cxone_provider.testing import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
VENV_BIN = Path(sys.executable).parent
#: Venvs built for the tests, kept between runs (ignored by git, removed by ``make clean``).
AIRFLOW_CACHE = REPO / ".airflow"
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


def base_env(venv_bin: Path = VENV_BIN) -> dict[str, str]:
    """A minimal environment: ``venv_bin`` first on ``PATH``, unbuffered Python output.

    The test session's own venv is left off ``PATH`` when ``venv_bin`` is another venv's, so a child
    cannot reach a program of this venv by accident.
    """
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    inherited = os.environ.get("PATH", os.defpath).split(os.pathsep)
    others = [entry for entry in inherited if entry and Path(entry) not in (VENV_BIN, venv_bin)]
    env["PATH"] = os.pathsep.join([str(venv_bin), *others])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def unavailable(reason: str) -> NoReturn:
    """Fail, with the reason: an end-to-end test is never skipped in silence. ``make test E2E=0``
    (``CXONE_E2E=0``) leaves them all out on purpose, and says so at the end of the run."""
    pytest.fail(f"{reason} (make test-deps installs what the end-to-end tests need; make test E2E=0 leaves them out)")


def report(request: pytest.FixtureRequest, text: str) -> None:
    """Write to the terminal even while pytest captures output (a module fixture's teardown is captured)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        sys.stderr.write(text + "\n")
        return
    with capture.global_and_fixture_disabled():
        sys.stderr.write(text + "\n")


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

    def capture(self, name: str, cmd: Sequence[str], env: Mapping[str, str], *, timeout: float) -> Captured:
        """Run a command to completion and return its exit code, stdout and stderr (whatever the code).

        Both streams also go to ``<name>.log``, so a failure report shows them.
        """
        try:
            done = subprocess.run(
                list(cmd),
                env=dict(env),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
                start_new_session=True,
                **_user_kwargs(None),
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{name} did not finish within {timeout:g}s: {' '.join(cmd)}") from exc
        captured = Captured(" ".join(cmd), done.returncode, done.stdout, done.stderr)
        with (self.workdir / f"{name}.log").open("a", encoding="utf-8") as log:
            log.write(f"$ {captured.cmd}\n[exit code {captured.code}]\n--- stdout\n{captured.stdout}\n")
            log.write(f"--- stderr\n{captured.stderr}\n")
        return captured

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


@dataclass(frozen=True)
class Captured:
    """A finished command: its command line, exit code and output."""

    cmd: str
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.cmd}\n[exit code {self.code}]\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


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


def airflow_command(*args: str, venv_bin: Path = VENV_BIN) -> list[str]:
    """The ``airflow`` command of a venv: by default the one of the interpreter running the tests."""
    script = venv_bin / "airflow"
    if script.exists():
        return [str(script), *args]
    python = sys.executable if venv_bin == VENV_BIN else str(venv_bin / "python")
    return [python, "-m", "airflow", *args]


def installed_airflow_version() -> str:
    """The version of ``apache-airflow`` in the test session's venv (what the project is tested against)."""
    return importlib.metadata.version("apache-airflow")


def airflow_venv(version: str, *, build_timeout: float = 900) -> Path:
    """The ``bin`` folder of a venv holding ``apache-airflow==version`` and nothing else it does not pull in.

    Cached in ``.airflow/venv-apache-airflow-<version>-py<X.Y>/`` and reused while it works: built
    when missing, rebuilt when broken (an interrupted build, a Python that moved). The build runs
    ``pip install`` with the environment and pip configuration of this session, so it uses the
    package index pip is configured for; a lock keeps two test sessions from building at once.

    :raises StackError: when the venv cannot be built; the message carries the end of pip's log.
    """
    name = f"venv-apache-airflow-{version}-py{sys.version_info.major}.{sys.version_info.minor}"
    venv = AIRFLOW_CACHE / name
    AIRFLOW_CACHE.mkdir(exist_ok=True)
    with (AIRFLOW_CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _venv_works(venv, version):
            return venv / "bin"
        shutil.rmtree(venv, ignore_errors=True)
        log = AIRFLOW_CACHE / f"{name}.build.log"
        log.unlink(missing_ok=True)
        # pip's own settings (index, certificates, timeouts) stay; nothing may leak this venv's packages in.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", f"apache-airflow=={version}"],
        ]
        for step in steps:
            with log.open("ab") as out:
                try:
                    code = subprocess.run(
                        step,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=build_timeout,
                        check=False,
                    ).returncode
                except subprocess.TimeoutExpired:
                    code = None
            if code != 0:
                shutil.rmtree(venv, ignore_errors=True)
                why = "timed out" if code is None else f"failed with code {code}"
                raise StackError(f"building {venv}: {' '.join(step)} {why}; the end of {log}:\n{tail(log, 30)}")
        if not _venv_works(venv, version, check_marker=False):
            raise StackError(f"{venv} was built but does not import apache-airflow {version}; see {log}")
        (venv / _VENV_MARKER).write_text(version, encoding="utf-8")  # last: only a finished build has it
        return venv / "bin"


_VENV_MARKER = ".apache-airflow-version"


def _venv_works(venv: Path, version: str, *, check_marker: bool = True) -> bool:
    """Whether the venv was built completely for ``version`` and its Python still imports that Airflow."""
    if check_marker:
        try:
            if (venv / _VENV_MARKER).read_text(encoding="utf-8").strip() != version:
                return False
        except OSError:
            return False
    if not (venv / "bin" / "airflow").exists():
        return False
    try:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
            env={"PATH": os.defpath},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def airflow_env(
    home: Path,
    port: int,
    *,
    dags_folder: Path,
    database_url: str,
    executor: str = "LocalExecutor",
    connections: Mapping[str, str] | None = None,
    venv_bin: Path = VENV_BIN,
) -> dict[str, str]:
    """The full environment of every Airflow process of one deployment (nothing else is inherited).

    The simple auth manager with one admin (:data:`ADMIN_USER`), the api-server on ``127.0.0.1:port``
    (also serving the Execution API), the plugins folder ``home/plugins``, fast polling for a test.

    :param connections: ``AIRFLOW_CONN_…`` variables to add.
    """
    from cryptography.fernet import Fernet

    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}), encoding="utf-8")
    env = base_env(venv_bin)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",  # user:role
            # the tests read XComs with deserialize=true, which Airflow 3.0 refuses unless this is on
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # One secret for every process: the scheduler signs the tasks' Execution API tokens.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            # Fast turnarounds for a test: list the bundle often, parse in one process, poll often.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            **(connections or {}),
        }
    )
    return env


def start_airflow(
    processes: Processes,
    env: Mapping[str, str],
    port: int,
    *,
    venv_bin: Path = VENV_BIN,
    timings: dict[str, float] | None = None,
    more_services: Mapping[str, Sequence[str]] | None = None,
) -> AirflowClient:
    """Migrate the metadata DB, start ``api-server``, ``scheduler`` and ``dag-processor``, log in.

    :param more_services: further long-running ``airflow`` commands started with them, name → arguments
        (``{"celery-worker": ["celery", "worker", …]}``).
    :return: a client of the api-server, logged in as the admin.
    """
    timings = {} if timings is None else timings
    mark = time.monotonic()
    processes.run("airflow-db-migrate", airflow_command("db", "migrate", venv_bin=venv_bin), env, timeout=240)
    timings["db migrate"] = time.monotonic() - mark

    mark = time.monotonic()
    api_server = airflow_command("api-server", "--host", "127.0.0.1", "--port", str(port), venv_bin=venv_bin)
    processes.start("api-server", api_server, env)
    processes.start("scheduler", airflow_command("scheduler", "--skip-serve-logs", venv_bin=venv_bin), env)
    processes.start("dag-processor", airflow_command("dag-processor", venv_bin=venv_bin), env)
    for name, args in (more_services or {}).items():
        processes.start(name, airflow_command(*args, venv_bin=venv_bin), env)
    api = AirflowClient(f"http://127.0.0.1:{port}", processes.check_alive)
    wait_until(
        "the api-server to answer /api/v2/version",
        lambda: api.http.get(f"{api.base_url}/api/v2/version", timeout=5).ok,
        120,
        alive=processes.check_alive,
    )
    api.login()
    timings["api-server up"] = time.monotonic() - mark
    return api


def task_log_tails(home: Path, dag_id: str, run_id: str, task_id: str) -> str:
    """The end of a task's log files (every attempt, every map index), for a failure message."""
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "".join(f"--- {log}\n{tail(log, 30)}\n" for log in sorted(folder.rglob("*.log")))


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

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Poll the run until it is ``success`` or ``failed``; its final state."""

        def ended() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        try:
            return str(wait_until(f"{dag_id} run {run_id} to end", ended, timeout, alive=self.check_alive))
        except StackError as exc:
            states = {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}
            raise AssertionError(f"{exc}; task states so far: {states}") from exc

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
