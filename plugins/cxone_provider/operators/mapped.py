"""Sweeps split into chunks and mapped over workers, and the helpers that merge them back.

One :class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator` joins all its sessions in one
task on one worker. When there are more sessions than one worker should hold, split them with
:func:`chunked` (a literal list, at parse time) or :func:`chunk_sessions` (an upstream task's output)
and map the sweep over the chunks::

    sweep = JoinAgentSessionsOperator.partial(task_id="sweep").expand(
        agents=chunk_sessions(listing.output, 500)
    )
    monitor.expand(session_id=sessions_with(sweep, "Success"))

:func:`sessions_with` and :func:`outcomes_with` accept the plain and the mapped sweep alike; for a
mapped one they merge the chunks' results in map-index order
(:func:`~cxone_provider.sweeps.result.merge_sweep_results`).
Chunks share the tenant's rate limit: more workers do not make the sweep faster against it.

.. seealso:: ``docs/sweeps.md`` (Large sweeps on several workers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.operators.common import as_list
from cxone_provider.sweeps.result import item_key, merge_sweep_results, outcomes_of, session_ids_of, session_key

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, XComArg
    from airflow.sdk.definitions.mappedoperator import MappedOperator

# merge_sweep_results, session_ids_of and the keys live with the result's schema (sweeps/result.py); they
# are importable from here, where DAGs have always found them.
__all__ = [
    "agents_with",
    "chunk_sessions",
    "chunked",
    "item_key",
    "merge_sweep_results",
    "outcomes_with",
    "session_ids_of",
    "session_key",
    "sessions_with",
]


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
    """:func:`chunked` as a task: the chunks of an upstream output, to ``.expand(agents=…)`` over.

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
        return [outcome for chunk in _chunks(result) for outcome in outcomes_of(chunk, wanted.value)]

    sweep_result: Any = sweep.output
    return select(sweep_result)


def _chunks(result: Any) -> list[Mapping[str, Any]]:
    """A plain sweep's result (one mapping) or a mapped sweep's (one mapping per map index) as a list."""
    if isinstance(result, Mapping):
        return [result]
    return list(result)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
