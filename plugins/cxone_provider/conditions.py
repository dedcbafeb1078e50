"""Studio's result conditions for *Join Agent Session*, and the one place that decides them.

Everything that turns an input or an API answer into a :class:`JoinCondition` lives here:

* :func:`decide`, :func:`classify_join` and :func:`probe_verdict` — the table of ``docs/conditions.md``
  (the HTTP status, CXone's ``icStatusDescription`` header or published error body, the call made and
  what the operator knows, a tenant's own ``condition_rules``, and the session the join's answer names);
* :func:`check_session_id`, :func:`check_agent_id`, :func:`parse_security_user` — the checks made
  before any request, which reject bad input with its documented condition;
* :class:`JoinOutcome` — what a join ended with, as the JSON mapping operators return to XCom.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cxone_provider.client.paths import path_id_problem
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneDiscoveryError, describe_status

if TYPE_CHECKING:
    from cxone_provider.response import ApiResponse

__all__ = [
    "ConditionRule",
    "InputRejected",
    "JoinCondition",
    "JoinFacts",
    "JoinOutcome",
    "SecurityUser",
    "check_agent_id",
    "check_session_id",
    "classify_join",
    "classify_response",
    "decide",
    "join_outcome",
    "parse_condition_rules",
    "parse_security_user",
]

MAX_SESSION_ID_LENGTH = 256
MAX_SECURITY_USER_CHARS = 4096
# Values a Jinja render produces from a missing or null input; never a real CXone session id.
_RENDERED_NOTHING = frozenset({"none", "null", "undefined"})
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


class JoinCondition(StrEnum):
    """The result branches of Studio's *Join Agent Session* action; values are Studio's names."""

    DEFAULT = "Default"
    SUCCESS = "Success"
    INVALID_SECURITY_USER = "InvalidSecurityUser"
    INVALID_AGENT_SESSION = "InvalidAgentSession"
    INVALID_AGENT_ID = "InvalidAgentId"
    IMPERSONATE_NOT_ENABLED = "ImpersonateNotEnabled"

    @classmethod
    def parse(cls, value: object) -> JoinCondition:
        """Return the condition named by ``value`` (a member or its exact Studio name)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value))
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown result condition {value!r}; expected one of: {names}") from None


class InputRejected(ValueError):
    """An input that Studio would route to ``condition`` without calling the API."""

    def __init__(self, condition: JoinCondition, message: str) -> None:
        super().__init__(message)
        self.condition = condition
        self.message = message


# --- what decides a condition: the status, CXone's error text, the call and what the operator knows ---

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
class ConditionRule:
    """A tenant's own reading of an answer: ``status`` (one of ``statuses``) and CXone's error text
    matching ``pattern`` mean ``condition``. Given as ``condition_rules`` (connection extra or operator
    argument) and parsed by :func:`parse_condition_rules`; they are tried before the published table."""

    statuses: frozenset[int]
    pattern: re.Pattern[str] | None
    condition: JoinCondition

    def matches(self, status: int, texts: Sequence[str]) -> bool:
        if status not in self.statuses:
            return False
        return self.pattern is None or any(self.pattern.search(text) for text in texts if text)


@dataclass(frozen=True)
class JoinFacts:
    """What the operator knows beside the answer: the agent it acted as, the access key user's own
    agent (the id_token's ``icAgentId``; ``None`` when unknown) and the tenant's rules."""

    as_agent_id: int | None = None
    token_holder_agent_id: int | None = None
    rules: tuple[ConditionRule, ...] = ()


def parse_condition_rules(value: object, field_name: str = "condition_rules") -> tuple[ConditionRule, ...]:
    """``[{"status": 404, "pattern": "session .* expired", "condition": "InvalidAgentSession"}, …]`` (or its
    JSON) as rules; raise :class:`ValueError` naming the field and the value that is wrong.

    ``status`` is an HTTP error status (400 to 599) or a list of them; ``pattern`` (optional: any text) a
    regular expression searched in CXone's ``icStatusDescription`` header, the body's ``error`` and
    ``errorDescription`` and the answer's message; ``condition`` a Studio condition other than Success.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"{field_name} must be a list of rules (JSON), got {text[:80]!r}") from None
    if not isinstance(value, list | tuple):
        raise ValueError(f"{field_name} must be a list of rules, got {type(value).__name__}: {value!r:.80}")
    rules = []
    for index, raw in enumerate(value):
        where = f"{field_name}[{index}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} must be a mapping with status, pattern and condition, got {raw!r:.80}")
        unknown = sorted(set(raw) - {"status", "pattern", "condition"})
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; expected status, pattern, condition")
        rules.append(
            ConditionRule(
                statuses=_rule_statuses(raw.get("status"), f"{where}.status"),
                pattern=_rule_pattern(raw.get("pattern"), f"{where}.pattern"),
                condition=_rule_condition(raw.get("condition"), f"{where}.condition"),
            )
        )
    return tuple(rules)


def _rule_statuses(raw: object, where: str) -> frozenset[int]:
    values = raw if isinstance(raw, list | tuple) else [raw]
    if not values:
        raise ValueError(f"{where} is an empty list; give an HTTP error status (400-599) or a list of them")
    statuses = set()
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip().isdigit():
            raise ValueError(f"{where} {item!r} is not an HTTP status; give one from 400 to 599")
        status = int(str(item).strip())
        if not 400 <= status <= 599:
            raise ValueError(f"{where} {item!r} is not an HTTP error status (400-599)")
        statuses.add(status)
    return frozenset(statuses)


def _rule_pattern(raw: object, where: str) -> re.Pattern[str] | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"{where} must be a regular expression string, got {raw!r:.80}")
    try:
        return re.compile(raw)
    except re.error as bad:
        raise ValueError(f"{where} {raw!r} is not a valid regular expression: {bad}") from None


def _rule_condition(raw: object, where: str) -> JoinCondition:
    try:
        condition = JoinCondition.parse(raw)
    except ValueError as bad:
        raise ValueError(f"{where}: {bad}") from None
    if condition is JoinCondition.SUCCESS:
        raise ValueError(f"{where} 'Success' cannot be given to an error answer; only a 2xx join is Success")
    return condition


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


# --- checks made before any request -----------------------------------------------------------------


def check_session_id(value: object) -> str:
    """Return the session id to send, or raise :class:`InputRejected` (``InvalidAgentSession``)."""
    if isinstance(value, bool) or value is None:
        raise _bad_session(value, "is missing")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise _bad_session(value, f"must be a string, not {type(value).__name__}")
    session_id = value.strip()
    if not session_id:
        raise _bad_session(value, "is empty")
    if session_id.lower() in _RENDERED_NOTHING:
        raise _bad_session(value, "rendered to nothing (check the template or the upstream task)")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise _bad_session(session_id[:40] + "…", f"is {len(session_id)} characters long (max {MAX_SESSION_ID_LENGTH})")
    if _WHITESPACE_OR_CONTROL.search(session_id):
        raise _bad_session(value, "contains whitespace or control characters")
    # The id may later go into a path (end a session, supervise from it): one that would change the
    # path (".", "..", "a/b", "%2e%2e") is no session id.
    problem = path_id_problem(session_id)
    if problem is not None:
        raise _bad_session(value, problem)
    return session_id


def session_label(value: object) -> str:
    """How a session id given as ``value`` is reported: as given when a string, else its repr."""
    return value if isinstance(value, str) else repr(value)


def _bad_session(value: object, reason: str) -> InputRejected:
    return InputRejected(JoinCondition.INVALID_AGENT_SESSION, f"session_id {value!r} {reason}")


def check_agent_id(value: object, *, field_name: str = "agent_id") -> int:
    """Return ``value`` as a positive agent id, or raise :class:`InputRejected` (``InvalidAgentId``)."""
    agent_id: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        agent_id = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        agent_id = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        agent_id = int(value)
    if agent_id is None:
        raise InputRejected(JoinCondition.INVALID_AGENT_ID, f"{field_name} {value!r} is not an integer")
    if agent_id <= 0:
        raise InputRejected(JoinCondition.INVALID_AGENT_ID, f"{field_name} {value!r} is not positive")
    return agent_id


@dataclass(frozen=True)
class SecurityUser:
    """Studio's SecurityUser: the agent whose permissions the API calls use.

    Deliberately holds no token and no secret: it travels through XCom, which is stored in plain text.
    The hook mints the token in the task that needs it, from ``conn_id``'s credentials.
    """

    agent_id: int
    conn_id: str | None = None
    time_zone: str | None = None
    name: str | None = None

    def to_xcom(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


_AGENT_ID_KEYS = ("agent_id", "agentId", "AgentId")


def parse_security_user(value: object) -> SecurityUser:
    """Accept a SecurityUser as a mapping, its JSON or Python-repr string, or a bare agent id.

    A plain (non-native) Jinja render of a mapping pulled from XCom gives its ``repr``; that is
    parsed with :func:`ast.literal_eval`, which evaluates literals only, never code.
    """
    if isinstance(value, SecurityUser):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_SECURITY_USER_CHARS:
            # Refused by its size, before any parsing: a SecurityUser is a handful of short fields.
            raise InputRejected(
                JoinCondition.INVALID_SECURITY_USER,
                f"security_user is {len(text)} characters long (max {MAX_SECURITY_USER_CHARS}): not a SecurityUser",
            )
        if text.startswith("{"):
            value = _parse_mapping_text(text)
        elif re.fullmatch(r"[+-]?\d+(\.0+)?", text):
            return SecurityUser(agent_id=check_agent_id(text.split(".")[0], field_name="security_user"))
        else:
            raise InputRejected(
                JoinCondition.INVALID_SECURITY_USER,
                f"security_user {value!r} is neither a SecurityUser mapping nor an agent id",
            )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return SecurityUser(agent_id=check_agent_id(value, field_name="security_user"))
    if not isinstance(value, Mapping):
        raise InputRejected(
            JoinCondition.INVALID_SECURITY_USER,
            f"security_user must be a SecurityUser mapping or an agent id, not {type(value).__name__}",
        )
    raw_agent_id = next((value[k] for k in _AGENT_ID_KEYS if k in value), None)
    if raw_agent_id is None or (isinstance(raw_agent_id, str) and not raw_agent_id.strip()):
        raise InputRejected(
            JoinCondition.INVALID_SECURITY_USER, f"security_user has no agent_id (keys: {sorted(value)})"
        )
    return SecurityUser(
        agent_id=check_agent_id(raw_agent_id, field_name="security_user agent_id"),
        conn_id=_optional_str(value.get("conn_id")),
        time_zone=_optional_str(value.get("time_zone")),
        name=_optional_str(value.get("name")),
    )


# Studio's SetSecurityUser writes to a variable named SecurityUser by default; naming it here means
# "the default", exactly as leaving the field out does.
DEFAULT_SECURITY_USER = "SecurityUser"


def uses_default_security_user(value: object) -> bool:
    """Left out, or Studio's default name ``SecurityUser``: take the nearest SetSecurityUser's."""
    return value is None or (isinstance(value, str) and value.strip() == DEFAULT_SECURITY_USER)


def parse_rendered_literal(text: str) -> object:
    """A value from its JSON, or from the Python repr a plain (non-native) Jinja render gives.

    ``ast.literal_eval`` evaluates literals only, never code. Raises :class:`ValueError`.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{text[:80]!r} is nested too deeply") from None
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{text[:80]!r} is neither JSON nor a Python literal") from None


def _parse_mapping_text(text: str) -> object:
    try:
        return parse_rendered_literal(text)
    except ValueError:
        raise InputRejected(
            JoinCondition.INVALID_SECURITY_USER,
            f"security_user {text[:80]!r} is neither JSON nor a Python literal mapping",
        ) from None


def _optional_str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


# --- the outcome --------------------------------------------------------------------------------------


@dataclass
class JoinOutcome:
    """What one join ended with; :meth:`to_dict` is the operator's XCom ``return_value``.

    ``message`` is the API's error text or the local cause; it never holds a token or a secret.
    ``same_for_every_session`` (not part of the XCom value) marks an answer about the SecurityUser or
    the connection rather than this session — the route does not exist, CXone refused the access key,
    the agent may not impersonate or is unknown — which every other join as that SecurityUser would
    get too; a sweep stops sending on it.
    """

    condition: JoinCondition
    session_id: str
    status_code: int | None = None
    message: str = ""
    attempts: int = 0
    elapsed_s: float = 0.0
    agent_id: int | None = None
    same_for_every_session: bool = field(default=False, compare=False)
    #: how a sweep of (agent, session) items names this outcome (the agent id); ``None``: the session id
    item_key: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """What a sweep keys this outcome by in its checkpoint and report."""
        return self.item_key if self.item_key is not None else self.session_id

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "condition": self.condition.value,
            "session_id": self.session_id,
            "status_code": self.status_code,
            "message": self.message,
            "attempts": self.attempts,
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.agent_id is not None or self.item_key is not None:
            data["agent_id"] = self.agent_id
        if self.item_key is not None:
            data["item"] = self.item_key
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JoinOutcome:
        return cls(
            condition=JoinCondition.parse(data["condition"]),
            session_id=str(data["session_id"]),
            status_code=data.get("status_code"),
            message=str(data.get("message", "")),
            attempts=int(data.get("attempts", 0)),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            agent_id=data.get("agent_id"),
            item_key=data.get("item"),
        )
