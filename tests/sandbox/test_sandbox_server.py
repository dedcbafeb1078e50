"""The sandbox as a test starts it: ``cxone_provider.testing`` (``SandboxServer`` and its fixtures)
and the ``cxone-sandbox`` command line (its announcement, its connection line, a clean stop).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from typing import Any

import pytest
import requests
import sandbox_http
from sandbox_http import PLUGINS, TENANT, get_token, join_url

from cxone_provider import testing as cxone_testing
from cxone_provider.testing import SandboxError, SandboxServer
from cxone_sandbox import create_app, default_seed, generate_seed, load_seed
from cxone_sandbox.cli import connection_line
from cxone_sandbox.faults import Faults
from cxone_sandbox.seed import sandbox_connection

# The package's own fixtures, used the way a user's conftest would use them.
cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox
sb = sandbox_http.sb


# ------------------------------------------------------------------------------------------ testing.py


def test_fixture_sets_the_connection_env(sb: SandboxServer) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_CXONE_DEFAULT"])
    assert conn == sb.connection()
    assert conn == {
        "conn_type": "cxone",
        "host": sb.url,
        "login": "SANDBOX-QA-KEY",
        "password": "sandbox-qa-secret",
        "extra": {
            "client_id": "sandbox-client",
            "client_secret": "sandbox-client-secret",
            "tenant_id": TENANT,
        },
    }


def test_connection_variants(sb: SandboxServer) -> None:
    pinned = sb.connection(key="SANDBOX-NOIMP-KEY", discovery=False, read_timeout=5)
    assert pinned["password"] == "sandbox-noimp-secret"
    assert pinned["extra"]["api_base_url"] == f"{sb.url}/inContactAPI/services/v33.0/"
    assert pinned["extra"]["read_timeout"] == 5
    name, value = sb.connection_env("cxone_qa")
    assert name == "AIRFLOW_CONN_CXONE_QA"
    assert json.loads(value) == sb.connection()
    with pytest.raises(KeyError, match="NO-SUCH"):
        sb.connection(key="NO-SUCH")


def test_seed_helpers() -> None:
    seed = default_seed()
    assert load_seed(None) == seed
    grown = generate_seed(3)
    assert [s["session_id"] for s in grown["sessions"][-3:]] == ["sess-5001", "sess-5002", "sess-5003"]
    assert len(grown["agents"]) == len(seed["agents"]) + 3
    assert create_app(grown, {"latency_ms": 1}).title == "CXone sandbox"
    with pytest.raises(ValueError, match="unknown agent"):
        create_app({**seed, "sessions": [{"session_id": "s", "agent_id": 1, "state": "active"}]})


def test_server_with_custom_seed_and_faults() -> None:
    seed = default_seed()
    seed["tenant_id"] = "custom-tenant"
    knobs: dict[str, Any] = {
        "rate_slow_drip": 1.0,
        "drip_interval_s": 30,
        "path_filter": "agent-sessions/join",
        "join_mode": "spec",
        "states_session_id": False,
    }
    with SandboxServer(seed, live_sessions=2, faults=knobs) as server:
        assert server.tenant_id == "custom-tenant"
        state = server.state()
        assert {"sess-5001", "sess-5002"} <= {s["session_id"] for s in state["sessions"]}
        assert server.faults() == Faults(**knobs).to_dict()  # through the command line
        server.set_faults()
        server.reset()  # back to the faults it started with
        assert server.faults() == Faults(**knobs).to_dict()
        # A client holding a dripping answer does not stall the stop: the rest comes at once.
        held = requests.post(
            join_url(server),
            headers={"Authorization": f"Bearer {get_token(server).json()['access_token']}"},
            stream=True,
            timeout=(5, 10),
        )
        # Exit code 0: it stopped on SIGTERM, not killed 10 s later, and not after the drip's 10 min course.
        assert server.stop() == 0
        assert held.json() == {"sessionId": "drip"}
    assert not server.running


def test_server_start_failure_reports_stderr() -> None:
    with pytest.raises(SandboxError, match="rate_503"):
        SandboxServer(extra_args=["--rate-503", "2"], startup_timeout=20).start()


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_announces_and_stops_cleanly(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PLUGINS, os.environ.get("PYTHONPATH")]))}
    cmd = [
        sys.executable,
        "-m",
        "cxone_sandbox.cli",
        "--port",
        "0",
        "--live-sessions",
        "3",
        "--latency-ms",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("CXone sandbox listening on http://127.0.0.1:"), line + proc.stderr.read()  # type: ignore[union-attr]
        url = line.rsplit(" ", 1)[1].strip()
        name, _, value = proc.stdout.readline().strip().partition("=")
        assert name == "AIRFLOW_CONN_CXONE_DEFAULT"
        (unquoted,) = shlex.split(value)  # one shell word, ready to paste after `export`
        seed = generate_seed(3)
        assert json.loads(unquoted) == sandbox_connection(seed, url)
        assert json.loads(unquoted)["login"] == "SANDBOX-QA-KEY"
        state = requests.get(f"{url}/_sandbox/state", timeout=10).json()
        assert "sess-5003" in {s["session_id"] for s in state["sessions"]}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # exactly two lines on stdout, both read


def test_connection_line_logs_in_with_the_first_key_that_may_impersonate() -> None:
    seed = default_seed()
    seed["users"] = [dict(u, can_impersonate=u["access_key_id"] == "SANDBOX-INACTIVE-KEY") for u in seed["users"]]
    seed["applications"][0]["client_secret"] = "it's quoted"
    line = connection_line(seed, "http://127.0.0.1:1")
    assert line is not None
    conn = json.loads(shlex.split(line.partition("=")[2])[0])
    assert (conn["login"], conn["password"]) == ("SANDBOX-INACTIVE-KEY", "sandbox-inactive-secret")
    assert conn["extra"]["client_secret"] == "it's quoted"
    seed["users"] = []
    assert connection_line(seed, "http://127.0.0.1:1") is None
