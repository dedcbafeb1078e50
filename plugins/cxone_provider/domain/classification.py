"""Which condition an API answer means: the one place that decides it.

:func:`decide`, :func:`classify_join` and :func:`probe_verdict` implement the table of
``docs/conditions.md``: the HTTP status, CXone's ``icStatusDescription`` header or published error
body, the call made and what the operator knows (:class:`JoinFacts`, with a tenant's own
``condition_rules``), and the session the join's answer names. :func:`join_outcome` turns one join's
answer (or the error the hook raised) into its :class:`~cxone_provider.domain.outcomes.JoinOutcome`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneDiscoveryError, describe_status

if TYPE_CHECKING:
    from cxone_provider.domain.condition_rules import ConditionRule
    from cxone_provider.response import ApiResponse

__all__ = [
    "ROUTE_NOT_FOUND",
    "JoinFacts",
    "classify_join",
    "classify_response",
    "decide",
    "is_route_not_found",
    "join_outcome",
    "named_condition",
    "needs_probe",
    "probe_verdict",
    "same_for_every_session",
]

#: The message of a 404 that is not CXone's answer: the route itself does not exist.
ROUTE_NOT_FOUND = "API route not found: check api_base_url / api_version"

# CXone's published error wordings (the icStatusDescription header, or the errorDescription shape),
# compared without case, spaces or punctuation, and the statuses each may come with. Studio's own
# names are among them: CXone writes "InvalidAgentSession" and "InvalidAgentId" itself.
_PUBLISHED_WORDINGS: dict[str, tuple[JoinCondition, frozenset[int]]] = {
    "invalidagentsession": (JoinCondition.INVALID_AGENT_SESSION, frozenset({400, 404, 409})),
    "invalidagentsessionid": (
        JoinCondition.INVALID_AGENT_SESSION,
        frozenset({400, 404, 409}),
    ),  # "Invalid agent session Id."
    "invalidstate": (JoinCondition.INVALID_AGENT_SESSION, frozenset({409})),  # "Invalid State"
    "invalidagentid": (JoinCondition.INVALID_AGENT_ID, frozenset({400, 404})),  # "InvalidAgentId", "Invalid Agent Id"
    "impersonatenotenabled": (JoinCondition.IMPERSONATE_NOT_ENABLED, frozenset({403})),
    "invalidsecurityuser": (JoinCondition.INVALID_SECURITY_USER, frozenset({401, 403})),
}
# A body `error` that is exactly a Studio name is read from any JSON shape (this project's sandbox
# wrote them before NICE's header was known); only where its status fits.
_STUDIO_NAME_STATUSES: dict[JoinCondition, frozenset[int]] = {
    _PUBLISHED_WORDINGS[name][0]: _PUBLISHED_WORDINGS[name][1]
    for name in ("invalidagentsession", "invalidagentid", "impersonatenotenabled", "invalidsecurityuser")
}


@dataclass(frozen=True)
class JoinFacts:
    """What the operator knows beside the answer: the agent it acted as, the access key user's own
    agent (the id_token's ``icAgentId``; ``None`` when unknown) and the tenant's rules."""

    as_agent_id: int | None = None
    token_holder_agent_id: int | None = None
    rules: tuple[ConditionRule, ...] = ()


def _wording_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _published_texts(body: object, description: str) -> list[str]:
    """CXone's error texts that NICE publishes: the header, and the ``{"error", "errorDescription"}`` shape."""
    texts = [description]
    if isinstance(body, Mapping) and "errorDescription" in body:
        texts += [str(body.get(key) or "") for key in ("error", "errorDescription")]
    return [text for text in texts if text]


def named_condition(status: int, body: object, description: str = "") -> JoinCondition | None:
    """The condition CXone's own error text names for this status, or ``None`` when nothing names one.

    Published wordings decide wherever NICE publishes them (the ``icStatusDescription`` header, the
    ``{"error", "errorDescription"}`` body); from any other JSON shape only an ``error`` that is
    exactly a Studio condition name is read. Free text (a gateway's message, a URL) never decides.
    """
    for text in _published_texts(body, description):
        known = _PUBLISHED_WORDINGS.get(_wording_key(text))
        if known is not None and status in known[1]:
            return known[0]
    raw = body.get("error") if isinstance(body, Mapping) else None
    studio = _known_condition(raw if isinstance(raw, str) else None)
    if studio is not None and status in _STUDIO_NAME_STATUSES.get(studio, frozenset()):
        return studio
    return None


def _rule_texts(body: object, text: str, description: str) -> list[str]:
    texts = [description, text]
    if isinstance(body, Mapping):
        texts += [str(body[key]) for key in ("error", "errorDescription", "error_description") if body.get(key)]
    return texts


def decide(
    status_code: int | None,
    body: object = None,
    text: str = "",
    *,
    description: str = "",
    facts: JoinFacts | None = None,
) -> tuple[JoinCondition, str]:
    """The condition of one answer and a note on how it was decided ('' when the answer says it all).

    In order: no answer or 2xx; the tenant's rules; 401; what CXone's text names; then the call and
    what the operator knows — a 403 acting as another agent than the key user's own is
    ``ImpersonateNotEnabled``, acting as its own ``InvalidSecurityUser``; a 409 to a join found the
    session in no state to join (``InvalidAgentSession``); anything else ``Default``. A 404 naming
    nothing is ``Default`` here: :func:`needs_probe` says when one read-only call can tell more.
    """
    facts = facts or JoinFacts()
    if status_code is None:
        return JoinCondition.DEFAULT, ""
    if 200 <= status_code < 300:
        return JoinCondition.SUCCESS, ""
    texts = _rule_texts(body, text, description)
    for index, rule in enumerate(facts.rules):
        if rule.matches(status_code, texts):
            return rule.condition, f"condition_rules[{index}]"
    if status_code == 401:
        # After the client's one token renewal: the security user could not be authenticated.
        return JoinCondition.INVALID_SECURITY_USER, ""
    named = named_condition(status_code, body, description)
    if named is not None:
        return named, ""
    if status_code == 403:
        holder, acted_as = facts.token_holder_agent_id, facts.as_agent_id
        if holder is not None and acted_as is not None and holder != acted_as:
            return JoinCondition.IMPERSONATE_NOT_ENABLED, (
                f"acting as agent {acted_as}, not the access key user's own agent {holder}, needs impersonation"
            )
        if holder is None:
            return JoinCondition.INVALID_SECURITY_USER, (
                "the id_token names no icAgentId, so a missing impersonation right cannot be told apart"
            )
        return JoinCondition.INVALID_SECURITY_USER, f"agent {holder} acting as itself lacks a permission"
    if status_code == 409:
        return JoinCondition.INVALID_AGENT_SESSION, "HTTP 409: the session is in no state to join"
    return JoinCondition.DEFAULT, ""


def classify_response(
    status_code: int | None,
    body: object = None,
    text: str = "",
    *,
    description: str = "",
    facts: JoinFacts | None = None,
) -> JoinCondition:
    """Map one API answer to its Studio result condition (:func:`decide`, without the note)."""
    return decide(status_code, body, text, description=description, facts=facts)[0]


def needs_probe(status_code: int | None, body: object, description: str = "", facts: JoinFacts | None = None) -> bool:
    """A 404 that names no condition: a wrong route, an unknown agent or an unknown session.

    One read-only call tells them apart (``GET agents/{asAgentId}``, read by :func:`probe_verdict`).
    """
    return status_code == 404 and decide(404, body, "", description=description, facts=facts) == (
        JoinCondition.DEFAULT,
        "",
    )


def is_route_not_found(response: ApiResponse) -> bool:
    """A 404 that is not CXone's: it names no condition and carries a page (CXone's errors have no body)."""
    return (
        response.status_code == 404
        and named_condition(404, response.body, response.status_description) is None
        and (response.body_size > 0 or response.body is not None)
    )


def probe_verdict(
    answer: ApiResponse, probe: ApiResponse | CxoneAuthError | CxoneApiError | None, facts: JoinFacts
) -> tuple[JoinCondition, str, bool]:
    """What ``GET agents/{asAgentId}`` says about an ambiguous 404 to a join: (condition, reason, route
    not found).

    2xx: the route and the agent exist, so the session is the unknown one. 404 from CXone (naming the
    agent, or with no body, as CXone answers): the agent is unknown — unless it is the key user's own,
    which exists. A 404 with a page naming nothing: the route is wrong. Anything else: undecided. No
    probe made: the join's own ``answer`` decides only when it is plainly not CXone's (a page).
    """
    agent = facts.as_agent_id
    if probe is None and is_route_not_found(answer):
        return JoinCondition.DEFAULT, ROUTE_NOT_FOUND, True
    if probe is None or isinstance(probe, CxoneAuthError):
        return JoinCondition.DEFAULT, f"{ROUTE_NOT_FOUND}, or an unknown agent or session: no check was possible", False
    response = probe.response if isinstance(probe, CxoneApiError) else probe
    if response.ok:
        return (
            JoinCondition.INVALID_AGENT_SESSION,
            f"agent {agent} exists (GET agents/{agent} answered), so the session is unknown",
            False,
        )
    if response.status_code == 404:
        if is_route_not_found(response) or agent == facts.token_holder_agent_id:
            return JoinCondition.DEFAULT, ROUTE_NOT_FOUND, True
        return JoinCondition.INVALID_AGENT_ID, f"GET agents/{agent} answered 404: no such agent", False
    shown = describe_status(response.status_code)
    return (
        JoinCondition.DEFAULT,
        f"{ROUTE_NOT_FOUND}, or an unknown agent or session (GET agents/{agent}: {shown})",
        False,
    )


def classify_join(
    requested_session_id: str | None,
    status_code: int | None,
    body: object,
    message: str,
    *,
    description: str = "",
    facts: JoinFacts | None = None,
) -> tuple[JoinCondition, str]:
    """The condition of a join's final answer and the message to report with it.

    On top of :func:`decide`: a 2xx names the SecurityUser's live session. When a session was asked for
    (``requested_session_id``), it is ``Success`` only when it is that one (another id is
    ``InvalidAgentSession`` naming both); with none asked for, any session is ``Success``. A 2xx without
    a sessionId is ``Default`` (a proxy's "OK" or a cut-off body proves nothing).
    """
    condition, note = decide(status_code, body, message, description=description, facts=facts)
    if condition is JoinCondition.SUCCESS:
        joined = body.get("sessionId") if isinstance(body, Mapping) else None
        if joined is None or joined == "":
            return JoinCondition.DEFAULT, f"HTTP {status_code} without a sessionId in the answer: {message or 'empty'}"
        if requested_session_id is not None and str(joined) != requested_session_id:
            return JoinCondition.INVALID_AGENT_SESSION, (
                f"CXone joined session {str(joined)[:80]!r}, not the session asked for "
                f"({requested_session_id!r}): the SecurityUser's live session is another one"
            )
        return condition, "joined"
    message = message or describe_status(status_code)
    return condition, f"{message} ({note})" if note else message


def join_outcome(
    session_id: str | None,
    answer: ApiResponse | CxoneAuthError | CxoneApiError,
    elapsed_s: float = 0.0,
    *,
    facts: JoinFacts | None = None,
    probe: ApiResponse | CxoneAuthError | CxoneApiError | None = None,
) -> JoinOutcome:
    """The outcome of one join (``session_id``: the session expected, ``None`` for the agent's live one),
    from the 2xx answer the hook returned or the error it raised, and the probe made for an ambiguous 404.

    No token or no API host (:class:`CxoneAuthError`, :class:`CxoneDiscoveryError`): the join was not
    sent; CXone refused the access key is ``InvalidSecurityUser``, anything else ``Default``, and every
    other join with the connection meets the same. Otherwise the answer decides (:func:`classify_join`).
    """
    facts = facts or JoinFacts()
    label = session_id or ""
    if isinstance(answer, CxoneAuthError | CxoneDiscoveryError):
        refused = isinstance(answer, CxoneAuthError) and answer.refused
        attempts = answer.attempts if isinstance(answer, CxoneAuthError) else answer.response.attempts
        status = answer.http_status
        # An outage (no answer, 429, 5xx) may be over for the next session; a refusal is not.
        transient = status is None or status == 429 or status >= 500
        return JoinOutcome(
            JoinCondition.INVALID_SECURITY_USER if refused else JoinCondition.DEFAULT,
            label,
            status_code=status,
            message=str(answer),
            attempts=attempts,
            elapsed_s=elapsed_s,
            same_for_every_session=refused or not transient,
        )
    response = answer.response if isinstance(answer, CxoneApiError) else answer
    condition, message = classify_join(
        session_id,
        response.status_code,
        response.body,
        response.message,
        description=response.status_description,
        facts=facts,
    )
    route_not_found = False
    if needs_probe(response.status_code, response.body, response.status_description, facts):
        condition, reason, route_not_found = probe_verdict(response, probe, facts)
        message = f"{reason} ({response.message or 'HTTP 404'})"
    if condition is JoinCondition.SUCCESS and session_id is None and isinstance(response.body, Mapping):
        label = str(response.body["sessionId"])
    if response.retries and condition is JoinCondition.DEFAULT:
        message = f"{message} (retries: {', '.join(response.retries)})"
    return JoinOutcome(
        condition,
        label,
        status_code=response.status_code,
        message=message,
        attempts=response.attempts,
        elapsed_s=elapsed_s,
        same_for_every_session=same_for_every_session(condition, response.status_code, route_not_found=route_not_found),
    )


def same_for_every_session(condition: JoinCondition, status_code: int | None, *, route_not_found: bool = False) -> bool:
    """Whether a join's answer is about the SecurityUser or the URL, not the session it named.

    CXone checks the agent, its impersonation right and its permissions before it looks at the
    session, so these answers repeat for every session joined as the same SecurityUser. A 401 is not
    among them: after the hook's renewal it may still be one revoked token, not a refused user.
    """
    if condition is JoinCondition.DEFAULT:
        return route_not_found
    if condition is JoinCondition.INVALID_SECURITY_USER:
        return status_code == 403
    return condition in (JoinCondition.IMPERSONATE_NOT_ENABLED, JoinCondition.INVALID_AGENT_ID)


def _known_condition(name: str | None) -> JoinCondition | None:
    try:
        return JoinCondition(name) if name else None
    except ValueError:
        return None
