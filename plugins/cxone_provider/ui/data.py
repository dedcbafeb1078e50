"""What the CXone pages show, read from Airflow's metadata DB in the api-server.

Sweeps and joins are found by the operator class each task instance records
(``TaskInstance.operator``); their results are the XCom ``return_value`` of that task instance. Every
query takes the set of DAG ids the user may read and never returns a row outside it.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from sqlalchemy import and_, false, func, or_, select

from cxone_provider.conditions import InputRejected, JoinCondition, parse_security_user
from cxone_provider.operators.common import uses_default_security_user
from cxone_provider.sweeps.report import csv_cell

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Select

SWEEP_OPERATORS = ("JoinAgentSessionsOperator",)
JOIN_OPERATORS = ("JoinAgentSessionOperator",)
SECURITY_USER_OPERATORS = ("SetSecurityUserOperator",)
RETURN_VALUE = "return_value"

#: The order conditions are shown in, everywhere: the good news first, then what a person acts on.
CONDITIONS: tuple[str, ...] = (
    JoinCondition.SUCCESS.value,
    JoinCondition.INVALID_AGENT_SESSION.value,
    JoinCondition.DEFAULT.value,
    JoinCondition.INVALID_SECURITY_USER.value,
    JoinCondition.IMPERSONATE_NOT_ENABLED.value,
    JoinCondition.INVALID_AGENT_ID.value,
)

#: One colour per condition, used by the charts, the badges and the table headers alike.
CONDITION_COLOURS: dict[str, str] = {
    JoinCondition.SUCCESS.value: "#2e7d32",
    JoinCondition.INVALID_AGENT_SESSION.value: "#f9a825",
    JoinCondition.DEFAULT.value: "#78909c",
    JoinCondition.INVALID_SECURITY_USER.value: "#c62828",
    JoinCondition.IMPERSONATE_NOT_ENABLED.value: "#6a1b9a",
    JoinCondition.INVALID_AGENT_ID.value: "#1565c0",
}

#: The columns of a run page's CSV and JSON downloads, in order.
SESSION_COLUMNS = ("agent_id", "session_id", "condition", "status_code", "message", "attempts", "elapsed_s")


@dataclass(frozen=True)
class TaskRef:
    """One task instance: what a page's URL names."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass
class SweepRow:
    """One sweep task instance on the sweeps page."""

    ref: TaskRef
    state: str | None
    start_date: datetime | None
    duration_s: float | None
    counts: dict[str, int]
    retries: int | None
    token_requests: int | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def has_result(self) -> bool:
        return bool(self.counts)


@dataclass
class Page:
    """One page of rows, and where it is in the whole list."""

    rows: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass
class SweepDetail:
    """One sweep's result on its run page."""

    ref: TaskRef
    state: str | None
    start_date: datetime | None
    duration_s: float | None
    counts: dict[str, int]
    sessions: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any]
    duplicates: list[str]
    report: str | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def sections(self, query: str = "") -> list[tuple[str, list[dict[str, Any]]]]:
        """The (matching) sessions per condition, the ones a person acts on first and Success last."""
        matching = self.matching(query)
        order = [c for c in CONDITIONS if c != JoinCondition.SUCCESS.value] + [JoinCondition.SUCCESS.value]
        return [(c, matching[c]) for c in order if matching.get(c)]

    def matching(self, query: str) -> dict[str, list[dict[str, Any]]]:
        """The sessions whose id or agent id contains ``query`` (case-insensitive), per condition."""
        needle = query.strip().lower()
        if not needle:
            return self.sessions
        return {
            c: [s for s in rows if needle in f"{s.get('session_id')} {s.get('agent_id', '')}".lower()]
            for c, rows in self.sessions.items()
        }

    def rows(self, query: str = "") -> list[dict[str, Any]]:
        """Every (matching) session as one flat record, in the page's condition order."""
        return [
            {column: session.get(column) for column in SESSION_COLUMNS}
            for rows in self.matching(query).values()
            for session in rows
        ]


@dataclass
class JoinRow:
    """One ``JoinAgentSessionOperator`` task instance on the joins page."""

    ref: TaskRef
    state: str | None
    start_date: datetime | None
    outcome: dict[str, Any] | None
    branches_followed: list[str] | None = None
    agent_id: int | None = None
    downstream: list[str] = field(default_factory=list)

    @property
    def condition(self) -> str | None:
        return self.outcome.get("condition") if self.outcome else None


# --- XCom shapes -----------------------------------------------------------------------------------


def counts_of(result: Mapping[str, Any]) -> dict[str, int]:
    """Sessions per condition, as the sweep counted them (its ``counts``, else its id lists)."""
    counts = result.get("counts")
    if isinstance(counts, Mapping):
        return {c: int(counts.get(c) or 0) for c in CONDITIONS}
    return {c: len(result.get(c) or ()) for c in CONDITIONS}


def sessions_of(result: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each condition's sessions with whatever the XCom knows of them.

    ``outcomes`` may hold every session or only the ones that did not succeed (large sweeps keep
    Success as ids only): a session listed under its condition but missing from ``outcomes`` is shown
    with its id alone.
    """
    known = {
        (o.get("condition"), str(o.get("item", o.get("session_id")))): o
        for o in result.get("outcomes") or ()
        if isinstance(o, Mapping)
    }
    # A sweep of agents lists agent ids under each condition and its Success agents' live sessions.
    live = result.get("live_sessions")
    sessions: dict[str, list[dict[str, Any]]] = {}
    for condition in CONDITIONS:
        rows = []
        for listed in result.get(condition) or ():
            outcome = known.get((condition, str(listed)))
            if outcome:
                rows.append(dict(outcome))
            elif isinstance(live, Mapping):
                rows.append({"agent_id": listed, "session_id": live.get(str(listed)), "condition": condition})
            else:
                rows.append({"session_id": listed, "condition": condition})
        sessions[condition] = rows
    return sessions


def retries_of(stats: Mapping[str, Any]) -> int | None:
    """The sweep's retried requests, all reasons together."""
    retries = stats.get("retries")
    if isinstance(retries, Mapping):
        return sum(int(n or 0) for n in retries.values())
    if isinstance(retries, int):
        return retries
    return None


def _xcom_value(raw: Any) -> Any:
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


# --- queries -----------------------------------------------------------------------------------------


#: Seconds the (DAG id, task id) pairs of each operator are reused before the task instance table is
#: scanned again: a sweep task that never ran before shows up within this time.
TASKS_TTL_S = 30.0
_tasks_seen: dict[tuple[str, ...], tuple[float, frozenset[tuple[str, str]]]] = {}
_tasks_lock = threading.Lock()


def operator_tasks(session: Session, operators: Sequence[str]) -> frozenset[tuple[str, str]]:
    """Every (DAG id, task id) whose task instances ran one of ``operators``.

    ``task_instance.operator`` has no index, so finding the sweeps by it scans the whole table: that is
    done once per :data:`TASKS_TTL_S`, and the pages' own queries name these tasks, which the
    (dag_id, task_id, run_id) index finds however many other task instances the DB holds.
    """
    key = tuple(operators)
    now = time.monotonic()
    with _tasks_lock:
        seen = _tasks_seen.get(key)
        if seen is not None and now - seen[0] < TASKS_TTL_S:
            return seen[1]
    query = select(TaskInstance.dag_id, TaskInstance.task_id).where(TaskInstance.operator.in_(operators)).distinct()
    tasks = frozenset((dag_id, task_id) for dag_id, task_id in session.execute(query))
    with _tasks_lock:
        _tasks_seen[key] = (now, tasks)
    return tasks


def _task_instances(
    session: Session,
    operators: Sequence[str],
    permitted_dag_ids: Iterable[str],
    dag_id: str | None,
    since: datetime | None,
    until: datetime | None,
    only: TaskRef | None = None,
) -> Select:
    permitted = set(permitted_dag_ids)
    task_ids: dict[str, set[str]] = {}
    if only is not None:
        # One task instance, named in full (an extra link): found by its key, even in its first minute.
        if only.dag_id in permitted:
            task_ids[only.dag_id] = {only.task_id}
    else:
        for task_dag_id, task_id in operator_tasks(session, operators):
            if task_dag_id in permitted and (not dag_id or task_dag_id == dag_id):
                task_ids.setdefault(task_dag_id, set()).add(task_id)
    query = select(
        TaskInstance.dag_id,
        TaskInstance.run_id,
        TaskInstance.task_id,
        TaskInstance.map_index,
        TaskInstance.state,
        TaskInstance.start_date,
        TaskInstance.duration,
    ).where(
        or_(false(), *(and_(TaskInstance.dag_id == d, TaskInstance.task_id.in_(t)) for d, t in task_ids.items())),
        TaskInstance.operator.in_(operators),  # a task id may have been another operator's before
    )
    if since:
        query = query.where(TaskInstance.start_date >= since)
    if until:
        query = query.where(TaskInstance.start_date < until)
    return query


def _page(session: Session, query: Select, page: int, per_page: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    ordered = query.order_by(
        TaskInstance.start_date.is_(None), TaskInstance.start_date.desc(), TaskInstance.run_id.desc()
    )
    rows = session.execute(ordered.limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def _return_values(session: Session, refs: Sequence[TaskRef]) -> dict[TaskRef, Any]:
    """The ``return_value`` XCom of each of ``refs`` (one query for the whole page)."""
    if not refs:
        return {}
    wanted = set(refs)
    query = select(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index, XComModel.value).where(
        XComModel.key == RETURN_VALUE,
        XComModel.dag_id.in_({r.dag_id for r in refs}),
        XComModel.run_id.in_({r.run_id for r in refs}),
        XComModel.task_id.in_({r.task_id for r in refs}),
    )
    values = {}
    for dag_id, run_id, task_id, map_index, value in session.execute(query):
        ref = TaskRef(dag_id, run_id, task_id, map_index)
        if ref in wanted:
            values[ref] = _xcom_value(value)
    return values


def sweep_dag_ids(session: Session, permitted_dag_ids: Iterable[str]) -> list[str]:
    """The DAGs the user may read that have sweeps, for the DAG filter."""
    permitted = set(permitted_dag_ids)
    return sorted({dag_id for dag_id, _ in operator_tasks(session, SWEEP_OPERATORS) if dag_id in permitted})


def join_dag_ids(session: Session, permitted_dag_ids: Iterable[str]) -> list[str]:
    """The DAGs the user may read that have joins, for the DAG filter."""
    permitted = set(permitted_dag_ids)
    return sorted({dag_id for dag_id, _ in operator_tasks(session, JOIN_OPERATORS) if dag_id in permitted})


def list_sweeps(
    session: Session,
    permitted_dag_ids: Iterable[str],
    *,
    dag_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page:
    """The sweeps the user may see, newest first, one page of them."""
    query = _task_instances(session, SWEEP_OPERATORS, permitted_dag_ids, dag_id, since, until)
    found, total = _page(session, query, page, per_page)
    refs = [TaskRef(r.dag_id, r.run_id, r.task_id, r.map_index) for r in found]
    results = _return_values(session, refs)
    rows = []
    for ref, row in zip(refs, found, strict=True):
        result = results.get(ref)
        result = result if isinstance(result, Mapping) else {}
        raw_stats = result.get("stats")
        stats: Mapping[str, Any] = raw_stats if isinstance(raw_stats, Mapping) else {}
        rows.append(
            SweepRow(
                ref=ref,
                state=row.state,
                start_date=row.start_date,
                duration_s=row.duration,
                counts=counts_of(result) if result else {},
                retries=retries_of(stats),
                token_requests=stats.get("token_requests"),
            )
        )
    return Page(rows, total, page, per_page)


def _task_instance(session: Session, operators: Sequence[str], ref: TaskRef) -> Any:
    query = select(TaskInstance.state, TaskInstance.start_date, TaskInstance.duration).where(
        TaskInstance.operator.in_(operators),
        TaskInstance.dag_id == ref.dag_id,
        TaskInstance.run_id == ref.run_id,
        TaskInstance.task_id == ref.task_id,
        TaskInstance.map_index == ref.map_index,
    )
    return session.execute(query).first()


def sweep_detail(session: Session, ref: TaskRef) -> SweepDetail | None:
    """One sweep's run page, or ``None`` when no sweep task instance has that key."""
    found = _task_instance(session, SWEEP_OPERATORS, ref)
    if found is None:
        return None
    result = _return_values(session, [ref]).get(ref)
    result = result if isinstance(result, Mapping) else {}
    stats = result.get("stats")
    report = result.get("report")
    return SweepDetail(
        ref=ref,
        state=found.state,
        start_date=found.start_date,
        duration_s=found.duration,
        counts=counts_of(result) if result else {},
        sessions=sessions_of(result),
        stats=dict(stats) if isinstance(stats, Mapping) else {},
        duplicates=[str(d) for d in result.get("duplicates") or ()],
        report=str(report) if report else None,
    )


def list_joins(
    session: Session,
    permitted_dag_ids: Iterable[str],
    *,
    dag_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 25,
    only: TaskRef | None = None,
) -> Page:
    """The joins the user may see, newest first, with the branch each followed and its SecurityUser."""
    query = _task_instances(session, JOIN_OPERATORS, permitted_dag_ids, dag_id, since, until, only)
    if only is not None:
        query = query.where(TaskInstance.run_id == only.run_id, TaskInstance.map_index == only.map_index)
    found, total = _page(session, query, page, per_page)
    refs = [TaskRef(r.dag_id, r.run_id, r.task_id, r.map_index) for r in found]
    outcomes = _return_values(session, refs)
    rows = [
        JoinRow(
            ref=ref,
            state=row.state,
            start_date=row.start_date,
            outcome=outcomes[ref] if isinstance(outcomes.get(ref), Mapping) else None,
        )
        for ref, row in zip(refs, found, strict=True)
    ]
    _add_branches_and_agents(session, rows)
    return Page(rows, total, page, per_page)


def _add_branches_and_agents(session: Session, rows: list[JoinRow]) -> None:
    """Fill in the branch each join followed and the agent it joined as.

    Neither is in the join's XCom: the branch is read from the states of the join's direct downstream
    tasks (the ones not followed are skipped), the agent from the rendered ``security_user`` or, when
    that was left to its default, from the upstream ``SetSecurityUserOperator``'s XCom.
    """
    dags: dict[str, Any] = {}
    for dag_id in {row.ref.dag_id for row in rows}:
        dags[dag_id] = SerializedDagModel.get_dag(dag_id, session=session)
    upstream_setters: dict[TaskRef, list[str]] = {}
    for row in rows:
        dag = dags.get(row.ref.dag_id)
        if dag is None or not dag.has_task(row.ref.task_id):
            continue
        task = dag.get_task(row.ref.task_id)
        row.downstream = sorted(task.downstream_task_ids)
        upstream_setters[row.ref] = sorted(
            t.task_id for t in task.get_flat_relatives(upstream=True) if t.task_type in SECURITY_USER_OPERATORS
        )

    states = _states(session, rows)
    for row in rows:
        if row.state == "success":
            not_followed = ("skipped", "upstream_failed")
            row.branches_followed = [
                t for t in row.downstream if states.get((row.ref.dag_id, row.ref.run_id, t)) not in not_followed
            ]

    rendered = _rendered_security_users(session, rows)
    setter_refs = {
        row.ref: [TaskRef(row.ref.dag_id, row.ref.run_id, t) for t in upstream_setters.get(row.ref, [])]
        for row in rows
        if rendered.get(row.ref) is None
    }
    setter_values = _return_values(session, [ref for refs in setter_refs.values() for ref in refs])
    for row in rows:
        candidates = [rendered.get(row.ref)] + [setter_values.get(ref) for ref in setter_refs.get(row.ref, [])]
        row.agent_id = next((a for a in map(_agent_id, candidates) if a is not None), None)


def _states(session: Session, rows: Sequence[JoinRow]) -> dict[tuple[str, str, str], str | None]:
    """The state of each direct downstream task of ``rows``, by (DAG id, run id, task id)."""
    wanted = {(row.ref.dag_id, row.ref.run_id, t) for row in rows for t in row.downstream}
    if not wanted:
        return {}
    query = select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state).where(
        TaskInstance.dag_id.in_({w[0] for w in wanted}),
        TaskInstance.run_id.in_({w[1] for w in wanted}),
        TaskInstance.task_id.in_({w[2] for w in wanted}),
    )
    return {(dag_id, run_id, task_id): state for dag_id, run_id, task_id, state in session.execute(query)}


def _rendered_security_users(session: Session, rows: Sequence[JoinRow]) -> dict[TaskRef, Any]:
    if not rows:
        return {}
    refs = {row.ref for row in rows}
    query = select(
        RenderedTaskInstanceFields.dag_id,
        RenderedTaskInstanceFields.run_id,
        RenderedTaskInstanceFields.task_id,
        RenderedTaskInstanceFields.map_index,
        RenderedTaskInstanceFields.rendered_fields,
    ).where(
        RenderedTaskInstanceFields.dag_id.in_({r.dag_id for r in refs}),
        RenderedTaskInstanceFields.run_id.in_({r.run_id for r in refs}),
        RenderedTaskInstanceFields.task_id.in_({r.task_id for r in refs}),
    )
    found = {}
    for dag_id, run_id, task_id, map_index, fields in session.execute(query):
        ref = TaskRef(dag_id, run_id, task_id, map_index)
        if ref in refs and isinstance(fields, Mapping):
            value = fields.get("security_user")
            # Left to Studio's default ("SecurityUser" or nothing): the upstream SetSecurityUser's XCom says.
            found[ref] = None if value in ("", "None") or uses_default_security_user(value) else value
    return found


def _agent_id(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_security_user(value).agent_id
    except (InputRejected, ValueError, TypeError):
        return None


# --- downloads ---------------------------------------------------------------------------------------


def sessions_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The run page's sessions as CSV, text quoted and no cell readable as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(SESSION_COLUMNS)
    writer.writerows([csv_cell(row.get(column)) for column in SESSION_COLUMNS] for row in rows)
    return out.getvalue()
