"""The example DAGs: they import cleanly and offline, and run end to end against the sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, fresh_dag

# One scenario per result condition: run conf, and the faults that make CXone misbehave.
SCENARIOS = {
    "Success": ({}, {}),
    "InvalidAgentSession": ({"session_id": "sess-2007"}, {}),
    "ImpersonateNotEnabled": ({"supervisor_agent_id": 1002}, {}),
    "InvalidSecurityUser": ({"join_as": 1003}, {}),
    "InvalidAgentId": ({"join_as": {"agent_id": 9999, "conn_id": "cxone_default"}}, {}),
    "Default": ({}, {"rate_503": 1.0, "path_filter": "agent-sessions/join"}),
}
BRANCH_OF = {
    "Success": "start_monitoring",
    "InvalidAgentSession": "report_invalid_session",
    "InvalidSecurityUser": "alert_security_user",
    "ImpersonateNotEnabled": "alert_impersonation_disabled",
    "InvalidAgentId": "alert_invalid_agent_id",
    "Default": "retry_later",
}


def test_every_dag_file_imports_offline_without_errors(tmp_path):
    """Parse dags/ through Airflow's DagBag with sockets disabled: no import error, no network."""
    script = textwrap.dedent(
        f"""
        import json, socket
        def refuse(*args, **kwargs):
            raise RuntimeError("network access while parsing DAGs")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(REPO / "dags")!r})
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": bag.import_errors}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert "cxone_supervised_session" in report["dags"]
    assert len(report["dags"]) == len(list((REPO / "dags").glob("*.py")))
    assert socket.socket.connect is not None  # the patch lived in the child only


@pytest.mark.parametrize("condition", list(SCENARIOS))
def test_supervised_session_routes_each_condition(airflow_db, cxone_sandbox, tmp_path, condition):
    conf, faults = SCENARIOS[condition]
    if faults:
        cxone_sandbox.set_faults(**faults)
    audit_log = tmp_path / "audit.jsonl"
    run = fresh_dag("cxone_supervised_session", "cxone_supervised_session").test(
        run_conf={**conf, "audit_log": str(audit_log)}
    )
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}

    followed = BRANCH_OF[condition]
    expected = {task_id: "skipped" for task_id in BRANCH_OF.values()}
    expected.update(
        {followed: "success", "set_security_user": "success", "join_agent_session": "success", "finish": "success"}
    )
    assert states == expected
    assert run.state == "success"

    outcome = run.get_task_instance("join_agent_session").xcom_pull(task_ids="join_agent_session")
    assert outcome["condition"] == condition
    state = cxone_sandbox.state()
    if condition == "Success":
        assert [a for a in state["supervise_actions"] if a["action"] == "monitor"]
        assert not audit_log.exists()
    else:
        (record,) = [json.loads(line) for line in audit_log.read_text().splitlines()]
        assert record["condition"] == condition
        assert record["action"] == followed
        assert not state["supervise_actions"]
    if condition == "Default":
        assert outcome["attempts"] == 6
        assert "gave up after 6 attempts" in outcome["message"]
