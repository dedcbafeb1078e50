"""CxoneHook: authenticated, retried access to the NICE CXone Agent API.

The API contract lives here and nowhere else: the auth and discovery endpoints, every Agent API path,
the wire parameter that carries Studio's SessionId, the retry policy and the token life cycle.

.. seealso:: ``README.md`` sections "Connection" and "Result conditions".
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import requests
import urllib3.exceptions as urllib3_exceptions
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from cxone_provider.conditions import (
    TOKEN_REFUSED_ERRORS,
    InputRejected,
    JoinCondition,
    JoinOutcome,
    check_agent_id,
    check_session_id,
    classify_join,
    classify_response,
    error_name_and_message,
    same_for_every_session,
    session_label,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_AUTH_HOST = "https://cxone.niceincontact.com"
#: NICE's domains; a discovered API endpoint must be https on one of them (or on the connection's
#: ``allowed_api_domains``), because the bearer token goes there.
CXONE_DOMAINS = ("niceincontact.com", "nice-incontact.com", "nicecxone.com", "incontact.com")
DEFAULT_API_VERSION = "v33.0"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a credential
DISCOVERY_PATH = "/.well-known/cxone-configuration"
API_PATH_TEMPLATE = "{endpoint}/inContactAPI/services/{version}/"

JOIN_PATH = "agent-sessions/join"
# Public specs name only asAgentId; Studio's SessionId input travels as this query parameter.
JOIN_SESSION_PARAM = "sessionId"
SUPERVISE_ACTIONS = ("monitor", "coach", "barge", "take-over")
AGENT_STATES_PATH = "agents/states"
# agents/states pages are followed through _links.next; a loop or a runaway listing stops here.
MAX_STATE_PAGES = 1000


class RetryWhen(Enum):
    """When a call may be sent again after a failed attempt."""

    #: 429, 503, connection errors and timeouts of any kind: the call changes nothing, or changing
    #: it twice is the same as once.
    ANY_FAILURE = "429, 503, connection errors, timeouts"
    #: 429, 503, a refused connection or a connect timeout only: never after a read timeout or a
    #: connection lost mid-answer, when CXone may already have acted.
    NOT_RECEIVED = "429, 503, connection refused, connect timeout"


#: The retry policy of every call, in one place (the README's retry table mirrors it).
RETRY_POLICY: Mapping[str, RetryWhen] = {
    "token": RetryWhen.ANY_FAILURE,  # a second token is harmless
    "discovery": RetryWhen.ANY_FAILURE,
    "get_agent": RetryWhen.ANY_FAILURE,
    "agent_states": RetryWhen.ANY_FAILURE,
    "join": RetryWhen.ANY_FAILURE,  # idempotent by contract: joining the same session again answers the same
    "start_session": RetryWhen.NOT_RECEIVED,  # a second start would end the first session
    "end_session": RetryWhen.NOT_RECEIVED,
    "supervise": RetryWhen.NOT_RECEIVED,  # monitor, coach, barge, take-over
}

RETRYABLE_STATUS = frozenset({429, 503})
# Never wait longer than this on one Retry-After, whatever the server asks: a task must stay bounded.
MAX_RETRY_AFTER_S = 30.0
# Error bodies are for messages; a proxy's multi-megabyte HTML page is not read past this.
MAX_BODY_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 300

_API_VERSION = re.compile(r"^v\d+\.\d+$")


class CxoneConfigError(AirflowException):
    """The ``cxone`` connection is unusable; the message names the connection and the field."""


class CxoneAuthError(AirflowException):
    """CXone gave no token for the connection's access key (refused it, or could not be reached).

    ``error`` is the token endpoint's OAuth ``error`` (``invalid_grant``…), ``attempts`` the requests made.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, error: str | None = None, attempts: int = 0
    ) -> None:
        super().__init__(message)
        self.http_status = status_code
        self.error = error
        self.attempts = attempts

    @property
    def refused(self) -> bool:
        """CXone refused the access key or the application (not an outage)."""
        return self.error in TOKEN_REFUSED_ERRORS or (self.error is None and self.http_status in (401, 403))


class CxoneApiError(AirflowException):
    """A CXone API call answered with an error (after retries and the single token renewal)."""

    def __init__(self, response: ApiResponse, action: str) -> None:
        status = describe_status(response.status_code)
        super().__init__(f"CXone {action} failed ({status}, {response.error or 'error'}): {response.message}")
        self.response = response
        self.http_status = response.status_code
        self.condition = classify_response(response.status_code, response.body, response.message)


def not_sent_outcome(error: CxoneAuthError | CxoneApiError, session_id: str, elapsed_s: float = 0.0) -> JoinOutcome:
    """The outcome of a join that could not be sent because no token or no API host was had.

    CXone refused the access key: ``InvalidSecurityUser``; it could not be reached or the API host
    could not be found: ``Default``. Either way every other join with the connection meets the same.
    """
    if isinstance(error, CxoneAuthError):
        condition = JoinCondition.INVALID_SECURITY_USER if error.refused else JoinCondition.DEFAULT
        attempts = error.attempts
    else:
        condition, attempts = JoinCondition.DEFAULT, error.response.attempts
    return JoinOutcome(
        condition,
        session_id,
        status_code=error.http_status,
        message=str(error),
        attempts=attempts,
        elapsed_s=elapsed_s,
        same_for_every_session=True,
    )


@dataclass
class ApiResponse:
    """One API call's final answer, after retries. ``status_code`` is ``None`` when nothing came back."""

    status_code: int | None
    body: Any = None
    error: str | None = None
    message: str = ""
    attempts: int = 0
    elapsed_s: float = 0.0
    retries: list[str] = field(default_factory=list)
    retry_after_s: float | None = None
    #: why the body could not be read (too large, invalid or too deeply nested JSON); '' when it could
    unreadable: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


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

        def seconds(name: str, default: float) -> float:
            raw = extra.get(name, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise fail(f"extra {name!r}", f"must be a number of seconds, got {raw!r}") from None
            if not value > 0:
                raise fail(f"extra {name!r}", f"must be positive, got {raw!r}")
            return value

        auth_host = _auth_host(conn) or DEFAULT_AUTH_HOST
        _check_url("host (auth host)", auth_host, fail)
        api_version = str(extra.get("api_version") or DEFAULT_API_VERSION).strip()
        if not _API_VERSION.match(api_version):
            raise fail("extra 'api_version'", f"must look like 'v33.0', got {api_version!r}")
        api_base_url = str(extra.get("api_base_url") or "").strip() or None
        if api_base_url:
            _check_url("extra 'api_base_url'", api_base_url, fail)
            api_base_url = api_base_url.rstrip("/") + "/"
        return cls(
            conn_id=conn_id,
            auth_host=auth_host.rstrip("/"),
            access_key_id=required(conn.login, "login (access key id)"),
            access_key_secret=required(conn.password, "password (access key secret)"),
            client_id=required(extra.get("client_id"), "extra 'client_id'"),
            client_secret=required(extra.get("client_secret"), "extra 'client_secret'"),
            tenant_id=str(extra.get("tenant_id") or "").strip() or None,
            api_version=api_version,
            api_base_url=api_base_url,
            connect_timeout=seconds("connect_timeout", 10.0),
            read_timeout=seconds("read_timeout", 30.0),
            verify_ssl=_verify_setting(extra.get("verify_ssl", True), fail),
            allowed_api_domains=_domains(extra.get("allowed_api_domains"), fail),
        )


def _auth_host(conn: Connection) -> str | None:
    host = (conn.host or "").strip()
    if not host:
        return None
    if "://" in host:
        return host
    scheme = (conn.schema or "https").strip() or "https"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


def _check_url(field_name: str, url: str, fail: Callable[[str, str], CxoneConfigError]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(field_name, f"must be an http(s) URL, got {url!r}")
    # Tokens and secrets travel in these requests: clear text only where nobody else can listen.
    # There is deliberately no switch to allow more (the docker/ sandbox is reached over loopback too).
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
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
    if auth.hostname and _is_loopback(auth.hostname) and (parts.scheme, parts.netloc) == (auth.scheme, auth.netloc):
        return None
    domains = (*CXONE_DOMAINS, *extra_domains)
    on_cxone = any(hostname == d or hostname.endswith("." + d) for d in domains)
    if parts.scheme == "https" and on_cxone and not parts.username and not parts.password:
        return None
    return (
        f"discovered api_endpoint {endpoint[:120]!r} is not a CXone API endpoint (https on "
        f"{', '.join(domains)}; extend with the extra 'allowed_api_domains'): no token is sent there"
    )


def _is_loopback(hostname: str) -> bool:
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


@dataclass(frozen=True)
class _Token:
    access_token: str
    expires_at: float  # time.monotonic()
    renew_at: float
    claims: Mapping[str, Any]


def _jwt_claims(token: str | None) -> dict[str, Any]:
    """Read a JWT's claims without verifying it: only the tenant id is taken, to find the API host."""
    if not token or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


class CxoneHook(BaseHook):
    """Talks to NICE CXone's auth service and Agent API for one ``cxone`` connection.

    One instance holds one pooled HTTP session and one token, renewed before it expires and once on a
    401; it is safe to share between threads (the sweep operator does).

    :param cxone_conn_id: the ``cxone`` connection to use.
    :param max_attempts: attempts per call on 429, 503 and connection errors before giving up.
    :param backoff_initial_s: first backoff; it doubles per attempt, with jitter, up to ``backoff_max_s``.
    :param backoff_max_s: longest single backoff (a ``Retry-After`` is honoured up to 30 s).
    :param pool_size: HTTP connections kept open; set it to the concurrency you call the hook with.
    :param retry_listener: called with the reason (``"429"``, ``"503"``, ``"connection"``) before each
        retry; the sweep uses it to shrink its concurrency when CXone throttles.
    :param attempt_gate: a context manager factory entered around every HTTP attempt (not around the
        backoff sleeps between them); the sweep passes its concurrency limiter's slot.
    """

    conn_name_attr = "cxone_conn_id"
    default_conn_name = "cxone_default"
    conn_type = "cxone"
    hook_name = "NICE CXone"

    def __init__(
        self,
        cxone_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 6,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        pool_size: int = 10,
        retry_listener: Callable[[str], None] | None = None,
        attempt_gate: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        super().__init__()
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.cxone_conn_id = cxone_conn_id
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.pool_size = pool_size
        self.retry_listener = retry_listener
        self.attempt_gate = attempt_gate or nullcontext
        self.token_requests = 0
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._token_failure: tuple[float, CxoneAuthError] | None = None  # (until, the error)
        self._api_base: str | None = None
        self._discovery_lock = threading.Lock()
        self._discovery_failure: tuple[float, CxoneApiError] | None = None
        self._secrets: set[str] = set()
        # Capped exponential backoff plus jitter, so that throttled workers do not retry in lockstep.
        self._backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s) + wait_random(
            0, backoff_initial_s
        )

    # --- connection, session, token -------------------------------------------------------------

    @cached_property
    def settings(self) -> CxoneSettings:
        settings = CxoneSettings.from_connection(self.get_connection(self.cxone_conn_id))
        self._remember_secret(settings.access_key_secret)
        self._remember_secret(settings.client_secret)
        return settings

    def get_conn(self) -> requests.Session:
        return self.session

    def close(self) -> None:
        """Close the pooled HTTP connections (the token stays cached until the hook is dropped)."""
        if "session" in self.__dict__:
            self.session.close()

    def __enter__(self) -> CxoneHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @cached_property
    def session(self) -> requests.Session:
        session = _EnvironmentOnceSession()
        # Retries are ours (tenacity, below): urllib3 must not retry behind our back and skew counts.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(self.pool_size, 1), max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.verify = self.settings.verify_ssl
        if self.settings.verify_ssl is False:
            self.log.warning(
                "Connection %r: TLS certificate verification is off; tokens and the access key secret "
                "go to a server whose identity is not checked (give verify_ssl a CA bundle path instead)",
                self.settings.conn_id,
            )
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-cxone"})
        return session

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def _remember_secret(self, value: str | None) -> None:
        """Register a credential with Airflow's log masker and with :meth:`redact`.

        Its URL-encoded forms too: a server that echoes a form body sends the secret back encoded.
        """
        if not value or value in self._secrets:
            return
        from airflow.sdk.log import mask_secret

        for form in dict.fromkeys((value, quote(value, safe=""), quote_plus(value))):
            self._secrets.add(form)
            mask_secret(form)

    def redact(self, text: str) -> str:
        """``text`` with every credential this hook has seen replaced by ``***``."""
        for secret in tuple(self._secrets):  # a snapshot: another thread may add a renewed token
            text = text.replace(secret, "***")
        return text

    def access_token(self) -> str:
        """A valid access token, requesting a new one when the cached one is close to expiry."""
        token = self._token
        if token is None or time.monotonic() >= token.renew_at:
            token = self._renew_token(stale=token.access_token if token else None)
        return token.access_token

    def _renew_token(self, stale: str | None) -> _Token:
        with self._token_lock:
            current = self._token
            # Another thread renewed while we waited: one expiry, one renewal.
            if current is not None and current.access_token != stale and time.monotonic() < current.renew_at:
                return current
            # A renewal that just failed (after its own retries) is not repeated by every waiting
            # thread: during an outage a sweep would otherwise retry the token once per session.
            if self._token_failure is not None and time.monotonic() < self._token_failure[0]:
                earlier = self._token_failure[1]
                raise CxoneAuthError(str(earlier), status_code=earlier.http_status, error=earlier.error)
            try:
                self._token = self._request_token()
            except CxoneAuthError as failure:
                self._token_failure = (time.monotonic() + self.backoff_max_s, failure)
                raise
            self._token_failure = None
            return self._token

    def _request_token(self) -> _Token:
        settings = self.settings
        self.token_requests += 1
        response = self._with_retries(
            RETRY_POLICY["token"],
            lambda: self.session.post(
                settings.auth_host + TOKEN_PATH,
                data={
                    "grant_type": "password",
                    "username": settings.access_key_id,
                    "password": settings.access_key_secret,
                },
                auth=(settings.client_id, settings.client_secret),
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,  # a redirect would re-post the secret to wherever it points
            ),
        )
        # The lifetime counts from the answer, not from after the masker has registered the new
        # secrets below: that takes longer the more secrets the process has seen.
        answered_at = time.monotonic()
        body = response.body if isinstance(response.body, Mapping) else {}
        access_token = body.get("access_token")
        if not response.ok or not isinstance(access_token, str) or not access_token:
            detail = response.message or "no access_token in the answer"
            if response.status_code is not None and 300 <= response.status_code < 400:
                detail = f"the access key cannot be used: the auth host {detail} (check the connection's host)"
            raise CxoneAuthError(
                f"CXone gave no token for access key {settings.access_key_id!r} of connection "
                f"{settings.conn_id!r} ({describe_status(response.status_code)}, {response.error or 'error'}, "
                f"{plural(response.attempts, 'attempt')}): {detail}",
                status_code=response.status_code,
                error=response.error,
                attempts=response.attempts,
            )
        for credential in (access_token, body.get("refresh_token"), body.get("id_token")):
            self._remember_secret(credential if isinstance(credential, str) else None)
        try:
            lifetime = max(float(body.get("expires_in", 3600)), 1.0)
        except (TypeError, ValueError):
            lifetime = 3600.0
        # Renew a little early: 10% of the lifetime, at most a minute, so no request carries a token
        # that expires in flight.
        return _Token(
            access_token=access_token,
            expires_at=answered_at + lifetime,
            renew_at=answered_at + lifetime - min(60.0, lifetime * 0.1),
            claims=_jwt_claims(body.get("id_token")),
        )

    # --- base URL -----------------------------------------------------------------------------------

    @property
    def api_base_url(self) -> str:
        """The Agent API base: the connection's ``api_base_url`` or the one CXone's discovery gives."""
        if self._api_base is None:
            with self._discovery_lock:  # concurrent first calls discover once
                if self._api_base is None:
                    if self._discovery_failure is not None and time.monotonic() < self._discovery_failure[0]:
                        raise self._discovery_failure[1]
                    try:
                        self._api_base = self.settings.api_base_url or self._discover_api_base()
                    except CxoneApiError as failure:
                        self._discovery_failure = (time.monotonic() + self.backoff_max_s, failure)
                        raise
        return self._api_base

    def _discover_api_base(self) -> str:
        settings = self.settings
        tenant_id = settings.tenant_id
        if not tenant_id:
            self.access_token()
            tenant_id = str(self._token.claims.get("tenantId") or "") if self._token else ""
        if not tenant_id:
            raise CxoneConfigError(
                f"connection {settings.conn_id!r}: extra 'tenant_id' is empty and the token's id_token "
                "carries no tenantId; set tenant_id or api_base_url"
            )
        response = self._with_retries(
            RETRY_POLICY["discovery"],
            lambda: self.session.get(
                settings.auth_host + DISCOVERY_PATH,
                params={"tenantId": tenant_id},
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            ),
        )
        endpoint = response.body.get("api_endpoint") if isinstance(response.body, Mapping) else None
        if not response.ok or not isinstance(endpoint, str) or not endpoint:
            raise CxoneApiError(response, f"API host discovery for tenant {tenant_id!r}")

        problem = check_discovered_endpoint(
            endpoint, auth_host=settings.auth_host, extra_domains=settings.allowed_api_domains
        )
        if problem is not None:
            # The token would go wherever the answer points: refuse before sending anything there.
            refused = ApiResponse(status_code=response.status_code, attempts=response.attempts, message=problem)
            raise CxoneApiError(refused, f"API host discovery for tenant {tenant_id!r}")
        return API_PATH_TEMPLATE.format(endpoint=endpoint.rstrip("/"), version=settings.api_version)

    # --- the request pipeline -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry_when: RetryWhen = RetryWhen.ANY_FAILURE,
    ) -> ApiResponse:
        """Call the Agent API at ``path`` (relative to the base), with retries and one 401 renewal.

        Never raises for what CXone answers; transport failures that outlast the retries come back as
        an :class:`ApiResponse` with ``status_code=None``. Configuration and token problems raise.
        ``retry_when`` is the call's entry of :data:`RETRY_POLICY`: a call that changes state is sent
        again only when CXone cannot have acted on it.
        """
        url = path if path.startswith(self.api_base_url) else self.api_base_url + path.lstrip("/")
        started = time.monotonic()
        token_sent = ""

        def send() -> requests.Response:
            nonlocal token_sent
            token_sent = self.access_token()
            return self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {token_sent}"},
                timeout=self.timeout,
                stream=True,
                allow_redirects=False,
            )

        response = self._with_retries(retry_when, send, gated=True)
        if response.status_code == 401:
            # One renewal, one more try: the token may have been revoked or expired early.
            if self.retry_listener is not None:
                self.retry_listener("401")
            self._renew_token(stale=token_sent)
            retried = self._with_retries(retry_when, send, gated=True)
            retried.attempts += response.attempts
            retried.retries = [*response.retries, "401", *retried.retries]
            response = retried
        response.elapsed_s = time.monotonic() - started
        return response

    def _with_retries(
        self, retry_when: RetryWhen, send: Callable[[], requests.Response], *, gated: bool = False
    ) -> ApiResponse:
        attempts = 0
        # Token and discovery calls happen inside an API attempt's slot: gating them too would deadlock.
        gate = self.attempt_gate if gated else nullcontext
        reasons: list[str] = []

        def one_attempt() -> ApiResponse:
            nonlocal attempts
            attempts += 1
            with gate():
                return self._read(send())

        def before_sleep(state: RetryCallState) -> None:
            reason = _retry_reason(state)
            reasons.append(reason)
            self.log.info(
                "CXone call not answered (%s); retry %d of %d in %.2fs",
                reason,
                state.attempt_number,
                self.max_attempts - 1,
                state.upcoming_sleep,
            )
            if self.retry_listener is not None:
                self.retry_listener(reason)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=(
                retry_if_result(lambda r: r.status_code in RETRYABLE_STATUS)
                | retry_if_exception(
                    _transport_failure if retry_when is RetryWhen.ANY_FAILURE else _not_received_by_cxone
                )
            ),
            before_sleep=before_sleep,
            # Out of attempts: hand back the last answer (a 429 or 503) or re-raise the last error.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response: ApiResponse = retrying(one_attempt)
        except (requests.ConnectionError, requests.Timeout) as exc:
            response = ApiResponse(
                status_code=None,
                error=type(exc).__name__,
                message=f"no answer from CXone after {plural(attempts, 'attempt')}: {self._describe(exc)}",
            )
        # Exhausted retries on 429/503 come back as the last answer; say so in the message.
        if response.status_code in RETRYABLE_STATUS and attempts >= self.max_attempts:
            response.message = f"gave up after {attempts} attempts: {response.message}"
        response.attempts = attempts
        response.retries = reasons
        return response

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after_s
            if retry_after is not None:
                # A little jitter on top, so workers throttled together do not come back together.
                return min(retry_after, MAX_RETRY_AFTER_S) + random.uniform(0, self.backoff_initial_s)
        return float(backoff)

    def _read(self, response: requests.Response) -> ApiResponse:
        """Turn a streamed response into an :class:`ApiResponse`, reading a bounded body in bounded time.

        The read timeout of ``requests`` bounds each socket read, so a body that trickles in a byte at
        a time would never time out; here ``read_timeout`` also bounds the whole body, and more than
        ``MAX_BODY_BYTES`` is not read at all.
        """
        if 300 <= response.status_code < 400:
            # Not followed and not read: a redirect's body can be as large or as slow as its sender likes.
            response.close()
            return ApiResponse(
                status_code=response.status_code,
                error=f"HTTP {response.status_code}",
                message=self.redact(_describe_redirect(response))[:MAX_MESSAGE_CHARS],
            )
        deadline = time.monotonic() + self.settings.read_timeout
        raw = b""
        complete = False
        try:
            while len(raw) <= MAX_BODY_BYTES:
                # read1 returns what has arrived (blocking only for the first byte), so the deadline
                # is checked between trickles.
                chunk = response.raw.read1(16 * 1024, decode_content=True)
                if not chunk:
                    complete = True
                    break
                raw += chunk
                if time.monotonic() > deadline:
                    raise requests.ReadTimeout(
                        f"the answer was still arriving after {self.settings.read_timeout:g}s "
                        f"(read_timeout); {len(raw)} bytes read"
                    )
        except urllib3_exceptions.HTTPError as broken:
            # A connection dropped mid-body surfaces from urllib3 directly when reading raw.
            response.close()
            raise requests.ConnectionError(broken) from None
        finally:
            if complete:
                response.raw.release_conn()  # the connection is reusable: back to the pool
            else:
                response.close()
        text = raw[:MAX_BODY_BYTES].decode(response.encoding or "utf-8", errors="replace")
        content_type = response.headers.get("Content-Type", "")
        body: Any = None
        problem = ""
        if not complete:
            problem = f"answer larger than {MAX_BODY_BYTES // 1024} KiB ({content_type or 'no type'}), not read"
        elif text:
            try:
                body = json.loads(text)
            except RecursionError:
                problem = f"invalid JSON ({len(raw)} bytes): nested too deeply"
            except ValueError:
                if "json" in content_type:
                    problem = f"invalid JSON ({len(raw)} bytes): {_one_line(text)[:80]}"
        # The text summary only matters when there is no JSON object to read the error from.
        fallback = "" if isinstance(body, Mapping) else problem or _summarise_text(text, response)
        name, message = error_name_and_message(body, fallback)
        return ApiResponse(
            status_code=response.status_code,
            body=body,
            error=name if not (200 <= response.status_code < 300) else None,
            message=self.redact(message)[:MAX_MESSAGE_CHARS],
            retry_after_s=_retry_after(response.headers.get("Retry-After")),
            unreadable=problem,
        )

    def _describe(self, exc: BaseException) -> str:
        return self.redact(f"{type(exc).__name__}: {exc}")[:MAX_MESSAGE_CHARS]

    def _call(
        self,
        action: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry_when: RetryWhen = RetryWhen.ANY_FAILURE,
    ) -> Any:
        response = self.request(method, path, params=params, retry_when=retry_when)
        if not response.ok or response.unreadable:  # a 2xx whose body cannot be read answers nothing
            raise CxoneApiError(response, action)
        return response.body

    # --- the Agent API ------------------------------------------------------------------------------

    def get_agent(self, agent_id: int) -> dict[str, Any]:
        """``GET agents/{agentId}``: the agent's record (``agentId``, ``isActive``, names, team...)."""
        body = self._call(
            f"get agent {agent_id}", "GET", f"agents/{int(agent_id)}", retry_when=RETRY_POLICY["get_agent"]
        )
        agents = body.get("agents") if isinstance(body, Mapping) else None
        if not agents:
            raise CxoneApiError(ApiResponse(status_code=200, message="answer holds no agent"), f"get agent {agent_id}")
        return dict(agents[0])

    def get_agent_states(self, *, page_size: int = 1000) -> list[dict[str, Any]]:
        """``GET agents/states``: every agent's state row, following the answer's ``_links.next`` pages.

        Rows carry CXone's published fields (``agentId``, ``agentStateName``, ``teamId``…); the sandbox
        adds ``sessionId``, which a tenant's rows may not carry.
        """
        rows: list[dict[str, Any]] = []
        path: str | None = AGENT_STATES_PATH
        params: dict[str, Any] | None = {"top": page_size, "skip": 0}
        seen: set[str] = set()
        for _ in range(MAX_STATE_PAGES):
            if path is None:
                return rows
            body = self._call("list agent states", "GET", path, params, retry_when=RETRY_POLICY["agent_states"])
            if not isinstance(body, Mapping):  # 204 No Content: nobody to list
                return rows
            rows.extend(dict(row) for row in body.get("agentStates") or [])
            path, params = self._next_page(body, seen), None
        raise CxoneApiError(
            ApiResponse(status_code=200, message=f"more than {MAX_STATE_PAGES} pages"), "list agent states"
        )

    def _next_page(self, body: Mapping[str, Any], seen: set[str]) -> str | None:
        """The absolute URL of the next ``agents/states`` page, or ``None`` after the last one.

        The link must stay on the API host: the token goes with it.
        """
        links = body.get("_links")
        link = links.get("next") if isinstance(links, Mapping) else None
        if isinstance(link, Mapping):  # some CXone answers wrap links as {"href": …}
            link = link.get("href")
        if not isinstance(link, str) or not link.strip():
            return None
        url = urljoin(self.api_base_url, link.strip())
        if not url.startswith(self.api_base_url):
            raise CxoneApiError(
                ApiResponse(status_code=200, message=f"next page link leaves the API base: {link[:120]!r}"),
                "list agent states",
            )
        if url in seen:
            return None
        seen.add(url)
        return url

    def start_agent_session(self, *, as_agent_id: int, station_id: str) -> str:
        """``POST agent-sessions``: log ``as_agent_id`` in at ``station_id``; returns the new session id."""
        body = self._call(
            f"start a session for agent {as_agent_id}",
            "POST",
            "agent-sessions",
            {"stationId": station_id, "asAgentId": int(as_agent_id)},
            retry_when=RETRY_POLICY["start_session"],
        )
        return str(body["sessionId"])

    def end_agent_session(self, session_id: str, *, force_logoff: bool = False) -> None:
        """``DELETE agent-sessions/{sessionId}``: end the session."""
        self._call(
            f"end session {session_id!r}",
            "DELETE",
            f"agent-sessions/{quote(session_id, safe='')}",
            {"forceLogoff": str(force_logoff).lower()},
            retry_when=RETRY_POLICY["end_session"],
        )

    def supervise(self, session_id: str, action: str, *, target_agent_id: int | None = None) -> None:
        """``POST agent-sessions/{sessionId}/{action}``: monitor, coach, barge or take over.

        ``session_id`` is the supervisor's own session. ``monitor`` names the agent to monitor
        (``targetAgentId``); the published ``coach``, ``barge`` and ``take-over`` declare no parameter
        and act on the agent being monitored, so ``target_agent_id`` is sent only when given.
        Never repeated once CXone may have acted (see :data:`RETRY_POLICY`).
        """
        if action not in SUPERVISE_ACTIONS:
            raise ValueError(f"action {action!r} is not one of {', '.join(SUPERVISE_ACTIONS)}")
        params = None if target_agent_id is None else {"targetAgentId": int(target_agent_id)}
        whom = f"agent {target_agent_id}" if target_agent_id is not None else "the monitored agent"
        self._call(
            f"{action} {whom} from session {session_id!r}",
            "POST",
            f"agent-sessions/{quote(session_id, safe='')}/{action}",
            params,
            retry_when=RETRY_POLICY["supervise"],
        )

    def monitor(self, session_id: str, *, target_agent_id: int) -> None:
        self.supervise(session_id, "monitor", target_agent_id=target_agent_id)

    def coach(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "coach", target_agent_id=target_agent_id)

    def barge(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "barge", target_agent_id=target_agent_id)

    def take_over(self, session_id: str, *, target_agent_id: int | None = None) -> None:
        self.supervise(session_id, "take-over", target_agent_id=target_agent_id)

    def join_agent_session(self, session_id: object, agent_id: object) -> JoinOutcome:
        """Studio's *Join Agent Session*: join ``session_id`` as ``agent_id``, classified, never raising.

        Inputs that cannot be valid (blank or malformed session id, non-positive agent id) get their
        condition without a request. A token that CXone refuses is ``InvalidSecurityUser``. Only a
        broken connection configuration raises (:class:`CxoneConfigError`).
        """
        started = time.monotonic()
        try:
            checked_session = check_session_id(session_id)
            checked_agent = check_agent_id(agent_id)
        except InputRejected as rejected:
            return JoinOutcome(rejected.condition, session_label(session_id), message=rejected.message)
        try:
            response = self.request(
                "POST",
                JOIN_PATH,
                params={"asAgentId": checked_agent, JOIN_SESSION_PARAM: checked_session},
                retry_when=RETRY_POLICY["join"],
            )
        except (CxoneAuthError, CxoneApiError) as not_sent:
            return not_sent_outcome(not_sent, checked_session, time.monotonic() - started)
        condition, message = classify_join(checked_session, response.status_code, response.body, response.message)
        if response.retries and condition is JoinCondition.DEFAULT:
            message = f"{message} (retries: {', '.join(response.retries)})"
        return JoinOutcome(
            condition,
            checked_session,
            status_code=response.status_code,
            message=message,
            attempts=response.attempts,
            elapsed_s=time.monotonic() - started,
            same_for_every_session=same_for_every_session(condition, response.status_code, response.body),
        )

    # --- the Airflow UI's Test button -------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Request a token, find the API host and list agent states: the three things every task does."""
        try:
            self.access_token()
            base = self.api_base_url
            states = self.get_agent_states()
        except Exception as exc:
            return False, self.redact(str(exc))
        return True, f"Connected to {base}: token issued, {len(states)} agent state(s) visible"


class _EnvironmentOnceSession(requests.Session):
    """A session that follows no redirect and reads proxy and CA-bundle settings once per host.

    ``requests`` scans every environment variable on every request to find proxies; at sweep rates
    that scan costs more CPU than the rest of our request handling, and the environment of a running
    task does not change.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment_settings: dict[tuple[Any, ...], dict[str, Any]] = {}

    def get_redirect_target(self, resp: requests.Response) -> None:
        """No redirect is ever followed, nor its body read.

        ``allow_redirects=False`` alone is not enough: ``requests`` still reads a redirect's whole body
        to prepare the next request, however large or slow it is.
        """
        return None

    def merge_environment_settings(  # type: ignore[override]  # the stub's TypedDict is private
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies:  # per-request proxies are never cached
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        target = urlsplit(url if isinstance(url, str) else (url or b"").decode())
        key = (target.scheme, target.netloc, stream, verify, repr(cert))
        settings = self._environment_settings.get(key)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            self._environment_settings[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _retry_reason(state: RetryCallState) -> str:
    outcome = state.outcome
    if outcome is None:
        return "unknown"
    if outcome.failed:
        return "timeout" if isinstance(outcome.exception(), requests.Timeout) else "connection"
    return str(outcome.result().status_code)


def _describe_redirect(response: requests.Response) -> str:
    location = response.headers.get("Location") or ""
    target = urlsplit(urljoin(response.url or "", location))
    where = target.netloc or "no Location"
    return f"redirected (HTTP {response.status_code}) to {where}; calls to CXone follow no redirect"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summarise_text(text: str, response: requests.Response) -> str:
    """A one-line description of a non-JSON body (an HTML error page from a proxy, say)."""
    stripped = _one_line(text)
    if not stripped:
        return f"HTTP {response.status_code} {response.reason or ''}".strip()
    content_type = response.headers.get("Content-Type", "unknown type")
    if "json" not in content_type and stripped.startswith("<"):
        title = re.search(r"<title>(.*?)</title>", stripped, re.IGNORECASE)
        label = title.group(1).strip() if title else "no title"
        return f"non-JSON answer ({content_type}): {label}"
    return stripped  # cut by the caller, after redaction: a cut could split a secret the redaction would miss


def _transport_failure(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _not_received_by_cxone(exc: BaseException) -> bool:
    """A failure before the request could reach CXone: the connection was refused or never opened.

    ``requests`` reports a refused connection as a ``ConnectionError`` whose reason is urllib3's
    ``NewConnectionError``; a connection lost mid-answer carries another reason and is not retried.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, urllib3_exceptions.NewConnectionError)


def describe_status(status_code: int | None) -> str:
    """``HTTP 404``, or ``no HTTP answer`` when nothing came back."""
    return f"HTTP {status_code}" if status_code is not None else "no HTTP answer"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
