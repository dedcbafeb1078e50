"""The sandbox's token endpoint rules: client authentication, the password and refresh grants, and
the access tokens it issued (see :class:`TokenRules`)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxone_provider.sandbox.params import ApiError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_provider.sandbox.records import Agent, User

# Recognisable prefixes let a leak scan find any token the sandbox issued without knowing its value.
# Recognisable prefixes let a leak scan find any token the sandbox issued without knowing its value.
ACCESS_TOKEN_PREFIX = "sbx-at-"  # noqa: S105 - a marker, not a credential
REFRESH_TOKEN_PREFIX = "sbx-rt-"  # noqa: S105
#: the first segment of every id_token the sandbox issues (its JWT header), for the same purpose
ID_TOKEN_HEADER = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # noqa: S105 - {"alg":"none","typ":"JWT"}
_MAX_REFRESH_TOKENS = 50_000


@dataclass
class Token:
    """An issued access token; the value itself is the key of :attr:`SandboxState.tokens`."""

    agent_id: int
    access_key_id: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class RefreshGrant:
    """What an issued refresh token stands for; kept under the token's SHA-256, never the value."""

    agent_id: int
    access_key_id: str
    client_id: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _jwt_part(claims: Mapping[str, Any]) -> str:
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenRules:
    """``POST /auth/token`` and the bearer check of every API call, as a part of
    :class:`~cxone_provider.sandbox.state.SandboxState` (which holds the attributes below)."""

    tenant_id: str
    applications: dict[str, str]
    users: dict[str, User]
    agents: dict[int, Agent]
    tokens: dict[str, Token]
    refresh_grants: dict[str, RefreshGrant]
    tokens_issued: int

    def authenticate_client(self, client_id: str | None, client_secret: str | None, *, public: bool = False) -> str:
        """Check the application's credentials; return its client id.

        :param public: accept a ``client_id`` without a secret (the published refresh request carries
            ``client_id`` only); a secret, when sent, must still match.
        :raises ApiError: 401 ``invalid_client``.
        """
        expected = self.applications.get(client_id or "")
        secret_ok = (public and client_secret is None) or secrets.compare_digest(
            (expected or "").encode(), (client_secret or "").encode()
        )
        if client_id is None or expected is None or not secret_ok:
            raise ApiError(
                401,
                "invalid_client",
                "Client authentication failed",
                {"WWW-Authenticate": 'Basic realm="cxone"'},
            )
        return client_id

    def issue_token(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        grant_type: str | None,
        form: Mapping[str, str],
        lifetime_s: int,
        issuer: str,
    ) -> dict[str, Any]:
        """``POST /auth/token``: the ``password`` grant (an access key) and the ``refresh_token`` grant.

        A refresh token is good once: using it answers a new access token and a new refresh token.

        :param client_id: the application, from HTTP Basic or the ``client_id`` field.
        :param client_secret: its secret (``None`` when the request carried none).
        :param form: the request's other fields (``username``, ``password``, ``refresh_token``…).
        :raises ApiError: 401 ``invalid_client``, 400 ``unsupported_grant_type``,
            ``invalid_request`` or ``invalid_grant``.
        """
        client = self.authenticate_client(client_id, client_secret, public=grant_type == "refresh_token")
        if grant_type == "password":
            username, password = form.get("username"), form.get("password")
            if not username or not password:
                raise ApiError(400, "invalid_request", "username and password are required")
            user = self.users.get(username)
            if user is None or not secrets.compare_digest(user.access_key_secret.encode(), password.encode()):
                raise ApiError(400, "invalid_grant", "The access key id or secret is invalid")
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise ApiError(400, "invalid_request", "refresh_token is required")
            grant = self.refresh_grants.get(_digest(refresh_token))
            if grant is None or grant.client_id != client:
                raise ApiError(400, "invalid_grant", "The refresh token is invalid, expired or already used")
            del self.refresh_grants[_digest(refresh_token)]
            user = self.users[grant.access_key_id]
        else:
            raise ApiError(400, "unsupported_grant_type", f"The grant type {grant_type!r} is not supported")
        agent = self.agents.get(user.agent_id)
        if agent is None or not agent.active:
            raise ApiError(400, "invalid_grant", f"The user (agent {user.agent_id}) is inactive")
        return self._issue(agent, user, client, lifetime_s, issuer)

    def _issue(self, agent: Agent, user: User, client_id: str, lifetime_s: int, issuer: str) -> dict[str, Any]:
        if len(self.tokens) > 10_000:
            self._prune_tokens()
        access_token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.tokens[access_token] = Token(agent.agent_id, user.access_key_id, time.monotonic() + lifetime_s)
        refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        if len(self.refresh_grants) >= _MAX_REFRESH_TOKENS:  # the oldest go first (dicts keep order)
            del self.refresh_grants[next(iter(self.refresh_grants))]
        self.refresh_grants[_digest(refresh_token)] = RefreshGrant(agent.agent_id, user.access_key_id, client_id)
        self.tokens_issued += 1
        iat = int(time.time())
        claims = {
            "tenantId": self.tenant_id,
            "sub": f"user:{agent.agent_id}",
            "iss": issuer,
            "iat": iat,
            "exp": iat + lifetime_s,
        }
        # Unsigned (alg none): clients read the claims, nobody should trust them.
        id_token = ".".join([ID_TOKEN_HEADER, _jwt_part(claims), ""])
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime_s,
            "refresh_token": refresh_token,
            "id_token": id_token,
        }

    def check_token(self, authorization: str | None) -> Token:
        """Resolve an ``Authorization: Bearer`` header to its live token.

        :raises ApiError: 401 ``invalid_token`` when missing, unknown or expired.
        """
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= time.monotonic():
            raise ApiError(
                401,
                "invalid_token",
                "The access token is invalid or has expired",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return token

    def _prune_tokens(self) -> None:
        now = time.monotonic()
        self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now}
