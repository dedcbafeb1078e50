"""
### CXone supervised session

A supervisor joins their own live agent session and monitors an agent from it, the way a Studio
script runs *SetSecurityUser* then *Join Agent Session* and follows the result branch.

CXone's published join attaches the caller to **its own** live session (`asAgentId`) and answers that
session's id: Studio's SessionId is the SecurityUser's login session, and the join is Success when the
supervisor's live session is the one asked for. Supervising then happens from that session
(`agent-sessions/{supervisor's session}/monitor?targetAgentId=…`).

1. **set_security_user** checks that the supervisor (`supervisor_agent_id`) is an active CXone agent
   and returns the SecurityUser (no token, no secret: XCom is plain text).
   **wait_for_agent** (optional, off unless `wait_for_agent_id` is set) waits, deferred in Airflow's
   triggerer, until that agent is logged in (any state but LoggedOut; at most `WAIT_TIMEOUT`), and
   returns the agent's state row; that agent is then the one monitored instead of `agent_id`.
   Left off, it is skipped at once.
2. **join_agent_session** joins the supervisor's session `session_id` as that SecurityUser and
   follows one branch per result condition:

| condition | task | what it does |
|---|---|---|
| Success | `start_monitoring` | monitors the agent (`agent_id`) from the supervisor's session (supervise call) |
| InvalidAgentSession | `report_invalid_session` | records that `session_id` is not the supervisor's live session |
| InvalidSecurityUser | `alert_security_user` | alerts: the SecurityUser cannot act (inactive, not authenticated) |
| ImpersonateNotEnabled | `alert_impersonation_disabled` | alerts: the connection's key may not act as the supervisor |
| InvalidAgentId | `alert_invalid_agent_id` | alerts: the SecurityUser's agent id is not valid |
| Default | `retry_later` | anything else (CXone throttled or unreachable after retries): records it for a later run |

   **watch_session** (optional, off unless `watch_session` is true) follows the supervisor's session
   after the monitor starts: it polls the session's events (`get-next-event`), which keeps the joined
   session alive, deferred in Airflow's triggerer, until the session ends (at most `WATCH_TIMEOUT`;
   then it is skipped), and returns the end event.
3. **finish** runs after whichever branch ran (`none_failed_min_one_success`) and logs the outcome.

Records go to a JSON-lines file below `$AIRFLOW_HOME/cxone_audit`: `audit.jsonl`, or the name the
`audit_log` param gives; swap `record_outcome` for your alerting (a Slack or email notifier).

Params: `supervisor_agent_id`, `session_id` (the supervisor's own session), `agent_id` (the agent to
monitor), `cxone_conn_id`, `audit_log`, `join_as` — an optional stored SecurityUser (a mapping or an
agent id) to join as instead of the one set by `set_security_user` — and `wait_for_agent_id`, an
agent to wait for and then monitor (empty: no wait), and `watch_session`, to follow the session until
it ends.

Whoever triggers a run chooses the params, so none of them can reach further than this file allows:
`cxone_conn_id` is one of `CXONE_CONN_IDS` (edit the list to add yours) and every call of the run,
the join included, uses it (a `conn_id` inside `join_as` must be on the list too, and is not used);
`audit_log` is only a name below `AUDIT_BASE` — an absolute path, `..` or a link out of it fails the
task that would write the record.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from cxone_provider.compat import AirflowFailException, AirflowSkipException
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.security_user import SetSecurityUserOperator
from cxone_provider.sensors.agent_state import AgentStateSensor
from cxone_provider.sensors.session_events import AgentSessionEventSensor

#: the task each result condition routes to
BRANCH_TASKS = {
    JoinCondition.SUCCESS: "start_monitoring",
    JoinCondition.INVALID_AGENT_SESSION: "report_invalid_session",
    JoinCondition.INVALID_SECURITY_USER: "alert_security_user",
    JoinCondition.IMPERSONATE_NOT_ENABLED: "alert_impersonation_disabled",
    JoinCondition.INVALID_AGENT_ID: "alert_invalid_agent_id",
    JoinCondition.DEFAULT: "retry_later",
}

#: The connections a run may use: the `cxone_conn_id` param offers these and nothing else.
CXONE_CONN_IDS = ("cxone_default",)

#: Where the audit log goes, set here and not by a param: the worker appends below this folder only.
AUDIT_BASE = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "cxone_audit"
DEFAULT_AUDIT_LOG = "audit.jsonl"

#: How long the optional wait for the agent, and the optional watch of the session, may last: a shift.
WAIT_TIMEOUT = timedelta(hours=8)
WATCH_TIMEOUT = timedelta(hours=8)

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


def skip_unless_waiting(context: Any) -> None:
    """The wait step is a param's choice: without ``wait_for_agent_id`` there is nothing to wait for."""
    if context["params"].get("wait_for_agent_id") is None:
        raise AirflowSkipException("no wait_for_agent_id given: monitoring agent_id without waiting")


def skip_unless_watching(context: Any) -> None:
    """Following the session is a param's choice: it holds the session open until it ends."""
    if not context["params"].get("watch_session"):
        raise AirflowSkipException("watch_session is off: the session is not followed")


@task
def start_monitoring(outcome: dict[str, Any], agent_id: int | str, cxone_conn_id: str) -> dict[str, Any]:
    """Success: monitor ``agent_id`` from the supervisor's joined session (``agent-sessions/{id}/monitor``)."""
    session_id = outcome["session_id"]
    with CxoneHook(cxone_conn_id) as hook:
        hook.monitor(session_id, target_agent_id=int(agent_id))
    return {"monitoring_agent_id": int(agent_id), "session_id": session_id}


@task
def record_outcome(outcome: dict[str, Any], action: str, audit_log: str | None = None) -> dict[str, Any]:
    """Append the outcome to the audit log (JSON lines) and log it as a warning."""
    context = get_current_context()
    path = path_below(AUDIT_BASE, audit_log or DEFAULT_AUDIT_LOG, "audit_log")
    record = {
        "action": action,
        "dag_run": context["run_id"],
        "recorded_at": pendulum.now("UTC").to_iso8601_string(),
        **outcome,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(record) + "\n")
    print(f"{action}: {outcome['condition']} for session {outcome['session_id']!r}: {outcome['message']}")
    return record


@task(trigger_rule="none_failed_min_one_success")
def finish() -> str:
    """Runs after whichever branch ran; the one place to hang follow-up work on."""
    # Pulled rather than passed: an argument would make finish a direct downstream of the join,
    # and the join skips every direct downstream task it does not follow.
    outcome = get_current_context()["ti"].xcom_pull(task_ids="join_agent_session")
    summary = f"session {outcome['session_id']!r}: {outcome['condition']} after {outcome['attempts']} attempt(s)"
    print(summary)
    return summary


with DAG(
    dag_id="cxone_supervised_session",
    description="Join the supervisor's CXone session, monitor an agent from it, and act on the result condition",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["cxone", "example"],
    params={
        "supervisor_agent_id": Param(1001, type="integer", minimum=1, description="the SecurityUser's agent"),
        "session_id": Param("sess-1001", type="string", description="the supervisor's own live session"),
        "agent_id": Param(2001, type="integer", minimum=1, description="the agent to monitor"),
        "cxone_conn_id": Param(
            CXONE_CONN_IDS[0], type="string", enum=list(CXONE_CONN_IDS), description="the cxone connection"
        ),
        "join_as": Param(
            None,
            type=["null", "integer", "string", "object"],
            # Checked early for the mapping form; the join uses cxone_conn_id whatever join_as says.
            properties={"conn_id": {"type": ["null", "string"], "enum": [None, *CXONE_CONN_IDS]}},
            description="optional stored SecurityUser",
        ),
        "audit_log": Param(
            None,
            type=["null", "string"],
            description="a JSON-lines file below $AIRFLOW_HOME/cxone_audit (a name: not absolute, no '..')",
        ),
        "wait_for_agent_id": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="optional: wait until this agent is logged in, then monitor them instead of agent_id",
        ),
        "watch_session": Param(
            False, type="boolean", description="follow the supervisor's session (keeping it alive) until it ends"
        ),
    },
) as dag:
    # [START howto_operator_set_security_user]
    set_security_user = SetSecurityUserOperator(
        task_id="set_security_user",
        agent_id="{{ params.supervisor_agent_id }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
    )
    # [END howto_operator_set_security_user]

    # Off unless the run names an agent: then it waits in the triggerer, holding no worker slot.
    # [START howto_sensor_agent_state]
    wait_for_agent = AgentStateSensor(
        task_id="wait_for_agent",
        agent_id="{{ params.wait_for_agent_id }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
        poll_interval=30,
        timeout=WAIT_TIMEOUT,
        deferrable=True,
        pre_execute=skip_unless_waiting,
    )
    # [END howto_sensor_agent_state]

    # [START howto_operator_join_agent_session]
    join_agent_session = JoinAgentSessionOperator(
        task_id="join_agent_session",
        # The supervisor's own live session: CXone's join attaches the SecurityUser to its own session.
        session_id="{{ params.session_id }}",
        # "SecurityUser" is Studio's default: the nearest upstream SetSecurityUser's return value.
        security_user="{{ params.join_as if params.join_as is not none else 'SecurityUser' }}",
        branches=BRANCH_TASKS,
        # The run's connection, always: a conn_id inside join_as would otherwise pick any connection.
        cxone_conn_id="{{ params.cxone_conn_id }}",
        # Runs after a wait that was skipped (switched off) as after one that succeeded.
        trigger_rule="none_failed",
    )
    # [END howto_operator_join_agent_session]
    # The join's outcome mapping, resolved from XCom when each branch task runs.
    outcome: Any = join_agent_session.output
    audit_log = "{{ params.audit_log or '' }}"

    monitoring = start_monitoring(
        outcome,
        agent_id="{{ params.wait_for_agent_id or params.agent_id }}",
        cxone_conn_id="{{ params.cxone_conn_id }}",
    )
    branch_tasks = [
        monitoring,
        *[
            record_outcome.override(task_id=task_id)(outcome, action=task_id, audit_log=audit_log)
            for condition, task_id in BRANCH_TASKS.items()
            if condition is not JoinCondition.SUCCESS
        ],
    ]
    # Off unless the run asks: polls the supervisor's session in the triggerer until it ends.
    # [START howto_sensor_agent_session_event]
    watch_session = AgentSessionEventSensor(
        task_id="watch_session",
        session_id="{{ ti.xcom_pull(task_ids='join_agent_session')['session_id'] }}",
        event_types=["AgentSessionEnd"],
        cxone_conn_id="{{ params.cxone_conn_id }}",
        timeout=WATCH_TIMEOUT,
        soft_fail=True,
        deferrable=True,
        pre_execute=skip_unless_watching,
    )
    # [END howto_sensor_agent_session_event]
    done = finish()
    [set_security_user, wait_for_agent] >> join_agent_session >> branch_tasks >> done
    monitoring >> watch_session >> done
