"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from cxone_provider import __version__


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
        "connection-types": [
            {
                "hook-class-name": "cxone_provider.hooks.cxone.CxoneHook",
                "hook-name": "NICE CXone",
                "connection-type": "cxone",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Auth host",
                        "login": "Access key ID",
                        "password": "Access key secret",
                    },
                    "placeholders": {
                        "host": "https://cxone.niceincontact.com",
                        "login": "access key id of the API user",
                        "password": "access key secret",
                    },
                },
                "conn-fields": {
                    "client_id": {
                        "label": "Client ID",
                        "description": "Application registration (client) id, sent with HTTP Basic.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_secret": {
                        "label": "Client secret",
                        "description": "Application registration secret.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "tenant_id": {
                        "label": "Tenant ID",
                        "description": "Finds the API host by discovery; read from the token when empty.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "api_version": {
                        "label": "API version",
                        "description": "Agent API version, e.g. v33.0.",
                        "schema": {"type": ["string", "null"], "default": "v33.0"},
                    },
                    "api_base_url": {
                        "label": "API base URL override",
                        "description": "Skips discovery, e.g. https://api-na1.niceincontact.com/"
                        "inContactAPI/services/v33.0/",
                        "schema": {"type": ["string", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 10},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "description": "Leave on; switch off only for a test proxy you control.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                },
            }
        ],
    }
