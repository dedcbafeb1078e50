"""Assets: a sweep's event on cxone://<tenant>/sweeps/<dag>/<task>, read back from the metadata DB, and
the downstream DAG scheduled on it queued by that event (the scheduler's own queue)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from airflow.sdk import Asset
from conftest import fresh_dag
from cxone_asset_dags import SANDBOX_TENANT

from cxone_provider import compat
from cxone_provider.assets import asset_uri, normalize_uri, sweep_asset, tenant_authority
from cxone_provider.compat import AIRFLOW_V_3_1_PLUS

SWEEP_URI = f"cxone://{SANDBOX_TENANT}/sweeps/cxone_asset_sweep/sweep"


def _events(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
        ).all()
        return [dict(row.extra) for row in rows]


def _queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).where(AssetDagRunQueue.target_dag_id == dag_id))


def _unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="Asset events need Airflow 3.1 (the test below holds 3.0)")
@pytest.mark.usefixtures("airflow_db")
def test_a_sweep_event_carries_its_summary_and_queues_the_dag_scheduled_on_it(cxone_sandbox, tmp_path):
    # The opted-in join runs first: dag.test() writes every DAG of the folder to the DB, the consumer too.
    join_run = fresh_dag("cxone_asset_dags", "cxone_asset_join").test()
    assert join_run.state == "success"
    join_events = _events(f"cxone://{SANDBOX_TENANT}/joins/cxone_asset_join/join")
    assert len(join_events) == 1
    outcome = join_run.get_task_instance("join").xcom_pull(task_ids="join")
    assert join_events[0]["condition"] == outcome["condition"]
    assert join_events[0]["counts"] == {outcome["condition"]: 1}
    assert "session_id" not in join_events[0]

    _unpause("cxone_asset_consumer")
    before = _queued_for("cxone_asset_consumer")
    run = fresh_dag("cxone_asset_dags", "cxone_asset_sweep").test(run_conf={"report_path": str(tmp_path)})
    assert run.state == "success"
    result = run.get_task_instance("sweep").xcom_pull(task_ids="sweep")

    [extra] = _events(SWEEP_URI)
    assert extra["schema"] == "cxone.asset/1"
    assert extra["counts"] == result["counts"]
    assert extra["total"] == sum(result["counts"].values()) > 0
    assert extra["report"] == result["report"]
    assert urlsplit(extra["report"]).path.startswith(str(tmp_path))
    figures = extra["figures"]
    assert figures["sessions_per_s"] == result["stats"]["joins_per_s"]
    assert figures["requests"] == result["stats"]["requests"]
    assert figures["retries"] == 0
    assert figures["retries_429"] == 0

    # No secret, token or personal data: no agent's name or id list, no connection secret.
    text = json.dumps(extra)
    for agent in cxone_sandbox.state()["agents"]:
        for name in (agent.get("first_name"), agent.get("last_name")):
            assert not name or name not in text
    connection = cxone_sandbox.connection()
    for secret in (connection["password"], connection["extra"]["client_secret"]):
        assert secret not in text
    assert "token" not in text.lower()

    # The scheduler's queue: the DAG scheduled on the sweep's Asset gets a run for this event.
    assert _queued_for("cxone_asset_consumer") == before + 1


def test_the_uri_names_the_tenant_and_the_sweep():
    assert asset_uri(tenant_authority("11EE-ABC", "https://x"), "sweeps", "qa", "sweep") == (
        "cxone://11ee-abc/sweeps/qa/sweep"
    )
    # No tenant id known: the auth host (with its port) stands for it.
    assert tenant_authority(None, "http://127.0.0.1:8765/") == "127.0.0.1:8765"
    assert tenant_authority("", "cxone.niceincontact.com") == "cxone.niceincontact.com"
    assert sweep_asset("T1", "qa", "sweep") == Asset("cxone://t1/sweeps/qa/sweep")


@pytest.mark.parametrize(
    "uri",
    ["cxone:///sweeps/qa/sweep", "cxone://t1/other/qa/sweep", "cxone://t1/sweeps/qa", "cxone://t1/sweeps/qa/a/b"],
)
def test_a_malformed_cxone_uri_is_refused_naming_it(uri):
    with pytest.raises(ValueError, match="is not a CXone asset URI"):
        normalize_uri(urlsplit(uri))
    # Airflow applies the provider's handler: the DAG that declares it fails to parse.
    with pytest.raises(ValueError, match="is not a CXone asset URI"):
        Asset(uri)


def test_airflow_normalises_the_tenant_through_the_provider_handler():
    assert Asset("cxone://T1/sweeps/qa/sweep").uri == "cxone://t1/sweeps/qa/sweep"


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.skipif(AIRFLOW_V_3_1_PLUS, reason="Airflow 3.1+ gets the event (the test above)")
@pytest.mark.usefixtures("airflow_db")
def test_on_airflow_3_0_the_tasks_succeed_with_no_asset_event_and_say_so_once(
    cxone_sandbox, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(compat, "_said", set())  # what earlier tests' DAGs already said in this process
    join_run = fresh_dag("cxone_asset_dags", "cxone_asset_join").test()
    sweep_run = fresh_dag("cxone_asset_dags", "cxone_asset_sweep").test(run_conf={"report_path": str(tmp_path)})
    assert join_run.state == sweep_run.state == "success"
    assert _events(f"cxone://{SANDBOX_TENANT}/joins/cxone_asset_join/join") == []
    assert _events(SWEEP_URI) == []
    assert caplog.text.count("CXone: Asset events from CXone tasks needs Airflow 3.1.0 or newer") == 1


def test_a_mapped_sweep_adds_no_event_and_its_chunks_succeed(cxone_sandbox):
    run = fresh_dag("cxone_asset_dags", "cxone_asset_mapped_sweep").test()
    assert run.state == "success"
    chunks = [ti for ti in run.get_task_instances() if ti.task_id == "sweep"]
    assert sorted(ti.map_index for ti in chunks) == [0, 1]
    assert all(ti.state == "success" for ti in chunks)
    assert _events(f"cxone://{SANDBOX_TENANT}/sweeps/cxone_asset_mapped_sweep/sweep") == []
