"""Resumable sweeps: a sweep stopped halfway is retried and joins only the agents it had not finished.

Real HTTP against a sandbox with live sessions, on CXone's published join (the sandbox's defaults): each
(agent, expected session) item is joined as its own agent. The task instance is the few fields a
checkpoint is keyed by (what Airflow's runtime task instance carries), so the same "task" can be tried twice.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from conftest import FAST, fresh_sandbox, idle, sandbox_with_live_sessions, wait_for

from cxone_provider.compat import AirflowException
from cxone_provider.operators.sweep import JoinAgentSessionsOperator
from cxone_provider.sweeps.report import read_report

if TYPE_CHECKING:
    from cxone_provider.testing import SandboxServer

LIVE = 300
CONN_ID = "cxone_resume"
#: The generated agents 5001… and the live session each is expected to be in.
AGENT_IDS = [5001 + n for n in range(LIVE)]
ITEMS = [{"agent_id": agent, "session_id": f"sess-{agent}"} for agent in AGENT_IDS]


@dataclass
class TaskInstance:
    """The task instance fields a checkpoint is keyed by, and what the sweep pushes."""

    dag_id: str = "qa"
    run_id: str = "manual__1"
    task_id: str = "sweep"
    map_index: int = -1
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


live_sandbox = sandbox_with_live_sessions(LIVE)


@pytest.fixture
def sandbox(live_sandbox, monkeypatch):
    return fresh_sandbox(live_sandbox, monkeypatch, CONN_ID)


def operator(tmp_path, items=ITEMS, **kwargs) -> JoinAgentSessionsOperator:
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("cxone_conn_id", CONN_ID)
    return JoinAgentSessionsOperator(
        task_id="sweep",
        agents=items,
        checkpoint_path=str(tmp_path / "checkpoints"),
        progress_interval_s=0.2,
        **kwargs,
    )


def joins(sandbox: SandboxServer) -> Counter[int]:
    """Join requests sent, by the agent joined as; each names the session its item expects."""
    sent = [e["params"] for e in sandbox.journal() if e["path"].endswith("agent-sessions/join")]
    assert all(p["sessionId"] == f"sess-{p['asAgentId']}" for p in sent), sent
    return Counter(int(p["asAgentId"]) for p in sent)


def stopped_halfway(sandbox: SandboxServer, tmp_path, ti: TaskInstance) -> int:
    """Run a slowed sweep and stop it (as Airflow's on_kill does) once about half is joined."""
    sandbox.set_faults(latency_ms=20, path_filter="agent-sessions/join")
    first = operator(tmp_path, max_concurrency=4)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            first.execute(context={"ti": ti})
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60  # only a hang: the sweep never got halfway
    while sum(joins(sandbox).values()) < LIVE // 2:
        assert time.monotonic() < deadline, failure or "the sweep never got halfway"
        time.sleep(0.02)
    first.on_kill()
    thread.join(timeout=30)
    assert isinstance(failure[0], AirflowException)
    assert "sweep stopped after" in str(failure[0])
    sandbox.set_faults()
    return sum(joins(sandbox).values())


def test_a_retried_sweep_joins_only_what_it_had_not_finished(sandbox, tmp_path, caplog, capfd):
    ti = TaskInstance()
    sent_before = stopped_halfway(sandbox, tmp_path, ti)
    assert LIVE // 2 <= sent_before < LIVE

    result = operator(tmp_path).execute(context={"ti": ti})

    assert result["Success"] == AGENT_IDS  # the same shape and order as an uninterrupted sweep
    assert result["live_sessions"] == {str(i["agent_id"]): i["session_id"] for i in ITEMS}
    assert [(o["agent_id"], o["session_id"]) for o in read_report(result)] == [
        (i["agent_id"], i["session_id"]) for i in ITEMS
    ]
    sent = joins(sandbox)
    assert sorted(sent) == AGENT_IDS  # none missing
    # Joined twice: at most the sessions in flight when it stopped (4 workers), never a finished one.
    assert sum(sent.values()) - LIVE <= 4
    assert result["stats"]["resumed"] >= sent_before - 4
    output = "".join(capfd.readouterr()) + caplog.text
    assert f"{result['stats']['resumed']} of {LIVE} session(s) resumed from earlier tries" in output
    assert not (tmp_path / "checkpoints").joinpath("qa", "manual__1", "sweep__-1").exists()  # removed when done


def test_the_checkpoint_keeps_the_fingerprint_earlier_releases_wrote(sandbox, tmp_path):
    # A task retried after an upgrade resumes its checkpoint: the input's fingerprint is still the SHA-256
    # of its keys joined by newlines (now hashed as they come, no longer from a list of them all).
    stopped_halfway(sandbox, tmp_path, TaskInstance())
    marker = tmp_path / "checkpoints" / "qa" / "manual__1" / "sweep__-1" / "input.sha256"
    keys = ["agents via cxone_resume", *(f"{item['agent_id']} {item['session_id']}" for item in ITEMS)]
    assert marker.read_text().strip() == hashlib.sha256("\n".join(keys).encode()).hexdigest()


def test_a_checkpoint_from_another_input_list_is_not_reused(sandbox, tmp_path, caplog, capfd):
    ti = TaskInstance()
    stopped_halfway(sandbox, tmp_path, ti)
    sandbox.clear_journal()
    result = operator(tmp_path, items=ITEMS[:100]).execute(context={"ti": ti})
    assert result["Success"] == AGENT_IDS[:100]
    assert result["stats"]["resumed"] == 0
    assert sorted(joins(sandbox)) == AGENT_IDS[:100]
    output = "".join(capfd.readouterr()) + caplog.text
    assert "made from a different list of sessions" in output
    assert "not reused, starting over" in output


def test_a_checkpoint_made_through_another_connection_is_not_reused(sandbox, tmp_path, monkeypatch):
    ti = TaskInstance(run_id="manual__3")
    operator(tmp_path, items=ITEMS[:30], keep_checkpoint=True).execute(context={"ti": ti})
    sandbox.clear_journal()
    # Another access key: 1002's, which may not impersonate the agents: what it finds is its own.
    monkeypatch.setenv(*sandbox.connection_env("cxone_noimp", key="SANDBOX-NOIMP-KEY"))
    result = operator(tmp_path, items=ITEMS[:30], cxone_conn_id="cxone_noimp").execute(context={"ti": ti})
    assert result["stats"].get("resumed", 0) == 0
    assert result["ImpersonateNotEnabled"] == AGENT_IDS[:30]  # asked again, through the other key
    assert joins(sandbox)


def test_a_kept_checkpoint_makes_a_cleared_task_send_nothing_again(sandbox, tmp_path):
    ti = TaskInstance(run_id="manual__2")
    operator(tmp_path, items=ITEMS[:50], keep_checkpoint=True).execute(context={"ti": ti})
    sandbox.clear_journal()
    again = operator(tmp_path, items=ITEMS[:50]).execute(context={"ti": ti})
    assert again["Success"] == AGENT_IDS[:50]
    assert again["live_sessions"] == {str(i["agent_id"]): i["session_id"] for i in ITEMS[:50]}
    assert again["stats"]["resumed"] == 50
    assert joins(sandbox) == Counter()


def test_on_kill_stops_joins_waiting_to_retry_and_workers_waiting_for_a_slot(sandbox, tmp_path):
    """Every first join is throttled (Retry-After: 1): the workers are in backoff when on_kill comes,
    and none of them sends again."""
    # A Retry-After far longer than a stop may take: a stop that waited it out cannot pass on a slow machine.
    sandbox.set_faults(rate_429_retry_after=1.0, retry_after_s=120, path_filter="agent-sessions/join")
    sweep = operator(tmp_path, max_concurrency=8, hook_params={**FAST, "max_attempts": 6})
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sweep.execute(context={"ti": TaskInstance(run_id="manual__4")})
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: sum(joins(sandbox).values()) >= 8, "the first eight joins")
    sweep.on_kill()
    thread.join(timeout=60)  # half the Retry-After: only a stop that did not wait it out ends in time
    assert not thread.is_alive(), "the sweep waited out the 120 s Retry-After instead of stopping"
    idle(sandbox)  # the execute() has returned with its workers: whatever they sent is in the journal now
    assert sum(joins(sandbox).values()) == 8
    assert "sweep stopped after 0 of" in str(failure[0])


def test_mapped_sweeps_keep_apart(sandbox, tmp_path):
    first, second = TaskInstance(map_index=0), TaskInstance(map_index=1)
    operator(tmp_path, items=ITEMS[:20], keep_checkpoint=True).execute(context={"ti": first})
    sandbox.clear_journal()
    result = operator(tmp_path, items=ITEMS[20:40]).execute(context={"ti": second})
    assert result["stats"]["resumed"] == 0
    assert sorted(joins(sandbox)) == AGENT_IDS[20:40]


# --- issue 26: a deadline for the whole sweep; keys that cannot be shared ---------------------------------------


def test_a_deadline_ends_the_sweep_and_every_session_not_joined_is_default(sandbox, tmp_path):
    # 300 joins two at a time, each held 0.2 s: at least 30 s, so no machine finishes them within the 3 s
    # deadline, and any machine gets a token and a first join answered within it.
    sandbox.set_faults(latency_ms=200, path_filter="agent-sessions/join")
    sweep = operator(tmp_path, max_concurrency=2, deadline_s=3.0, report_path=str(tmp_path / "reports"))
    result = sweep.execute(context={"ti": TaskInstance(run_id="manual__deadline")})
    joined = result["Success"]
    assert 0 < len(joined) < LIVE
    # nothing silently dropped: every session is in one list, those sent are those reported joined
    assert sorted(joined + result["Default"]) == AGENT_IDS
    assert set(joins(sandbox)) == set(joined)
    late = [outcome for outcome in result["outcomes"] if outcome["condition"] == "Default"]
    assert len(late) == LIVE - len(joined)
    assert all("the sweep's deadline (deadline_s=3) passed" in outcome["message"] for outcome in late)
    assert result["stats"]["deadline_passed"] is True
    assert len(read_report(result)) == LIVE


def test_a_sweep_within_its_deadline_is_not_cut(sandbox, tmp_path):
    result = operator(tmp_path, items=ITEMS[:20], deadline_s=60).execute(
        context={"ti": TaskInstance(run_id="manual__roomy")}
    )
    assert result["Success"] == AGENT_IDS[:20]
    assert result["stats"]["deadline_passed"] is False


@pytest.mark.parametrize("deadline_s", [0, -1, float("nan"), float("inf"), "60"])
def test_a_deadline_must_be_a_positive_number(tmp_path, deadline_s):
    with pytest.raises(ValueError, match=r"deadline_s must be a positive number"):
        operator(tmp_path, deadline_s=deadline_s)


@pytest.mark.parametrize(
    ("ti", "names"),
    [
        pytest.param(TaskInstance(run_id=".."), "run_id '..'", id="run_id-dot-dot"),
        pytest.param(TaskInstance(run_id="."), "run_id '.'", id="run_id-dot"),
        pytest.param(TaskInstance(dag_id=".."), "dag_id '..'", id="dag_id-dot-dot"),
        pytest.param(TaskInstance(task_id=".."), "task_id '..'", id="task_id-dot-dot"),
        pytest.param(TaskInstance(run_id="a/b"), "run_id 'a/b'", id="run_id-slash"),
    ],
)
def test_a_key_part_that_two_dags_could_share_is_refused_before_any_request(sandbox, tmp_path, ti, names):
    """``<root>/qa/../sweep__-1`` is ``<root>/sweep__-1``: every DAG's sweep task would share it."""
    from cxone_provider.compat import AirflowFailException

    sweep = operator(tmp_path, items=ITEMS[:3], report_path=str(tmp_path / "reports"))
    with pytest.raises(AirflowFailException, match=re.escape(names)):
        sweep.execute(context={"ti": ti})
    assert sandbox.journal() == []
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("field", ["report_path", "checkpoint_path"])
def test_a_root_folder_that_climbs_out_of_itself_is_refused(sandbox, tmp_path, field):
    from cxone_provider.compat import AirflowFailException

    roots = {"report_path": str(tmp_path / "reports"), "checkpoint_path": str(tmp_path / "checkpoints")}
    roots[field] = str(tmp_path / "a" / ".." / ".." / "b")
    sweep = JoinAgentSessionsOperator(task_id="sweep", agents=ITEMS[:3], cxone_conn_id=CONN_ID, **roots)
    with pytest.raises(AirflowFailException, match=re.escape("'..' part")):
        sweep.execute(context={"ti": TaskInstance(run_id="manual__climb")})
    assert sandbox.journal() == []
