"""Auth: the token life cycle and the discovery of the API host, for one connection.

Above the transport: it sends the token and discovery requests through it, keeps one token (renewed
before it expires, single-flight across threads) and one API base URL, and remembers a failure of
either for the backoff window so that an outage is not asked again once per session of a sweep.
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

from cxone_provider.client.settings import check_discovered_endpoint
from cxone_provider.client.transport import RETRY_POLICY, plural
from cxone_provider.exceptions import CxoneAuthError, CxoneConfigError, CxoneDiscoveryError, describe_status
from cxone_provider.response import ApiResponse

if TYPE_CHECKING:
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


class Auth:
    """One connection's token and API base URL.

    :param settings: the connection's settings.
    :param transport: what sends the requests.
    :param failure_memory_s: how long a failed token request or discovery is answered from memory.
    """

    def __init__(self, settings: CxoneSettings, transport: Transport, *, failure_memory_s: float) -> None:
        self.settings = settings
        self.transport = transport
        self.failure_memory_s = failure_memory_s
        self.token_requests = 0
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._token_failure: tuple[float, CxoneAuthError] | None = None  # (until, the error)
        self._api_base: str | None = None
        self._discovery_lock = threading.Lock()
        self._discovery_failure: tuple[float, CxoneDiscoveryError] | None = None

    def access_token(self) -> str:
        """A valid access token, requesting a new one when the cached one is close to expiry."""
        token = self._token
        if token is None or time.monotonic() >= token.renew_at:
            token = self.renew_token(stale=token.access_token if token else None)
        return token.access_token

    def renew_token(self, stale: str | None) -> _Token:
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
                self._token_failure = (time.monotonic() + self.failure_memory_s, failure)
                raise
            self._token_failure = None
            return self._token

    def _request_token(self) -> _Token:
        settings = self.settings
        self.token_requests += 1
        response = self.transport.send(
            RETRY_POLICY["token"],
            lambda: self.transport.session.post(
                settings.auth_host + TOKEN_PATH,
                data={
                    "grant_type": "password",
                    "username": settings.access_key_id,
                    "password": settings.access_key_secret,
                },
                auth=(settings.client_id, settings.client_secret),
                timeout=self.transport.timeout,
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
            self.transport.secrets.remember(credential if isinstance(credential, str) else None)
        lifetime = token_lifetime(body.get("expires_in", DEFAULT_TOKEN_LIFETIME_S))
        if lifetime is None:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
            self.transport.note_ignored(
                "expires_in", body.get("expires_in"), f"the token is renewed as if it lasted {lifetime:g}s"
            )
        # Renew a little early: 10% of the lifetime, at most a minute, so no request carries a token
        # that expires in flight.
        return _Token(
            access_token=access_token,
            renew_at=answered_at + lifetime - min(60.0, lifetime * 0.1),
            claims=jwt_claims(body.get("id_token")),
        )

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
                    except CxoneDiscoveryError as failure:
                        self._discovery_failure = (time.monotonic() + self.failure_memory_s, failure)
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
        response = self.transport.send(
            RETRY_POLICY["discovery"],
            lambda: self.transport.session.get(
                settings.auth_host + DISCOVERY_PATH,
                params={"tenantId": tenant_id},
                timeout=self.transport.timeout,
                stream=True,
                allow_redirects=False,
            ),
        )
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
