"""Sweeps split into chunks and mapped over workers, and the helpers that merge them back.

One :class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator` joins all its sessions in one
task on one worker. When there are more sessions than one worker should hold, split them with
:func:`chunked` (a literal list, at parse time) or :func:`chunk_sessions` (an upstream task's output)
and map the sweep over the chunks::

    sweep = JoinAgentSessionsOperator.partial(task_id="sweep", security_user=...).expand(
        session_ids=chunk_sessions(listing.output, 500)
    )
    monitor.expand(session_id=sessions_with(sweep, "Success"))

:func:`sessions_with` and :func:`outcomes_with` accept the plain and the mapped sweep alike; for a
mapped one they merge the chunks' results in map-index order (:func:`merge_sweep_results`).
Chunks share the tenant's rate limit: more workers do not make the sweep faster against it.

.. seealso:: ``README.md``, section "Large sweeps on several workers".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.agent_sessions import parse_item
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_session_id, session_label
from cxone_provider.operators.common import as_list

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import BaseOperator, XComArg
    from airflow.sdk.definitions.mappedoperator import MappedOperator

__all__ = ["agents_with", "chunk_sessions", "chunked", "merge_sweep_results", "outcomes_with", "sessions_with"]

#: Result keys that are not a condition's session ids and are merged their own way.
_MERGED_APART = ("counts", "stats")


def chunked(ids: Any, size: int) -> list[list[Any]]:
    """``ids`` split into consecutive lists of at most ``size`` distinct sessions, in input order.

    :param ids: session ids (or agents items): a list, a rendered JSON or Python list (``"[...]"``) or
        comma-separated text (the rule of :func:`~cxone_provider.domain.inputs.parse_list`).
    :param size: most distinct sessions per chunk, at least 1.

    A repeated id goes to the chunk of its first occurrence, so that no session is joined by two
    chunks: that chunk's sweep joins it once and lists it under ``duplicates``, as an unsplit sweep does.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a whole number of at least 1, got {size!r}")
    values = as_list("ids", ids) or []
    chunks: list[list[Any]] = []
    distinct_in_last = 0
    chunk_of: dict[str, list[Any]] = {}
    for value in values:
        key = item_key(value)
        earlier = chunk_of.get(key)
        if earlier is not None:
            earlier.append(value)
            continue
        if not chunks or distinct_in_last == size:
            chunks.append([])
            distinct_in_last = 0
        chunks[-1].append(value)
        chunk_of[key] = chunks[-1]
        distinct_in_last += 1
    return chunks


def chunk_sessions(ids: XComArg | Any, size: int, *, task_id: str | None = None) -> XComArg:
    """:func:`chunked` as a task: the chunks of an upstream output, to ``.expand(session_ids=…)`` over.

    :param ids: an ``XComArg`` (``listing.output``) or a list.
    :param size: most distinct sessions per chunk; checked when the DAG is parsed.
    :param task_id: default ``<upstream task>_chunks``, or ``chunk_sessions`` for a literal list.
    """
    from airflow.sdk import XComArg, task  # TaskFlow costs ~15 ms to import; only DAG files need it

    chunked([], size)  # a bad size fails the DAG file, not a run
    if task_id is None:
        upstream = getattr(ids, "operator", None) if isinstance(ids, XComArg) else None
        task_id = f"{upstream.task_id}_chunks" if upstream is not None else "chunk_sessions"

    @task(task_id=task_id)
    def split(session_ids: Any) -> list[list[Any]]:
        return chunked(session_ids, size)

    return split(ids)


def merge_sweep_results(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The results of a mapped sweep's chunks (in map-index order) as one sweep result.

    Lists (each condition's session ids or agent ids, ``outcomes``, ``duplicates``) are concatenated,
    mappings (``live_sessions``) merged, ``counts`` summed; ``stats`` has ``requests`` and
    ``token_requests`` summed and every chunk's own stats under ``chunks``. Every condition key is
    present, as in a sweep's own result; any other key that is neither becomes the list of the
    chunks' values.
    """
    merged: dict[str, Any] = {condition.value: [] for condition in JoinCondition}
    merged.update(outcomes=[], duplicates=[])
    counts: dict[str, int] = {condition.value: 0 for condition in JoinCondition}
    chunk_stats: list[dict[str, Any]] = []
    for result in results:
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


def sessions_with(sweep: BaseOperator | MappedOperator, condition: str | JoinCondition) -> XComArg:
    """The session ids that ended in ``condition``, as an XComArg to ``.expand()`` over.

    ``sweep`` is a ``JoinAgentSessionsOperator`` or a mapped one (``.partial(…).expand(…)``): the ids
    of every chunk, in map-index order. Airflow maps only over a task's ``return_value``, not over one
    key of it (``sweep.output["Success"]`` raises "cannot map over XCom with custom key"), so this adds
    a small task, ``<sweep>_<condition>``, that returns the one list.
    """
    from airflow.sdk import task  # TaskFlow costs ~15 ms to import; only DAG files need it

    wanted = JoinCondition.parse(condition)

    @task(task_id=f"{sweep.task_id}_{_snake(wanted.value)}")
    def select(result: Any) -> list[str]:
        return session_ids_of(merge_sweep_results(_chunks(result)), wanted.value)

    sweep_result: Any = sweep.output
    return select(sweep_result)


def session_ids_of(result: Mapping[str, Any], condition: str) -> list[str]:
    """The session ids of one condition in a (merged) sweep result.

    A sweep of session ids lists them under the condition. A sweep of agents lists agent ids there:
    Success gives each agent's live session (``live_sessions``), any other condition the session each
    item expected; an item that expected none has no session to give (:func:`agents_with` and
    :func:`outcomes_with` name every item).
    """
    if "live_sessions" not in result:
        return list(result[condition])
    if condition == JoinCondition.SUCCESS.value:
        live = result["live_sessions"]
        return [live[str(agent)] for agent in result[condition] if str(agent) in live]
    return [o["session_id"] for o in _outcomes_of(result, condition) if o.get("session_id")]


def agents_with(sweep: BaseOperator | MappedOperator, condition: str | JoinCondition) -> XComArg:
    """The agent ids that ended in ``condition`` in a sweep of ``agents``, to ``.expand()`` over.

    Like :func:`sessions_with`, it adds a small selecting task, ``<sweep>_<condition>_agents``.
    """
    from airflow.sdk import task

    wanted = JoinCondition.parse(condition)

    @task(task_id=f"{sweep.task_id}_{_snake(wanted.value)}_agents")
    def select(result: Any) -> list[Any]:
        return list(merge_sweep_results(_chunks(result))[wanted.value])

    sweep_result: Any = sweep.output
    return select(sweep_result)


def outcomes_with(sweep: BaseOperator | MappedOperator, condition: str | JoinCondition) -> XComArg:
    """Like :func:`sessions_with`, but each element is the session's whole outcome mapping.

    Expand a follow-up over it (``.expand(outcome=outcomes_with(sweep, "Default"))``) when the task
    needs the message or status: each mapped task gets its own outcome instead of pulling all of them.
    A session listed under its condition without a full outcome (the sweep keeps Success sessions as
    ids only) gets ``{"condition": …, "session_id": …}``.
    """
    from airflow.sdk import task

    wanted = JoinCondition.parse(condition)

    @task(task_id=f"{sweep.task_id}_{_snake(wanted.value)}_outcomes")
    def select(result: Any) -> list[dict[str, Any]]:
        return [outcome for chunk in _chunks(result) for outcome in _outcomes_of(chunk, wanted.value)]

    sweep_result: Any = sweep.output
    return select(sweep_result)


def _chunks(result: Any) -> list[Mapping[str, Any]]:
    """A plain sweep's result (one mapping) or a mapped sweep's (one mapping per map index) as a list."""
    if isinstance(result, Mapping):
        return [result]
    return list(result)


def _outcomes_of(result: Mapping[str, Any], condition: str) -> list[dict[str, Any]]:
    """One outcome per item of ``condition`` in one sweep result, in the order of its list."""
    full: dict[str, dict[str, Any]] = {
        str(o.get("item", o["session_id"])): o for o in result.get("outcomes") or [] if o.get("condition") == condition
    }
    live = result.get("live_sessions")
    outcomes = []
    for listed in result.get(condition) or []:
        known = full.get(str(listed))
        if known is not None:
            outcomes.append(known)
        elif live is not None:  # a sweep of agents keeps Success items as agent ids and live sessions
            outcomes.append({"condition": condition, "agent_id": listed, "session_id": live.get(str(listed))})
        else:
            outcomes.append({"condition": condition, "session_id": listed})
    return outcomes


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


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
