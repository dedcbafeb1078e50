"""
### CXone QA sweep

A QA sweep checks every logged-in agent's live session in **one** task, then acts per result
condition with mapped tasks.

CXone's published join attaches the caller to *an agent's own* live session, so the sweep joins each
agent **as that agent** through the connection's access key, whose user needs impersonation for
every agent but its own (design: "What a join is").

1. **list_live_sessions** — `GET agents/states`, keeping the logged-in agents (every state but
   LoggedOut; optionally only `team_ids` / `agent_state_names`, without `exclude_agent_ids`). The rows
   carry no session id: each item is an agent, checked against its live session whatever its id.
2. **sweep** — joins them all through one HTTP session and one token, at most `max_concurrency` joins
   in flight (halved while CXone answers 429/503), and returns `{condition: [agent ids]}` with
   `live_sessions`, each Success agent's session.
3. Per condition, mapped tasks (an empty list skips the task), each over
   `outcomes_with(sweep, condition)` so every mapped task gets its own outcome: `review_live_session`
   (Success: the agent and its live session, for a QA reviewer), `note_ended_session`
   (InvalidAgentSession: the agent has no live session any more) and `retry_later` (Default). The
   conditions about who acts (InvalidSecurityUser, ImpersonateNotEnabled, InvalidAgentId) get one
   `alert_security_user` task, which skips when none occurred.
4. **report** — writes `qa_sweep_<run>.json` and `.csv` below `$AIRFLOW_HOME/cxone_reports` (in the
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
from airflow.sdk import DAG, Param, get_current_context, task

from cxone_provider.compat import AirflowFailException, AirflowSkipException
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator, outcomes_with
from cxone_provider.sweeps.report import csv_cell, read_report

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
CSV_COLUMNS = ("agent_id", "session_id", "condition", "status_code", "message", "attempts", "elapsed_s")

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


@task(map_index_template="{{ outcome.get('agent_id') or outcome['session_id'] }}")
def follow_up(outcome: dict[str, Any], action: str) -> dict[str, Any]:
    """Record one agent's outcome for a person or the next sweep to act on."""
    agent = outcome.get("agent_id")
    session = outcome.get("session_id") or "no live session"
    print(f"{action}: {outcome['condition']} for agent {agent} ({session}): {outcome.get('message') or 'joined'}")
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
    print(f"QA sweep of {len(outcomes)} agent session(s):\n{table}\nReports: {json_path}, {csv_path}")
    return {"json": str(json_path), "csv": str(csv_path), "counts": sweep["counts"]}


with DAG(
    dag_id="cxone_qa_sweep",
    description="Check every logged-in CXone agent's live session, each joined as its own agent, and act per condition",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["cxone", "example"],
    params={
        "team_ids": Param([], type="array", description="only these teams (empty: all)"),
        "agent_state_names": Param([], type="array", description="only agents in these states (empty: all)"),
        "exclude_agent_ids": Param([], type="array", description="leave these agents out"),
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
    # [START howto_operator_sweep]
    list_live_sessions = ListAgentSessionsOperator(
        task_id="list_live_sessions",
        team_ids="{{ params.team_ids }}",
        agent_state_names="{{ params.agent_state_names }}",
        exclude_agent_ids="{{ params.exclude_agent_ids }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
    )
    sweep = JoinAgentSessionsOperator(
        task_id="sweep", agents=list_live_sessions.output, cxone_conn_id="{{ params.cxone_conn_id }}"
    )

    # One mapped task per agent of a condition. Airflow maps only over a whole return value, hence
    # the small selecting tasks (outcomes_with) between the sweep and the mapped work.
    follow_ups = [
        follow_up.override(task_id=task_id).partial(action=task_id).expand(outcome=outcomes_with(sweep, condition))
        for condition, task_id in (
            (JoinCondition.SUCCESS, "review_live_session"),
            (JoinCondition.INVALID_AGENT_SESSION, "note_ended_session"),
            (JoinCondition.DEFAULT, "retry_later"),
        )
    ]
    alert = alert_security_user()
    # [END howto_operator_sweep]
    sweep >> alert
    [*follow_ups, alert] >> report(report_dir="{{ params.report_dir or '' }}")
