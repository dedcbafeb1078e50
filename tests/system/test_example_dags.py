"""The example DAGs: they import cleanly and offline, run end to end against the sandbox, and let the
params of a run reach no further than the DAG file allows (connections, output paths, CSV cells)."""

from __future__ import annotations

import csv
import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from airflow.exceptions import ParamValidationError
from conftest import AIRFLOW_HOME, DAGBAG_MODULE, REPO, fresh_dag, reads_task_output

from cxone_provider.testing import SandboxServer
from cxone_sandbox import default_seed

if TYPE_CHECKING:
    from types import ModuleType

SUPERVISED = "cxone_supervised_session"
SWEEP = "cxone_qa_sweep"

# One scenario per result condition: run conf, the faults that make CXone misbehave, and the
# connection's access key (None: the sandbox's key whose user may impersonate). The supervisor
# (1001) joins its own live session, sess-1001, as CXone publishes the join.
SCENARIOS = {
    "Success": ({}, {}, None),
    "InvalidAgentSession": ({"session_id": "sess-2007"}, {}, None),
    "ImpersonateNotEnabled": ({}, {}, "SANDBOX-NOIMP-KEY"),
    "InvalidSecurityUser": ({"join_as": 1003}, {}, None),
    "InvalidAgentId": ({"join_as": {"agent_id": 9999, "conn_id": "cxone_default"}}, {}, None),
    "Default": ({}, {"rate_503": 1.0, "path_filter": "agent-sessions/join"}, None),
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
        from {DAGBAG_MODULE} import DagBag
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
def test_supervised_session_routes_each_condition(airflow_db, cxone_sandbox, tmp_path, condition, monkeypatch):
    conf, faults, key = SCENARIOS[condition]
    if faults:
        cxone_sandbox.set_faults(**faults)
    if key:
        monkeypatch.setenv(*cxone_sandbox.connection_env(key=key))
    name = f"routes-{condition}.jsonl"
    audit_log = dag_module(SUPERVISED).AUDIT_BASE / name
    audit_log.unlink(missing_ok=True)
    run = fresh_dag(SUPERVISED, SUPERVISED).test(run_conf={**conf, "audit_log": name})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}

    followed = BRANCH_OF[condition]
    expected = {task_id: "skipped" for task_id in BRANCH_OF.values()}
    expected.update(
        {followed: "success", "set_security_user": "success", "join_agent_session": "success", "finish": "success"}
    )
    expected["wait_for_agent"] = "skipped"  # the optional wait, off without wait_for_agent_id
    expected["watch_session"] = "skipped"  # the optional watch, off without watch_session
    assert states == expected
    assert run.state == "success"

    outcome = run.get_task_instance("join_agent_session").xcom_pull(task_ids="join_agent_session")
    assert outcome["condition"] == condition
    state = cxone_sandbox.state()
    if condition == "Success":
        assert outcome["session_id"] == "sess-1001"
        (monitor,) = [a for a in state["supervise_actions"] if a["action"] == "monitor"]
        # From the supervisor's own session, of the agent the run names.
        assert (monitor["session_id"], monitor["target_agent_id"]) == ("sess-1001", 2001)
        assert not audit_log.exists()
    else:
        (record,) = [json.loads(line) for line in audit_log.read_text().splitlines()]
        assert record["condition"] == condition
        assert record["action"] == followed
        assert not state["supervise_actions"]
    if condition == "Default":
        assert outcome["attempts"] == 6
        assert "gave up after 6 attempts" in outcome["message"]


def test_supervised_session_waits_for_the_agent_when_asked(airflow_db, cxone_sandbox):
    """With wait_for_agent_id the run waits (deferred) until the agent logs in, then monitors them."""
    import threading
    import time

    import requests

    def log_in_once_polled() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(1 for e in cxone_sandbox.journal() if e["path"].endswith("/agents/states")) >= 1:
                break
            time.sleep(0.1)
        requests.put(
            f"{cxone_sandbox.url}/_sandbox/agents/2009/state",
            json={"state": "Available"},
            headers=cxone_sandbox.admin_headers(),
            timeout=10,
        ).raise_for_status()

    dag = fresh_dag(SUPERVISED, SUPERVISED)
    dag.get_task("wait_for_agent").poke_interval = 0.5  # the example's 30 s poll, shortened for the test
    login = threading.Thread(target=log_in_once_polled, daemon=True)
    login.start()
    run = dag.test(run_conf={"wait_for_agent_id": 2009, "audit_log": "wait.jsonl"})
    login.join(10)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["wait_for_agent"] == states["start_monitoring"] == "success"
    assert run.get_task_instance("wait_for_agent").xcom_pull(task_ids="wait_for_agent")["agentId"] == 2009
    outcome = run.get_task_instance("join_agent_session").xcom_pull(task_ids="join_agent_session")
    assert (outcome["condition"], outcome["session_id"]) == ("Success", "sess-1001")
    monitors = [a for a in cxone_sandbox.state()["supervise_actions"] if a["action"] == "monitor"]
    assert [(a["session_id"], a["target_agent_id"]) for a in monitors] == [("sess-1001", 2009)]


def test_supervised_session_audit_log_defaults_below_airflow_home(airflow_db, cxone_sandbox):
    supervised = dag_module(SUPERVISED)
    assert supervised.AUDIT_BASE == AIRFLOW_HOME / "cxone_audit"
    default = supervised.AUDIT_BASE / supervised.DEFAULT_AUDIT_LOG
    default.unlink(missing_ok=True)
    run = fresh_dag(SUPERVISED, SUPERVISED).test(run_conf={"session_id": "sess-2007"})
    assert run.state == "success"
    (record,) = [json.loads(line) for line in default.read_text().splitlines()]
    assert record["condition"] == "InvalidAgentSession"


# ------------------------------------------------------------------ what the params of a run may reach


def dag_module(name: str) -> ModuleType:
    """The example DAG's module, for the constants it declares (its bases, its connection list)."""
    return importlib.import_module(name)


#: Output names that would leave the base folder; "{outside}" is a folder next to nothing of Airflow's.
ESCAPES = {
    "parent": "../escaped",
    "parent further down": "reports/../../escaped",
    "absolute": "{outside}/escaped",
    "home": "~/escaped",
    "link out of the base": "link-out/escaped",
    "backslash parent": "..\\escaped",
}


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """An empty folder outside every base, a working directory to catch relative writes, and a cleaner."""
    folder = tmp_path / "outside"
    folder.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    created: list[Path] = []
    yield folder, cwd, created
    for link in created:
        link.unlink(missing_ok=True)


def escape_value(kind: str, base: Path, folder: Path, created: list[Path]) -> str:
    if kind == "link out of the base":
        base.mkdir(parents=True, exist_ok=True)
        link = base / "link-out"
        link.unlink(missing_ok=True)
        link.symlink_to(folder, target_is_directory=True)
        created.append(link)
    return ESCAPES[kind].format(outside=folder)


def assert_nothing_written(folder: Path, cwd: Path) -> None:
    assert list(folder.iterdir()) == [], "written outside the base folder"
    assert list(cwd.rglob("*")) == [], "written relative to the working directory"
    assert not list(AIRFLOW_HOME.rglob("escaped*")), "written next to the base folder"
    assert not (Path.home() / "escaped").exists()
    assert not (Path.home() / "escaped.jsonl").exists()


@reads_task_output
@pytest.mark.parametrize("kind", list(ESCAPES))
def test_supervised_session_audit_log_cannot_leave_its_base(airflow_db, cxone_sandbox, outside, capfd, kind):
    folder, cwd, created = outside
    value = escape_value(kind, dag_module(SUPERVISED).AUDIT_BASE, folder, created) + ".jsonl"
    # sess-2007 has ended: the run's one write is its record for report_invalid_session.
    run = fresh_dag(SUPERVISED, SUPERVISED).test(run_conf={"session_id": "sess-2007", "audit_log": value})
    console = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert run.get_task_instance("join_agent_session").state == "success"
    assert run.get_task_instance("report_invalid_session").state == "failed"
    assert f"param audit_log {value!r} is refused" in console
    assert f"it must be a name below {dag_module(SUPERVISED).AUDIT_BASE}" in console
    assert_nothing_written(folder, cwd)


@reads_task_output
@pytest.mark.parametrize("kind", list(ESCAPES))
def test_qa_sweep_report_dir_cannot_leave_its_base(airflow_db, cxone_sandbox, outside, capfd, kind):
    folder, cwd, created = outside
    value = escape_value(kind, dag_module(SWEEP).REPORTS_BASE, folder, created)
    # A team without live sessions: the sweep is quick, and the report still runs.
    run = fresh_dag(SWEEP, SWEEP).test(run_conf={"team_ids": [999], "report_dir": value})
    console = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert run.get_task_instance("sweep").state == "success"
    assert run.get_task_instance("report").state == "failed"
    assert f"param report_dir {value!r} is refused" in console
    assert_nothing_written(folder, cwd)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/tmp/reports", "an absolute path (or '~') is not allowed"),
        ("../reports", "'..' is not allowed"),
        ("a/../../reports", "'..' is not allowed"),
        ("~root", "an absolute path (or '~') is not allowed"),
        (".hidden", "none starting with '.'"),
        ("a//b", "none starting with '.'"),
        ("C:reports", "use letters, digits"),
        ("team 20", "use letters, digits"),
    ],
)
@pytest.mark.parametrize("module_name", [SUPERVISED, SWEEP])
def test_a_refused_name_says_which_param_and_why(module_name, value, problem):
    from cxone_provider.compat import AirflowFailException

    module = dag_module(module_name)
    with pytest.raises(AirflowFailException) as refused:
        module.path_below(Path("/srv/base"), value, "report_dir")
    message = str(refused.value)
    assert message.startswith(f"param report_dir {value!r} is refused: ")
    assert problem in message
    assert message.endswith("it must be a name below /srv/base")


@pytest.mark.parametrize("module_name", [SUPERVISED, SWEEP])
def test_a_name_below_the_base_is_accepted(module_name, tmp_path):
    path_below = dag_module(module_name).path_below
    assert path_below(tmp_path, None, "p") == tmp_path
    assert path_below(tmp_path, "", "p") == tmp_path
    assert path_below(tmp_path, "team-20/2026.01_a", "p") == tmp_path / "team-20" / "2026.01_a"
    (tmp_path / "inside").mkdir()
    os.symlink(tmp_path / "inside", tmp_path / "link-in")
    assert path_below(tmp_path, "link-in/x.jsonl", "p") == tmp_path / "link-in" / "x.jsonl"


@pytest.mark.parametrize(
    ("dag_id", "conf", "param"),
    [
        (SUPERVISED, {"cxone_conn_id": "cxone_other"}, "cxone_conn_id"),
        (SWEEP, {"cxone_conn_id": "cxone_other"}, "cxone_conn_id"),
        (SUPERVISED, {"join_as": {"agent_id": 1001, "conn_id": "cxone_other"}}, "join_as"),
    ],
)
def test_a_connection_off_the_dags_list_is_refused(airflow_db, cxone_sandbox, monkeypatch, dag_id, conf, param):
    """A connection that exists and works is still refused when the DAG does not list it, before any call."""
    assert "cxone_other" not in dag_module(dag_id).CXONE_CONN_IDS
    monkeypatch.setenv(*cxone_sandbox.connection_env("cxone_other"))
    cxone_sandbox.clear_journal()
    # Airflow 3.2's dag.test() raises the validation error as a plain ValueError.
    refused = (ParamValidationError, ValueError)
    with pytest.raises(refused, match=rf"Invalid input for param {param}: 'cxone_other' is not one of"):
        fresh_dag(dag_id, dag_id).test(run_conf=conf)
    assert cxone_sandbox.journal() == []


def test_the_connection_params_offer_the_dags_list(airflow_db):
    for dag_id in (SUPERVISED, SWEEP):
        param = fresh_dag(dag_id, dag_id).params.get_param("cxone_conn_id")
        assert param.schema["enum"] == list(dag_module(dag_id).CXONE_CONN_IDS) == ["cxone_default"]
        assert param.value == "cxone_default"


def test_the_join_uses_the_runs_connection_whatever_join_as_names(airflow_db, cxone_sandbox):
    """A SecurityUser given as text is not checked by the param's schema: its conn_id must not be used."""
    join_as = json.dumps({"agent_id": 1001, "conn_id": "cxone_elsewhere"})
    run = fresh_dag(SUPERVISED, SUPERVISED).test(run_conf={"join_as": join_as})
    assert run.state == "success"
    outcome = run.get_task_instance("join_agent_session").xcom_pull(task_ids="join_agent_session")
    assert outcome["condition"] == "Success"


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","x")',
        "+1+2",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "\tcmd",
        "\rcmd",
        # issue 26: after white space or an invisible character, or in full-width form
        " =1+2",
        "\n=1+2",
        " \t@SUM(1)",
        "\uff1d1+2",
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(1)",
        "\u200b=1+2",
        "\ufeff+1",
    ],
)
def test_qa_sweep_csv_report_defuses_formula_cells(tmp_path, cell):
    """OWASP's CSV-injection rule: a text cell a spreadsheet would evaluate gets a leading single quote."""
    path = tmp_path / "report.csv"
    outcome = {"session_id": cell, "condition": "Default", "status_code": None, "message": cell, "attempts": 2}
    dag_module(SWEEP).write_csv(path, [{**outcome, "elapsed_s": 0.25}])
    with path.open(newline="", encoding="utf-8") as report:
        (row,) = csv.DictReader(report)
    assert row == {
        "agent_id": "",
        "session_id": "'" + cell,
        "condition": "Default",
        "status_code": "",
        "message": "'" + cell,
        "attempts": "2",
        "elapsed_s": "0.25",
    }


def test_qa_sweep_csv_report_keeps_ordinary_cells(tmp_path):
    path = tmp_path / "report.csv"
    outcome = {"session_id": "sess-2001", "condition": "Success", "status_code": 202, "message": "a=b, -1"}
    # Numbers are not text a spreadsheet parses as a formula: a negative one is left alone.
    dag_module(SWEEP).write_csv(path, [{**outcome, "attempts": 1, "elapsed_s": -0.5, "extra": "=ignored"}])
    with path.open(newline="", encoding="utf-8") as report:
        (row,) = csv.DictReader(report)
    assert row == {
        "agent_id": "",
        "session_id": "sess-2001",
        "condition": "Success",
        "status_code": "202",
        "message": "a=b, -1",
        "attempts": "1",
        "elapsed_s": "-0.5",
    }


def test_qa_sweep_report_defuses_a_formula_in_a_session_id(airflow_db, monkeypatch, tmp_path):
    """End to end: a tenant whose session id is a formula; the CSV report quotes it, the JSON keeps it."""
    formula = "=SUM(1,2)*cmd|calc!A0"
    seed = default_seed()
    next(s for s in seed["sessions"] if s["agent_id"] == 2001)["session_id"] = formula
    monkeypatch.chdir(tmp_path)
    with SandboxServer(seed=seed) as sandbox:
        monkeypatch.setenv(*sandbox.connection_env())
        run = fresh_dag(SWEEP, SWEEP).test(run_conf={"report_dir": tmp_path.name})
    assert run.state == "success"
    reports = dag_module(SWEEP).REPORTS_BASE / tmp_path.name
    (csv_report,) = reports.glob("qa_sweep_*.csv")
    with csv_report.open(newline="", encoding="utf-8") as report:
        session_ids = {row["session_id"] for row in csv.DictReader(report)}
    assert "'" + formula in session_ids
    assert not {s for s in session_ids if s.startswith(("=", "+", "-", "@"))}
    (json_report,) = reports.glob("qa_sweep_*.json")
    assert formula in json.loads(json_report.read_text())["live_sessions"].values()  # joined like any other
