"""A sweep's result: one typed, versioned schema, written by the engine, read by the merge and the UI.

The XCom ``return_value`` of a sweep is :meth:`SweepResult.to_xcom`'s mapping::

    {"schema": "cxone.sweep/1",
     "Success": [...], "InvalidAgentSession": [...], ...,   # every condition, empty lists included
     "live_sessions": {...},                                 # a sweep of agents only
     "outcomes": [...], "duplicates": [...], "counts": {...}, "stats": {...}, "report": "..."}

Its keys are the ones DAGs have always read; ``schema`` is the marker that says "a CXone sweep's result,
version 1" to whoever finds it (the UI finds sweeps by it). A result written before the marker existed
reads the same, with no ``schema``. Everything that reads a result reads it through this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.agent_sessions import parse_item
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_session_id, session_label

if TYPE_CHECKING:
    from cxone_provider.domain.outcomes import JoinOutcome

#: The key of the marker, and its value for this version of the schema.
SCHEMA_KEY = "schema"
SCHEMA = "cxone.sweep/1"

#: Result keys that are not a condition's list and are merged their own way.
_MERGED_APART = ("counts", "stats", SCHEMA_KEY)


@dataclass
class SweepResult:
    """What one sweep (or the merge of a mapped sweep's chunks) found, typed.

    :param by_condition: each condition's items: session ids (a sweep of session ids) or agent ids (a
        sweep of agents), in input order; every condition present.
    :param outcomes: the full outcome mapping of each item that did not succeed, in input order.
    :param duplicates: ids given more than once, joined once.
    :param counts: items per condition.
    :param stats: the engine's figures (requests, retries, pacing, elapsed time, stopped_early, deadline_passed…).
    :param report: where every item's outcome was written; a list of them for a merged mapped sweep.
    :param live_sessions: a sweep of agents only: each Success agent (as text) to its live session.
    """

    by_condition: dict[str, list[Any]]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    report: str | list[str | None] | None = None
    live_sessions: dict[str, str] | None = None
    schema: str = SCHEMA

    @classmethod
    def of(
        cls,
        outcomes: Sequence[JoinOutcome],
        duplicates: list[str],
        stats: dict[str, Any],
        *,
        by_agent: bool,
        report: str | None = None,
    ) -> SweepResult:
        """The result of a sweep whose items ended in ``outcomes`` (every item, in input order).

        Success items are listed by id only; every other item's full outcome is kept, so that the XCom
        stays small as sweeps grow (the report holds them all).
        """
        by_condition: dict[str, list[Any]] = {condition.value: [] for condition in JoinCondition}
        for outcome in outcomes:
            by_condition[outcome.condition.value].append(_listed(outcome) if by_agent else outcome.session_id)
        live = None
        if by_agent:
            live = {o.key: o.session_id for o in outcomes if o.condition is JoinCondition.SUCCESS and o.session_id}
        return cls(
            by_condition=by_condition,
            outcomes=[o.to_dict() for o in outcomes if o.condition is not JoinCondition.SUCCESS],
            duplicates=duplicates,
            counts={condition: len(items) for condition, items in by_condition.items()},
            stats=stats,
            report=report,
            live_sessions=live,
        )

    def to_xcom(self) -> dict[str, Any]:
        """The mapping a sweep returns: the keys DAGs read, and the ``schema`` marker."""
        data: dict[str, Any] = {SCHEMA_KEY: self.schema, **self.by_condition}
        if self.live_sessions is not None:
            data["live_sessions"] = self.live_sessions
        data.update(
            outcomes=self.outcomes, duplicates=self.duplicates, counts=self.counts, stats=self.stats, report=self.report
        )
        return data


def is_sweep_result(value: object) -> bool:
    """Whether ``value`` is a CXone sweep's result (of any version of the schema)."""
    return isinstance(value, Mapping) and str(value.get(SCHEMA_KEY, "")).startswith("cxone.sweep/")


def merge_sweep_results(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The results of a mapped sweep's chunks (in map-index order) as one sweep result.

    Lists (each condition's session ids or agent ids, ``outcomes``, ``duplicates``) are concatenated,
    mappings (``live_sessions``) merged, ``counts`` summed; ``stats`` has ``requests`` and
    ``token_requests`` summed and every chunk's own stats under ``chunks``. Every condition key is
    present, as in a sweep's own result, and the chunks' ``schema`` marker; any other key that is
    neither becomes the list of the chunks' values (``report``: one per chunk).
    """
    merged: dict[str, Any] = {condition.value: [] for condition in JoinCondition}
    merged.update(outcomes=[], duplicates=[])
    counts: dict[str, int] = {condition.value: 0 for condition in JoinCondition}
    chunk_stats: list[dict[str, Any]] = []
    for result in results:
        if SCHEMA_KEY in result:  # the chunks' schema is the merged result's
            merged.setdefault(SCHEMA_KEY, result[SCHEMA_KEY])
        for key, value in result.items():
            if key in _MERGED_APART:
                continue
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, Mapping):  # live_sessions: each chunk's agents are its own
                merged.setdefault(key, {}).update(value)
            else:  # a key this module does not know: every chunk's value, none lost
                merged.setdefault(key, []).append(value)
        for condition, count in (result.get("counts") or {}).items():
            counts[condition] = counts.get(condition, 0) + int(count)
        chunk_stats.append(dict(result.get("stats") or {}))
    merged["counts"] = counts
    merged["stats"] = {
        "requests": sum(int(s.get("requests") or 0) for s in chunk_stats),
        "token_requests": sum(int(s.get("token_requests") or 0) for s in chunk_stats),
        "chunks": chunk_stats,
    }
    return merged


def outcomes_of(result: Mapping[str, Any], condition: str) -> list[dict[str, Any]]:
    """One outcome mapping per item of ``condition`` in one sweep result, in the order of its list.

    ``outcomes`` may hold every item or only the ones that did not succeed: an item listed under its
    condition without a full outcome gets what the result knows of it (``condition`` and
    ``session_id``; in a sweep of agents, ``agent_id`` and its live session).
    """
    full: dict[str, Mapping[str, Any]] = {
        str(o.get("item", o.get("session_id"))): o
        for o in result.get("outcomes") or ()
        if isinstance(o, Mapping) and o.get("condition") == condition
    }
    live = result.get("live_sessions")
    outcomes: list[dict[str, Any]] = []
    for listed in result.get(condition) or ():
        known = full.get(str(listed))
        if known is not None:
            outcomes.append(dict(known))
        elif isinstance(live, Mapping):  # a sweep of agents keeps Success items as agent ids and live sessions
            outcomes.append({"condition": condition, "agent_id": listed, "session_id": live.get(str(listed))})
        else:
            outcomes.append({"condition": condition, "session_id": listed})
    return outcomes


def session_ids_of(result: Mapping[str, Any], condition: str) -> list[str]:
    """The session ids of one condition in a (merged) sweep result.

    A sweep of session ids lists them under the condition. A sweep of agents lists agent ids there:
    Success gives each agent's live session (``live_sessions``), any other condition the session each
    item expected; an item that expected none has no session to give.
    """
    if "live_sessions" not in result:
        return list(result[condition])
    if condition == JoinCondition.SUCCESS.value:
        live = result["live_sessions"]
        return [live[str(agent)] for agent in result[condition] if str(agent) in live]
    return [o["session_id"] for o in outcomes_of(result, condition) if o.get("session_id")]


def counts_of(result: Mapping[str, Any], conditions: Sequence[str]) -> dict[str, int]:
    """Items per condition of ``conditions``, as the sweep counted them (its ``counts``, else its lists)."""
    counts = result.get("counts")
    if isinstance(counts, Mapping):
        return {c: int(counts.get(c) or 0) for c in conditions}
    return {c: len(result.get(c) or ()) for c in conditions}


def retries_of(stats: Mapping[str, Any]) -> int | None:
    """The sweep's retried requests, all reasons together."""
    retries = stats.get("retries")
    if isinstance(retries, Mapping):
        return sum(int(n or 0) for n in retries.values())
    if isinstance(retries, int):
        return retries
    return None


def session_key(value: Any) -> str:
    """The session a value names, as the sweep keys it: trimmed when well-formed, else as given."""
    try:
        return check_session_id(value)
    except InputRejected:
        return session_label(value)


def item_key(value: Any) -> str:
    """How a sweep keys one input value: an agent item by its agent, a session id by itself."""
    if isinstance(value, Mapping) or (isinstance(value, int) and not isinstance(value, bool)):
        return parse_item(value).key
    return session_key(value)


def _listed(outcome: JoinOutcome) -> int | str:
    """How an item of the agents form is listed under its condition: its agent id, else as given."""
    return outcome.agent_id if outcome.agent_id is not None else outcome.key


#: One item to join: (its report key, its value as given: a session id, or an AgentSessionItem).
Item = tuple[str, Any]


def distinct_sessions(raw_ids: list[Any]) -> tuple[list[Item], list[str]]:
    """Each session once, in input order, as ``(report key, value as given)``; and the duplicates.

    A well-formed id is keyed as it will be sent (trimmed), so ``" s1"`` and ``"s1"`` are one
    session joined once; a malformed one is keyed as given, to be reported with its condition.
    """
    seen: set[str] = set()
    sessions: list[Item] = []
    duplicates: list[str] = []
    for raw in raw_ids:
        key = session_key(raw)
        if key in seen:
            if key not in duplicates:
                duplicates.append(key)
            continue
        seen.add(key)
        sessions.append((key, raw))
    return sessions, duplicates
