"""The sweep engine on its own: no operator, no Airflow context, real HTTP against the sandbox.

What a script or another orchestrator gets from :class:`~cxone_provider.sweeps.engine.SweepEngine`:
a hook factory, a join function and the items in, one versioned result out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import pytest
from airflow.sdk import ObjectStoragePath
from conftest import FAST, fresh_sandbox, joins_sent, sandbox_with_live_sessions

from cxone_provider.compat import AirflowException
from cxone_provider.domain.agent_sessions import AgentSessionItem, distinct_items
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import join_agent_session
from cxone_provider.sweeps.engine import SweepEngine, SweepStopped, rejected_item
from cxone_provider.sweeps.result import SCHEMA, SCHEMA_KEY, is_sweep_result, merge_sweep_results

if TYPE_CHECKING:
    from cxone_provider.domain.outcomes import JoinOutcome

LIVE = 20
CONN_ID = "cxone_engine"
LOG = logging.getLogger("test_sweep_engine")


published_sandbox = sandbox_with_live_sessions(LIVE)


@pytest.fixture
def sandbox(published_sandbox, monkeypatch):
    return fresh_sandbox(published_sandbox, monkeypatch, CONN_ID)


def make_hook(**pacing):
    return CxoneHook(CONN_ID, **FAST, **pacing)


def join_as_agent(hook: CxoneHook, item: AgentSessionItem) -> JoinOutcome:
    """Each item joined as its own agent, as NICE publishes the join."""
    if item.rejected is not None or item.agent_id is None:
        return rejected_item(item)
    outcome = join_agent_session(hook, item.session_id, item.agent_id)
    outcome.agent_id, outcome.item_key = item.agent_id, item.key
    return outcome


def run(raw_items, **engine_kwargs):
    items, duplicates = distinct_items(raw_items)
    engine_kwargs.setdefault("log", LOG)
    engine = SweepEngine(by_agent=True, **engine_kwargs)
    return engine.run(make_hook, join_as_agent, [(i.key, i) for i in items], duplicates)


def test_a_sweep_runs_without_an_operator_and_returns_the_versioned_result(sandbox):
    result = run([2001, 2002, {"agent_id": 2003, "session_id": "sess-2003"}]).to_xcom()
    assert result[SCHEMA_KEY] == SCHEMA
    assert is_sweep_result(result)
    assert result["Success"] == [2001, 2002, 2003]
    assert result["live_sessions"] == {"2001": "sess-2001", "2002": "sess-2002", "2003": "sess-2003"}
    assert result["counts"]["Success"] == 3
    assert sum(result["counts"].values()) == 3
    assert set(result) >= {c.value for c in JoinCondition} | {"outcomes", "duplicates", "stats", "report"}
    assert len(joins_sent(sandbox)) == 3
    assert json.loads(json.dumps(result)) == result  # an XCom as it is: plain JSON


def test_duplicates_are_joined_once_and_malformed_items_are_not_sent(sandbox):
    result = run([2001, 2001, {"agent_id": 0}, "abc"]).to_xcom()
    assert result["duplicates"] == ["2001"]
    assert result["Success"] == [2001]
    assert result["counts"][JoinCondition.INVALID_AGENT_ID.value] == 2
    assert [e["path"] for e in joins_sent(sandbox)] == [joins_sent(sandbox)[0]["path"]]  # one join: 2001's


def test_the_report_holds_every_items_outcome(sandbox, tmp_path):
    location = ObjectStoragePath(str(tmp_path / "report.jsonl"))
    result = run([2001, 2002, "abc"], report_to=location).to_xcom()
    assert result["report"] == str(location)
    lines = [json.loads(line) for line in location.read_text().splitlines()]
    assert [line["condition"] for line in lines] == ["Success", "Success", JoinCondition.INVALID_AGENT_ID.value]


def test_the_hook_factory_gets_the_engines_pool_size_pacing_and_stop_event(sandbox):
    stop = threading.Event()
    given = {}

    def factory(**pacing):
        given.update(pacing)
        return make_hook(**pacing)

    items, _ = distinct_items([2001])
    SweepEngine(by_agent=True, max_concurrency=3, stop=stop, log=LOG).run(
        factory, join_as_agent, [(i.key, i) for i in items], []
    )
    assert given["pool_size"] == 3
    assert given["stop"] is stop
    assert {"retry_listener", "attempt_gate", "answer_listener"} <= set(given)
    assert stop.is_set()  # however a sweep ends, nothing more is sent through its hook


def test_a_stop_during_the_sweep_ends_the_sending_and_fails(sandbox):
    sandbox.set_faults(latency_ms=200, path_filter="agent-sessions/join")
    stop = threading.Event()

    def stop_after_the_first_join() -> None:  # as an operator's on_kill does, mid-sweep
        deadline = time.monotonic() + 60  # only a hang reaches it
        while not joins_sent(sandbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=stop_after_the_first_join, daemon=True).start()
    with pytest.raises(SweepStopped, match=f"sweep stopped after \\d+ of {LIVE} session") as raised:
        run(list(range(2001, 2001 + LIVE)), max_concurrency=1, stop=stop)
    assert isinstance(raised.value, AirflowException)  # Airflow retries it; a checkpoint would resume
    assert 0 < len(joins_sent(sandbox)) < LIVE


def test_items_past_the_deadline_end_in_default_and_say_so(sandbox):
    sandbox.set_faults(latency_ms=300, path_filter="agent-sessions/join")
    result = run(list(range(2001, 2001 + LIVE)), max_concurrency=1, deadline_s=0.5).to_xcom()
    late = [o for o in result["outcomes"] if o["condition"] == JoinCondition.DEFAULT.value]
    assert late
    assert result["stats"]["deadline_passed"] is True
    assert all("the sweep's deadline (deadline_s=0.5) passed" in o["message"] for o in late)
    assert sum(result["counts"].values()) == LIVE  # nothing silently dropped
    assert len(joins_sent(sandbox)) < LIVE


def test_progress_goes_to_the_logger_it_is_given(sandbox, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    run([2001, 2002])
    lines = [r.getMessage() for r in caplog.records if r.name == LOG.name]
    assert any(line.startswith("Sweep 2/2 joined in") for line in lines)
    assert any(line.startswith("Sweep of 2 session(s)") for line in lines)


def test_two_engine_results_merge_as_one_with_the_marker(sandbox):
    first, second = run([2001]).to_xcom(), run([2002, "abc"]).to_xcom()
    merged = merge_sweep_results([first, second])
    assert merged[SCHEMA_KEY] == SCHEMA
    assert merged["Success"] == [2001, 2002]
    assert merged["counts"]["Success"] == 2
    assert merged["counts"][JoinCondition.INVALID_AGENT_ID.value] == 1
    assert merged["live_sessions"] == {"2001": "sess-2001", "2002": "sess-2002"}
    assert [chunk["requests"] for chunk in merged["stats"]["chunks"]] == [1, 1]
