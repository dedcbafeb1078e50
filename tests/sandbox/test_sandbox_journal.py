"""The sandbox's request journal (what it records, never a secret) and its reset to the seed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import requests
import sandbox_http
from sandbox_http import CLIENT, QA, VERSION, api, assert_error, get_token, join

from cxone_sandbox.faults import Faults

if TYPE_CHECKING:
    from cxone_provider.testing import SandboxServer

sb = sandbox_http.sb
token = sandbox_http.token


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
    assert set(join_entry) == set(token_entry) == JOURNAL_KEYS
    assert (join_entry["body"], join_entry["body_fields"], join_entry["client_auth"]) == (None, [], None)
    assert join_entry["user_agent"].startswith("python-requests/")
    assert token_entry["body"] is None
    assert token_entry["body_fields"] == ["grant_type", "password", "username"]
    assert token_entry["client_auth"] == "basic"
    assert join_entry["fault"] is None
    assert join_entry["inflight"] == 1
    assert 0 <= token_entry["t_start"] <= token_entry["t_end"] <= join_entry["t_start"] <= join_entry["t_end"]
    dumped = json.dumps(entries) + json.dumps(sb.state())
    for secret in (QA[1], CLIENT[1], issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in dumped


JOURNAL_KEYS = {
    "seq",
    "t_start",
    "t_end",
    "method",
    "path",
    "params",
    "body",
    "body_fields",
    "client_auth",
    "user_agent",
    "status",
    "fault",
    "inflight",
}


def test_journal_records_a_json_body_and_the_user_agent(sb: SandboxServer, token: str) -> None:
    sb.clear_journal()
    response = requests.post(
        f"{sb.url}/InContactAPI/services/v23.0/agent-sessions/join",
        json={"asAgentId": 1001, "sessionId": "sess-2001"},
        headers={"Authorization": f"Bearer {token}", "User-Agent": "cxone-agent-sdk/1.0"},
        timeout=10,
    )
    assert response.status_code == 202
    (entry,) = sb.journal()
    assert entry["path"] == "/InContactAPI/services/v23.0/agent-sessions/join"
    assert entry["params"] == {}
    assert entry["body"] == {"asAgentId": 1001, "sessionId": "sess-2001"}  # JSON values as sent
    assert entry["body_fields"] == ["asAgentId", "sessionId"]
    assert entry["user_agent"] == "cxone-agent-sdk/1.0"


def test_journal_records_the_body_of_a_faulted_request(sb: SandboxServer, token: str) -> None:
    sb.set_faults(rate_503=1.0)
    sb.clear_journal()
    assert api(sb, "POST", "agent-sessions/join", token, body={"asAgentId": 1001}).status_code == 503
    (entry,) = sb.journal()
    assert (entry["fault"], entry["body"]) == ("503", {"asAgentId": 1001})


def test_journal_token_entries_hold_field_names_and_client_auth_only(sb: SandboxServer) -> None:
    issued = get_token(sb).json()
    form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    requests.post(f"{sb.url}/auth/token", data={**form, "client_id": CLIENT[0], "client_secret": CLIENT[1]}, timeout=10)
    # Secrets in the query string (nobody should) are kept out too.
    requests.post(f"{sb.url}/auth/token", params={"password": QA[1]}, data={"grant_type": "password"}, timeout=10)
    basic, form_entry, query_entry = sb.journal()
    assert (basic["client_auth"], basic["body_fields"]) == ("basic", ["grant_type", "password", "username"])
    assert form_entry["client_auth"] == "form"
    assert form_entry["body_fields"] == ["client_id", "client_secret", "grant_type", "refresh_token"]
    assert query_entry["params"] == {"password": "<redacted>"}
    assert query_entry["client_auth"] is None
    assert all(e["body"] is None for e in (basic, form_entry, query_entry))
    dumped = json.dumps(sb.journal()) + json.dumps(sb.state())
    for secret in (QA[1], CLIENT[1], issued["access_token"], issued["refresh_token"], issued["id_token"]):
        assert secret not in dumped


def test_journal_route_and_helper_return_the_same_list(sb: SandboxServer, token: str) -> None:
    join(sb, token, 1001, "sess-2001")
    listed = requests.get(f"{sb.url}/_sandbox/journal", timeout=10).json()
    assert isinstance(listed, list)
    assert listed == sb.journal()
    assert [e["path"].rsplit("/", 1)[-1] for e in listed] == ["token", "join"]


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
