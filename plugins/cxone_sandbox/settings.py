"""Server settings of the CXone sandbox: how much it reads and keeps, and who may administer it.

Unlike the fault knobs (:mod:`cxone_sandbox.faults`), these are fixed when the server
starts: no admin route changes them. Each is declared once, as a field of :class:`Settings`; the
command line, :class:`cxone_provider.testing.SandboxServer` (:meth:`Settings.to_args`,
:meth:`Settings.to_env`) and the docs' table (docs/sandbox.md) are derived from that declaration
(:mod:`cxone_sandbox.declare`).

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
    from :func:`~cxone_sandbox.app.create_app` served some other way). Prefer the
    environment variable: a command line is visible to every local user (``ps``).
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cxone_sandbox.declare import check, from_mapping, setting, to_args, to_env, values_from_args

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


@dataclass(frozen=True)
class Settings:
    """The sandbox's server settings (see the module's documentation).

    Each field is declared once, with its help text and range (see
    :mod:`cxone_sandbox.declare`): the command line, :class:`~cxone_provider.testing.SandboxServer`
    and the docs' table are derived from it.
    """

    max_body_bytes: int = setting(
        1024 * 1024,
        "refuse request bodies longer than N bytes with 413, on every route",
        group="server",
        metavar="N",
        positive=True,
    )
    journal_size: int = setting(
        10_000,
        "keep the N most recent requests in the journal; older ones are dropped and counted",
        group="server",
        metavar="N",
        minimum=0,
    )
    admin_token: str | None = setting(
        None,
        f"token the /_sandbox/* routes then need (Authorization: Bearer TOKEN), at least "
        f"{MIN_ADMIN_TOKEN_CHARS} characters; required beyond loopback. Prefer the environment variable: "
        f"a command line is visible to other local users",
        group="server",
        flag=ADMIN_TOKEN_FLAG,
        metavar="TOKEN",
        env=ADMIN_TOKEN_ENV,
    )

    def __post_init__(self) -> None:
        check(self)
        if self.admin_token is not None:
            _check_token(self.admin_token)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None) -> Settings:
        """Settings from a mapping of values of their types, merged over the defaults.

        :raises ValueError: on an unknown name or a value out of range.
        """
        settings: Settings = from_mapping(cls, values, "sandbox setting", convert=False)
        return settings

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings a command line built by :func:`~cxone_sandbox.declare.add_arguments`
        asks for; the admin token is read from its environment variable when the flag is absent.

        :raises ValueError: when a value is out of range.
        """
        return cls(**values_from_args(cls, args, environ))

    def to_args(self) -> list[str]:
        """The command-line flags of the settings that differ from the defaults, the admin token aside
        (it travels in the environment, :meth:`to_env`: a command line is visible to every local user)."""
        return to_args(self)

    def to_env(self) -> dict[str, str]:
        """The environment variables of the settings that travel that way (the admin token, when set)."""
        return to_env(self)

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
