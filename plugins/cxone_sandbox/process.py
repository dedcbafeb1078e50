"""The CXone sandbox as a child process: start it on a free port, learn its address, stop it.

:class:`cxone_provider.testing.SandboxServer` builds on :class:`SandboxProcess` with the connection
and admin helpers a test uses; this module holds only the process's life (command line, start-up,
logs, stop), so that it lives with the server it runs.
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
from typing import TYPE_CHECKING, Any, Self

from cxone_sandbox.declare import to_args
from cxone_sandbox.faults import Faults
from cxone_sandbox.replay import load_recording
from cxone_sandbox.seed import generate_seed, load_seed, validate_seed
from cxone_sandbox.settings import Settings, is_loopback

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

_READY_PREFIX = "CXone sandbox listening on "
# The folder holding the cxone_sandbox package (and cxone_provider beside it): the child must import the
# same code as the parent, also when the packages are not installed (dropped into an Airflow plugins/ folder).
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


class SandboxProcess:
    """The CXone sandbox as a subprocess on 127.0.0.1 with a free port; a context manager.

    :param seed: a seed file, a seed mapping, or ``None`` for the shipped default seed.
    :param live_sessions: add that many logged-in agents 5001… with sessions ``sess-5001``….
    :param faults: the faults the server starts with (and returns to on
        :meth:`~cxone_provider.testing.SandboxServer.reset`).
    :param host: the interface to bind. Beyond loopback the server needs an admin token: without one
        in ``settings``, a random one is made (:attr:`admin_token`); the admin helpers send it.
    :param startup_timeout: seconds to wait for the server to listen.
    :param extra_args: further ``cxone-sandbox`` command-line arguments.
    :param settings: server settings, e.g. ``{"journal_size": 50_000}`` for a sweep of more requests
        than the journal keeps by default (see :mod:`cxone_sandbox.settings`). The admin
        token reaches the server in its environment, never on its command line.
    :param tls: serve HTTPS (``cxone-sandbox --tls``): :attr:`url` is ``https://…``, :attr:`ca_file`
        the CA certificate the server made at start, and
        :meth:`~cxone_provider.testing.SandboxServer.connection` verifies against it.
    :param tls_names: further names for the certificate (``--tls-name``).
    :param replay: a record written by ``cxone-doctor --record``: the server serves its answers
        (``cxone-sandbox --replay``) and
        :meth:`~cxone_provider.testing.SandboxServer.connection` fits it; the seed's credentials log in.
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
        cmd = [sys.executable, "-m", "cxone_sandbox.cli", "--host", self.host, "--port", "0"]
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

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._url!r}, running={self.running})"

    # ------------------------------------------------------------------------------------ facts

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (``https://`` with ``tls``): the auth host, and the API
        host via discovery."""
        if self._url is None:
            raise SandboxError("the sandbox is not running; use it as a context manager or call start()")
        return self._url
