"""Server settings of the CXone sandbox: how much it reads and keeps, and who may administer it.

Unlike the fault knobs (:mod:`cxone_provider.sandbox.faults`), these are fixed when the server
starts: no admin route changes them. Each is declared once, as a field of :class:`Settings`; the
command line (:func:`add_arguments`, :meth:`Settings.from_args`) and
:class:`cxone_provider.testing.SandboxServer` (:meth:`Settings.to_args`, :meth:`Settings.to_env`)
are built from that declaration.

``max_body_bytes`` (``--max-body-bytes``, default 1 MiB)
    The largest request body the sandbox reads, on every route (admin routes included). A longer
    body is refused with ``413`` and CXone's error shape, ``RequestEntityTooLarge``, after reading at
    most this many bytes: at once when ``Content-Length`` announces more, as soon as the count
    passes the limit when the body is chunked. A real token request or join is a few hundred bytes.
``journal_size`` (``--journal-size``, default 10,000)
    The journal keeps the most recent this many requests (a ring; ``0`` keeps none). ``seq`` keeps
    counting, and ``GET /_sandbox/journal`` says in its ``X-Sandbox-Journal-Dropped`` header how many
    entries fell out since the journal was last cleared. An entry holds at most
    :data:`JOURNAL_ENTRY_BYTES` of JSON, so the journal never holds more than about
    ``journal_size`` x 4 KiB.
``admin_token`` (``CXONE_SANDBOX_ADMIN_TOKEN``, or ``--admin-token``)
    When set, every ``/_sandbox/…`` route but the API docs needs ``Authorization: Bearer <token>``.
    Required when the sandbox binds beyond loopback: ``cxone-sandbox`` refuses to start otherwise.
    Without one, the admin routes answer loopback connections only (which matters only to an app
    from :func:`~cxone_provider.sandbox.app.create_app` served some other way). Prefer the
    environment variable: a command line is visible to every local user (``ps``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

#: The environment variable the admin token is read from (the flag ``--admin-token`` wins over it).
ADMIN_TOKEN_ENV: Final = "CXONE_SANDBOX_ADMIN_TOKEN"  # noqa: S105 - a variable's name, not a credential
ADMIN_TOKEN_FLAG: Final = "--admin-token"  # noqa: S105 - a flag's name, not a credential
#: The shortest admin token accepted: a guessable token would protect nothing.
MIN_ADMIN_TOKEN_CHARS: Final = 16
#: The headers of ``GET /_sandbox/journal``: entries dropped since the last clear, and the ring's size.
JOURNAL_DROPPED_HEADER: Final = "X-Sandbox-Journal-Dropped"
JOURNAL_SIZE_HEADER: Final = "X-Sandbox-Journal-Size"
#: The most JSON one journal entry holds: a request whose path, query, body or User-Agent would take
#: more is journaled with those fields withheld (named in the entry's ``withheld`` list).
JOURNAL_ENTRY_BYTES: Final = 4096
_TOKEN_CHARS: Final = frozenset(string.ascii_letters + string.digits + string.punctuation) - {'"', "\\"}
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _declare(default: Any, flag: str, metavar: str, help_text: str, *, env: str | None = None) -> Any:
    """A setting: its default, and how the command line spells it (read by :func:`add_arguments`).

    :param env: the environment variable it is also read from; such a setting is a secret: it is
        left out of ``repr`` and travels to a child process in its environment, never on its command line.
    """
    meta = {"flag": flag, "metavar": metavar, "help": help_text, "env": env}
    return field(default=default, repr=env is None, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """The sandbox's server settings (see the module's documentation).

    :param max_body_bytes: the largest request body read; a longer one is answered ``413``.
    :param journal_size: how many of the most recent requests the journal keeps.
    :param admin_token: the token the ``/_sandbox/…`` routes need, or ``None`` (none needed on loopback).
    """

    max_body_bytes: int = _declare(
        1024 * 1024,
        "--max-body-bytes",
        "N",
        "refuse request bodies longer than N bytes with 413, on every route (default: %(default)s)",
    )
    journal_size: int = _declare(
        10_000,
        "--journal-size",
        "N",
        "keep the N most recent requests in the journal; older ones are dropped and counted (default: %(default)s)",
    )
    admin_token: str | None = _declare(
        None,
        ADMIN_TOKEN_FLAG,
        "TOKEN",
        f"token the /_sandbox/* routes then need (Authorization: Bearer TOKEN); required beyond loopback. "
        f"Prefer the environment variable {ADMIN_TOKEN_ENV}: a command line is visible to other local users",
        env=ADMIN_TOKEN_ENV,
    )

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "journal_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {self.max_body_bytes!r}")
        if self.journal_size < 0:
            raise ValueError(f"journal_size must not be negative, got {self.journal_size!r}")
        if self.admin_token is not None:
            _check_token(self.admin_token)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None) -> Settings:
        """Settings from a mapping, merged over the defaults.

        :raises ValueError: on an unknown name or a value out of range.
        """
        if not values:
            return cls()
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings a command line built by :func:`add_arguments` asks for; a setting with an
        environment variable reads it when the flag is absent (an empty variable counts as unset).

        :raises ValueError: when a value is out of range.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(args, f.name)
            if value is None and f.metadata["env"]:
                value = env.get(f.metadata["env"]) or None
            if value is not None:
                values[f.name] = value
        return cls(**values)

    def to_args(self) -> list[str]:
        """The command-line flags of the settings that differ from the defaults, the admin token aside
        (it travels in the environment, :meth:`to_env`: a command line is visible to every local user)."""
        args: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["env"] or value == f.default:
                continue
            args += [f.metadata["flag"], str(value)]
        return args

    def to_env(self) -> dict[str, str]:
        """The environment variables of the settings that travel that way (the admin token, when set)."""
        env: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["env"] and value is not None:
                env[f.metadata["env"]] = str(value)
        return env

    def check_binding(self, host: str, *, bound: str | None = None) -> None:
        """Refuse to serve beyond loopback without an admin token.

        :param host: the host the server was asked to bind (``--host``).
        :param bound: the address it bound, which decides (``localhost`` binds ``127.0.0.1``; a name
            may resolve to anything); default: ``host``.
        :raises ValueError: naming the environment variable and the flag that set the token.
        """
        if self.admin_token is not None or is_loopback(bound if bound is not None else host):
            return
        shown = host if bound in (None, host) else f"{host} ({bound})"
        raise ValueError(
            f"--host {shown} is beyond loopback, where anyone who can connect could change the sandbox's "
            f"faults, reset it or read its journal: set an admin token in the environment variable "
            f"{ADMIN_TOKEN_ENV} (or with {ADMIN_TOKEN_FLAG}), at least {MIN_ADMIN_TOKEN_CHARS} characters, "
            f"e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def _check_token(token: object) -> None:
    # The messages never quote the token: it may be a real secret with one character wrong.
    if not isinstance(token, str):
        raise ValueError("admin_token must be a string")
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(f"the admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters, it has {len(token)}")
    if not set(token) <= _TOKEN_CHARS:
        raise ValueError('the admin token may hold printable ASCII only, without spaces, " or \\')


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only.

    Any other name counts as beyond loopback: what it resolves to may change.
    """
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for each setting, in a group of its own, defaulting to ``None`` ("not given")."""
    group = parser.add_argument_group("server settings")
    for f in dataclasses.fields(Settings):
        meta = f.metadata
        kind = int if isinstance(f.default, int) else str
        help_text = meta["help"].replace("%(default)s", str(f.default))
        group.add_argument(meta["flag"], dest=f.name, metavar=meta["metavar"], type=kind, default=None, help=help_text)
