"""Sweeps split into chunks: chunked(), merging the chunks' results, and a mapped sweep through dag.test()."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest
from conftest import DAGS_FOLDER, fresh_dag

from cxone_provider.operators.mapped import chunk_sessions, chunked, merge_sweep_results
from cxone_provider.sweeps.report import read_report

# --- chunked ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "size", "chunks"),
    [
        pytest.param(["a", "b", "c", "d", "e"], 2, [["a", "b"], ["c", "d"], ["e"]], id="uneven"),
        pytest.param(["a", "b", "c", "d"], 2, [["a", "b"], ["c", "d"]], id="even"),
        pytest.param(["a", "b"], 500, [["a", "b"]], id="one-chunk"),
        pytest.param(["a", "b"], 1, [["a"], ["b"]], id="size-1"),
        pytest.param([], 3, [], id="empty"),
        pytest.param(None, 3, [], id="none"),
        pytest.param('["a", "b", "c"]', 2, [["a", "b"], ["c"]], id="json-rendering"),
        pytest.param("['a', 'b', 'c']", 2, [["a", "b"], ["c"]], id="repr-rendering"),
        pytest.param(("a", "b", "c"), 2, [["a", "b"], ["c"]], id="tuple"),
        pytest.param("a, b, c", 2, [["a", "b"], ["c"]], id="comma-separated"),
        # A repeated id stays with its first occurrence: no session is joined by two chunks.
        pytest.param(["a", "b", "c", "a", " b", "d"], 2, [["a", "b", "a", " b"], ["c", "d"]], id="duplicates"),
        # Malformed ids are kept (the sweep reports them) and count like any other.
        pytest.param(["a", "", "has space"], 2, [["a", ""], ["has space"]], id="malformed"),
    ],
)
def test_chunked(ids, size, chunks):
    assert chunked(ids, size) == chunks


@pytest.mark.parametrize("size", [0, -1, 2.5, "2", True, None])
def test_chunked_refuses_a_bad_size_naming_it(size):
    message = rf"size must be a whole number of at least 1, got {size!r}"
    with pytest.raises(ValueError, match=message):
        chunked(["a"], size)
    with pytest.raises(ValueError, match=message):  # when the DAG file is parsed, not in a run
        chunk_sessions(["a"], size)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        pytest.param("sess-1,,sess-2", "ids 'sess-1,,sess-2' has an empty item", id="empty-item"),
        pytest.param({"a": 1}, "ids must be a list, got dict", id="mapping"),
        pytest.param(42, "ids must be a list, got int: 42", id="number"),
    ],
)
def test_chunked_refuses_what_is_not_a_list_naming_it(ids, message):
    from cxone_provider.compat import AirflowFailException

    with pytest.raises(AirflowFailException, match=message):
        chunked(ids, 2)


# --- merge_sweep_results ------------------------------------------------------------------------------

CONDITIONS = ("Success", "InvalidAgentSession", "Default", "InvalidSecurityUser", "InvalidAgentId")


def result(success, invalid=(), duplicates=(), requests=0, **extra):
    """A sweep result the new way: Success sessions as ids only, full outcomes for the others."""
    lists = {c: [] for c in (*CONDITIONS, "ImpersonateNotEnabled")}
    lists.update(Success=list(success), InvalidAgentSession=list(invalid))
    outcomes = [{"condition": "InvalidAgentSession", "session_id": s, "message": "ended"} for s in invalid]
    counts = {c: len(v) for c, v in lists.items()}
    stats = {"requests": requests, "token_requests": 1, "elapsed_s": 0.5, **extra}
    return {**lists, "outcomes": outcomes, "duplicates": list(duplicates), "counts": counts, "stats": stats}


def test_merge_concatenates_lists_in_order_and_sums_counts():
    first = result(["s1", "s2"], invalid=["x1"], duplicates=["s1"], requests=3)
    second = result(["s3"], invalid=["x2", "x3"], requests=4, joins_per_s=9.0)

    merged = merge_sweep_results([first, second])

    assert merged["Success"] == ["s1", "s2", "s3"]
    assert merged["InvalidAgentSession"] == ["x1", "x2", "x3"]
    assert merged["Default"] == []
    assert [o["session_id"] for o in merged["outcomes"]] == ["x1", "x2", "x3"]
    assert merged["duplicates"] == ["s1"]
    assert merged["counts"]["Success"] == 3
    assert merged["counts"]["InvalidAgentSession"] == 3
    assert merged["counts"]["Default"] == 0
    assert merged["stats"]["requests"] == 7
    assert merged["stats"]["token_requests"] == 2
    assert merged["stats"]["chunks"] == [first["stats"], second["stats"]]


def test_merge_of_one_result_is_that_result_with_chunk_stats():
    only = result(["s1"], invalid=["x1"], requests=2)
    merged = merge_sweep_results([only])
    assert {k: v for k, v in merged.items() if k != "stats"} == {k: v for k, v in only.items() if k != "stats"}
    assert merged["stats"] == {"requests": 2, "token_requests": 1, "chunks": [only["stats"]]}


def test_merge_of_no_results_has_every_key_empty():
    merged = merge_sweep_results([])
    assert merged["Success"] == merged["outcomes"] == merged["duplicates"] == []
    assert set(merged["counts"].values()) == {0}
    assert merged["stats"] == {"requests": 0, "token_requests": 0, "chunks": []}


def test_merge_keeps_every_chunks_value_of_a_key_it_does_not_know():
    merged = merge_sweep_results([{**result(["s1"]), "note": "a"}, {**result(["s2"]), "note": "b"}])
    assert merged["note"] == ["a", "b"]


# --- sessions_with / outcomes_with: what their task returns for a plain and a mapped sweep -------------


def selecting_tasks(mapped):
    """The tasks sessions_with and outcomes_with add after a plain or a mapped sweep, by condition."""
    from airflow.sdk import DAG

    from cxone_provider.operators.mapped import outcomes_with, sessions_with
    from cxone_provider.operators.sweep import JoinAgentSessionsOperator

    with DAG("t_selecting", schedule=None):
        if mapped:
            sweep = JoinAgentSessionsOperator.partial(task_id="sweep", security_user={"agent_id": 1001}).expand(
                session_ids=[["s1"], ["s2"]]
            )
        else:
            sweep = JoinAgentSessionsOperator(task_id="sweep", session_ids=["s1"], security_user={"agent_id": 1001})
        return {
            (kind, condition): helper(sweep, condition).operator
            for kind, helper in (("ids", sessions_with), ("outcomes", outcomes_with))
            for condition in ("Success", "InvalidAgentSession")
        }


def test_a_plain_sweeps_result_is_selected_as_before():
    tasks = selecting_tasks(mapped=False)
    assert tasks["ids", "Success"].task_id == "sweep_success"
    assert tasks["outcomes", "InvalidAgentSession"].task_id == "sweep_invalid_agent_session_outcomes"
    only = result(["s1"], invalid=["x1"])
    assert tasks["ids", "Success"].python_callable(only) == ["s1"]
    assert tasks["outcomes", "InvalidAgentSession"].python_callable(only) == only["outcomes"]


def test_a_mapped_sweeps_results_are_merged_in_map_index_order():
    tasks = selecting_tasks(mapped=True)
    chunks = [result(["s1", "s2"], invalid=["x1"]), result(["s3"], invalid=["x2"])]
    assert tasks["ids", "Success"].python_callable(chunks) == ["s1", "s2", "s3"]
    assert tasks["ids", "InvalidAgentSession"].python_callable(chunks) == ["x1", "x2"]
    invalid = tasks["outcomes", "InvalidAgentSession"].python_callable(chunks)
    assert invalid == chunks[0]["outcomes"] + chunks[1]["outcomes"]


def test_success_outcomes_are_made_from_ids_when_the_sweep_keeps_only_ids():
    tasks = selecting_tasks(mapped=True)
    ids_only = result(["s1"])  # Success sessions as ids only
    full = {**result(["s2"]), "outcomes": [{"condition": "Success", "session_id": "s2", "attempts": 1}]}
    assert tasks["outcomes", "Success"].python_callable([ids_only, full]) == [
        {"condition": "Success", "session_id": "s1"},
        {"condition": "Success", "session_id": "s2", "attempts": 1},
    ]


# --- a mapped sweep through dag.test() ----------------------------------------------------------------

CHUNK_SIZE = 4
# Written to the DAGs folder for the test only: dag.test() runs a DAG serialised from there.
DAG_MODULE = "cxone_test_mapped_dag"
DAG_SOURCE = textwrap.dedent(
    f'''
    """A mapped sweep: the logged-in agents in chunks of {CHUNK_SIZE}, merged, and a task per live session."""

    from __future__ import annotations

    import pendulum
    from airflow.sdk import DAG, task

    from cxone_provider.operators.mapped import chunk_sessions, outcomes_with, sessions_with
    from cxone_provider.operators.sweep import JoinAgentSessionsOperator, ListAgentSessionsOperator


    @task(map_index_template="{{{{ session_id }}}}")
    def follow_up(session_id: str) -> str:
        return session_id


    with DAG("t_mapped_sweep", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
        listing = ListAgentSessionsOperator(task_id="list_sessions")
        sweep = JoinAgentSessionsOperator.partial(
            task_id="sweep",
            max_concurrency=2,
            hook_params={{"backoff_initial_s": 0.01, "backoff_max_s": 0.05}},
        ).expand(agents=chunk_sessions(listing.output, {CHUNK_SIZE}))
        follow_up.expand(session_id=sessions_with(sweep, "Success"))
        outcomes_with(sweep, "Success")
    '''
)


@pytest.fixture
def mapped_dag():
    path = DAGS_FOLDER / f"{DAG_MODULE}.py"
    path.write_text(DAG_SOURCE, encoding="utf-8")
    yield fresh_dag(DAG_MODULE, "t_mapped_sweep")
    path.unlink()


@pytest.mark.usefixtures("airflow_db")
def test_a_mapped_sweep_joins_every_agent_once_and_merges_in_map_index_order(cxone_sandbox, mapped_dag):
    dag_run = mapped_dag.test()

    assert dag_run.state == "success"
    listed = dag_run.get_task_instance("list_sessions").xcom_pull(task_ids="list_sessions")
    assert len(listed) > CHUNK_SIZE  # at least two chunks
    chunks = dag_run.get_task_instance("list_sessions_chunks").xcom_pull(task_ids="list_sessions_chunks")
    assert chunks == chunked(listed, CHUNK_SIZE)
    sweeps = sorted((ti for ti in dag_run.get_task_instances() if ti.task_id == "sweep"), key=lambda ti: ti.map_index)
    assert [ti.state for ti in sweeps] == ["success"] * len(chunks)

    agents = [item["agent_id"] for item in listed]
    sent = Counter(
        int(e["params"]["asAgentId"]) for e in cxone_sandbox.journal() if e["path"].endswith("agent-sessions/join")
    )
    assert sent == Counter(agents)  # every listed agent joined as itself, each exactly once
    live = {a["agent_id"]: a["session_id"] for a in cxone_sandbox.state()["agents"]}
    assert sorted(cxone_sandbox.state()["joins"]) == sorted([live[a], a] for a in agents)

    joined = dag_run.get_task_instance("sweep_success").xcom_pull(task_ids="sweep_success")
    assert joined == [live[a] for a in agents]  # the chunks' live sessions, in map-index order
    outcomes = dag_run.get_task_instance("sweep_success_outcomes").xcom_pull(task_ids="sweep_success_outcomes")
    assert [(o["condition"], o["agent_id"], o["session_id"]) for o in outcomes] == [
        ("Success", a, live[a]) for a in agents
    ]
    follow_ups = [ti for ti in dag_run.get_task_instances() if ti.task_id == "follow_up"]
    assert len(follow_ups) == len(listed)
    assert {ti.state for ti in follow_ups} == {"success"}
    # Each chunk wrote its own report; merged, they hold every session's full outcome, in order.
    results = [ti.xcom_pull(task_ids="sweep", map_indexes=ti.map_index) for ti in sweeps]
    assert len({r["report"] for r in results}) == len(chunks)
    every = read_report(merge_sweep_results(results))
    assert [(o["agent_id"], o["session_id"]) for o in every] == [(a, live[a]) for a in agents]
    assert all(o["attempts"] >= 1 for o in every)
