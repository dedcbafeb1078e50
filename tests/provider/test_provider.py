"""The installed package as Airflow sees it: provider list, connection type and its form."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cxone_provider.compat import AIRFLOW_V_3_2_PLUS


def _airflow(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )
    assert result.returncode == 0, result.stderr
    # Airflow 3.0 logs its plugin set-up to stdout ahead of the JSON; the JSON is the last line.
    return result.stdout.strip().splitlines()[-1]


def test_airflow_lists_the_provider():
    providers = json.loads(_airflow("providers", "list", "-o", "json"))
    (ours,) = [p for p in providers if p["package_name"] == "airflow-provider-cxone"]
    import cxone_provider

    assert ours["version"] == cxone_provider.__version__


def test_the_cxone_connection_type_and_its_hook():
    hooks = json.loads(_airflow("providers", "hooks", "-o", "json"))
    (cxone,) = [h for h in hooks if h["connection_type"] == "cxone"]
    assert cxone["class"] == "cxone_provider.hooks.cxone.CxoneHook"
    assert cxone["conn_id_attribute_name"] == "cxone_conn_id"


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="Airflow reads a provider's conn-fields since 3.2")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_connection_form_names_every_field():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    fields = {name.removeprefix("extra__cxone__") for name in manager.connection_form_widgets if "cxone" in name}
    assert fields == {
        "client_id",
        "client_secret",
        "tenant_id",
        "api_version",
        "api_base_url",
        "connect_timeout",
        "read_timeout",
        "verify_ssl",
        "allowed_api_domains",
        "condition_rules",
        "rate_budget",
    }
    widgets = manager.connection_form_widgets
    assert widgets["extra__cxone__client_secret"].field["schema"]["format"] == "password"
    assert "format" not in widgets["extra__cxone__client_id"].field["schema"]
    behaviour = manager.field_behaviours["cxone"]
    assert behaviour["relabeling"] == {
        "host": "Auth host",
        "login": "Access key ID",
        "password": "Access key secret",
    }
    assert manager.hooks["cxone"].connection_testable
