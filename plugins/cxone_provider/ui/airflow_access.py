"""Every airflow-core internal the CXone pages read, in one module: the metadata DB's ORM models.

Airflow 3 publishes no Python API for an api-server plugin to read task instances and XComs; its REST
API does, but calling it from inside the api-server costs an HTTP round trip and a token per page, and
it cannot filter XComs by what they hold. So the pages read the metadata DB, and only here: when
Airflow changes a model, this is the one module to follow it. What it returns is plain data
(:class:`TaskRef`, :class:`TaskInstanceRow`, decoded XCom values), never an ORM object.

Sweeps are found by the marker their result carries (``schema``, see
:mod:`cxone_provider.sweeps.result`), not by an operator's class name; joins by the operator that ran
them, whose XCom (one outcome) has no marker of its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import Text, and_, cast, false, func, or_, select

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Select

RETURN_VALUE = "return_value"

#: Seconds the (DAG id, task id) pairs of sweeps and joins are reused before the tables are searched
#: again: a sweep or join task that never ran before shows up within this time.
TASKS_TTL_S = 30.0
#: How far before the newest XCom seen the next search for sweep results starts: workers' clocks
#: differ, and a result written by a slower clock must still be found.
_CLOCK_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class TaskRef:
    """One task instance: what a page's URL names."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True)
class TaskInstanceRow:
    """What the pages show of one task instance."""

    ref: TaskRef
    state: str | None
    start_date: datetime | None
    duration_s: float | None


@contextmanager
def metadata_session() -> Iterator[Session]:
    """A session on Airflow's metadata DB, committed or rolled back when the block ends."""
    with create_session() as session:
        yield session


# --- which tasks are sweeps, which are joins ---------------------------------------------------------


class _SweepTasks:
    """The (DAG id, task id) pairs whose ``return_value`` is a sweep's result, found incrementally.

    The first search reads every return value that may be one; later ones only those written since
    the newest seen (less :data:`_CLOCK_SLACK`), so the cost of a search follows the new XComs, not
    the whole table.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.found: set[tuple[str, str]] = set()
        self.newest: datetime | None = None
        self.searched_at: float | None = None

    def get(
        self, session: Session, is_sweep: Callable[[Any], bool], needles: Sequence[str]
    ) -> frozenset[tuple[str, str]]:
        now = time.monotonic()
        with self.lock:
            if self.searched_at is not None and now - self.searched_at < TASKS_TTL_S:
                return frozenset(self.found)
            since = None if self.newest is None else self.newest - _CLOCK_SLACK
        text = cast(XComModel.value, Text)
        query = select(XComModel.dag_id, XComModel.task_id, XComModel.timestamp, XComModel.value).where(
            XComModel.key == RETURN_VALUE, or_(*(text.like(f"%{needle}%") for needle in needles))
        )
        if since is not None:
            query = query.where(XComModel.timestamp >= since)
        found, newest = set(), None
        for dag_id, task_id, written, raw in session.execute(query):
            newest = written if newest is None or written > newest else newest
            if (dag_id, task_id) not in found and is_sweep(decode_xcom(raw)):
                found.add((dag_id, task_id))
        with self.lock:
            self.found |= found
            if newest is not None and (self.newest is None or newest > self.newest):
                self.newest = newest
            self.searched_at = now
            return frozenset(self.found)


_sweep_tasks = _SweepTasks()
_operator_tasks: dict[tuple[str, ...], tuple[float, frozenset[tuple[str, str]]]] = {}
_operator_lock = threading.Lock()


def sweep_tasks(
    session: Session, is_sweep: Callable[[Any], bool], needles: Sequence[str]
) -> frozenset[tuple[str, str]]:
    """Every (DAG id, task id) with a return value for which ``is_sweep`` holds.

    ``needles``: text one of which every such value's JSON contains, so that the DB hands over only
    the return values that may be one (``is_sweep`` decides).
    """
    return _sweep_tasks.get(session, is_sweep, needles)


def operator_tasks(session: Session, operators: Sequence[str]) -> frozenset[tuple[str, str]]:
    """Every (DAG id, task id) whose task instances ran one of ``operators``.

    ``task_instance.operator`` has no index, so finding tasks by it scans the whole table: that is done
    once per :data:`TASKS_TTL_S`, and the pages' own queries name these tasks, which the
    (dag_id, task_id, run_id) index finds however many other task instances the DB holds.
    """
    key = tuple(operators)
    now = time.monotonic()
    with _operator_lock:
        seen = _operator_tasks.get(key)
        if seen is not None and now - seen[0] < TASKS_TTL_S:
            return seen[1]
    query = select(TaskInstance.dag_id, TaskInstance.task_id).where(TaskInstance.operator.in_(operators)).distinct()
    tasks = frozenset((dag_id, task_id) for dag_id, task_id in session.execute(query))
    with _operator_lock:
        _operator_tasks[key] = (now, tasks)
    return tasks


def forget_tasks() -> None:
    """Search again on the next request (the benchmark times a cold search)."""
    with _sweep_tasks.lock:
        _sweep_tasks.clear()
    with _operator_lock:
        _operator_tasks.clear()


# --- task instances ----------------------------------------------------------------------------------


def task_instances(
    tasks: Mapping[str, Iterable[str]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    operators: Sequence[str] | None = None,
    only: TaskRef | None = None,
) -> Select:
    """The task instances of ``tasks`` ({DAG id: task ids}), started in [since, until), as a query.

    ``operators``: only the ones that ran one of these (a task id may have been another operator's
    before); ``only``: that one task instance.
    """
    query = select(
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.map_index,
        TaskInstance.state,
        TaskInstance.start_date,
        TaskInstance.duration,
    ).where(or_(false(), *(and_(TaskInstance.dag_id == d, TaskInstance.task_id.in_(set(t))) for d, t in tasks.items())))
    if operators is not None:
        query = query.where(TaskInstance.operator.in_(operators))
    if only is not None:
        query = query.where(TaskInstance.run_id == only.run_id, TaskInstance.map_index == only.map_index)
    if since:
        query = query.where(TaskInstance.start_date >= since)
    if until:
        query = query.where(TaskInstance.start_date < until)
    return query


def page_of(session: Session, query: Select, page: int, per_page: int) -> tuple[list[TaskInstanceRow], int]:
    """One page of ``query``'s task instances, newest first, and how many there are in all."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    ordered = query.order_by(
        TaskInstance.start_date.is_(None), TaskInstance.start_date.desc(), TaskInstance.run_id.desc()
    )
    rows = session.execute(ordered.limit(per_page).offset((page - 1) * per_page)).all()
    return [_row(r) for r in rows], total


def task_instance(session: Session, ref: TaskRef, operators: Sequence[str] | None = None) -> TaskInstanceRow | None:
    """The task instance ``ref`` names, or ``None``."""
    query = task_instances({ref.dag_id: [ref.task_id]}, operators=operators, only=ref)
    found = session.execute(query).first()
    return _row(found) if found is not None else None


def states(session: Session, wanted: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str | None]:
    """The state of each of ``wanted`` task instances, by (DAG id, run id, task id)."""
    if not wanted:
        return {}
    query = select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state).where(
        TaskInstance.dag_id.in_({w[0] for w in wanted}),
        TaskInstance.run_id.in_({w[1] for w in wanted}),
        TaskInstance.task_id.in_({w[2] for w in wanted}),
    )
    return {(dag_id, run_id, task_id): state for dag_id, run_id, task_id, state in session.execute(query)}


def _row(row: Any) -> TaskInstanceRow:
    return TaskInstanceRow(
        TaskRef(row.dag_id, row.run_id, row.task_id, row.map_index), row.state, row.start_date, row.duration
    )


# --- XComs, rendered fields, DAG structure -------------------------------------------------------------


def return_values(session: Session, refs: Sequence[TaskRef]) -> dict[TaskRef, Any]:
    """The ``return_value`` XCom of each of ``refs``, decoded (one query for the whole page)."""
    found = _per_task_instance(session, XComModel, XComModel.value, set(refs), XComModel.key == RETURN_VALUE)
    return {ref: decode_xcom(value) for ref, value in found}


def decode_xcom(raw: Any) -> Any:
    """An XCom value as its task returned it, however Airflow stored it (JSON, or JSON text in JSON)."""
    value = XComModel.deserialize_value(_Raw(raw))
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass
class _Raw:
    value: Any


def rendered_field(session: Session, refs: set[TaskRef], name: str) -> dict[TaskRef, Any]:
    """The rendered template field ``name`` of each of ``refs`` that has one."""
    model = RenderedTaskInstanceFields
    found = _per_task_instance(session, model, model.rendered_fields, refs)
    return {ref: fields.get(name) for ref, fields in found if isinstance(fields, Mapping)}


def _per_task_instance(
    session: Session, model: Any, column: Any, refs: set[TaskRef], *where: Any
) -> list[tuple[TaskRef, Any]]:
    """``column`` of ``model``'s rows of each of ``refs`` (a table keyed by task instance), in one query."""
    if not refs:
        return []
    query = select(model.dag_id, model.run_id, model.task_id, model.map_index, column).where(
        *where,
        model.dag_id.in_({r.dag_id for r in refs}),
        model.run_id.in_({r.run_id for r in refs}),
        model.task_id.in_({r.task_id for r in refs}),
    )
    found = []
    for dag_id, run_id, task_id, map_index, value in session.execute(query):
        ref = TaskRef(dag_id, run_id, task_id, map_index)
        if ref in refs:
            found.append((ref, value))
    return found


@dataclass(frozen=True)
class TaskLinks:
    """Where one task sits in its DAG: its direct downstream tasks, and its upstream tasks of some types."""

    downstream: list[str]
    upstream_of_type: list[str]


def task_links(
    session: Session, tasks: Iterable[tuple[str, str]], upstream_types: Sequence[str]
) -> dict[tuple[str, str], TaskLinks]:
    """For each (DAG id, task id) in the DAG's latest serialized version: its :class:`TaskLinks`."""
    wanted = set(tasks)
    dags = {dag_id: SerializedDagModel.get_dag(dag_id, session=session) for dag_id in {d for d, _ in wanted}}
    links = {}
    for dag_id, task_id in wanted:
        dag = dags.get(dag_id)
        if dag is None or not dag.has_task(task_id):
            continue
        task = dag.get_task(task_id)
        links[(dag_id, task_id)] = TaskLinks(
            downstream=sorted(task.downstream_task_ids),
            upstream_of_type=sorted(
                t.task_id for t in task.get_flat_relatives(upstream=True) if t.task_type in upstream_types
            ),
        )
    return links
