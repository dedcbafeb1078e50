"""What the CXone pages show, read from Airflow's metadata DB in the api-server.

Sweeps are the task instances whose result carries a sweep's marker (:mod:`cxone_provider.sweeps.result`);
joins, the ones that ran ``JoinAgentSessionOperator``. Every read of Airflow itself goes through
:mod:`.airflow_access`; results are read through :mod:`cxone_provider.sweeps.result`. Every query takes
the set of DAG ids the user may read and never returns a row outside it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.conditions import CONDITION_TABLE, InputRejected, JoinCondition, in_display_order
from cxone_provider.domain.security_user import parse_security_user, uses_default_security_user
from cxone_provider.sweeps import result as sweep_result
from cxone_provider.sweeps.report import csv_cell
from cxone_provider.ui import airflow_access as airflow
from cxone_provider.ui.airflow_access import TaskRef as TaskRef

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

JOIN_OPERATORS = ("JoinAgentSessionOperator",)
SECURITY_USER_OPERATORS = ("SetSecurityUserOperator",)
#: Text every sweep result's JSON holds: the marker, or (a result written before it) ``duplicates``.
SWEEP_NEEDLES = ("cxone.sweep/", "duplicates")

#: The order conditions are shown in, everywhere (the table's display order): the good news first,
#: then what a person acts on.
CONDITIONS: tuple[str, ...] = tuple(row.studio_name for row in in_display_order(CONDITION_TABLE))

#: One colour per condition, used by the charts, the badges and the table headers alike.
CONDITION_COLOURS: dict[str, str] = {row.studio_name: row.colour for row in CONDITION_TABLE}

#: The columns of a run page's CSV and JSON downloads, in order.
SESSION_COLUMNS = ("agent_id", "session_id", "condition", "status_code", "message", "attempts", "elapsed_s")


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
    return sweep_result.counts_of(result, CONDITIONS)


def sessions_of(result: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each condition's sessions with whatever the XCom knows of them.

    ``outcomes`` may hold every session or only the ones that did not succeed (large sweeps keep
    Success as ids only): a session listed under its condition but missing from ``outcomes`` is shown
    with its id alone.
    """
    return {condition: sweep_result.outcomes_of(result, condition) for condition in CONDITIONS}


retries_of = sweep_result.retries_of


def is_sweep_result(value: object) -> bool:
    """A sweep's result: it carries the marker, or (written before the marker) a sweep result's keys."""
    if sweep_result.is_sweep_result(value):
        return True
    legacy_keys = {*CONDITIONS, "counts", "stats", "duplicates", "outcomes"}
    return isinstance(value, Mapping) and legacy_keys <= value.keys()


# --- queries -----------------------------------------------------------------------------------------


def _sweep_tasks(session: Session) -> frozenset[tuple[str, str]]:
    return airflow.sweep_tasks(session, is_sweep_result, SWEEP_NEEDLES)


def _permitted_tasks(
    found: Iterable[tuple[str, str]], permitted_dag_ids: Iterable[str], dag_id: str | None
) -> dict[str, set[str]]:
    permitted = set(permitted_dag_ids)
    tasks: dict[str, set[str]] = {}
    for task_dag_id, task_id in found:
        if task_dag_id in permitted and (not dag_id or task_dag_id == dag_id):
            tasks.setdefault(task_dag_id, set()).add(task_id)
    return tasks


def _sweep_result(value: Any) -> Mapping[str, Any]:
    """A sweep task's return value as its result; ``{}`` when it has none (not finished, or failed)."""
    return value if isinstance(value, Mapping) else {}


def sweep_dag_ids(session: Session, permitted_dag_ids: Iterable[str]) -> list[str]:
    """The DAGs the user may read that have sweeps, for the DAG filter."""
    return sorted(_permitted_tasks(_sweep_tasks(session), permitted_dag_ids, None))


def join_dag_ids(session: Session, permitted_dag_ids: Iterable[str]) -> list[str]:
    """The DAGs the user may read that have joins, for the DAG filter."""
    return sorted(_permitted_tasks(airflow.operator_tasks(session, JOIN_OPERATORS), permitted_dag_ids, None))


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
    tasks = _permitted_tasks(_sweep_tasks(session), permitted_dag_ids, dag_id)
    found, total = airflow.page_of(session, airflow.task_instances(tasks, since=since, until=until), page, per_page)
    results = airflow.return_values(session, [row.ref for row in found])
    rows = []
    for row in found:
        result = _sweep_result(results.get(row.ref))
        raw_stats = result.get("stats")
        stats: Mapping[str, Any] = raw_stats if isinstance(raw_stats, Mapping) else {}
        rows.append(
            SweepRow(
                ref=row.ref,
                state=row.state,
                start_date=row.start_date,
                duration_s=row.duration_s,
                counts=counts_of(result) if result else {},
                retries=retries_of(stats),
                token_requests=stats.get("token_requests"),
            )
        )
    return Page(rows, total, page, per_page)


def sweep_detail(session: Session, ref: TaskRef) -> SweepDetail | None:
    """One sweep's run page, or ``None`` when no sweep task instance has that key.

    A task instance is a sweep's when its result carries the marker, or when its task's results do
    (it may have none yet: running, or failed).
    """
    found = airflow.task_instance(session, ref)
    if found is None:
        return None
    value = airflow.return_values(session, [ref]).get(ref)
    # Its own marker finds a sweep at once, even in the minute before the lists learn of its task.
    if not is_sweep_result(value) and (ref.dag_id, ref.task_id) not in _sweep_tasks(session):
        return None
    result = _sweep_result(value)
    stats = result.get("stats")
    report = result.get("report")
    return SweepDetail(
        ref=ref,
        state=found.state,
        start_date=found.start_date,
        duration_s=found.duration_s,
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
    if only is not None:
        # One task instance, named in full (an extra link): found by its key, even in its first minute.
        tasks = {only.dag_id: {only.task_id}} if only.dag_id in set(permitted_dag_ids) else {}
    else:
        tasks = _permitted_tasks(airflow.operator_tasks(session, JOIN_OPERATORS), permitted_dag_ids, dag_id)
    query = airflow.task_instances(tasks, since=since, until=until, operators=JOIN_OPERATORS, only=only)
    found, total = airflow.page_of(session, query, page, per_page)
    outcomes = airflow.return_values(session, [row.ref for row in found])
    rows = [
        JoinRow(
            ref=row.ref,
            state=row.state,
            start_date=row.start_date,
            outcome=outcomes[row.ref] if isinstance(outcomes.get(row.ref), Mapping) else None,
        )
        for row in found
    ]
    _add_branches_and_agents(session, rows)
    return Page(rows, total, page, per_page)


def _add_branches_and_agents(session: Session, rows: list[JoinRow]) -> None:
    """Fill in the branch each join followed and the agent it joined as.

    Neither is in the join's XCom: the branch is read from the states of the join's direct downstream
    tasks (the ones not followed are skipped), the agent from the rendered ``security_user`` or, when
    that was left to its default, from the upstream ``SetSecurityUserOperator``'s XCom.
    """
    links = airflow.task_links(session, {(r.ref.dag_id, r.ref.task_id) for r in rows}, SECURITY_USER_OPERATORS)
    upstream_setters: dict[TaskRef, list[str]] = {}
    for row in rows:
        found = links.get((row.ref.dag_id, row.ref.task_id))
        if found is not None:
            row.downstream = found.downstream
            upstream_setters[row.ref] = found.upstream_of_type

    states = airflow.states(session, {(row.ref.dag_id, row.ref.run_id, t) for row in rows for t in row.downstream})
    for row in rows:
        if row.state == "success":
            not_followed = ("skipped", "upstream_failed")
            row.branches_followed = [
                t for t in row.downstream if states.get((row.ref.dag_id, row.ref.run_id, t)) not in not_followed
            ]

    rendered = {
        ref: None if value in ("", "None") or uses_default_security_user(value) else value
        # Left to Studio's default ("SecurityUser" or nothing): the upstream SetSecurityUser's XCom says.
        for ref, value in airflow.rendered_field(session, {row.ref for row in rows}, "security_user").items()
    }
    setter_refs = {
        row.ref: [TaskRef(row.ref.dag_id, row.ref.run_id, t) for t in upstream_setters.get(row.ref, [])]
        for row in rows
        if rendered.get(row.ref) is None
    }
    setter_values = airflow.return_values(session, [ref for refs in setter_refs.values() for ref in refs])
    for row in rows:
        candidates = [rendered.get(row.ref)] + [setter_values.get(ref) for ref in setter_refs.get(row.ref, [])]
        row.agent_id = next((a for a in map(_agent_id, candidates) if a is not None), None)


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
