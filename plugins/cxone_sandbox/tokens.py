"""The sandbox's token endpoint rules: client authentication, the grants CXone's OIDC document names
(password, refresh_token, token exchange, authorization_code), the RS256-signed id_token and the
access tokens it issued (see :class:`TokenRules`)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cxone_sandbox.params import ApiError
from cxone_sandbox.seed import SANDBOX_DOMAIN
from cxone_sandbox.signing import ID_TOKEN_HEADER, signing_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_sandbox.records import Agent, User

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "GRANT_TYPES",
    "ID_TOKEN_HEADER",
    "REFRESH_TOKEN_PREFIX",
    "SANDBOX_CLUSTER",
    "SANDBOX_TENANT_NAME",
    "AuthError",
    "TokenRules",
]

# Recognisable prefixes let a leak scan find any token the sandbox issued without knowing its value
# (ID_TOKEN_HEADER does the same for id_tokens).
ACCESS_TOKEN_PREFIX = "sbx-at-"  # noqa: S105 - a marker, not a credential
REFRESH_TOKEN_PREFIX = "sbx-rt-"  # noqa: S105
_MAX_REFRESH_TOKENS = 50_000

TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant name
#: The grants the token endpoint serves, as its OIDC document lists them: no ``client_credentials``.
GRANT_TYPES: Final = ("password", "refresh_token", "authorization_code", TOKEN_EXCHANGE)
# RFC 8693's name for the subject token's type, and the short one CXone's published spec writes.
_ACCESS_TOKEN_TYPES: Final = frozenset({"urn:ietf:params:oauth:token-type:access_token", "access_token"})
#: The cluster the sandbox's tenant lives on: ``icClusterId`` in the id_token, ``cluster`` in discovery.
SANDBOX_CLUSTER: Final = "SBX1"
#: The tenant's name: the id_token's ``tenant`` claim.
SANDBOX_TENANT_NAME: Final = "sandbox"
# The namespace of the users' ids (``sub`` is ``user:<uuid>``): the same tenant and agent give the same id.
_USER_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_DNS, SANDBOX_DOMAIN)


class AuthError(ApiError):
    """A token endpoint or discovery failure, answered in Global Auth's published shape,
    ``{"error", "errorDescription"}`` (the Agent API publishes none)."""


@dataclass
class Token:
    """An issued access token; the value itself is the key of :attr:`SandboxState.tokens`."""

    agent_id: int
    access_key_id: str
    expires_at: float  # time.monotonic()
    client_id: str = ""  # the application it was issued to


@dataclass(frozen=True)
class RefreshGrant:
    """What an issued refresh token stands for; kept under the token's SHA-256, never the value."""

    agent_id: int
    access_key_id: str
    client_id: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def user_id(tenant_id: str, agent_id: int) -> str:
    """The user id of an agent's login (``sub`` is ``user:<it>``): a UUID, the same on every run."""
    return str(uuid.uuid5(_USER_ID_NAMESPACE, f"{tenant_id}/{agent_id}"))


def user_name(agent: Agent) -> str:
    """The agent's login name, as ``agents/states`` rows give it (``userName``)."""
    return f"{agent.first_name}.{agent.last_name}@{SANDBOX_DOMAIN}".lower().replace(" ", "")


class TokenRules:
    """``POST /auth/token`` and the bearer check of every API call, as a part of
    :class:`~cxone_sandbox.state.SandboxState` (which holds the attributes below)."""

    tenant_id: str
    business_unit_id: int
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
        :raises AuthError: 401 ``invalid_client``.
        """
        expected = self.applications.get(client_id or "")
        secret_ok = (public and client_secret is None) or secrets.compare_digest(
            (expected or "").encode(), (client_secret or "").encode()
        )
        if client_id is None or expected is None or not secret_ok:
            raise AuthError(
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
        """``POST /auth/token``: the grants of :data:`GRANT_TYPES`.

        - ``password``: an access key (``username``, ``password``); the application must authenticate.
        - ``refresh_token``: good once, it answers a new access token and a new refresh token. NICE's
          published spec sends ``client_id`` without a secret; NICE's SDK sends no client at all (the
          refresh token names its application). A client, when sent, must be the token's.
        - token exchange (``urn:ietf:params:oauth:grant-type:token-exchange``, or ``token-exchange``
          as the published spec writes it): a live access token (``subject_token``, of
          ``subject_token_type`` access_token) for a new set, as NICE's SDK asks when it is handed a token.
        - ``authorization_code``: served, but the sandbox has no login page, so no code is valid.

        :param client_id: the application, from HTTP Basic or the ``client_id`` field.
        :param client_secret: its secret (``None`` when the request carried none).
        :param form: the request's other fields (``username``, ``password``, ``refresh_token``…).
        :raises AuthError: 401 ``invalid_client``, 400 ``unsupported_grant_type``,
            ``invalid_request`` or ``invalid_grant``.
        """
        if not grant_type:
            raise AuthError(400, "invalid_request", "grant_type is required")
        if grant_type == "password":
            client = self.authenticate_client(client_id, client_secret)
            username, password = form.get("username"), form.get("password")
            if not username or not password:
                raise AuthError(400, "invalid_request", "username and password are required")
            user = self.users.get(username)
            if user is None or not secrets.compare_digest(user.access_key_secret.encode(), password.encode()):
                raise AuthError(400, "invalid_grant", "The access key id or secret is invalid")
        elif grant_type == "refresh_token":
            user, client = self._refresh(client_id, client_secret, form)
        elif grant_type in (TOKEN_EXCHANGE, "token-exchange"):
            user, client = self._exchange(client_id, client_secret, form)
        elif grant_type == "authorization_code":
            self.authenticate_client(client_id, client_secret, public=True)
            if not form.get("code"):
                raise AuthError(400, "invalid_request", "code is required")
            raise AuthError(
                400,
                "invalid_grant",
                "The authorization code is invalid: the sandbox has no login page and issues no codes "
                "(use the password grant with an access key)",
            )
        else:
            supported = ", ".join(GRANT_TYPES)
            raise AuthError(
                400,
                "unsupported_grant_type",
                f"The grant type {grant_type!r} is not supported (use one of {supported})",
            )
        agent = self.agents.get(user.agent_id)
        if agent is None or not agent.active:
            raise AuthError(400, "invalid_grant", f"The user (agent {user.agent_id}) is inactive")
        body = self._issue(agent, user, client, lifetime_s, issuer)
        if grant_type in (TOKEN_EXCHANGE, "token-exchange"):
            body["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - RFC 8693
        return body

    def _refresh(self, client_id: str | None, client_secret: str | None, form: Mapping[str, str]) -> tuple[User, str]:
        # The client is checked first, so a wrong secret is invalid_client whatever the token.
        sent_client = (
            None
            if client_id is None and client_secret is None
            else self.authenticate_client(client_id, client_secret, public=True)
        )
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise AuthError(400, "invalid_request", "refresh_token is required")
        grant = self.refresh_grants.get(_digest(refresh_token))
        if grant is None or (sent_client is not None and grant.client_id != sent_client):
            raise AuthError(400, "invalid_grant", "The refresh token is invalid, expired or already used")
        del self.refresh_grants[_digest(refresh_token)]
        return self.users[grant.access_key_id], grant.client_id

    def _exchange(self, client_id: str | None, client_secret: str | None, form: Mapping[str, str]) -> tuple[User, str]:
        sent_client = (
            None
            if client_id is None and client_secret is None
            else self.authenticate_client(client_id, client_secret, public=True)
        )
        subject_token, subject_type = form.get("subject_token"), form.get("subject_token_type")
        if not subject_token:
            raise AuthError(400, "invalid_request", "subject_token is required")
        if subject_type not in _ACCESS_TOKEN_TYPES:
            shown = "missing" if subject_type is None else repr(subject_type)
            raise AuthError(
                400,
                "invalid_request",
                f"subject_token_type must be urn:ietf:params:oauth:token-type:access_token, got {shown}",
            )
        token = self.tokens.get(subject_token)
        if token is None or token.expires_at <= time.monotonic():
            raise AuthError(400, "invalid_grant", "The subject token is invalid or has expired")
        return self.users[token.access_key_id], sent_client or token.client_id

    def _issue(self, agent: Agent, user: User, client_id: str, lifetime_s: int, issuer: str) -> dict[str, Any]:
        if len(self.tokens) > 10_000:
            self._prune_tokens()
        access_token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.tokens[access_token] = Token(
            agent.agent_id, user.access_key_id, time.monotonic() + lifetime_s, client_id=client_id
        )
        refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        if len(self.refresh_grants) >= _MAX_REFRESH_TOKENS:  # the oldest go first (dicts keep order)
            del self.refresh_grants[next(iter(self.refresh_grants))]
        self.refresh_grants[_digest(refresh_token)] = RefreshGrant(agent.agent_id, user.access_key_id, client_id)
        self.tokens_issued += 1
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime_s,
            "refresh_token": refresh_token,
            "id_token": signing_key().sign(self.id_token_claims(agent, client_id, lifetime_s, issuer)),
        }

    def id_token_claims(self, agent: Agent, client_id: str, lifetime_s: int, issuer: str) -> dict[str, Any]:
        """The claims of an id_token for ``agent``: the standard ones and those NICE's SDK reads.

        Ids of the ACD are strings (NICE's SDK compares ``icAgentId`` with an agent id's
        ``toString()``), the business unit a number, as in CXone's tokens.
        """
        iat = int(time.time())
        return {
            "iss": issuer,
            "sub": f"user:{user_id(self.tenant_id, agent.agent_id)}",
            "aud": client_id,
            "iat": iat,
            "exp": iat + lifetime_s,
            "tenantId": self.tenant_id,
            "tenant": SANDBOX_TENANT_NAME,
            "name": user_name(agent),
            "given_name": agent.first_name,
            "family_name": agent.last_name,
            "icAgentId": str(agent.agent_id),
            "icBUId": self.business_unit_id,
            "icClusterId": SANDBOX_CLUSTER,
            "teamId": str(agent.team_id),
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
