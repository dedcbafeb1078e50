"""OpenLineage: the join, the sweep and SetSecurityUser give the tenant they read, the report written and
the counts per condition; without apache-airflow-providers-openlineage they import and run all the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest

from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.security_user import SetSecurityUserOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2}


def _as_json(lineage) -> str:
    from openlineage.client.serde import Serde

    return json.dumps([Serde.to_dict(d) for d in lineage.inputs + lineage.outputs]) + json.dumps(
        {k: Serde.to_dict(v) for k, v in lineage.run_facets.items()}
    )


def _assert_no_secret(text: str, sandbox) -> None:
    connection = sandbox.connection()
    for secret in (connection["password"], connection["extra"]["client_secret"]):
        assert secret not in text
    for agent in sandbox.state()["agents"]:
        assert agent["first_name"] not in text
        assert agent["last_name"] not in text
    assert "token" not in text.lower()


def test_the_sweep_reads_the_tenant_writes_its_report_and_counts(cxone_sandbox, tmp_path):
    pytest.importorskip("airflow.providers.openlineage")
    agents = [{"agent_id": a["agent_id"]} for a in cxone_sandbox.state()["agents"] if a["session_id"]][:3]
    sweep = JoinAgentSessionsOperator(task_id="sweep", agents=agents, report_path=str(tmp_path), hook_params=FAST)
    result = sweep.execute(context={})

    # As OpenLineage's listener gets them: through the provider's extractor for operators with the method.
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    lineage = DefaultExtractor(sweep).extract_on_complete(task_instance=None)
    [tenant] = lineage.inputs
    assert tenant.namespace == f"cxone://127.0.0.1:{urlsplit(cxone_sandbox.url).port}"  # the API host
    assert tenant.name == f"{cxone_sandbox.tenant_id}/agent-sessions"
    [report] = lineage.outputs
    assert (report.namespace, report.name) == ("file", result["report"])
    facet = lineage.run_facets["cxone"]
    assert facet.counts == result["counts"]
    assert facet.total == len(agents)
    _assert_no_secret(_as_json(lineage), cxone_sandbox)


def test_the_join_and_set_security_user_name_what_they_read(cxone_sandbox):
    pytest.importorskip("airflow.providers.openlineage")
    join = JoinAgentSessionOperator(
        task_id="join", session_id="sess-2001", security_user={"agent_id": 1001}, hook_params=FAST
    )
    outcome = join.join(context={})
    lineage = join.get_openlineage_facets_on_complete(task_instance=None)
    assert [d.name for d in lineage.inputs] == [f"{cxone_sandbox.tenant_id}/agent-sessions"]
    assert lineage.outputs == []
    assert lineage.run_facets["cxone"].counts == {outcome.condition.value: 1}
    _assert_no_secret(_as_json(lineage), cxone_sandbox)

    set_user = SetSecurityUserOperator(task_id="set_security_user", agent_id=1001, hook_params=FAST)
    set_user.execute(context={})
    lineage = set_user.get_openlineage_facets_on_complete(task_instance=None)
    assert [d.name for d in lineage.inputs] == [f"{cxone_sandbox.tenant_id}/agents"]
    _assert_no_secret(_as_json(lineage), cxone_sandbox)  # the agent's name stays out of lineage


def test_a_join_that_never_reached_cxone_has_no_lineage():
    join = JoinAgentSessionOperator(task_id="join", session_id="   ", security_user={"agent_id": 1001})
    assert join.join(context={}).condition.value == "InvalidAgentSession"
    assert join.get_openlineage_facets_on_complete(task_instance=None) is None


WITHOUT_OPENLINEAGE = textwrap.dedent(
    """
    import importlib.metadata
    import sys

    import importlib_metadata

    # As if apache-airflow-providers-openlineage and openlineage-python were not installed: their
    # modules cannot be imported, and Airflow's provider and plugin discovery does not see them.
    for name in ("openlineage", "airflow.providers.openlineage"):
        sys.modules[name] = None
    HIDDEN = ("apache-airflow-providers-openlineage", "openlineage")
    for module in (importlib.metadata, importlib_metadata):
        def visible(*args, _all=module.distributions, **kwargs):
            return (d for d in _all(*args, **kwargs) if not (d.metadata["Name"] or "").lower().startswith(HIDDEN))
        module.distributions = visible
    from cxone_provider.operators.sweep import JoinAgentSessionsOperator

    sweep = JoinAgentSessionsOperator(task_id="sweep", agents=[{"agent_id": 1001}], report_path=sys.argv[1])
    result = sweep.execute(context={})
    assert result["counts"]["Success"] == 1, result["counts"]
    assert sweep.get_openlineage_facets_on_complete(task_instance=None) is None
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        print("ran without openlineage")
    """
)


def test_without_openlineage_the_operators_import_and_run(cxone_sandbox, tmp_path):
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENLINEAGE, str(tmp_path)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "ran without openlineage" in ran.stdout
