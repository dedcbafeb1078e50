"""The published CXone API contract (design.md section 3) as data, and the check that holds traffic to it.

:func:`contract_violations` lists every journaled request that strays from the published method, path
and parameter names (plus the project's documented decisions), so a test can hold any client's traffic
— the hook's — to the contract. ``conftest.py`` runs it after every test that talks to a sandbox;
``tests/sandbox/test_contract.py`` sends every call the way NICE's published clients do and checks the
checker itself. A support module, not a test module: tests import it, pytest collects nothing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxone_sandbox.routes import KNOWN_API_VERSIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_API = r"/(?i:incontactapi)/services/(?P<version>[^/]+)/"


@dataclass(frozen=True)
class PublishedCall:
    """One call as NICE publishes it (design.md section 3).

    :param name: what the call does.
    :param method: its HTTP method.
    :param path: a regular expression of its path (the whole path must match).
    :param params: the published parameter names, in the query string or the body.
    :param decided: names the project adds, each a documented decision (docs/, design.md).
    :param in_query: whether parameters may travel in the query string (never on the token endpoint:
        a URL ends up in logs).
    """

    name: str
    method: str
    path: str
    params: frozenset[str] = frozenset()
    decided: frozenset[str] = frozenset()
    in_query: bool = True

    def matches(self, method: str, path: str) -> re.Match[str] | None:
        return re.fullmatch(self.path, path) if method == self.method else None


_NAMED_TARGET = frozenset({"targetAgentId"})

#: The contract, call by call; order matters where paths overlap (agents/states before agents/{id}).
PUBLISHED_CALLS: tuple[PublishedCall, ...] = (
    PublishedCall(
        "token",
        "POST",
        r"/auth/token",
        frozenset(
            {"grant_type", "username", "password", "client_id", "client_secret", "refresh_token", "scope"}
            | {"code", "redirect_uri", "code_verifier"}  # authorization_code
            | {"subject_token", "subject_token_type", "audience"}  # token exchange
        ),
        in_query=False,
    ),
    PublishedCall("discovery", "GET", r"/\.well-known/cxone-configuration", frozenset({"tenantId"})),
    PublishedCall("OIDC configuration", "GET", r"/\.well-known/openid-configuration"),
    PublishedCall("JWKS", "GET", r"/auth/jwks"),
    # Not in the OpenAPI specs: NICE's SDK asks it on the ACD's host, the token in the body.
    PublishedCall(
        "whoami", "POST", r"/incontactauthorizationserver/token/whoami", frozenset({"token"}), in_query=False
    ),
    PublishedCall(
        "agent states",
        "GET",
        _API + r"agents/states",
        frozenset({"updatedSince", "reqBUIds", "top", "skip", "fields", "orderBy"}),
    ),
    PublishedCall("agent", "GET", _API + r"agents/[^/]+", frozenset({"fields"})),
    # NICE's Admin API (AdminGeneralService.getApiversion); cxone-doctor reads it.
    PublishedCall("API versions", "GET", _API + r"apiversion", frozenset({"searchUriText", "verb"})),
    # The project's decision: the SessionId travels as sessionId beside asAgentId.
    PublishedCall("join", "POST", _API + r"agent-sessions/join", frozenset({"asAgentId"}), frozenset({"sessionId"})),
    PublishedCall(
        "start",
        "POST",
        _API + r"agent-sessions",
        frozenset({"stationId", "stationPhoneNumber", "inactivityTimeout", "inactivityForceLogout", "asAgentId"}),
    ),
    PublishedCall(
        "end",
        "DELETE",
        _API + r"agent-sessions/[^/]+",
        frozenset({"forceLogoff", "endContacts", "ignorePersonalQueue"}),
    ),
    PublishedCall("monitor", "POST", _API + r"agent-sessions/[^/]+/monitor", frozenset({"targetAgentId"})),
    # The project's decision: the hook names the agent (targetAgentId) only when its caller does.
    PublishedCall("coach", "POST", _API + r"agent-sessions/[^/]+/coach", decided=_NAMED_TARGET),
    PublishedCall("barge", "POST", _API + r"agent-sessions/[^/]+/barge", decided=_NAMED_TARGET),
    PublishedCall("take-over", "POST", _API + r"agent-sessions/[^/]+/take-over", decided=_NAMED_TARGET),
    # The session's life, as NICE's SDK drives it.
    PublishedCall("get next event", "GET", _API + r"agent-sessions/[^/]+/get-next-event", frozenset({"timeout"})),
    PublishedCall("set state", "POST", _API + r"agent-sessions/[^/]+/state", frozenset({"state", "reason"})),
    PublishedCall("agent settings", "GET", _API + r"agents/[^/]+/agent-settings"),
    PublishedCall("agent state directory", "GET", _API + r"cache/agentstate", frozenset({"fields", "updatedSince"})),
    PublishedCall("time zones", "GET", _API + r"timezones"),
)
_ADMIN_PREFIX = "/_sandbox/"


def published_call(method: str, path: str) -> tuple[PublishedCall, re.Match[str]] | None:
    """The published call a request's method and path make, with the path's match; ``None`` if none."""
    for call in PUBLISHED_CALLS:
        match = call.matches(method, path)
        if match:
            return call, match
    return None


def contract_violations(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every journaled request that strays from the published contract, one line each.

    A request strays when its method and path are no published call, its API version is not one the
    sandbox serves, it names a parameter (query string or body) the call does not publish and no
    documented project decision adds, or it puts token-endpoint fields in the query string. The
    sandbox's admin routes (``/_sandbox/…``) are not part of the contract and are skipped.

    :param entries: journal entries (``SandboxServer.journal()`` or ``GET /_sandbox/journal``).
    :return: one message per straying request, naming its ``seq``, method, path and why; empty when all conform.
    """
    violations: list[str] = []
    for entry in entries:
        method, path = str(entry.get("method")), str(entry.get("path"))
        if path.startswith(_ADMIN_PREFIX):
            continue
        where = f"#{entry.get('seq')} {method} {path}"
        found = published_call(method, path)
        if found is None:
            violations.append(f"{where}: not a published call")
            continue
        call, match = found
        version = match.groupdict().get("version")
        if version is not None and version.lower() not in KNOWN_API_VERSIONS:
            violations.append(f"{where}: unknown API version {version!r}")
        in_query = set(entry.get("params") or {})
        in_body = set(entry.get("body_fields") or [])
        if in_query and not call.in_query:
            violations.append(f"{where}: {call.name} parameters in the query string: {', '.join(sorted(in_query))}")
        unknown = (in_query | in_body) - call.params - call.decided
        if unknown:
            violations.append(f"{where}: {call.name} does not publish {', '.join(sorted(unknown))}")
    return violations
