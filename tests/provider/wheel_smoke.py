"""What a user does first with the installed wheel, run by ``test_wheel_install.py`` in a fresh venv.

Run as a script by that venv's Python (never imported by the test session): it writes a small DAG into
the DAGs folder, routes one join of it with ``dag.test()`` against the wheel's sandbox, then asks the
plugin's UI app, mounted in Airflow's api-server app, for a page and its static files. It prints one JSON
line of what it found; the test judges it.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

DAG_ID = "cxone_wheel_smoke"
SMOKE_DAG = textwrap.dedent(
    f'''
    """One join routed by its condition: the wheel's smoke test."""
    import pendulum
    from airflow.sdk import DAG, task

    from cxone_provider.operators.agent_session import JoinAgentSessionOperator
    from cxone_provider.operators.security_user import SetSecurityUserOperator


    @task
    def mark() -> str:
        return "ran"


    with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
        (
            SetSecurityUserOperator(task_id="set_security_user", agent_id=1001)
            >> JoinAgentSessionOperator(
                task_id="join",
                session_id="sess-2001",
                branches={{"Success": "on_success", "Default": "on_default"}},
                hook_params={{"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2}},
            )
            >> [mark.override(task_id="on_success")(), mark.override(task_id="on_default")()]
        )
    '''
)


def route_one_join() -> dict[str, str | None]:
    """``dag.test()`` of the smoke DAG against the wheel's sandbox: each task's final state."""
    import importlib

    from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer

    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    (dags / f"{DAG_ID}.py").write_text(SMOKE_DAG, encoding="utf-8")
    sys.path.insert(0, str(dags))
    # The sandbox's join by session id, as the provider's own DAG tests use it.
    with SandboxServer(faults=LEGACY_EXTENSIONS) as sandbox:
        name, value = sandbox.connection_env("cxone_default")
        os.environ[name] = value
        run = importlib.import_module(DAG_ID).dag.test()
        states = {ti.task_id: str(ti.state) if ti.state else None for ti in run.get_task_instances()}
    return {"run": str(run.state), **states}


def ask_the_ui() -> dict[str, object]:
    """The plugin's pages through Airflow's api-server app (the simple auth manager's admin)."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client.cookies.set("_token", token)
    found: dict[str, object] = {}
    for path in ("/cxone/joins", "/cxone/static/cxone.css", "/cxone/static/cxone.js"):
        response = client.get(path)
        found[path] = {
            "status": response.status_code,
            "type": response.headers.get("content-type", ""),
            "bytes": len(response.content),
            "names_the_dag": DAG_ID in response.text,
            "links_the_css": "/cxone/static/cxone.css" in response.text,
        }
    return found


def main() -> None:
    import cxone_provider
    import cxone_sandbox

    states = route_one_join()
    print(
        json.dumps(
            {
                "files": [cxone_provider.__file__, cxone_sandbox.__file__],
                "states": states,
                "ui": ask_the_ui(),
            }
        )
    )


if __name__ == "__main__":
    main()
