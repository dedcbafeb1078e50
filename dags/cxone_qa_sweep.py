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
5. **report** — writes `qa_sweep_<run>.json` and `.csv` to `report_dir` (default
   `$AIRFLOW_HOME/cxone_reports`) and logs a table of counts per condition.
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
from airflow.sdk.exceptions import AirflowSkipException

from cxone_provider.conditions import JoinCondition
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.security_user import SetSecurityUserOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator, outcomes_with

SECURITY_USER_CONDITIONS = (
    JoinCondition.INVALID_SECURITY_USER,
    JoinCondition.IMPERSONATE_NOT_ENABLED,
    JoinCondition.INVALID_AGENT_ID,
)


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
    sweep = context["ti"].xcom_pull(task_ids="sweep")
    directory = Path(report_dir or os.path.join(os.environ.get("AIRFLOW_HOME", "."), "cxone_reports"))
    directory.mkdir(parents=True, exist_ok=True)
    stem = "qa_sweep_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", context["run_id"])
    json_path, csv_path = directory / f"{stem}.json", directory / f"{stem}.csv"
    json_path.write_text(json.dumps(sweep, indent=2), encoding="utf-8")
    columns = ["session_id", "condition", "status_code", "message", "attempts", "elapsed_s"]
    with csv_path.open("w", newline="", encoding="utf-8") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sweep["outcomes"])
    width = max(len(c.value) for c in JoinCondition)
    table = "\n".join(f"  {c.value:<{width}}  {sweep['counts'][c.value]:>6}" for c in JoinCondition)
    print(f"QA sweep of {len(sweep['outcomes'])} session(s):\n{table}\nReports: {json_path}, {csv_path}")
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
        "cxone_conn_id": Param("cxone_default", type="string"),
        "report_dir": Param(None, type=["null", "string"], description="where the JSON and CSV reports go"),
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
