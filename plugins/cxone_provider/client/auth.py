"""Auth: the token life cycle and the discovery of the API host, for one connection.

Above the transport: it sends the token and discovery requests through it, keeps one token (renewed
before it expires, single-flight) and one API base URL, and remembers a failure of either for the
backoff window so that an outage is not asked again once per session of a sweep.

:class:`AuthRules` decides (which request, what an answer means, whether a token or a failure is still
good) without sending anything; :class:`Auth` is the sync face's, single-flight across threads, and
:class:`~cxone_provider.client.async_api.AsyncAuth` the async face's, single-flight across tasks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.client.core import HttpRequest, basic
from cxone_provider.client.policy import RETRY_POLICY, plural
from cxone_provider.client.settings import check_discovered_endpoint
from cxone_provider.exceptions import CxoneAuthError, CxoneConfigError, CxoneDiscoveryError, describe_status
from cxone_provider.response import ApiResponse

if TYPE_CHECKING:
    from cxone_provider.client.core import TransportBase
    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.client.transport import Transport

TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a credential
DISCOVERY_PATH = "/.well-known/cxone-configuration"
API_PATH_TEMPLATE = "{endpoint}/inContactAPI/services/{version}/"


#: The lifetime assumed when a token answer has no usable ``expires_in``; and the longest one believed.
DEFAULT_TOKEN_LIFETIME_S = 3600.0
MAX_TOKEN_LIFETIME_S = 24 * 3600.0


@dataclass(frozen=True)
class _Token:
    # Never in a repr: a token object printed in a log or a traceback must not carry the bearer token.
    access_token: str = field(repr=False)
    renew_at: float  # time.monotonic()
    claims: Mapping[str, Any]


def jwt_claims(token: object) -> dict[str, Any]:
    """Read a JWT's claims without verifying its signature.

    Unverified is enough here: the id_token comes straight from the auth host over the connection's
    TLS, in the answer that carries the access token itself, and its claims only *describe* that token
    to us — the tenant id (to find the API host) and the key user's agent (``icAgentId``, to tell an
    impersonation refusal from a missing permission). Nothing is granted on their strength; CXone checks
    the access token on every call.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def token_lifetime(expires_in: object) -> float | None:
    """A token answer's ``expires_in`` in seconds (at least 1); ``None`` when it is unusable: not a
    number, not finite (``NaN``, ``1e400``), not positive, or more than a day (``10**12``)."""
    if isinstance(expires_in, bool):
        return None
    try:
        seconds = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds) or not 0.0 < seconds <= MAX_TOKEN_LIFETIME_S:
        return None
    return max(seconds, 1.0)


class AuthRules:
    """One connection's token and API base URL: the state and every decision, no sending.

    :param settings: the connection's settings.
    :param transport: what sends the requests (either face's).
    :param failure_memory_s: how long a failed token request or discovery is answered from memory.
    """

    def __init__(self, settings: CxoneSettings, transport: TransportBase, *, failure_memory_s: float) -> None:
        self.settings = settings
        self.failure_memory_s = failure_memory_s
        self.token_requests = 0
        self._notes = transport
        self._token: _Token | None = None
        self._token_failure: tuple[float, CxoneAuthError] | None = None  # (until, the error)
        self._api_base: str | None = None
        self._discovery_failure: tuple[float, CxoneDiscoveryError] | None = None

    def _valid_token(self) -> _Token | None:
        """The cached token while it is not close to expiry."""
        token = self._token
        return token if token is not None and time.monotonic() < token.renew_at else None

    def _stale(self) -> str | None:
        return self._token.access_token if self._token else None

    def _reusable(self, stale: str | None) -> _Token | None:
        """A token another caller renewed while this one waited (one expiry, one renewal); a renewal
        that just failed is not repeated by every waiting caller but raised again from memory."""
        current = self._token
        if current is not None and current.access_token != stale and time.monotonic() < current.renew_at:
            return current
        if self._token_failure is not None and time.monotonic() < self._token_failure[0]:
            earlier = self._token_failure[1]
            raise CxoneAuthError(str(earlier), status_code=earlier.http_status, error=earlier.error)
        return None

    def _token_request(self) -> HttpRequest:
        settings = self.settings
        return HttpRequest(
            "POST",
            settings.auth_host + TOKEN_PATH,
            (settings.connect_timeout, settings.read_timeout),
            form={"grant_type": "password", "username": settings.access_key_id, "password": settings.access_key_secret},
            authorization=basic(settings.client_id, settings.client_secret),
        )

    def _read_token(self, response: ApiResponse) -> tuple[_Token, list[str]]:
        """The token in a token answer, and the credentials to register with the masker before use.

        :raises CxoneAuthError: no token in the answer (remembered for ``failure_memory_s``).
        """
        # The lifetime counts from the answer, not from after the masker has registered the new
        # secrets: that takes longer the more secrets the process has seen.
        answered_at = time.monotonic()
        settings = self.settings
        body = response.body if isinstance(response.body, Mapping) else {}
        access_token = body.get("access_token")
        if not response.ok or not isinstance(access_token, str) or not access_token:
            detail = response.message or "no access_token in the answer"
            if response.status_code is not None and 300 <= response.status_code < 400:
                detail = f"the access key cannot be used: the auth host {detail} (check the connection's host)"
            failure = CxoneAuthError(
                f"CXone gave no token for access key {settings.access_key_id!r} of connection "
                f"{settings.conn_id!r} ({describe_status(response.status_code)}, {response.error or 'error'}, "
                f"{plural(response.attempts, 'attempt')}): {detail}",
                status_code=response.status_code,
                error=response.error,
                attempts=response.attempts,
            )
            self._token_failure = (time.monotonic() + self.failure_memory_s, failure)
            raise failure
        credentials = [c for c in (access_token, body.get("refresh_token"), body.get("id_token")) if isinstance(c, str)]
        lifetime = token_lifetime(body.get("expires_in", DEFAULT_TOKEN_LIFETIME_S))
        if lifetime is None:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
            self._notes.note_ignored(
                "expires_in", body.get("expires_in"), f"the token is renewed as if it lasted {lifetime:g}s"
            )
        # Renew a little early: 10% of the lifetime, at most a minute, so no request carries a token
        # that expires in flight.
        token = _Token(
            access_token=access_token,
            renew_at=answered_at + lifetime - min(60.0, lifetime * 0.1),
            claims=jwt_claims(body.get("id_token")),
        )
        return token, credentials

    def _remember(self, credentials: list[str]) -> None:
        """Register a new token's credentials with the masker (and for redaction)."""
        for credential in credentials:
            self._notes.secrets.remember(credential)

    def _keep(self, token: _Token) -> _Token:
        self._token = token
        self._token_failure = None
        return token

    def _remembered_discovery_failure(self) -> None:
        if self._discovery_failure is not None and time.monotonic() < self._discovery_failure[0]:
            raise self._discovery_failure[1]

    def _discovery_failed(self, failure: CxoneDiscoveryError) -> None:
        self._discovery_failure = (time.monotonic() + self.failure_memory_s, failure)

    @property
    def tenant_id(self) -> str | None:
        """The tenant: the connection's ``tenant_id``, else the id_token's ``tenantId`` (once a token was
        issued), else ``None``. Never requests a token."""
        claim = str(self._token.claims.get("tenantId") or "").strip() if self._token else ""
        return self.settings.tenant_id or claim or None

    def _tenant_id(self) -> str:
        """The tenant to discover (:attr:`tenant_id`).

        :raises CxoneConfigError: neither the connection nor the id_token names one.
        """
        tenant_id = self.tenant_id
        if not tenant_id:
            raise CxoneConfigError(
                f"connection {self.settings.conn_id!r}: extra 'tenant_id' is empty and the token's id_token "
                "carries no tenantId; set tenant_id or api_base_url"
            )
        return tenant_id

    def _discovery_request(self, tenant_id: str) -> HttpRequest:
        settings = self.settings
        return HttpRequest(
            "GET",
            settings.auth_host + DISCOVERY_PATH,
            (settings.connect_timeout, settings.read_timeout),
            params={"tenantId": tenant_id},
        )

    def _read_discovery(self, response: ApiResponse, tenant_id: str) -> str:
        """The API base a discovery answer names.

        :raises CxoneDiscoveryError: no usable endpoint, or one off CXone (the token would go there).
        """
        settings = self.settings
        endpoint = response.body.get("api_endpoint") if isinstance(response.body, Mapping) else None
        if not response.ok or not isinstance(endpoint, str) or not endpoint:
            raise CxoneDiscoveryError(response, f"API host discovery for tenant {tenant_id!r}")
        problem = check_discovered_endpoint(
            endpoint, auth_host=settings.auth_host, extra_domains=settings.allowed_api_domains
        )
        if problem is not None:
            # The token would go wherever the answer points: refuse before sending anything there.
            refused = ApiResponse(status_code=response.status_code, attempts=response.attempts, message=problem)
            raise CxoneDiscoveryError(refused, f"API host discovery for tenant {tenant_id!r}")
        return API_PATH_TEMPLATE.format(endpoint=endpoint.rstrip("/"), version=settings.api_version)

    @property
    def token_holder_agent_id(self) -> int | None:
        """The agent of the access key's user (the id_token's ``icAgentId``), once a token was issued.

        ``None`` before the first token, or when the id_token carries no usable ``icAgentId``. Never
        requests a token itself.
        """
        token = self._token
        raw = token.claims.get("icAgentId") if token is not None else None
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return raw if raw > 0 else None
        if isinstance(raw, str) and raw.strip().isdigit():
            return int(raw.strip()) or None
        return None


class Auth(AuthRules):
    """The sync face's token and API base URL; safe to share between threads."""

    def __init__(self, settings: CxoneSettings, transport: Transport, *, failure_memory_s: float) -> None:
        super().__init__(settings, transport, failure_memory_s=failure_memory_s)
        self.transport = transport
        self._token_lock = threading.Lock()
        self._discovery_lock = threading.Lock()

    def access_token(self) -> str:
        """A valid access token, requesting a new one when the cached one is close to expiry."""
        token = self._valid_token() or self.renew_token(stale=self._stale())
        return token.access_token

    def renew_token(self, stale: str | None) -> _Token:
        with self._token_lock:
            current = self._reusable(stale)
            if current is not None:
                return current
            self.token_requests += 1
            response = self.transport.send(RETRY_POLICY["token"], self._token_request)
            token, credentials = self._read_token(response)
            self._remember(credentials)
            return self._keep(token)

    @property
    def api_base_url(self) -> str:
        """The Agent API base: the connection's ``api_base_url`` or the one CXone's discovery gives."""
        if self._api_base is None:
            with self._discovery_lock:  # concurrent first calls discover once
                if self._api_base is None:
                    self._remembered_discovery_failure()
                    try:
                        self._api_base = self.settings.api_base_url or self._discover_api_base()
                    except CxoneDiscoveryError as failure:
                        self._discovery_failed(failure)
                        raise
        return self._api_base

    @property
    def known_api_base_url(self) -> str | None:
        """The Agent API base if already known (configured or discovered); never requests anything."""
        return self._api_base or self.settings.api_base_url

    def _discover_api_base(self) -> str:
        if not self.settings.tenant_id:
            self.access_token()
        tenant_id = self._tenant_id()
        response = self.transport.send(RETRY_POLICY["discovery"], lambda: self._discovery_request(tenant_id))
        return self._read_discovery(response, tenant_id)
