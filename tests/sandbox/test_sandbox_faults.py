"""The sandbox's fault knobs over real HTTP: 429/503/dropped connections, latency, path filters,
malformed and dripping answers, and the command-line flags that set them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sandbox_http
from conftest import idle
from sandbox_http import api, assert_error, get_token, join, join_url

from cxone_provider.testing import SandboxServer
from cxone_sandbox.cli import build_parser, faults_from_args
from cxone_sandbox.faults import Faults

sb = sandbox_http.sb
token = sandbox_http.token


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
        {"join_mode": "own"},
        {"join_mode": None},
        {"states_session_id": "maybe"},
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
    # Ten minutes of latency: were the admin routes delayed, these calls would end in their 30 s timeout.
    sb.set_faults(rate_drop=1.0, apply_to_auth=True, latency_ms=600_000)
    assert sb.state()["join_calls"] == 0
    assert sb.journal() == []
    assert sb.state()["inflight"] == 0


def test_latency_overlaps_across_concurrent_requests(sb: SandboxServer, token: str) -> None:
    sb.set_faults(latency_ms=200)
    started = time.monotonic()
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    assert time.monotonic() - started >= 0.2
    sb.clear_journal()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda s: join(sb, token, 1001, s).status_code, ["sess-2001"] * 8))
    assert statuses == [202] * 8
    # latency must not serialise requests: the server held several at once
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
    # A byte a minute: a client reading with a 10 s timeout gets nothing of the body, so each step below shows
    # what it says without timing it.
    sb.set_faults(rate_slow_drip=1.0, drip_interval_s=60.0, path_filter="agent-sessions/join")
    headers = {"Authorization": f"Bearer {token}"}
    # The headers come at once, not after the first interval.
    streamed = requests.post(join_url(sb), headers=headers, stream=True, timeout=(5, 10))
    assert streamed.status_code == 200
    # While it drips, the server answers others.
    assert api(sb, "GET", "agents/1001", token).status_code == 200
    # A read timeout shorter than the interval fires (requests reports it as a ConnectionError).
    with pytest.raises(requests.exceptions.RequestException, match="timed out"):
        requests.post(join_url(sb), headers=headers, timeout=(5, 0.2))
    streamed.close()  # the client leaves mid-drip
    # Each ends as its client leaves: not after its 20 min course, nor even after the current minute's interval.
    idle(sb)
    drips = [e for e in sb.journal() if e["fault"] == "slow_drip"]
    assert len(drips) == 2
    assert all(e["t_end"] - e["t_start"] < 60 for e in drips), drips
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


def test_cli_tenant_setting_flags() -> None:
    args = build_parser().parse_args(
        ["--join-mode", "session", "--states-session-id", "--status-description", "sentence", "--error-body", "legacy"]
    )
    legacy = Faults(join_mode="session", states_session_id=True, status_description="sentence", error_body="legacy")
    assert faults_from_args(args) == legacy
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--join-mode", "own"])
    command = SandboxServer(faults={"join_mode": "session", "states_session_id": True}).command()
    assert command[-3:] == ["--join-mode", "session", "--states-session-id"]
