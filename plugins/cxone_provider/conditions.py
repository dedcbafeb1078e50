"""The public names of Studio's result conditions, kept at this path for DAG files and user code.

The rules live in :mod:`cxone_provider.domain`: the conditions and their table in
:mod:`~cxone_provider.domain.conditions`, what an answer means in
:mod:`~cxone_provider.domain.classification`, input checks in :mod:`~cxone_provider.domain.inputs`, the
SecurityUser in :mod:`~cxone_provider.domain.security_user`, a join's outcome in
:mod:`~cxone_provider.domain.outcomes`. The provider's own modules import from there, never from here.
"""

from __future__ import annotations

from cxone_provider.domain.classification import (
    ROUTE_NOT_FOUND,
    JoinFacts,
    classify_join,
    classify_response,
    decide,
    join_outcome,
)
from cxone_provider.domain.condition_rules import ConditionRule, parse_condition_rules
from cxone_provider.domain.conditions import CONDITION_TABLE, ConditionRow, InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_agent_id, check_session_id
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import SecurityUser, parse_security_user

__all__ = [
    "CONDITION_TABLE",
    "ROUTE_NOT_FOUND",
    "ConditionRow",
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
