"""Studio's SecurityUser: the agent whose permissions the API calls use, and how a rendered one is read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_agent_id, parse_rendered_literal

__all__ = [
    "DEFAULT_SECURITY_USER",
    "MAX_SECURITY_USER_CHARS",
    "SecurityUser",
    "parse_security_user",
    "uses_default_security_user",
]

MAX_SECURITY_USER_CHARS = 4096
# Studio's SetSecurityUser writes to a variable named SecurityUser by default; naming it here means
# "the default", exactly as leaving the field out does.
DEFAULT_SECURITY_USER = "SecurityUser"


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


def uses_default_security_user(value: object) -> bool:
    """Left out, or Studio's default name ``SecurityUser``: take the nearest SetSecurityUser's."""
    return value is None or (isinstance(value, str) and value.strip() == DEFAULT_SECURITY_USER)
