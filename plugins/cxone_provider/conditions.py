"""Studio's result conditions for *Join Agent Session*, and the one place that decides them.

Everything that turns an input or an API answer into a :class:`JoinCondition` lives here:

* :func:`classify_response` and :func:`classify_join` — the table of ``README.md#result-conditions``
  (HTTP status + CXone's ``error`` field, and the session the join's answer names);
* :func:`check_session_id`, :func:`check_agent_id`, :func:`parse_security_user` — the checks made
  before any request, which reject bad input with its documented condition;
* :class:`JoinOutcome` — what a join ended with, as the JSON mapping operators return to XCom.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cxone_provider.client.paths import path_id_problem
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneDiscoveryError
from cxone_provider.response import error_name_and_message

if TYPE_CHECKING:
    from cxone_provider.response import ApiResponse

__all__ = [
    "InputRejected",
    "JoinCondition",
    "JoinOutcome",
    "SecurityUser",
    "check_agent_id",
    "check_session_id",
    "classify_join",
    "classify_response",
    "join_outcome",
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


# --- the status + body → condition table ------------------------------------------------------------

#: The message of a 404 that carries no CXone error: the route itself does not exist.
ROUTE_NOT_FOUND = "API route not found: check api_base_url / api_version"


def classify_response(status_code: int | None, body: object = None, text: str = "") -> JoinCondition:
    """Map one API answer to its Studio result condition, from the status and CXone's ``error`` only.

    Free text (a message, a URL, a path) never decides: a mistyped ``api_base_url`` answers 404
    "Not Found: POST …/agent-sessions/join", which names a session but says nothing about one.
    ``status_code`` is ``None`` when no answer arrived. Retries and the single token renewal on 401
    happen before this is called, so a 401 here means the security user could not be authenticated.
    A 2xx is ``Success`` here; :func:`classify_join` also checks the session the answer names.
    """
    if status_code is None:
        return JoinCondition.DEFAULT
    if 200 <= status_code < 300:
        return JoinCondition.SUCCESS
    name, _ = error_name_and_message(body, text)
    known = _known_condition(name)
    if status_code == 401:
        return JoinCondition.INVALID_SECURITY_USER
    if status_code == 403:
        if known is JoinCondition.IMPERSONATE_NOT_ENABLED:
            return known
        return JoinCondition.INVALID_SECURITY_USER
    if status_code in (400, 404) and known is JoinCondition.INVALID_AGENT_ID:
        return known
    if status_code in (400, 404, 409) and known is JoinCondition.INVALID_AGENT_SESSION:
        return known
    return JoinCondition.DEFAULT


def is_route_not_found(status_code: int | None, body: object) -> bool:
    """A 404 that is not CXone's answer (no ``error`` field): no such route, so the URL is wrong."""
    return status_code == 404 and error_name_and_message(body)[0] is None


def classify_join(
    requested_session_id: str, status_code: int | None, body: object, message: str
) -> tuple[JoinCondition, str]:
    """The condition of a join's final answer and the message to report with it.

    On top of :func:`classify_response`: a 2xx is ``Success`` only when it names the session asked
    for (a tenant that ignores ``sessionId`` attaches to the agent's own session and answers with
    *its* id); a 2xx with another id is ``InvalidAgentSession`` naming both, one without any is
    ``Default`` (a proxy's "OK" or a cut-off body proves nothing).
    """
    condition = classify_response(status_code, body, message)
    if condition is JoinCondition.SUCCESS:
        joined = body.get("sessionId") if isinstance(body, Mapping) else None
        if joined is None or joined == "":
            return JoinCondition.DEFAULT, f"HTTP {status_code} without a sessionId in the answer: {message or 'empty'}"
        if str(joined) != requested_session_id:
            return JoinCondition.INVALID_AGENT_SESSION, (
                f"CXone joined session {str(joined)[:80]!r}, not the session asked for "
                f"({requested_session_id!r}): the tenant may ignore sessionId and attach to the agent's own session"
            )
        return condition, "joined"
    if condition is JoinCondition.DEFAULT and is_route_not_found(status_code, body):
        return condition, f"{ROUTE_NOT_FOUND} ({message or 'HTTP 404'})"
    return condition, message


def join_outcome(
    session_id: str, answer: ApiResponse | CxoneAuthError | CxoneApiError, elapsed_s: float = 0.0
) -> JoinOutcome:
    """The outcome of one join of ``session_id``, from the 2xx answer the hook returned or the error it raised.

    No token or no API host (:class:`CxoneAuthError`, :class:`CxoneDiscoveryError`): the join was not
    sent; CXone refused the access key is ``InvalidSecurityUser``, anything else ``Default``, and every
    other join with the connection meets the same. Otherwise the answer decides (:func:`classify_join`).
    """
    if isinstance(answer, CxoneAuthError | CxoneDiscoveryError):
        refused = isinstance(answer, CxoneAuthError) and answer.refused
        attempts = answer.attempts if isinstance(answer, CxoneAuthError) else answer.response.attempts
        status = answer.http_status
        # An outage (no answer, 429, 5xx) may be over for the next session; a refusal is not.
        transient = status is None or status == 429 or status >= 500
        return JoinOutcome(
            JoinCondition.INVALID_SECURITY_USER if refused else JoinCondition.DEFAULT,
            session_id,
            status_code=status,
            message=str(answer),
            attempts=attempts,
            elapsed_s=elapsed_s,
            same_for_every_session=refused or not transient,
        )
    response = answer.response if isinstance(answer, CxoneApiError) else answer
    condition, message = classify_join(session_id, response.status_code, response.body, response.message)
    if response.retries and condition is JoinCondition.DEFAULT:
        message = f"{message} (retries: {', '.join(response.retries)})"
    return JoinOutcome(
        condition,
        session_id,
        status_code=response.status_code,
        message=message,
        attempts=response.attempts,
        elapsed_s=elapsed_s,
        same_for_every_session=same_for_every_session(condition, response.status_code, response.body),
    )


def same_for_every_session(condition: JoinCondition, status_code: int | None, body: object) -> bool:
    """Whether a join's answer is about the SecurityUser or the URL, not the session it named.

    CXone checks the agent, its impersonation right and its permissions before it looks at the
    session, so these answers repeat for every session joined as the same SecurityUser. A 401 is not
    among them: after the hook's renewal it may still be one revoked token, not a refused user.
    """
    if condition is JoinCondition.DEFAULT:
        return is_route_not_found(status_code, body)
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
    same_for_every_session: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition.value,
            "session_id": self.session_id,
            "status_code": self.status_code,
            "message": self.message,
            "attempts": self.attempts,
            "elapsed_s": round(self.elapsed_s, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JoinOutcome:
        return cls(
            condition=JoinCondition.parse(data["condition"]),
            session_id=str(data["session_id"]),
            status_code=data.get("status_code"),
            message=str(data.get("message", "")),
            attempts=int(data.get("attempts", 0)),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
        )
