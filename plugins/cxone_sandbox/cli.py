"""``cxone-sandbox`` (or ``python -m cxone_sandbox.cli``): run the CXone sandbox server.

There is deliberately no ``cxone_sandbox/__main__.py``: Airflow's plugin loader imports every ``.py`` file of
a plugins folder under its own file name, so a ``__main__.py`` copied there would run as ``__main__``
and take over every ``airflow`` command. This module runs only when started as a program.

When it accepts connections it prints two lines to stdout: first
``CXone sandbox listening on http://HOST:PORT``, which is how callers learn the port of ``--port 0``
(it stays the first line), then a ready-to-paste ``AIRFLOW_CONN_CXONE_DEFAULT='{…}'`` defining a
``cxone`` connection to it (the seed's first access key that may impersonate). SIGTERM and SIGINT
stop it gracefully with exit code 0.

It refuses to bind beyond loopback (``--host 0.0.0.0``, an interface's address, any name but
``localhost``) without an admin token (``CXONE_SANDBOX_ADMIN_TOKEN`` or ``--admin-token``): there,
anyone who can connect could otherwise change its faults, reset it or read its journal. It does not
make one up: a generated token would have to be printed to be used, and the server's output ends up
in logs (``docker compose logs``) that the token must stay out of. See
:mod:`cxone_sandbox.settings`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from cxone_sandbox.app import create_app
from cxone_sandbox.declare import add_arguments, markdown_table, values_from_args
from cxone_sandbox.faults import Faults
from cxone_sandbox.replay import Recording, load_recording, replay_connection
from cxone_sandbox.seed import generate_seed, load_seed, sandbox_connection
from cxone_sandbox.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType

    from cxone_sandbox.asgi import Sandbox, SandboxApp
    from cxone_sandbox.tls import TlsFiles


#: The start of the stdout line naming the CA certificate of a sandbox serving HTTPS (``--tls``).
CA_FILE_PREFIX = "CXone sandbox CA certificate: "
# Seconds an idle keep-alive connection stays open (see _serve).
IDLE_CONNECTION_TIMEOUT_S = 60


def build_parser() -> argparse.ArgumentParser:
    """The command line; every fault knob defaults to off."""
    p = argparse.ArgumentParser(
        prog="cxone-sandbox",
        description="A local imitation of NICE CXone's auth and Agent API, for demos and tests.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--seed", metavar="FILE.json", help="seed file (default: the shipped default seed)")
    p.add_argument(
        "--live-sessions", type=int, default=0, metavar="N", help="add N logged-in agents 5001… with sessions"
    )
    p.add_argument(
        "--replay",
        metavar="RECORD.json",
        help="serve the answers cxone-doctor --record wrote, instead of the seed's tenant "
        "(the seed's credentials still log in; see cxone_sandbox.replay)",
    )
    add_arguments(p, Faults)
    add_arguments(p, Settings)
    tls = p.add_argument_group("TLS (see cxone_sandbox.tls)")
    tls.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a certificate and a CA made at start (off: plain HTTP)"
    )
    tls.add_argument(
        "--tls-name",
        metavar="NAME",
        action="append",
        default=[],
        help="a further host name or address for the certificate (repeatable); the bind host, 127.0.0.1 "
        "and localhost are always in it",
    )
    tls.add_argument(
        "--tls-ca-file",
        metavar="PATH",
        help="where to write the CA certificate clients trust (default: a private temporary folder, removed at exit)",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: %(default)s)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (off: it is noise)")
    return p


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The :class:`Faults` the command line asks for (every knob not given at its default).

    :raises ValueError: when a knob is out of range.
    """
    return Faults.from_mapping(values_from_args(Faults, args))


def settings_table() -> str:
    """The docs' table of every sandbox setting (faults, tenant and server settings), generated
    from their declarations; ``tests/sandbox/test_sandbox_settings.py`` checks docs/sandbox.md holds it as is."""
    return markdown_table([Faults, Settings])


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the real address once it accepts connections."""

    def __init__(
        self,
        config: uvicorn.Config,
        url: str,
        sandbox: Sandbox,
        ca_file: str | None = None,
        recording: Recording | None = None,
    ) -> None:
        super().__init__(config)
        self.url = url
        self.sandbox = sandbox
        self.ca_file = ca_file
        self.recording = recording

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if _early_signals:
            self.should_exit = True
        if not self.should_exit:
            # The first line, always: SandboxServer and scripts read the address from it.
            print(f"CXone sandbox listening on {self.url}", flush=True)
            if self.ca_file is not None:
                print(f"{CA_FILE_PREFIX}{self.ca_file}", flush=True)
            line = connection_line(self.sandbox.seed, self.url, ca_file=self.ca_file, recording=self.recording)
            if line:
                print(line, flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn waits for open answers: a client holding a dripping body must not stall the stop.
        self.sandbox.stopping.set()
        await super().shutdown(sockets)


class RedactingFilter(logging.Filter):
    """Replace a secret in every record a handler writes by ``<redacted>``.

    The sandbox never logs the admin token itself, but uvicorn quotes what a client sent: the access
    log (``--access-log``) and ``--log-level trace`` show a request's query string.
    """

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret not in message:
            return True
        if isinstance(record.args, tuple):
            # Argument by argument, so that the record keeps its shape (uvicorn's access formatter
            # unpacks the arguments).
            record.msg, record.args = self._clean(record.msg), tuple(self._clean(a) for a in record.args)
            try:
                if self.secret not in record.getMessage():
                    return True
            except (TypeError, ValueError):
                pass
        record.msg, record.args = message.replace(self.secret, _REDACTED), None
        return True

    def _clean(self, value: Any) -> Any:
        text = str(value)
        return text.replace(self.secret, _REDACTED) if self.secret in text else value


_REDACTED = "<redacted>"


def _redact_logs(secret: str) -> None:
    """Put a :class:`RedactingFilter` on every handler uvicorn's logging configuration installed."""
    redacting = RedactingFilter(secret)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redacting)


def connection_line(
    seed: Mapping[str, Any], url: str, *, ca_file: str | None = None, recording: Recording | None = None
) -> str | None:
    """``AIRFLOW_CONN_CXONE_DEFAULT='{…}'`` for a sandbox at ``url``, quoted for a POSIX shell.

    ``None`` for a seed without an access key (there is nothing to log in with).

    :param ca_file: the CA certificate of a sandbox serving HTTPS: the connection's ``verify_ssl``.
    :param recording: the record a ``--replay`` sandbox serves: its API version, and discovery only
        when it holds a discovery answer.
    """
    extra = None if ca_file is None else {"verify_ssl": ca_file}
    try:
        if recording is not None:
            conn = replay_connection(seed, recording, url, extra=extra)
        else:
            conn = sandbox_connection(seed, url, extra=extra)
    except (ValueError, KeyError, IndexError):
        return None
    return f"AIRFLOW_CONN_CXONE_DEFAULT={shlex.quote(json.dumps(conn))}"


_early_signals: list[int] = []


def _note_signal(signum: int, frame: FrameType | None) -> None:
    """Handler outside uvicorn's run: before it, the signal stops the start; after it, uvicorn
    re-raises the signal that stopped it, which must then not kill the process (exit code 0)."""
    _early_signals.append(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGTERM or SIGINT.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    :return: the exit code, 0 after a graceful stop.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = faults_from_args(args)
        settings = Settings.from_args(args)
        seed = load_seed(args.seed)
        if args.live_sessions:
            seed = generate_seed(args.live_sessions, base=seed)
        recording = load_recording(args.replay) if args.replay else None
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    app = create_app(seed, faults, settings, replay=recording)

    # Bind here rather than in uvicorn, so --port 0 yields a port we can announce.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        parser.error(f"cannot bind {args.host}:{args.port}: {exc}")
    host, port = sock.getsockname()[:2]
    try:
        # The address bound, not the one asked for: "localhost" is loopback, a name may be anything.
        settings.check_binding(args.host, bound=host)
    except ValueError as exc:
        sock.close()
        parser.error(str(exc))
    sock.set_inheritable(True)
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    # The keys live in a private folder removed at exit; the CA certificate (no secret) where asked.
    key_dir = tempfile.mkdtemp(prefix="cxone-sandbox-tls-") if args.tls else None
    try:
        files: TlsFiles | None = None
        if key_dir is not None:
            # Imported here: only --tls needs x509 (the id_token signing needs cryptography anyway).
            from cxone_sandbox.tls import certificate_names, make_certificates

            try:
                files = make_certificates(
                    certificate_names(args.host, args.tls_name), key_dir, args.tls_ca_file or Path(key_dir, "ca.pem")
                )
            except (ValueError, OSError) as exc:
                sock.close()
                parser.error(f"cannot make the TLS certificates: {exc}")
        url = f"{'https' if args.tls else 'http'}://{shown_host}:{port}"
        return _serve(app, sock, args, url, files, recording)
    finally:
        if key_dir is not None:
            shutil.rmtree(key_dir, ignore_errors=True)


def _serve(
    app: SandboxApp,
    sock: socket.socket,
    args: argparse.Namespace,
    url: str,
    tls: TlsFiles | None,
    recording: Recording | None = None,
) -> int:
    """Run uvicorn on the bound socket until SIGTERM or SIGINT; the exit code (0 after a graceful stop)."""
    settings = app.sandbox.settings
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        # Both are optional speed-ups (several times the request rate); fall back quietly.
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        timeout_graceful_shutdown=5,
        # uvicorn closes a connection idle for 5 s; a client that reuses it in that instant loses the
        # request before it is read, so it never reaches the journal and tests counting attempts
        # against the journal see one too few (the 2,000-session soak did, once in three CI runs).
        # Load balancers commonly keep idle connections for 60 s; so does the sandbox.
        timeout_keep_alive=IDLE_CONNECTION_TIMEOUT_S,
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
    )
    if settings.admin_token is not None:
        _redact_logs(settings.admin_token)  # after uvicorn.Config, which installs the handlers
    ca_file = None if tls is None else str(tls.ca_file.resolve())
    server = _Server(config, url, app.sandbox, ca_file, recording)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note_signal)
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
