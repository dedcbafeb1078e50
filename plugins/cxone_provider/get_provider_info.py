"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from cxone_provider import __version__
from cxone_provider.client.fields import connection_type_info


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-cxone",
        "name": "NICE CXone",
        "description": "NICE CXone Studio's *Join Agent Session* action for Airflow, with result-branch "
        "routing, QA sweeps and an embedded CXone sandbox.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "NICE CXone",
                "external-doc-url": "https://help.nicecxone.com/",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "NICE CXone",
                "python-modules": [
                    "cxone_provider.operators.security_user",
                    "cxone_provider.operators.agent_session",
                    "cxone_provider.operators.sweep",
                    "cxone_provider.operators.agent_states",
                ],
            }
        ],
        "sensors": [{"integration-name": "NICE CXone", "python-modules": ["cxone_provider.sensors.agent_state"]}],
        "triggers": [{"integration-name": "NICE CXone", "python-modules": ["cxone_provider.triggers.agent_state"]}],
        "hooks": [{"integration-name": "NICE CXone", "python-modules": ["cxone_provider.hooks.cxone"]}],
        # cxone://<tenant>/<sweeps|joins>/<dag_id>/<task_id>: the Assets the sweep (and, opted in, the join)
        # updates; the handler checks their shape and lower-cases the tenant (docs/assets.md).
        "asset-uris": [{"schemes": ["cxone"], "handler": "cxone_provider.assets.normalize_uri"}],
        # The form is generated from the one declaration of the connection's fields (client/fields.py).
        "connection-types": [
            connection_type_info("cxone_provider.hooks.cxone.CxoneHook", "NICE CXone", "cxone"),
        ],
    }
