"""Test helpers: run the CXone sandbox next to your tests and point a ``cxone`` connection at it.

.. code-block:: python

    from cxone_provider.testing import SandboxServer

    with SandboxServer() as sandbox:
        name, value = sandbox.connection_env()  # ("AIRFLOW_CONN_CXONE_DEFAULT", '{"conn_type": …}')
        sandbox.set_faults(rate_429_retry_after=0.1, random_seed=7)
        ...  # run the DAG or the hook under test
        assert sandbox.state()["join_calls"] == 1

With pytest, the fixtures ``cxone_sandbox_server`` (one server per test session) and
``cxone_sandbox`` (per test: the server reset to its seed, ``AIRFLOW_CONN_CXONE_DEFAULT`` set) are
available after ``pytest_plugins = ["cxone_provider.testing"]`` in your root ``conftest.py``.
Override ``cxone_sandbox_server`` there to start it with your own seed or faults.

The server runs in its own process, so it never competes with the code under test for the GIL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from cxone_provider.sandbox.declare import to_args
from cxone_provider.sandbox.faults import Faults
from cxone_provider.sandbox.replay import load_recording, replay_connection
from cxone_provider.sandbox.seed import generate_seed, load_seed, sandbox_connection, validate_seed
from cxone_provider.sandbox.settings import JOURNAL_DROPPED_HEADER, Settings, is_loopback

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

#: A bad day at a contact centre, as sandbox faults: 10% 429 (half of them without Retry-After), 5% 503,
#: 2% dropped connections, 200 ms more on 1% of requests and 5-second tokens. The fault soak uses it;
#: add ``random_seed`` for a reproducible run.
SOAK_FAULTS: dict[str, Any] = {
    "rate_429_retry_after": 0.05,
    "retry_after_s": 1,
    "rate_429_no_retry_after": 0.05,
    "rate_503": 0.05,
    "rate_drop": 0.02,
    "slow_rate": 0.01,
    "slow_ms": 200,
    "token_lifetime_s": 5,
}
#: The sandbox's extensions of CXone's published behaviour, as fault knobs: joining a session by its id
#: (``join_mode="session"``), ``sessionId`` in ``agents/states`` rows, and the ``{"error",
#: "error_description"}`` body on Agent API errors. The sandbox is faithful to CXone without them; a
#: test of DAGs written for the old form passes them (``SandboxServer(faults=LEGACY_EXTENSIONS)``).
LEGACY_EXTENSIONS: dict[str, Any] = {"join_mode": "session", "states_session_id": True, "error_body": "legacy"}
_READY_PREFIX = "CXone sandbox listening on "
# The folder holding the cxone_provider package: the child must import the same code as the parent,
# also when the package is not installed (dropped into an Airflow plugins/ folder).
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies, so a killed test run leaves no server."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class SandboxError(RuntimeError):
    """The sandbox could not start, or an admin call failed."""


class SandboxServer:
    """The CXone sandbox as a subprocess on 127.0.0.1 with a free port; a context manager.

    :param seed: a seed file, a seed mapping, or ``None`` for the shipped default seed.
    :param live_sessions: add that many logged-in agents 5001… with sessions ``sess-5001``….
    :param faults: the faults the server starts with (and returns to on :meth:`reset`).
    :param host: the interface to bind. Beyond loopback the server needs an admin token: without one
        in ``settings``, a random one is made (:attr:`admin_token`); the admin helpers send it.
    :param startup_timeout: seconds to wait for the server to listen.
    :param extra_args: further ``cxone-sandbox`` command-line arguments.
    :param settings: server settings, e.g. ``{"journal_size": 50_000}`` for a sweep of more requests
        than the journal keeps by default (see :mod:`cxone_provider.sandbox.settings`). The admin
        token reaches the server in its environment, never on its command line.
    :param tls: serve HTTPS (``cxone-sandbox --tls``): :attr:`url` is ``https://…``, :attr:`ca_file`
        the CA certificate the server made at start, and :meth:`connection` verifies against it.
    :param tls_names: further names for the certificate (``--tls-name``).
    :param replay: a record written by ``cxone-doctor --record``: the server serves its answers
        (``cxone-sandbox --replay``) and :meth:`connection` fits it; the seed's credentials log in.
    """

    def __init__(
        self,
        seed: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        live_sessions: int = 0,
        faults: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
        settings: Settings | Mapping[str, Any] | None = None,
        tls: bool = False,
        tls_names: Sequence[str] = (),
        replay: str | os.PathLike[str] | None = None,
    ) -> None:
        #: The record served (``replay``), checked here so that a bad file fails in the caller.
        self.replay = None if replay is None else os.fspath(replay)
        self.recording = None if self.replay is None else load_recording(self.replay)
        self._seed_path: str | None = None
        self._seed_mapping: dict[str, Any] | None = None
        #: The tenant the server serves (secrets included: the helpers build connections from it).
        self.seed: dict[str, Any]
        if seed is None or isinstance(seed, str | os.PathLike):
            self._seed_path = None if seed is None else os.fspath(seed)
            self.seed = load_seed(self._seed_path)
        else:
            validate_seed(seed)
            self._seed_mapping = json.loads(json.dumps(seed))  # a deep, JSON-clean copy
            self.seed = dict(self._seed_mapping)
        if live_sessions:
            self.seed = generate_seed(live_sessions, base=self.seed)
        self.live_sessions = live_sessions
        self.initial_faults = Faults.from_mapping(faults)  # validated here, not in the child
        self.settings = settings if isinstance(settings, Settings) else Settings.from_mapping(settings)
        if self.settings.admin_token is None and not is_loopback(host):
            # Nobody needs to read it off the server's output: this object sends it itself.
            self.settings = dataclasses.replace(self.settings, admin_token=secrets.token_urlsafe(32))
        self.host = host
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.tls_names = tuple(tls_names)
        #: The CA certificate of a server started with ``tls=True`` (``None`` otherwise, or while stopped).
        self.ca_file: str | None = None
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------------------------ lifecycle

    def command(self, seed_file: str | None = None, ca_file: str | None = None) -> list[str]:
        """The command line the server runs with (the port is always 0: the OS picks a free one).

        :param seed_file: where a mapping seed was written (default: the seed file given, if any).
        :param ca_file: with ``tls``, where the server writes its CA certificate.
        """
        cmd = [sys.executable, "-m", "cxone_provider.sandbox.cli", "--host", self.host, "--port", "0"]
        if self.tls:
            cmd.append("--tls")
            cmd += [f"--tls-name={name}" for name in self.tls_names]
            if ca_file is not None:
                cmd += ["--tls-ca-file", ca_file]
        seed_path = seed_file or self._seed_path
        if seed_path is not None:
            cmd += ["--seed", seed_path]
        if self.live_sessions:
            cmd += ["--live-sessions", str(self.live_sessions)]
        if self.replay is not None:
            cmd += ["--replay", self.replay]
        return [*cmd, *to_args(self.initial_faults), *self.settings.to_args(), *self.extra_args]

    @property
    def admin_token(self) -> str | None:
        """The token the server's admin routes need (``None``: none, on loopback by default)."""
        return self.settings.admin_token

    def start(self) -> SandboxServer:
        """Start the server and wait until it listens.

        :raises SandboxError: when it exits or stays silent for ``startup_timeout`` seconds; the
            message carries its stderr.
        """
        if self._proc is not None:
            return self
        self._tmpdir = tempfile.TemporaryDirectory(prefix="cxone-sandbox-")
        tmp = Path(self._tmpdir.name)
        seed_file: str | None = None
        if self._seed_mapping is not None:
            # A mapping seed travels as a file.
            seed_file = str(tmp / "seed.json")
            Path(seed_file).write_text(json.dumps(self._seed_mapping), encoding="utf-8")
        ca_file = str(tmp / "ca.pem") if self.tls else None
        cmd = self.command(seed_file, ca_file)
        env = {**os.environ, **self.settings.to_env()}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        # Files, not pipes: nobody has to keep reading them for the server to keep running.
        self._stdout_path = tmp / "stdout.log"
        self._stderr_path = tmp / "stderr.log"
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            url = self._announced_url()
            if url:
                self._url = url
                self.ca_file = ca_file
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        code = self._proc.poll()
        stderr = self._stderr_text()  # before stop(), which removes the file
        self.stop()
        why = f"did not listen within {self.startup_timeout:g}s" if code is None else f"exited with code {code}"
        raise SandboxError(f"the CXone sandbox {why}: {' '.join(cmd)}\n{stderr}")

    def _announced_url(self) -> str | None:
        for line in self._stdout_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(_READY_PREFIX):
                url = line[len(_READY_PREFIX) :].strip()
                # Bound to every interface: this machine reaches it over loopback.
                return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")
        return None

    def _stderr_text(self) -> str:
        try:
            return self._stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""

    def log(self) -> str:
        """Everything the server wrote to stderr so far (uvicorn's warnings, errors and tracebacks)."""
        if self._tmpdir is None:
            return ""
        try:
            return self._stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds.

        :return: its exit code (0 after a graceful stop), or ``None`` if it was not running.
        """
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        self._url = None
        self.ca_file = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        return code

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id, while it runs."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxServer(url={self._url!r}, running={self.running})"

    # ------------------------------------------------------------------------------------ facts

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (``https://`` with ``tls``): the auth host, and the API
        host via discovery."""
        if self._url is None:
            raise SandboxError("the sandbox is not running; use it as a context manager or call start()")
        return self._url

    @property
    def tenant_id(self) -> str:
        """The seed's tenant id."""
        return str(self.seed["tenant_id"])

    @property
    def api_base_url(self) -> str:
        """The Agent API base, as discovery would give it (with the hook's default version)."""
        from cxone_provider.client.auth import API_PATH_TEMPLATE
        from cxone_provider.client.settings import DEFAULT_API_VERSION

        return API_PATH_TEMPLATE.format(endpoint=self.url, version=DEFAULT_API_VERSION)

    def secret_of(self, key: str) -> str:
        """The access key secret of ``key`` in the seed.

        :raises KeyError: when the seed has no such access key.
        """
        for user in self.seed.get("users", []):
            if user["access_key_id"] == key:
                return str(user["access_key_secret"])
        known = ", ".join(u["access_key_id"] for u in self.seed.get("users", []))
        raise KeyError(f"no access key {key!r} in the sandbox seed (known: {known})")

    def connection(
        self,
        *,
        key: str | None = None,
        discovery: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """The Airflow ``cxone`` connection for this sandbox, as a JSON-able mapping.

        The same connection ``cxone-sandbox`` prints as ``AIRFLOW_CONN_CXONE_DEFAULT=…`` (both come from
        :func:`cxone_provider.sandbox.seed.sandbox_connection`).

        :param key: the access key (``login``) whose secret becomes the ``password``; default: the
            seed's first access key that may impersonate (``SANDBOX-QA-KEY`` in the shipped seed).
        :param discovery: find the API host by discovery (``tenant_id``), or pin it with
            ``api_base_url`` (a replay decides by its record).
        :param extra: further connection extras (``read_timeout``, ``api_version``…), set last; with
            ``tls``, ``verify_ssl`` is the server's CA certificate unless given here.
        """
        pinned = not discovery and self.recording is None
        extras: dict[str, Any] = {"api_base_url": self.api_base_url} if pinned else {}
        if self.tls:
            extras["verify_ssl"] = self.ca_file
        extras.update(extra)
        if self.recording is not None:
            return replay_connection(self.seed, self.recording, self.url, key=key, extra=extras)
        return sandbox_connection(self.seed, self.url, key=key, extra=extras)

    def connection_env(self, conn_id: str = "cxone_default", **kwargs: Any) -> tuple[str, str]:
        """The environment variable that defines the connection: ``(AIRFLOW_CONN_<ID>, json)``.

        :param conn_id: the connection id.
        :param kwargs: as for :meth:`connection`.
        """
        return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(self.connection(**kwargs))

    # ------------------------------------------------------------------------------------ admin

    def admin_headers(self) -> dict[str, str]:
        """The headers an admin request to this server needs: the admin token's, when there is one."""
        token = self.settings.admin_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _admin_response(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = requests.request(
            method,
            f"{self.url}/_sandbox/{path}",
            json=body,
            headers=self.admin_headers(),
            timeout=30,
            verify=self.ca_file if self.tls and self.ca_file else True,
        )
        if not response.ok:
            raise SandboxError(f"{method} /_sandbox/{path}: {response.status_code} {response.text}")
        return response

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        return self._admin_response(method, path, body).json()

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Replace the faults: the knobs given, every other knob back to its default (off).

        :return: the faults now in effect.
        """
        return dict(self._admin("PUT", "faults", knobs))

    def faults(self) -> dict[str, Any]:
        """The faults in effect."""
        return dict(self._admin("GET", "faults"))

    def journal(self) -> list[dict[str, Any]]:
        """Every request received since the last clear or reset (admin calls excluded), oldest first,
        as far as the journal keeps them (the most recent ``journal_size``; see :meth:`journal_dropped`).

        The list ``GET /_sandbox/journal`` answers, unchanged; the shape of an entry is described in
        :mod:`cxone_provider.sandbox.app`.
        """
        return list(self._admin("GET", "journal"))

    def journal_dropped(self) -> int:
        """How many entries the journal dropped since the last clear or reset, the oldest first, to
        keep ``journal_size`` (``GET /_sandbox/journal``'s ``X-Sandbox-Journal-Dropped`` header)."""
        return int(self._admin_response("GET", "journal").headers[JOURNAL_DROPPED_HEADER])

    def clear_journal(self) -> None:
        """Empty the journal."""
        self._admin("DELETE", "journal")

    def state(self) -> dict[str, Any]:
        """Agents, sessions with their joins, supervise actions and counters (no secrets)."""
        return dict(self._admin("GET", "state"))

    def reset(self) -> None:
        """Back to the seed state and the starting faults, with an empty journal; tokens are revoked."""
        self._admin("POST", "reset")

    def set_agent_state(self, agent_id: int, state: str) -> dict[str, Any]:
        """Change an agent's state as the agent would (``PUT /_sandbox/agents/{agent_id}/state``).

        ``LoggedOut`` logs them out and ends their session; any other state logs them in first.
        Returns their ``agents/states`` row.
        """
        return dict(self._admin("PUT", f"agents/{int(agent_id)}/state", {"state": state}))


# The fixtures exist only inside a pytest run, which has imported pytest before it loads this module as a
# plugin (``pytest_plugins = ["cxone_provider.testing"]`` or ``-p cxone_provider.testing``). Elsewhere
# nothing imports pytest: Airflow's plugin loader imports this file in every scheduler, dag-processor,
# api-server and task process when the package is dropped into a plugins folder, installed pytest or not.
if "pytest" in sys.modules:
    import pytest

    @pytest.fixture(scope="session")
    def cxone_sandbox_server() -> Iterator[SandboxServer]:
        """One CXone sandbox for the whole test session."""
        with SandboxServer() as server:
            yield server

    @pytest.fixture
    def cxone_sandbox(cxone_sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
        """The session's sandbox, reset to its seed, with ``AIRFLOW_CONN_CXONE_DEFAULT`` pointing at it."""
        cxone_sandbox_server.reset()
        name, value = cxone_sandbox_server.connection_env()
        monkeypatch.setenv(name, value)  # undone by monkeypatch after the test
        yield cxone_sandbox_server
        # Faults a test set must not leak into the next user of the session's server.
        cxone_sandbox_server.reset()
