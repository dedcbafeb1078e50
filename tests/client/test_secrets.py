"""No secret and no token reaches anything Airflow keeps: logs, XCom, rendered fields, errors.

``dag.test()`` prints task logs to the console and writes no log files; the task log files of a real
deployment are scanned in ``tests/e2e``.

Both example DAGs, a failing route, a refused access key and an unknown agent run against a sandbox
whose secrets are distinctive; then everything Airflow stored is scanned. The sandbox's tokens carry
the prefixes ``sbx-at-``/``sbx-rt-`` and its id_tokens a fixed header, so any issued token is found
without knowing its value.
"""

from __future__ import annotations

import json

import pytest
from conftest import fresh_dag, reads_task_output

from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer
from cxone_sandbox import default_seed
from cxone_sandbox.state import ACCESS_TOKEN_PREFIX, ID_TOKEN_HEADER, REFRESH_TOKEN_PREFIX

ACCESS_KEY_SECRET = "AKS-distinctive-5f1e9c77"
CLIENT_SECRET = "CLS-distinctive-a83d2014"
WRONG_SECRET = "WRONG-distinctive-0b7e31"
NEEDLES = (ACCESS_KEY_SECRET, CLIENT_SECRET, WRONG_SECRET, ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, ID_TOKEN_HEADER)


@pytest.fixture(scope="module")
def secret_sandbox():
    seed = default_seed()
    seed["applications"][0]["client_secret"] = CLIENT_SECRET
    for user in seed["users"]:
        if user["access_key_id"] == "SANDBOX-QA-KEY":
            user["access_key_secret"] = ACCESS_KEY_SECRET
    # The example DAGs still join agents' sessions by id and list them from rows' sessionId: the
    # sandbox's extensions, until they move onto the published join.
    with SandboxServer(seed=seed, faults=LEGACY_EXTENSIONS) as server:
        yield server


@pytest.fixture
def everything_run(airflow_db, secret_sandbox, monkeypatch, tmp_path, capfd):
    """Run the example DAGs and some failures; return (console output, runs)."""
    name, value = secret_sandbox.connection_env()
    monkeypatch.setenv(name, value)
    wrong = secret_sandbox.connection()
    wrong["password"] = WRONG_SECRET

    supervised = "cxone_supervised_session"
    # The example DAGs write below their own base folders: a name unique to this test in each.
    audit_log, report_dir = f"{tmp_path.name}.jsonl", tmp_path.name
    runs = {
        "success": fresh_dag(supervised, supervised).test(run_conf={"audit_log": audit_log}),
        "ended": fresh_dag(supervised, supervised).test(run_conf={"session_id": "sess-2007", "audit_log": audit_log}),
        "unknown_agent": fresh_dag(supervised, supervised).test(run_conf={"supervisor_agent_id": 9999}),
        "route_fails": fresh_dag("cxone_test_dags", "t_rule_3").test(run_conf={"session_id": "sess-2007"}),
        "sweep": fresh_dag("cxone_qa_sweep", "cxone_qa_sweep").test(run_conf={"report_dir": report_dir}),
    }
    # A run may only use the connections its DAG lists: the refused key is cxone_default's, for one run.
    monkeypatch.setenv(name, json.dumps(wrong))
    runs["refused_key"] = fresh_dag(supervised, supervised).test()
    monkeypatch.setenv(name, value)
    return "".join(capfd.readouterr()), runs


def _reports(tmp_path) -> str:
    """The audit log and the sweep's reports the runs above wrote, below the example DAGs' bases."""
    from cxone_qa_sweep import REPORTS_BASE
    from cxone_supervised_session import AUDIT_BASE

    files = [AUDIT_BASE / f"{tmp_path.name}.jsonl", *(REPORTS_BASE / tmp_path.name).glob("*")]
    assert len(files) == 3, files
    return "\n".join(path.read_text() for path in files)


def _stored_rows() -> tuple[str, str]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = [(x.task_id, x.key, x.value) for x in session.scalars(select(XComModel))]
        rendered = [r.rendered_fields for r in session.scalars(select(RenderedTaskInstanceFields))]
    return json.dumps(xcoms, default=str), json.dumps(rendered, default=str)


@reads_task_output
def test_nothing_airflow_keeps_holds_a_secret_or_a_token(everything_run, tmp_path):
    console, runs = everything_run
    assert {key: run.state for key, run in runs.items()} == {
        "success": "success",
        "ended": "success",
        "refused_key": "failed",
        "unknown_agent": "failed",
        "route_fails": "failed",
        "sweep": "success",
    }
    xcom_text, rendered_text = _stored_rows()
    reports = _reports(tmp_path)

    # The scan sees what it should: the outcomes, the rendered inputs and the failures' messages.
    assert '"condition": "Success"' in xcom_text
    assert "sess-2007" in rendered_text
    assert "CXone gave no token for access key 'SANDBOX-QA-KEY'" in console
    assert "agent_id 9999 is not a CXone agent" in console
    assert "ended in InvalidAgentSession for session_id 'sess-2007'" in console
    assert "QA sweep of 7 agent session(s)" in console  # 1001 and 2001 … 2006 are logged in

    for where, text in {
        "console and task logs": console,
        "XCom": xcom_text,
        "rendered template fields": rendered_text,
        "reports": reports,
    }.items():
        found = [needle for needle in NEEDLES if needle in text]
        assert not found, f"{found} found in {where}"
