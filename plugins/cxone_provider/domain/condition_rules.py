"""A tenant's own reading of CXone's error answers: ``condition_rules``, checked and parsed.

Given as a connection extra or an operator argument; :func:`~cxone_provider.domain.classification.decide`
tries them before the published table (``docs/conditions.md``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cxone_provider.domain.conditions import JoinCondition

__all__ = ["ConditionRule", "parse_condition_rules"]


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
