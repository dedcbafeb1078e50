"""Studio's result conditions for *Join Agent Session*, and THE table that describes them.

:class:`JoinCondition` names the conditions; :data:`CONDITION_TABLE` holds one row per condition (its
Studio name, what it means, its colour and where it is shown). Everything that lists conditions —
the operators' branch checks, the UI's columns, badges and legend, the demo, ``docs/conditions.md`` —
reads the table, so a new condition is one enum member and one row, and shows up everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CONDITION_TABLE",
    "ConditionRow",
    "InputRejected",
    "JoinCondition",
    "condition_names",
    "in_display_order",
    "row_of",
]


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
            names = condition_names()
            raise ValueError(f"unknown result condition {value!r}; expected one of: {names}") from None


class InputRejected(ValueError):
    """An input that Studio would route to ``condition`` without calling the API."""

    def __init__(self, condition: JoinCondition, message: str) -> None:
        super().__init__(message)
        self.condition = condition
        self.message = message


@dataclass(frozen=True)
class ConditionRow:
    """One row of :data:`CONDITION_TABLE`.

    :param condition: the condition.
    :param description: what it means for the DAG author, in one sentence.
    :param colour: the CSS colour the UI's charts, badges and table headers give it.
    :param display_order: where the UI and reports show it (0 first): the good news first, then what
        a person acts on.
    """

    condition: JoinCondition
    description: str
    colour: str
    display_order: int

    @property
    def studio_name(self) -> str:
        """The condition's name in Studio, in XCom values and in ``branches`` keys."""
        return self.condition.value


#: One row per condition, in Studio's order (the order of :class:`JoinCondition`).
CONDITION_TABLE: tuple[ConditionRow, ...] = (
    ConditionRow(
        JoinCondition.DEFAULT,
        "No other condition applies: no answer, an outage after retries, a wrong URL, or an answer that names nothing",
        "#78909c",
        2,
    ),
    ConditionRow(
        JoinCondition.SUCCESS,
        "Joined: the SecurityUser's live session is the session asked for (or any, when none was)",
        "#2e7d32",
        0,
    ),
    ConditionRow(
        JoinCondition.INVALID_SECURITY_USER,
        "The SecurityUser is unusable: the access key was refused, or its agent lacks a permission",
        "#c62828",
        3,
    ),
    ConditionRow(
        JoinCondition.INVALID_AGENT_SESSION,
        "The session is malformed, unknown, ended, in no state to join, or not the agent's live session",
        "#f9a825",
        1,
    ),
    ConditionRow(
        JoinCondition.INVALID_AGENT_ID,
        "The agent id is malformed or names no agent",
        "#1565c0",
        5,
    ),
    ConditionRow(
        JoinCondition.IMPERSONATE_NOT_ENABLED,
        "The access key's user may not act as another agent (impersonation is not enabled)",
        "#6a1b9a",
        4,
    ),
)

# A condition without a row would vanish from every list that reads the table: refuse it at import.
_rowless = [c.value for c in JoinCondition if c not in {row.condition for row in CONDITION_TABLE}]
if _rowless or len(CONDITION_TABLE) != len(JoinCondition):
    raise RuntimeError(f"CONDITION_TABLE must hold one row per JoinCondition; rowless: {_rowless}")


def row_of(condition: JoinCondition) -> ConditionRow:
    """The table's row for ``condition``."""
    return next(row for row in CONDITION_TABLE if row.condition is condition)


def in_display_order(table: tuple[ConditionRow, ...] = CONDITION_TABLE) -> tuple[ConditionRow, ...]:
    """The rows in the order the UI and reports show them."""
    return tuple(sorted(table, key=lambda row: row.display_order))


def condition_names() -> str:
    """Every Studio name, comma-separated in Studio's order: what error messages offer."""
    return ", ".join(row.studio_name for row in CONDITION_TABLE)
