"""The ``cxone`` connection as checked settings, and the rules for the URLs a token may go to.

Every field is checked once, when a hook first needs it; a bad one raises :class:`CxoneConfigError`
naming the connection and the field. Names and defaults come from the one declaration of the fields
(:mod:`cxone_provider.client.fields`), which Airflow's connection form is generated from too.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cxone_provider.client.fields import DEFAULT_API_VERSION, DEFAULT_AUTH_HOST, FIELDS
from cxone_provider.domain.condition_rules import ConditionRule, parse_condition_rules
from cxone_provider.exceptions import CxoneConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import Connection

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_AUTH_HOST", "CxoneSettings", "check_discovered_endpoint", "check_url"]

#: NICE's domains; a discovered API endpoint must be https on one of them (or on the connection's
#: ``allowed_api_domains``), because the bearer token goes there.
CXONE_DOMAINS = ("niceincontact.com", "nice-incontact.com", "nicecxone.com", "incontact.com")

_API_VERSION = re.compile(r"^v\d+\.\d+$")


@dataclass(frozen=True)
class CxoneSettings:
    """The connection's fields, checked once."""

    conn_id: str
    auth_host: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    tenant_id: str | None
    api_version: str
    api_base_url: str | None
    connect_timeout: float
    read_timeout: float
    verify_ssl: bool | str  # or the path of a CA bundle
    allowed_api_domains: tuple[str, ...] = ()
    #: the tenant's own readings of error answers (extra ``condition_rules``), tried before the table
    condition_rules: tuple[ConditionRule, ...] = ()
    #: where the rate budget is shared (extra ``rate_budget``): ``process``, ``celery-broker`` or a Redis URL
    rate_budget: str = "process"

    @classmethod
    def from_connection(cls, conn: Connection) -> CxoneSettings:
        extra = conn.extra_dejson
        conn_id = conn.conn_id

        def fail(field_name: str, problem: str) -> CxoneConfigError:
            return CxoneConfigError(f"connection {conn_id!r}: {field_name} {problem}")

        def required(value: object, field_name: str) -> str:
            if value is None or not str(value).strip():
                raise fail(field_name, "is empty; it is required to request a CXone token")
            return str(value).strip()

        def given(name: str) -> Any:
            """The extra ``name`` as set, else its declared default: the form shows the same default."""
            return extra.get(name, FIELDS[name].default)

        def seconds(name: str) -> float:
            raw = given(name)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise fail(f"extra {name!r}", f"must be a number of seconds, got {raw!r}") from None
            if not value > 0:
                raise fail(f"extra {name!r}", f"must be positive, got {raw!r}")
            return value

        auth_host = _auth_host(conn) or DEFAULT_AUTH_HOST
        check_url("host (auth host)", auth_host, fail)
        api_version = str(given("api_version") or DEFAULT_API_VERSION).strip()
        if not _API_VERSION.match(api_version):
            raise fail("extra 'api_version'", f"must look like 'v33.0', got {api_version!r}")
        api_base_url = str(given("api_base_url") or "").strip() or None
        if api_base_url:
            check_url("extra 'api_base_url'", api_base_url, fail)
            api_base_url = api_base_url.rstrip("/") + "/"
        return cls(
            conn_id=conn_id,
            auth_host=auth_host.rstrip("/"),
            access_key_id=required(conn.login, "login (access key id)"),
            access_key_secret=required(conn.password, "password (access key secret)"),
            client_id=required(given("client_id"), "extra 'client_id'"),
            client_secret=required(given("client_secret"), "extra 'client_secret'"),
            tenant_id=str(given("tenant_id") or "").strip() or None,
            api_version=api_version,
            api_base_url=api_base_url,
            connect_timeout=seconds("connect_timeout"),
            read_timeout=seconds("read_timeout"),
            verify_ssl=_verify_setting(given("verify_ssl"), fail),
            allowed_api_domains=_domains(given("allowed_api_domains"), fail),
            condition_rules=_condition_rules(given("condition_rules"), conn_id),
            rate_budget=_rate_budget(given("rate_budget"), fail),
        )


def _rate_budget(value: object, fail: Callable[[str, str], CxoneConfigError]) -> str:
    text = str(value or "process").strip()
    if text in ("process", "celery-broker") or text.startswith(("redis://", "rediss://", "unix://")):
        return text
    shown = text.rsplit("@", 1)[-1]  # a URL's password never reaches the message
    raise fail("extra 'rate_budget'", f"must be process, celery-broker or a redis:// URL, got {shown!r}")


def _condition_rules(raw: object, conn_id: str) -> tuple[ConditionRule, ...]:
    try:
        return parse_condition_rules(raw, "extra 'condition_rules'")
    except ValueError as bad:  # the message names the rule's field and value
        raise CxoneConfigError(f"connection {conn_id!r}: {bad}") from None


def _auth_host(conn: Connection) -> str | None:
    """The connection's host as a URL; a bare host name means https (the form has no scheme field)."""
    host = (conn.host or "").strip()
    if not host:
        return None
    return host if "://" in host else f"https://{host}"


def check_url(field_name: str, url: str, fail: Callable[[str, str], CxoneConfigError]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(field_name, f"must be an http(s) URL, got {url!r}")
    # Tokens and secrets travel in these requests: clear text only where nobody else can listen.
    # There is deliberately no switch to allow more (the docker/ sandbox is reached over loopback too).
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise fail(
            field_name,
            f"uses plain http:// to {parts.hostname!r}; only loopback hosts (the sandbox) may use "
            "http, a CXone tenant needs https://",
        )


def check_discovered_endpoint(endpoint: str, *, auth_host: str, extra_domains: Sequence[str] = ()) -> str | None:
    """Why a discovered ``api_endpoint`` must not get the token, or ``None`` when it may.

    A discovery answer decides where the bearer token goes, so it must name CXone: ``https`` on one of
    :data:`CXONE_DOMAINS` (or the connection's ``allowed_api_domains``). The one exception is the
    sandbox: when the connection's own auth host is loopback, the answer may name that same address.
    """
    parts = urlsplit(endpoint)
    auth = urlsplit(auth_host)
    hostname = (parts.hostname or "").lower().rstrip(".")
    if auth.hostname and is_loopback(auth.hostname) and (parts.scheme, parts.netloc) == (auth.scheme, auth.netloc):
        return None
    domains = (*CXONE_DOMAINS, *extra_domains)
    on_cxone = any(hostname == d or hostname.endswith("." + d) for d in domains)
    if parts.scheme == "https" and on_cxone and not parts.username and not parts.password:
        return None
    return (
        f"discovered api_endpoint {endpoint[:120]!r} is not a CXone API endpoint (https on "
        f"{', '.join(domains)}; extend with the extra 'allowed_api_domains'): no token is sent there"
    )


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _verify_setting(value: object, fail: Callable[[str, str], CxoneConfigError]) -> bool | str:
    """``verify_ssl``: true, false, or the path of a CA bundle (a corporate CA, say)."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        if not os.path.isfile(value):
            raise fail("extra 'verify_ssl'", f"names a CA bundle that is not a file: {value!r}")
        return value
    return _as_bool(value, fail, "verify_ssl")


def _domains(value: object, fail: Callable[[str, str], CxoneConfigError]) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(d, str) and d.strip() for d in items):
        raise fail("extra 'allowed_api_domains'", f"must be a list of domain names, got {value!r}")
    return tuple(d.strip().lower().lstrip(".") for d in items)


def _as_bool(value: object, fail: Callable[[str, str], CxoneConfigError], name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise fail(f"extra {name!r}", f"must be true or false, got {value!r}")
