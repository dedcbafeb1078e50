"""``cxone-sandbox`` (or ``python -m cxone_provider.sandbox.cli``): run the CXone sandbox server.

There is deliberately no ``sandbox/__main__.py``: Airflow's plugin loader imports every ``.py`` file of
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
:mod:`cxone_provider.sandbox.settings`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shlex
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

import uvicorn

from cxone_provider.sandbox.app import Sandbox, create_app
from cxone_provider.sandbox.faults import JOIN_MODES, Faults
from cxone_provider.sandbox.settings import Settings, add_arguments
from cxone_provider.sandbox.state import generate_seed, load_seed, sandbox_connection

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType


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
    f = p.add_argument_group("faults (all off by default)")
    f.add_argument("--latency-ms", metavar="MS", type=float, default=0.0, help="added to every auth/API request")
    f.add_argument(
        "--slow-rate",
        metavar="RATE",
        type=float,
        default=0.0,
        help="fraction of requests slowed by --slow-ms",
    )
    f.add_argument("--slow-ms", metavar="MS", type=float, default=200.0, help="extra delay of a slow request")
    f.add_argument(
        "--rate-429",
        dest="rate_429_retry_after",
        metavar="RATE",
        type=float,
        default=0.0,
        help="fraction of 429 with Retry-After",
    )
    f.add_argument("--retry-after-s", metavar="S", type=int, default=1, help="the Retry-After value")
    f.add_argument(
        "--rate-429-no-retry-after",
        metavar="RATE",
        type=float,
        default=0.0,
        help="fraction of 429 without it",
    )
    f.add_argument("--rate-503", metavar="RATE", type=float, default=0.0, help="fraction of 503")
    f.add_argument("--rate-drop", metavar="RATE", type=float, default=0.0, help="fraction of dropped connections")
    f.add_argument(
        "--rate-html", metavar="RATE", type=float, default=0.0, help="fraction of 502 text/html (a proxy's page)"
    )
    f.add_argument("--rate-non-json", metavar="RATE", type=float, default=0.0, help="fraction of 200 text/plain 'OK'")
    f.add_argument(
        "--rate-truncated-json", metavar="RATE", type=float, default=0.0, help="fraction of JSON cut mid-object"
    )
    f.add_argument("--rate-no-session-id", metavar="RATE", type=float, default=0.0, help="fraction answered '{}'")
    f.add_argument(
        "--rate-huge-body", metavar="RATE", type=float, default=0.0, help="fraction of --huge-body-bytes bodies"
    )
    f.add_argument(
        "--huge-body-bytes", metavar="N", type=int, default=5_000_000, help="size of a huge body (default: %(default)s)"
    )
    f.add_argument("--rate-401", metavar="RATE", type=float, default=0.0, help="fraction answered 401 (revoked token)")
    f.add_argument(
        "--rate-slow-drip",
        metavar="RATE",
        type=float,
        default=0.0,
        help="fraction whose body trickles one byte per --drip-interval-s",
    )
    f.add_argument(
        "--drip-interval-s", metavar="S", type=float, default=1.0, help="seconds between dripped bytes (default: 1)"
    )
    f.add_argument("--token-lifetime-s", metavar="S", type=int, default=3600, help="expires_in of issued tokens")
    f.add_argument(
        "--random-seed", metavar="N", type=int, default=None, help="seed the fault dice for reproducible runs"
    )
    f.add_argument("--apply-to-auth", action="store_true", help="let random faults hit /auth/token too")
    f.add_argument(
        "--path-filter",
        metavar="TEXT",
        default=None,
        help="random faults hit only paths containing TEXT (e.g. agent-sessions/join); latency hits all",
    )
    t = p.add_argument_group("tenant settings")
    t.add_argument(
        "--join-mode",
        choices=JOIN_MODES,
        default="session",
        help="session: the join joins the sessionId asked for; spec: as NICE publishes it, the join "
        "ignores sessionId and attaches asAgentId to its own live session (default: %(default)s)",
    )
    t.add_argument(
        "--no-states-session-id",
        dest="states_session_id",
        action="store_false",
        help="agents/states rows without the sandbox's sessionId extension (the published schema)",
    )
    add_arguments(p)
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: %(default)s)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (off: it is noise)")
    return p


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The :class:`Faults` the command line asks for.

    :raises ValueError: when a knob is out of range.
    """
    knobs: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "slow_rate": args.slow_rate,
        "slow_ms": args.slow_ms,
        "rate_429_retry_after": args.rate_429_retry_after,
        "retry_after_s": args.retry_after_s,
        "rate_429_no_retry_after": args.rate_429_no_retry_after,
        "rate_503": args.rate_503,
        "rate_drop": args.rate_drop,
        "rate_html": args.rate_html,
        "rate_non_json": args.rate_non_json,
        "rate_truncated_json": args.rate_truncated_json,
        "rate_no_session_id": args.rate_no_session_id,
        "rate_huge_body": args.rate_huge_body,
        "huge_body_bytes": args.huge_body_bytes,
        "rate_slow_drip": args.rate_slow_drip,
        "rate_401": args.rate_401,
        "drip_interval_s": args.drip_interval_s,
        "token_lifetime_s": args.token_lifetime_s,
        "random_seed": args.random_seed,
        "apply_to_auth": args.apply_to_auth,
        "path_filter": args.path_filter,
        "join_mode": args.join_mode,
        "states_session_id": args.states_session_id,
    }
    return Faults.from_mapping(knobs)


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the real address once it accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str, sandbox: Sandbox) -> None:
        super().__init__(config)
        self.url = url
        self.sandbox = sandbox

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if _early_signals:
            self.should_exit = True
        if not self.should_exit:
            # The first line, always: SandboxServer and scripts read the address from it.
            print(f"CXone sandbox listening on {self.url}", flush=True)
            line = connection_line(self.sandbox.seed, self.url)
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


def connection_line(seed: Mapping[str, Any], url: str) -> str | None:
    """``AIRFLOW_CONN_CXONE_DEFAULT='{…}'`` for a sandbox at ``url``, quoted for a POSIX shell.

    ``None`` for a seed without an access key (there is nothing to log in with).
    """
    try:
        conn = sandbox_connection(seed, url)
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
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    app = create_app(seed, faults, settings)

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

    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        # Both are optional speed-ups (several times the request rate); fall back quietly.
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        timeout_graceful_shutdown=5,
    )
    if settings.admin_token is not None:
        _redact_logs(settings.admin_token)  # after uvicorn.Config, which installs the handlers
    server = _Server(config, f"http://{shown_host}:{port}", app.sandbox)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note_signal)
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
