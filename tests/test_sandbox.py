"""The CXone sandbox over real HTTP: auth, discovery, the Agent API, faults, journal, admin and CLI.

One sandbox process serves the whole module (the ``cxone_sandbox`` fixture resets it per test);
plain ``requests`` talks to it, so these tests pin the wire contract the hook relies on.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from cxone_provider import testing as cxone_testing
from cxone_provider.sandbox import create_app, default_seed, generate_seed, load_seed
from cxone_provider.sandbox.cli import build_parser, faults_from_args
from cxone_provider.sandbox.faults import Faults
from cxone_provider.testing import SandboxError, SandboxServer

# The package's own fixtures, used the way a user's conftest would use them.
cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

TENANT = "11ee0000-0000-4000-8000-00000000cx01"
CLIENT = ("sandbox-client", "sandbox-client-secret")
QA = ("SANDBOX-QA-KEY", "sandbox-qa-secret")
VERSION = "v33.0"
PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


@pytest.fixture
def sb(cxone_sandbox: SandboxServer) -> SandboxServer:
    return cxone_sandbox


def get_token(sb: SandboxServer, key: tuple[str, str] = QA, client: tuple[str, str] = CLIENT) -> requests.Response:
    return requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": key[0], "password": key[1]},
        auth=client,
        timeout=10,
    )


@pytest.fixture
def token(sb: SandboxServer) -> str:
    response = get_token(sb)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def api(
    sb: SandboxServer, method: str, path: str, token: str | None, version: str = VERSION, **params: Any
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(
        method,
        f"{sb.url}/inContactAPI/services/{version}/{path}",
        params=params,
        headers=headers,
        timeout=10,
    )


def join(sb: SandboxServer, token: str, agent: object, session: object) -> requests.Response:
    return api(sb, "POST", "agent-sessions/join", token, asAgentId=agent, sessionId=session)


def assert_error(response: requests.Response, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    return body


def jwt_part(part: str) -> dict[str, object]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# ------------------------------------------------------------------------------------------ auth


def test_token_is_issued_with_an_unsigned_id_token(sb: SandboxServer) -> None:
    response = get_token(sb)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert body["refresh_token"]
    header, payload, signature = body["id_token"].split(".")
    assert jwt_part(header) == {"alg": "none", "typ": "JWT"}
    claims = jwt_part(payload)
    assert claims["tenantId"] == TENANT
    assert claims["sub"] == "user:1001"
    assert claims["iss"] == sb.url
    assert claims["exp"] - claims["iat"] == 3600  # type: ignore[operator]
    assert signature == ""
    assert sb.state()["tokens_issued"] == 1


@pytest.mark.parametrize(
    "client",
    [None, ("sandbox-client", "wrong"), ("no-such-client", "sandbox-client-secret")],
    ids=["missing", "wrong-secret", "unknown-client"],
)
def test_token_bad_client_is_invalid_client(sb: SandboxServer, client: tuple[str, str] | None) -> None:
    response = requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": QA[0], "password": QA[1]},
        auth=client,
        timeout=10,
    )
    assert_error(response, 401, "invalid_client")


def test_token_other_grant_is_unsupported(sb: SandboxServer) -> None:
    response = requests.post(f"{sb.url}/auth/token", data={"grant_type": "client_credentials"}, auth=CLIENT, timeout=10)
    assert_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (("NO-SUCH-KEY", "whatever"), "invalid"),
        (("SANDBOX-QA-KEY", "not-the-secret"), "invalid"),
        (("SANDBOX-INACTIVE-KEY", "sandbox-inactive-secret"), "inactive"),
    ],
    ids=["unknown-key", "wrong-secret", "inactive-agent"],
)
def test_token_bad_grant_is_invalid_grant(sb: SandboxServer, key: tuple[str, str], words: str) -> None:
    body = assert_error(get_token(sb, key), 400, "invalid_grant")
    assert words in body["error_description"]


def test_token_accepts_a_json_body_too(sb: SandboxServer) -> None:
    body = {"grant_type": "password", "username": QA[0], "password": QA[1]}
    response = requests.post(f"{sb.url}/auth/token", json=body, auth=CLIENT, timeout=10)
    assert response.status_code == 200


# ------------------------------------------------------------------------------------------ discovery


def test_discovery_points_back_at_the_sandbox(sb: SandboxServer) -> None:
    response = requests.get(f"{sb.url}/.well-known/cxone-configuration", params={"tenantId": TENANT}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "api_endpoint": sb.url,
        "area": "na1",
        "domain": "sandbox.local",
        "tenantId": TENANT,
    }


@pytest.mark.parametrize("params", [{"tenantId": "no-such-tenant"}, {}], ids=["unknown", "missing"])
def test_discovery_unknown_tenant(sb: SandboxServer, params: dict[str, str]) -> None:
    response = requests.get(f"{sb.url}/.well-known/cxone-configuration", params=params, timeout=10)
    assert_error(response, 404, "InvalidTenant")


# ------------------------------------------------------------------------------------------ join


@pytest.mark.parametrize(
    ("agent", "session", "status", "error", "text"),
    [
        (1001, "sess-2001", 202, None, None),
        (1003, "sess-2001", 403, "InvalidSecurityUser", "Agent 1003 is not active"),
        (1002, "sess-2001", 403, "ImpersonateNotEnabled", "Impersonation is not enabled for agent 1002"),
        (9999, "sess-2001", 404, "InvalidAgentId", "Agent 9999 was not found"),
        (1001, "sess-2007", 409, "InvalidAgentSession", "Session sess-2007 has ended"),
        (1001, "no-such", 404, "InvalidAgentSession", "Session no-such was not found"),
    ],
    ids=["Success", "InvalidSecurityUser", "ImpersonateNotEnabled", "InvalidAgentId", "ended", "unknown"],
)
def test_join_conditions(
    sb: SandboxServer, token: str, agent: int, session: str, status: int, error: str | None, text: str | None
) -> None:
    response = join(sb, token, agent, session)
    if error is None:
        assert response.status_code == status
        assert response.json() == {"sessionId": session}
    else:
        assert assert_error(response, status, error)["error_description"] == text
    joins = sb.state()["joins"]
    assert joins == ([[session, agent]] if error is None else [])


@pytest.mark.parametrize("agent", ["abc", "0", "-5", "1.5", None], ids=["text", "zero", "negative", "float", "missing"])
def test_join_malformed_agent_id(sb: SandboxServer, token: str, agent: str | None) -> None:
    assert_error(join(sb, token, agent, "sess-2001"), 400, "InvalidAgentId")


def test_join_without_session_id(sb: SandboxServer, token: str) -> None:
    assert_error(join(sb, token, 1001, None), 404, "InvalidAgentSession")


def test_join_is_idempotent_and_counted(sb: SandboxServer, token: str) -> None:
    first = join(sb, token, 1001, "sess-2003")
    second = join(sb, token, 1001, "sess-2003")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"sessionId": "sess-2003"}
    state = sb.state()
    session = next(s for s in state["sessions"] if s["session_id"] == "sess-2003")
    assert session["joined_agents"] == [1001]
    assert session["join_calls"] == 2
    assert state["joins"] == [["sess-2003", 1001]]
    assert state["join_calls"] == 2


# ------------------------------------------------------------------------------------------ API basics


@pytest.mark.parametrize("bearer", [None, "not-a-token"], ids=["missing", "unknown"])
def test_api_needs_a_valid_token(sb: SandboxServer, bearer: str | None) -> None:
    body = assert_error(api(sb, "GET", "agents/1001", bearer), 401, "invalid_token")
    assert body["error_description"] == "The access token is invalid or has expired"


def test_token_expires(sb: SandboxServer) -> None:
    sb.set_faults(token_lifetime_s=1)
    response = get_token(sb)
    assert response.json()["expires_in"] == 1
    token = response.json()["access_token"]
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    time.sleep(1.1)
    assert_error(api(sb, "GET", "agents/1001", token), 401, "invalid_token")


@pytest.mark.parametrize("version", ["latest", "33.0", "v33"])
def test_unknown_api_version(sb: SandboxServer, token: str, version: str) -> None:
    assert_error(api(sb, "GET", "agents/1001", token, version=version), 404, "UnknownApiVersion")


def test_other_versions_are_served(sb: SandboxServer, token: str) -> None:
    assert api(sb, "GET", "agents/1001", token, version="v23.0").status_code == 200


def test_get_agent(sb: SandboxServer, token: str) -> None:
    response = api(sb, "GET", "agents/1001", token)
    assert response.status_code == 200
    assert response.json() == {
        "agents": [
            {
                "agentId": 1001,
                "isActive": True,
                "firstName": "Quinn",
                "lastName": "Supervisor",
                "teamId": 10,
                "timeZone": "America/Denver",
            }
        ]
    }
    assert api(sb, "GET", "agents/1003", token).json()["agents"][0]["isActive"] is False


def test_get_agent_errors(sb: SandboxServer, token: str) -> None:
    assert_error(api(sb, "GET", "agents/abc", token), 400, "InvalidAgentId")
    body = assert_error(api(sb, "GET", "agents/4242", token), 404, "InvalidAgentId")
    assert "4242" in body["error_description"]


def test_agent_states(sb: SandboxServer, token: str) -> None:
    response = api(sb, "GET", "agents/states", token, updatedSince="2020-01-01T00:00:00Z")
    assert response.status_code == 200
    states = {s["agentId"]: s for s in response.json()["agentStates"]}
    assert set(states) == {1001, 1002, 1003, *range(2001, 2010)}
    keys = {
        "agentId",
        "agentStateName",
        "sessionId",
        "stationId",
        "sessionStartTime",
        "teamId",
        "firstName",
        "lastName",
    }
    assert all(set(s) == keys for s in states.values())
    live = {a: s for a, s in states.items() if s["sessionId"]}
    assert {s["sessionId"] for s in live.values()} == {f"sess-{a}" for a in range(2001, 2007)}
    assert {s["agentStateName"] for s in live.values()} == {"Available", "InboundContact", "Unavailable"}
    assert states[2001]["agentStateName"] == "Available"
    assert states[2001]["stationId"] == 7001
    assert states[2001]["sessionStartTime"].endswith("Z")
    datetime.fromisoformat(states[2001]["sessionStartTime"])
    for logged_out in (2007, 2008, 2009, 1001):
        assert states[logged_out]["agentStateName"] == "LoggedOut"
        assert states[logged_out]["sessionId"] is None
        assert states[logged_out]["sessionStartTime"] is None


# ------------------------------------------------------------------------------------------ sessions


def test_start_join_and_end_a_session(sb: SandboxServer, token: str) -> None:
    started = api(sb, "POST", "agent-sessions", token, stationId="7009", asAgentId=2009)
    assert started.status_code == 202
    session_id = started.json()["sessionId"]
    states = {s["agentId"]: s for s in api(sb, "GET", "agents/states", token).json()["agentStates"]}
    assert states[2009]["sessionId"] == session_id
    assert states[2009]["agentStateName"] == "Available"
    assert join(sb, token, 1001, session_id).status_code == 202

    ended = api(sb, "DELETE", f"agent-sessions/{session_id}", token, forceLogoff="true")
    assert ended.status_code == 202
    assert_error(api(sb, "DELETE", f"agent-sessions/{session_id}", token), 409, "InvalidAgentSession")
    assert_error(join(sb, token, 1001, session_id), 409, "InvalidAgentSession")
    assert_error(api(sb, "DELETE", "agent-sessions/no-such", token), 404, "InvalidAgentSession")
    states = {s["agentId"]: s for s in api(sb, "GET", "agents/states", token).json()["agentStates"]}
    assert states[2009]["agentStateName"] == "LoggedOut"


def test_start_session_by_phone_number(sb: SandboxServer, token: str) -> None:
    response = api(sb, "POST", "agent-sessions", token, stationPhoneNumber="5551234", asAgentId=2009)
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"stationId": "7009", "asAgentId": 9999}, 404, "InvalidAgentId"),
        ({"stationId": "7009", "asAgentId": 1003}, 403, "InvalidSecurityUser"),
        ({"asAgentId": 2009}, 400, "InvalidStation"),
        ({"stationId": "7009"}, 400, "InvalidAgentId"),
    ],
    ids=["unknown-agent", "inactive-agent", "no-station", "no-agent"],
)
def test_start_session_errors(sb: SandboxServer, token: str, params: dict[str, Any], status: int, error: str) -> None:
    assert_error(api(sb, "POST", "agent-sessions", token, **params), status, error)


# ------------------------------------------------------------------------------------------ supervise


@pytest.mark.parametrize("action", ["monitor", "coach", "barge", "take-over"])
def test_supervise_actions_are_recorded(sb: SandboxServer, token: str, action: str) -> None:
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    response = api(sb, "POST", f"agent-sessions/sess-2001/{action}", token, targetAgentId=2001)
    assert response.status_code == 202
    assert response.json() == {}
    (recorded,) = sb.state()["supervise_actions"]
    assert recorded["session_id"] == "sess-2001"
    assert recorded["action"] == action
    assert recorded["target_agent_id"] == 2001


@pytest.mark.parametrize(
    ("session", "target", "status", "error"),
    [
        ("no-such", 2001, 404, "InvalidAgentSession"),
        ("sess-2007", 2001, 409, "InvalidAgentSession"),
        ("sess-2001", 9999, 404, "InvalidAgentId"),
        ("sess-2001", "x", 400, "InvalidAgentId"),
        ("sess-2001", 2009, 409, "InvalidAgentSession"),
    ],
    ids=["unknown-session", "ended-session", "unknown-target", "bad-target", "target-logged-out"],
)
def test_supervise_errors(sb: SandboxServer, token: str, session: str, target: object, status: int, error: str) -> None:
    response = api(sb, "POST", f"agent-sessions/{session}/monitor", token, targetAgentId=target)
    assert_error(response, status, error)
    assert sb.state()["supervise_actions"] == []


def test_unknown_supervise_action_is_not_found(sb: SandboxServer, token: str) -> None:
    response = api(sb, "POST", "agent-sessions/sess-2001/whisper", token, targetAgentId=2001)
    assert_error(response, 404, "NotFound")


# ------------------------------------------------------------------------------------------ faults


def test_faults_default_off(sb: SandboxServer) -> None:
    assert sb.faults() == Faults().to_dict()
    assert sb.faults()["token_lifetime_s"] == 3600


def test_put_faults_replaces_over_defaults(sb: SandboxServer) -> None:
    sb.set_faults(latency_ms=5, rate_503=0.5)
    effective = sb.set_faults(rate_503=0.25)
    assert effective["rate_503"] == 0.25
    assert effective["latency_ms"] == 0


@pytest.mark.parametrize(
    "knobs",
    [
        {"no_such_knob": 1},
        {"rate_503": 2},
        {"rate_503": 0.6, "rate_drop": 0.6},
        {"rate_html": 0.6, "rate_slow_drip": 0.6},
        {"rate_non_json": -0.1},
        {"huge_body_bytes": 0},
        {"huge_body_bytes": 1.5},
        {"drip_interval_s": -1},
        {"path_filter": 5},
    ],
)
def test_bad_faults_are_rejected(sb: SandboxServer, knobs: dict[str, object]) -> None:
    response = requests.put(f"{sb.url}/_sandbox/faults", json=knobs, timeout=10)
    assert_error(response, 400, "InvalidFaults")


@pytest.mark.parametrize(
    ("knobs", "status", "error", "fault", "retry_after"),
    [
        ({"rate_429_retry_after": 1.0, "retry_after_s": 3}, 429, "TooManyRequests", "429_retry_after", "3"),
        ({"rate_429_no_retry_after": 1.0}, 429, "TooManyRequests", "429", None),
        ({"rate_503": 1.0}, 503, "ServiceUnavailable", "503", None),
    ],
    ids=["429-retry-after", "429-no-retry-after", "503"],
)
def test_faulted_responses(
    sb: SandboxServer,
    token: str,
    knobs: dict[str, object],
    status: int,
    error: str,
    fault: str,
    retry_after: str | None,
) -> None:
    sb.set_faults(**knobs)
    response = join(sb, token, 1001, "sess-2001")
    assert_error(response, status, error)
    assert response.headers.get("Retry-After") == retry_after
    # A faulted request never reaches the API: nothing joined.
    assert sb.state()["join_calls"] == 0
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (status, fault)


def test_dropped_connection_is_a_connection_error(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_drop=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        join(sb, token, 1001, "sess-2001")
    assert sb.state()["join_calls"] == 0
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (None, "drop")
    sb.set_faults()
    assert join(sb, token, 1001, "sess-2001").status_code == 202


def test_faults_spare_auth_unless_asked(sb: SandboxServer) -> None:
    sb.set_faults(rate_503=1.0)
    assert get_token(sb).status_code == 200
    sb.set_faults(rate_503=1.0, apply_to_auth=True)
    assert_error(get_token(sb), 503, "ServiceUnavailable")


def test_admin_is_never_faulted(sb: SandboxServer) -> None:
    sb.set_faults(rate_drop=1.0, apply_to_auth=True, latency_ms=2000)
    started = time.monotonic()
    assert sb.state()["join_calls"] == 0
    assert sb.journal() == []
    assert time.monotonic() - started < 1


def test_latency_overlaps_across_concurrent_requests(sb: SandboxServer, token: str) -> None:
    sb.set_faults(latency_ms=200)
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started >= 0.2
    sb.clear_journal()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda s: join(sb, token, 1001, s).status_code, ["sess-2001"] * 8))
    elapsed = time.monotonic() - started
    assert statuses == [202] * 8
    assert elapsed < 0.2 * 8 / 2, "latency must not serialise requests"
    assert max(e["inflight"] for e in sb.journal()) > 1


def test_slow_requests(sb: SandboxServer, token: str) -> None:
    sb.set_faults(slow_rate=1.0, slow_ms=150)
    started = time.monotonic()
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    assert time.monotonic() - started >= 0.15
    assert sb.journal()[-1]["fault"] == "slow"


def test_random_seed_makes_runs_reproducible(sb: SandboxServer, token: str) -> None:
    def run() -> list[int]:
        sb.set_faults(rate_503=0.3, rate_429_no_retry_after=0.2, random_seed=42)
        return [api(sb, "GET", "agents/1001", token).status_code for _ in range(30)]

    first = run()
    assert run() == first
    assert {200, 429, 503} <= set(first)


def test_path_filter_faults_only_matching_paths(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0, slow_rate=1.0, slow_ms=0, latency_ms=100, path_filter="agent-sessions/join")
    sb.clear_journal()
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started >= 0.1, "latency still applies outside the filter"
    assert_error(join(sb, token, 1001, "sess-2001"), 503, "ServiceUnavailable")
    assert [e["fault"] for e in sb.journal()] == [None, "503"]
    # The malformed answers obey it too.
    sb.set_faults(rate_html=1.0, path_filter="agents/")
    assert join(sb, token, 1001, "sess-2001").status_code == 202
    assert api(sb, "GET", "agents/1001", token).status_code == 502


def test_path_filter_narrows_apply_to_auth(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0, path_filter="/auth/token")
    assert get_token(sb).status_code == 200, "auth stays out of scope without apply_to_auth"
    sb.set_faults(rate_503=1.0, path_filter="/auth/token", apply_to_auth=True)
    assert_error(get_token(sb), 503, "ServiceUnavailable")
    assert api(sb, "GET", "agents/1001", token).status_code == 200


def test_empty_path_filter_means_none(sb: SandboxServer) -> None:
    assert sb.set_faults(path_filter="")["path_filter"] is None


@pytest.mark.parametrize(
    ("knob", "path", "status", "content_type", "body"),
    [
        ("rate_html", "agent-sessions/join", 502, "text/html", None),
        ("rate_non_json", "agent-sessions/join", 200, "text/plain", b"OK"),
        ("rate_truncated_json", "agent-sessions/join", 200, "application/json", b'{"sessionId": "sess-20'),
        ("rate_no_session_id", "agent-sessions/join", 202, "application/json", b"{}"),
        ("rate_no_session_id", "agents/1001", 200, "application/json", b"{}"),
    ],
    ids=["html", "non-json", "truncated-json", "no-session-id-join", "no-session-id-elsewhere"],
)
def test_malformed_answers(
    sb: SandboxServer, token: str, knob: str, path: str, status: int, content_type: str, body: bytes | None
) -> None:
    sb.set_faults(**{knob: 1.0})
    method = "POST" if path == "agent-sessions/join" else "GET"
    response = api(sb, method, path, token, asAgentId=1001, sessionId="sess-2001")
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Length"] == str(len(response.content))
    if body is None:  # nginx's page
        assert response.content.startswith(b"<html>\r\n<head><title>502 Bad Gateway</title></head>")
        assert response.content.rstrip().endswith(b"</body>\r\n</html>")
    else:
        assert response.content == body
    if knob != "rate_no_session_id":
        with pytest.raises(requests.exceptions.JSONDecodeError):
            response.json()
    assert sb.state()["join_calls"] == 0, "a malformed answer never reaches the API"
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (status, knob.removeprefix("rate_"))


def test_malformed_rates_share_the_die(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_html=0.5, rate_non_json=0.5, random_seed=3)
    sb.clear_journal()
    statuses = {api(sb, "GET", "agents/1001", token).status_code for _ in range(20)}
    assert statuses == {200, 502}
    assert {e["fault"] for e in sb.journal()} == {"html", "non_json"}


def test_huge_body(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_huge_body=1.0)
    assert sb.faults()["huge_body_bytes"] == 5_000_000
    sb.clear_journal()
    response = join(sb, token, 1001, "sess-2001")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.content)) == "5000000"
    body = response.json()  # well-formed, only too big
    assert body["sessionId"] == "sess-2001"
    assert set(body["padding"]) == {"x"}
    sb.set_faults(rate_huge_body=1.0, huge_body_bytes=70_000)  # more than one chunk
    response = api(sb, "GET", "agents/1001", token)
    assert len(response.content) == 70_000
    assert set(response.json()) == {"padding"}
    assert sb.state()["join_calls"] == 0
    assert [e["fault"] for e in sb.journal()] == ["huge_body", "huge_body"]


def join_url(sb: SandboxServer) -> str:
    return f"{sb.url}/inContactAPI/services/{VERSION}/agent-sessions/join?asAgentId=1001&sessionId=sess-2001"


def test_slow_drip_outlasts_a_per_read_timeout(sb: SandboxServer, token: str) -> None:
    # Each byte comes within the read timeout, so only a bound on the whole read could stop this.
    sb.set_faults(rate_slow_drip=1.0, drip_interval_s=0.05)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    response = requests.post(join_url(sb), headers=headers, timeout=(5, 0.5))
    assert time.monotonic() - started >= 20 * 0.05 * 0.9
    assert response.status_code == 200
    assert response.json() == {"sessionId": "drip"}
    assert response.headers["Content-Length"] == "20"
    entry = sb.journal()[-1]
    assert (entry["status"], entry["fault"]) == (200, "slow_drip")
    assert sb.state()["join_calls"] == 0


def test_slow_drip_times_out_blocks_nothing_and_survives_disconnects(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_slow_drip=1.0, drip_interval_s=2.0, path_filter="agent-sessions/join")
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    streamed = requests.post(join_url(sb), headers=headers, stream=True, timeout=(5, 5))
    assert time.monotonic() - started < 0.4, "headers come at once"
    assert streamed.status_code == 200
    # While it drips, the server answers others at once.
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started < 0.4
    # A read timeout shorter than the interval fires (requests reports it as a ConnectionError).
    with pytest.raises(requests.exceptions.RequestException, match="timed out"):
        requests.post(join_url(sb), headers=headers, timeout=(5, 0.2))
    streamed.close()  # the client leaves mid-drip
    deadline = time.monotonic() + 3
    while len(drips := [e for e in sb.journal() if e["fault"] == "slow_drip"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(drips) == 2
    # Each ends as its client leaves: not after its 40 s course, nor even after the current interval.
    assert all(e["t_end"] - e["t_start"] < 1.5 for e in drips), drips
    assert all(e["status"] == 200 for e in drips)
    assert "Traceback" not in sb.log()
    assert "ASGI callable" not in sb.log()
    sb.set_faults()
    assert join(sb, token, 1001, "sess-2001").status_code == 202


def test_cli_fault_flags() -> None:
    args = build_parser().parse_args(
        [
            "--rate-html=0.1",
            "--rate-non-json=0.1",
            "--rate-truncated-json=0.1",
            "--rate-no-session-id=0.1",
            "--rate-huge-body=0.1",
            "--huge-body-bytes=1000",
            "--rate-slow-drip=0.1",
            "--drip-interval-s=0.25",
            "--path-filter=agent-sessions/join",
        ]
    )
    faults = faults_from_args(args)
    assert faults == Faults(
        rate_html=0.1,
        rate_non_json=0.1,
        rate_truncated_json=0.1,
        rate_no_session_id=0.1,
        rate_huge_body=0.1,
        huge_body_bytes=1000,
        rate_slow_drip=0.1,
        drip_interval_s=0.25,
        path_filter="agent-sessions/join",
    )
    assert faults_from_args(build_parser().parse_args([])) == Faults()
    # A filter that looks like a flag still reaches the server as one argument.
    assert "--path-filter=-join" in SandboxServer(faults={"path_filter": "-join"}).command()


# ------------------------------------------------------------------------------------------ journal


def test_journal_records_requests_without_secrets(sb: SandboxServer) -> None:
    issued = get_token(sb).json()
    join(sb, issued["access_token"], 1001, "sess-2002")
    entries = sb.journal()
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/auth/token", 200),
        ("POST", f"/inContactAPI/services/{VERSION}/agent-sessions/join", 202),
    ]
    token_entry, join_entry = entries
    assert join_entry["params"] == {"asAgentId": "1001", "sessionId": "sess-2002"}
    assert join_entry["seq"] > token_entry["seq"]
    assert set(join_entry) == {
        "seq",
        "t_start",
        "t_end",
        "method",
        "path",
        "params",
        "status",
        "fault",
        "inflight",
    }
    assert join_entry["fault"] is None
    assert join_entry["inflight"] == 1
    assert 0 <= token_entry["t_start"] <= token_entry["t_end"] <= join_entry["t_start"] <= join_entry["t_end"]
    dumped = json.dumps(entries) + json.dumps(sb.state())
    for secret in (QA[1], CLIENT[1], issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in dumped


def test_clear_journal(sb: SandboxServer, token: str) -> None:
    assert sb.journal()
    sb.clear_journal()
    assert sb.journal() == []


# ------------------------------------------------------------------------------------------ reset


def test_reset_restores_seed_faults_and_journal(sb: SandboxServer, token: str) -> None:
    join(sb, token, 1001, "sess-2001")
    api(sb, "DELETE", "agent-sessions/sess-2002", token)
    sb.set_faults(latency_ms=10)
    sb.reset()
    state = sb.state()
    assert state["join_calls"] == 0
    assert state["tokens_issued"] == 0
    assert next(s for s in state["sessions"] if s["session_id"] == "sess-2002")["state"] == "active"
    assert sb.faults() == Faults().to_dict()
    assert sb.journal() == []
    # Tokens are state too: a reset revokes them, as a new tenant would.
    assert_error(api(sb, "GET", "agents/1001", token), 401, "invalid_token")


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
    knobs: dict[str, Any] = {"rate_slow_drip": 1.0, "drip_interval_s": 30, "path_filter": "agent-sessions/join"}
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
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 3
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
        "cxone_provider.sandbox.cli",
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
        state = requests.get(f"{url}/_sandbox/state", timeout=10).json()
        assert "sess-5003" in {s["session_id"] for s in state["sessions"]}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # exactly one line on stdout, already read
