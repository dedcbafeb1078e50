"""
### CXone QA sweep

A QA supervisor joins every live agent session of the contact centre in **one** task, then acts per
result condition with mapped tasks.

1. **set_security_user** — the QA supervisor (`qa_agent_id`) must be an active CXone agent.
2. **list_live_sessions** — `GET agents/states`, keeping agents with a live session (optionally only
   `team_ids` / `agent_state_names`; the supervisor's own session is left out).
3. **sweep** — joins them all through one HTTP session and one token, at most `max_concurrency` joins
   in flight (halved while CXone answers 429/503), and returns `{condition: [session ids]}`.
4. Per condition, mapped tasks (an empty list skips the task): `monitor_agent` (Success: start
   monitoring the session's agent, paired with it by `joined_agents` from the listing),
   `note_ended_session` (InvalidAgentSession) and `retry_later` (Default), each over
   `outcomes_with(sweep, condition)` so every mapped task gets its own outcome. The SecurityUser
   conditions (InvalidSecurityUser, ImpersonateNotEnabled, InvalidAgentId) hit every session alike, so
   one `alert_security_user` task handles them, and skips when none occurred.
5. **report** — writes `qa_sweep_<run>.json` and `.csv` below `$AIRFLOW_HOME/cxone_reports` (in the
   sub-folder `report_dir` names, if any) and logs a table of counts per condition.

Whoever triggers a run chooses the params, so none of them can reach further than this file allows:
`cxone_conn_id` is one of `CXONE_CONN_IDS` (edit the list to add yours), and `report_dir` is only a
name below `REPORTS_BASE` — an absolute path, `..` or a link out of it fails the `report` task. CSV
cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
return, also after leading white space or a zero-width character, or in full-width form, U+FF1D and kin)
are written with a leading `'`, as OWASP's CSV-injection guidance says (`csv_cell` of the provider).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, XComArg, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cxone_provider.conditions import JoinCondition
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.report import csv_cell, read_report
from cxone_provider.operators.security_user import SetSecurityUserOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator, outcomes_with

SECURITY_USER_CONDITIONS = (
    JoinCondition.INVALID_SECURITY_USER,
    JoinCondition.IMPERSONATE_NOT_ENABLED,
    JoinCondition.INVALID_AGENT_ID,
)

#: The connections a run may use: the `cxone_conn_id` param offers these and nothing else.
CXONE_CONN_IDS = ("cxone_default",)

#: Where reports go, set here and not by a param: the worker writes below this folder only.
REPORTS_BASE = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "cxone_reports"

#: Report columns, in order.
CSV_COLUMNS = ("session_id", "condition", "status_code", "message", "attempts", "elapsed_s")

_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def path_below(base: Path, name: str | None, param: str) -> Path:
    """``base / name`` (``base`` when ``name`` is empty); any ``name`` that could leave ``base`` fails the task.

    A name is parts of letters, digits, ``.``, ``_`` and ``-`` joined by ``/``, none starting with a dot:
    no absolute path, no ``..``, no ``~``. Links are resolved before the last check, so a link inside
    ``base`` cannot lead out of it either.
    """
    if not name:
        return base
    if os.path.isabs(name) or name.startswith(("/", "\\", "~")):
        problem = "an absolute path (or '~') is not allowed"
    elif ".." in re.split(r"[/\\]", name):
        problem = "'..' is not allowed"
    elif not all(_NAME_PART.fullmatch(part) for part in name.split("/")):
        problem = "use letters, digits, '.', '_' and '-', parts joined by '/', none starting with '.'"
    else:
        path = base.joinpath(*name.split("/"))
        real_base = os.path.realpath(base)
        if os.path.commonpath([real_base, os.path.realpath(path)]) == real_base:
            return path
        problem = "it leads out of the folder through a link"
    raise AirflowFailException(f"param {param} {name!r} is refused: {problem}; it must be a name below {base}")


def write_csv(path: Path, outcomes: list[dict[str, Any]]) -> None:
    """One row per outcome, every text cell quoted and none readable as a formula."""
    with path.open("w", newline="", encoding="utf-8") as csv_file:
        writer = csv.writer(csv_file, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([csv_cell(outcome.get(column)) for column in CSV_COLUMNS] for outcome in outcomes)


@task
def joined_agents(sweep: dict[str, Any], sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair each joined session with its agent, from the listing: one lookup for the whole sweep."""
    agent_of = {s["session_id"]: s["agent_id"] for s in sessions}
    return [{"session_id": s, "agent_id": agent_of[s]} for s in sweep[JoinCondition.SUCCESS.value] if s in agent_of]


@task(map_index_template="{{ session_id }}")
def monitor_agent(session_id: str, agent_id: int, cxone_conn_id: str) -> dict[str, Any]:
    """Success: start monitoring the agent of the joined session."""
    with CxoneHook(cxone_conn_id) as hook:
        hook.monitor(session_id, target_agent_id=agent_id)
    return {"session_id": session_id, "monitoring_agent_id": agent_id}


@task(map_index_template="{{ outcome['session_id'] }}")
def follow_up(outcome: dict[str, Any], action: str) -> dict[str, Any]:
    """Record a session the sweep could not supervise, for the next sweep or a person to look at."""
    print(f"{action}: {outcome['condition']} for session {outcome['session_id']!r}: {outcome['message']}")
    return {"action": action, **outcome}


@task
def alert_security_user() -> list[str]:
    """One alert when the SecurityUser itself was refused: every session fails the same way."""
    sweep = get_current_context()["ti"].xcom_pull(task_ids="sweep")
    hit = [c.value for c in SECURITY_USER_CONDITIONS if sweep[c.value]]
    if not hit:
        raise AirflowSkipException("the SecurityUser was accepted")
    first = next(o for o in sweep["outcomes"] if o["condition"] in hit)
    print(f"ALERT: the sweep's SecurityUser was refused ({', '.join(hit)}): {first['message']}")
    return hit


@task(trigger_rule="none_failed")
def report(report_dir: str | None = None) -> dict[str, Any]:
    """Write the sweep's per-session outcomes as JSON and CSV, and log the counts per condition."""
    context = get_current_context()
    directory = path_below(REPORTS_BASE, report_dir, "report_dir")
    sweep = context["ti"].xcom_pull(task_ids="sweep")
    directory.mkdir(parents=True, exist_ok=True)
    stem = "qa_sweep_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", context["run_id"])
    json_path, csv_path = directory / f"{stem}.json", directory / f"{stem}.csv"
    # The XCom lists Success sessions by id only; the sweep's own report has every session's outcome.
    outcomes = read_report(sweep)
    json_path.write_text(json.dumps({**sweep, "outcomes": outcomes}, indent=2), encoding="utf-8")
    write_csv(csv_path, outcomes)
    width = max(len(c.value) for c in JoinCondition)
    table = "\n".join(f"  {c.value:<{width}}  {sweep['counts'][c.value]:>6}" for c in JoinCondition)
    print(f"QA sweep of {len(outcomes)} session(s):\n{table}\nReports: {json_path}, {csv_path}")
    return {"json": str(json_path), "csv": str(csv_path), "counts": sweep["counts"]}


with DAG(
    dag_id="cxone_qa_sweep",
    description="Join every live CXone agent session as the QA supervisor and act per result condition",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["cxone", "example"],
    params={
        "qa_agent_id": Param(1001, type="integer", minimum=1, description="the QA supervisor's agent"),
        "team_ids": Param([], type="array", description="only these teams (empty: all)"),
        "agent_state_names": Param([], type="array", description="only agents in these states (empty: all)"),
        "cxone_conn_id": Param(
            CXONE_CONN_IDS[0], type="string", enum=list(CXONE_CONN_IDS), description="the cxone connection"
        ),
        "report_dir": Param(
            None,
            type=["null", "string"],
            description="a sub-folder of $AIRFLOW_HOME/cxone_reports for the reports (a name: not absolute, no '..')",
        ),
    },
) as dag:
    set_security_user = SetSecurityUserOperator(
        task_id="set_security_user",
        agent_id="{{ params.qa_agent_id }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
    )
    list_live_sessions = ListAgentSessionsOperator(
        task_id="list_live_sessions",
        team_ids="{{ params.team_ids }}",
        agent_state_names="{{ params.agent_state_names }}",
        exclude_agent_ids="{{ [params.qa_agent_id] }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
    )
    # security_user left out: the SecurityUser of set_security_user, upstream.
    sweep = JoinAgentSessionsOperator(task_id="sweep", session_ids=list_live_sessions.output)
    set_security_user >> list_live_sessions

    # One mapped task per session of a condition. Airflow maps only over a whole return value, hence
    # the small selecting tasks (joined_agents, outcomes_with) between the sweep and the mapped work.
    results: Any = sweep.output
    listed_sessions: Any = XComArg(list_live_sessions, key="sessions")
    follow_ups = [
        monitor_agent.partial(cxone_conn_id="{{ params.cxone_conn_id }}").expand_kwargs(
            joined_agents(results, listed_sessions)
        ),
        follow_up.override(task_id="note_ended_session")
        .partial(action="note_ended_session")
        .expand(outcome=outcomes_with(sweep, JoinCondition.INVALID_AGENT_SESSION)),
        follow_up.override(task_id="retry_later")
        .partial(action="retry_later")
        .expand(outcome=outcomes_with(sweep, JoinCondition.DEFAULT)),
    ]
    alert = alert_security_user()
    sweep >> alert
    [*follow_ups, alert] >> report(report_dir="{{ params.report_dir or '' }}")
