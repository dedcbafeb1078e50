"""Hostile answers and inputs: each ends in a documented condition, its reading cut short, with no secret."""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from conftest import idle
from hostile_server import Answer, HostileServer
from hypothesis import given, settings
from hypothesis import strategies as st

from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import parse_security_user
from cxone_provider.exceptions import CxoneApiError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.common import join_agent_session
from cxone_provider.testing import LEGACY_EXTENSIONS

if TYPE_CHECKING:
    from collections.abc import Iterator

C = JoinCondition
SECRETS = ("sandbox-qa-secret", "sandbox-client-secret", "sbx-at-", "sbx-rt-")


@pytest.fixture
def hostile(cxone_sandbox, monkeypatch):
    """A hook with a 1 s read timeout and quick backoff, against the sandbox."""
    name, value = cxone_sandbox.connection_env("cxone_hostile", read_timeout=1)
    monkeypatch.setenv(name, value)
    hook = CxoneHook("cxone_hostile", max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.05)
    hook.access_token()
    return hook


# Answers the client itself cannot read: an error on either face, the Default condition for a join.
CLIENT_FAULTS = [
    pytest.param({"rate_html": 1.0}, 502, 1, "non-JSON answer (text/html", id="html-error-page"),
    pytest.param({"rate_truncated_json": 1.0}, 200, 1, "invalid JSON", id="truncated-json"),
    # A 2xx is data and is read up to 8 MiB (a 1,000-row agents/states page is ~600 KB); past that, not.
    pytest.param({"rate_huge_body": 1.0, "huge_body_bytes": 9_000_000}, 200, 1, "larger than 8192 KiB", id="huge-body"),
    pytest.param({"rate_slow_drip": 1.0, "drip_interval_s": 0.4}, None, 2, "still arriving after 1s", id="slow-drip"),
]


def assert_cut_short(sandbox, fault: dict[str, float], attempts: int) -> None:
    """A slow drip is cut at read_timeout (1 s) each attempt: the sandbox saw every drip end as its client
    left, long before the 20 bytes' course ("still arriving after 1s" says the client gave up)."""
    if "rate_slow_drip" not in fault:
        return
    idle(sandbox)
    drips = [e for e in sandbox.journal() if e["fault"] == "slow_drip"]
    assert len(drips) == attempts
    course = 20 * fault["drip_interval_s"]
    assert all(e["t_end"] - e["t_start"] < course for e in drips), drips


@pytest.mark.parametrize(
    ("fault", "status", "attempts", "says"),
    [
        *CLIENT_FAULTS,
        pytest.param({"rate_non_json": 1.0}, 200, 1, "without a sessionId in the answer: OK", id="non-json-200"),
        pytest.param({"rate_no_session_id": 1.0}, 202, 1, "without a sessionId", id="no-session-id"),
    ],
)
def test_malformed_answers_are_default_in_bounded_time(cxone_sandbox, hostile, fault, status, attempts, says):
    cxone_sandbox.set_faults(**fault, path_filter="agent-sessions/join")
    outcome = join_agent_session(hostile, "sess-2001", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.status_code == status
    assert outcome.attempts == attempts
    assert says in outcome.message
    assert_cut_short(cxone_sandbox, fault, attempts)
    text = str(outcome.to_dict())
    assert not any(secret in text for secret in SECRETS)
    assert cxone_sandbox.state()["joins"] == []


@pytest.mark.parametrize(("fault", "status", "attempts", "says"), CLIENT_FAULTS)
def test_malformed_answers_are_the_same_error_on_both_faces(
    cxone_sandbox, hostile, face, fault, status, attempts, says
):
    client = face(hostile)
    client.access_token()
    cxone_sandbox.set_faults(**fault, path_filter="agent-sessions/join")
    with pytest.raises(CxoneApiError) as failed:
        client.join("sess-2001", 1001)
    assert_cut_short(cxone_sandbox, fault, attempts)
    assert (failed.value.http_status, failed.value.response.attempts) == (status, attempts)
    assert says in str(failed.value)
    assert not any(secret in str(failed.value) for secret in SECRETS)
    assert cxone_sandbox.state()["joins"] == []


# --- property-based: any input either sends a well-formed request or gets its documented condition ------

session_ids = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=40),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=2),
)
agent_ids = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=12),
    st.floats(allow_nan=True),
    st.none(),
    st.just(1001),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
security_users = st.one_of(
    json_values,
    st.fixed_dictionaries({"agent_id": agent_ids}, optional={"conn_id": st.just("cxone_default")}),
    st.builds(lambda a: repr({"agent_id": a}), agent_ids),
    st.text(max_size=40),
)
PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(value=security_users)
def test_any_security_user_parses_or_gets_its_condition(value):
    try:
        user = parse_security_user(value)
    except InputRejected as error:
        rejected: InputRejected | None = error
    else:
        rejected = None
        assert isinstance(user.agent_id, int)
        assert user.agent_id > 0
    if rejected is not None:
        assert rejected.condition in (C.INVALID_SECURITY_USER, C.INVALID_AGENT_ID)
        assert "security_user" in rejected.message


@pytest.fixture(scope="module")
def shared_hook(cxone_sandbox_server):
    """One hook for every example: a hook per example would measure Airflow's secret masker, whose
    cost grows with every token registered in the process."""
    cxone_sandbox_server.reset()
    name, value = cxone_sandbox_server.connection_env("cxone_property")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(name, value)
        hook = CxoneHook("cxone_property")
        hook.access_token()
        yield hook


@settings(max_examples=300, deadline=None)
@given(session_id=session_ids, agent_id=agent_ids)
def test_any_input_sends_a_well_formed_join_or_gets_its_condition(
    cxone_sandbox_server, shared_hook, session_id, agent_id
):
    # The provider still reads its conditions from the legacy error body: the sandbox's extension.
    cxone_sandbox_server.set_faults(**LEGACY_EXTENSIONS)
    cxone_sandbox_server.clear_journal()
    outcome = join_agent_session(shared_hook, session_id, agent_id)

    assert isinstance(outcome, JoinOutcome)
    sent = [e for e in cxone_sandbox_server.journal() if e["path"].endswith("agent-sessions/join")]
    if outcome.status_code is None:
        assert sent == []  # rejected before any request: the documented pre-checks
        assert outcome.condition in (C.INVALID_AGENT_SESSION, C.INVALID_AGENT_ID)
    else:
        (request,) = sent
        # well-formed: exactly the trimmed session id (none when none is expected: the agent's live
        # session) and a positive integer agent id reached CXone
        if session_id is None or session_id == "":
            assert "sessionId" not in request["params"]
        else:
            assert request["params"]["sessionId"] == str(session_id).strip()
        assert int(request["params"]["asAgentId"]) > 0
        assert outcome.condition is not C.DEFAULT


def test_operator_without_a_dag_or_security_user_is_invalid_security_user(cxone_sandbox):
    outcome = JoinAgentSessionOperator(task_id="join", session_id="sess-2001").join(context={})
    assert outcome.condition is C.INVALID_SECURITY_USER
    assert "no SetSecurityUserOperator is upstream" in outcome.message
    assert cxone_sandbox.journal() == []


# --- a compressed answer is bounded by what it decompresses to (issue 26: keep the first audit's gzip bound) ---


def _gzip_of_zeros(mebibytes: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    block = b"0" * (1024 * 1024)
    parts = [packer.compress(b'{"agentStates": [], "pad": "')]
    parts += [packer.compress(block) for _ in range(mebibytes)]
    return b"".join([*parts, packer.compress(b'"}'), packer.flush()])


@contextlib.contextmanager
def states_answered(monkeypatch, face, answer: Answer) -> Iterator[Any]:
    """A client on ``face`` of a server that issues a token and answers ``agents/states`` with ``answer``."""
    token = {"access_token": "gz-token-51f0", "token_type": "bearer", "expires_in": 3600}
    with HostileServer() as server:
        server.route("POST", "/auth/token", lambda _: Answer(200, body=json.dumps(token).encode()))
        server.route("GET", "/inContactAPI/services/v33.0/agents/states", lambda _: answer)
        api = server.url + "/inContactAPI/services/v33.0/"
        extras = {"client_id": "app", "client_secret": "gz-client-secret", "api_base_url": api}
        conn = {"conn_type": "cxone", "host": server.url, "login": "KEY-1", "password": "gz-7c2e", "extra": extras}
        monkeypatch.setenv("AIRFLOW_CONN_CXONE_GZIP", json.dumps(conn))
        yield face(CxoneHook("cxone_gzip", max_attempts=1))


@pytest.mark.parametrize("status", [200, 500])
def test_a_gzip_bomb_is_cut_at_the_body_limit_by_either_face(monkeypatch, face, status):
    """1 GiB of JSON sent as 1 MB of gzip: read up to the body limit (8 MiB for a 2xx, 64 KiB for an
    error) of what it decompresses to, not decompressed whole."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with states_answered(monkeypatch, face, Answer(status, headers, _gzip_of_zeros(1024))) as client:
        client.access_token()
        process, reading = psutil.Process(), threading.Event()
        before = peak = process.memory_info().rss

        def watch() -> None:
            nonlocal peak
            while not reading.wait(0.005):
                peak = max(peak, process.memory_info().rss)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with pytest.raises(CxoneApiError) as cut:
                client.agent_states()
        finally:
            reading.set()
            watcher.join()
    limit = "8192 KiB" if status == 200 else "64 KiB"
    assert f"answer larger than {limit} (application/json), not read" in str(cut.value)
    assert (peak - before) < 64 * 2**20, f"grew {(peak - before) / 2**20:.0f} MiB reading a 1 MB gzip answer"


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "raw-deflate", "identity", "br"])
def test_a_compressed_answer_within_the_limit_reads_the_same_on_either_face(monkeypatch, face, coding):
    rows = [{"agentId": 2000 + n, "agentStateName": "Available", "teamName": "QA"} for n in range(500)]
    plain = json.dumps({"agentStates": rows, "totalRecords": len(rows)}).encode()
    wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15, "raw-deflate": -15}.get(coding)
    if wbits is None:
        body = plain  # identity; and a coding neither face undoes ("br") is read as sent: this is plain JSON
    else:
        packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
        body = packer.compress(plain) + packer.flush()
    headers = {"Content-Type": "application/json", "Content-Encoding": "deflate" if coding == "raw-deflate" else coding}
    with states_answered(monkeypatch, face, Answer(200, headers, body)) as client:
        assert client.agent_states() == rows
