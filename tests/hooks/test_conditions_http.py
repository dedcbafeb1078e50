"""Every result condition over real HTTP, in every shape an answer may take, through the hook and
``join_agent_session``.

A local raw server (:mod:`hostile_server`) plays CXone: it issues a token whose id_token names the key
user's agent (``icAgentId`` 1001), answers the join as each case scripts — no body, a plain-text body,
an HTML page, only CXone's ``icStatusDescription`` header (each published wording), NICE's
``{"error", "errorDescription"}`` shape, a JSON shape nobody published — and answers the one read-only
``GET agents/{id}`` an ambiguous 404 costs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pytest
from hostile_server import Answer, HostileServer

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.exceptions import CxoneApiError, CxoneConfigError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import join_agent_session

C = JoinCondition
BASE = "/inContactAPI/services/v33.0/"
JOIN = BASE + "agent-sessions/join"
SECRET = "cond-secret-3f9a"
KEY_USER_AGENT = 1001
OTHER_AGENT = 2001
JSON = {"Content-Type": "application/json"}


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


ID_TOKEN = ".".join([_segment({"alg": "none"}), _segment({"tenantId": "t-1", "icAgentId": str(KEY_USER_AGENT)}), ""])


def token(_request) -> Answer:
    body = {"access_token": "at-cond", "token_type": "bearer", "expires_in": 3600, "id_token": ID_TOKEN}
    return Answer(200, JSON, json.dumps(body).encode())


# --- the shapes of an error answer ---------------------------------------------------------------------


def shaped(status: int, form: str, wording: str = "", name: str = "") -> Answer:
    """An error answer of ``status`` in ``form``; ``wording`` is CXone's text where the form carries one."""
    if form == "no-body":
        return Answer(status, {}, b"")
    if form == "plain-text":
        return Answer(status, {"Content-Type": "text/plain"}, b"Request could not be completed")
    if form == "html":
        page = b"<html><head><title>Error</title></head><body><h1>Something went wrong</h1></body></html>"
        return Answer(status, {"Content-Type": "text/html"}, page)
    if form == "header-only":
        return Answer(status, {"icStatusDescription": wording}, b"")
    if form == "errorDescription":
        return Answer(status, JSON, json.dumps({"error": name or "Error", "errorDescription": wording}).encode())
    if form == "unknown-json":
        return Answer(status, JSON, json.dumps({"status": "fail", "detail": "something went wrong"}).encode())
    raise AssertionError(form)


NAMELESS = ("no-body", "plain-text", "html", "unknown-json")
PAGES = ("plain-text", "html", "unknown-json")
AGENT_FOUND = Answer(200, JSON, json.dumps({"agents": [{"agentId": OTHER_AGENT, "isActive": True}]}).encode())
AGENT_404 = Answer(404, {}, b"")  # CXone's way: a status, no body
GATEWAY_404 = Answer(404, JSON, b'{"message": "Not Found"}')


@dataclass
class Case:
    expected: JoinCondition
    join: Answer
    as_agent: int = OTHER_AGENT
    probe: Answer | None = None  # the answer to GET agents/{as_agent}; None: no probe may be made
    says: str = ""  # in the outcome's message


def cases() -> list:
    out = []

    def add(case_id: str, case: Case) -> None:
        out.append(pytest.param(case, id=case_id))

    add("Success", Case(C.SUCCESS, Answer(202, JSON, b'{"sessionId": "sess-1"}'), says="joined"))
    for form in (*NAMELESS, "errorDescription"):
        add(f"InvalidSecurityUser-401-{form}", Case(C.INVALID_SECURITY_USER, shaped(401, form, "Unauthorized")))
        add(
            f"InvalidSecurityUser-403-own-agent-{form}",
            Case(C.INVALID_SECURITY_USER, shaped(403, form, "Forbidden"), as_agent=KEY_USER_AGENT),
        )
        add(
            f"ImpersonateNotEnabled-403-{form}",
            Case(C.IMPERSONATE_NOT_ENABLED, shaped(403, form, "Forbidden"), says="needs impersonation"),
        )
        add(f"Default-500-{form}", Case(C.DEFAULT, shaped(500, form, "Internal error")))
    add(
        "InvalidSecurityUser-401-header-only",
        Case(C.INVALID_SECURITY_USER, shaped(401, "header-only", "Invalid token")),
    )
    add(
        "ImpersonateNotEnabled-403-header-only",
        Case(C.IMPERSONATE_NOT_ENABLED, shaped(403, "header-only", "Forbidden"), says="Forbidden"),
    )
    add(
        "InvalidSecurityUser-403-own-agent-header-only",
        Case(C.INVALID_SECURITY_USER, shaped(403, "header-only", "Forbidden"), as_agent=KEY_USER_AGENT),
    )
    add("Default-500-header-only", Case(C.DEFAULT, shaped(500, "header-only", "Internal error"), says="Internal error"))
    # every wording CXone publishes decides, with no body and in NICE's errorDescription shape
    for status, wording, expected in [
        (404, "InvalidAgentSession", C.INVALID_AGENT_SESSION),
        (404, "Invalid agent session Id.", C.INVALID_AGENT_SESSION),
        (409, "Invalid State", C.INVALID_AGENT_SESSION),
        (404, "InvalidAgentId", C.INVALID_AGENT_ID),
        (404, "Invalid Agent Id", C.INVALID_AGENT_ID),
        (400, "Invalid Agent Id", C.INVALID_AGENT_ID),
    ]:
        for form in ("header-only", "errorDescription"):
            add(
                f"{expected.value}-{status}-{form}-{wording}",
                Case(expected, shaped(status, form, wording), says=wording),
            )
    add(
        "InvalidAgentSession-409-no-body",
        Case(C.INVALID_AGENT_SESSION, shaped(409, "no-body"), says="no state to join"),
    )
    # a 404 that names nothing: one GET agents/{id} decides
    for form in NAMELESS:
        add(
            f"InvalidAgentSession-404-{form}-agent-found",
            Case(C.INVALID_AGENT_SESSION, shaped(404, form), probe=AGENT_FOUND, says="so the session is unknown"),
        )
        add(
            f"InvalidAgentId-404-{form}-agent-404",
            Case(C.INVALID_AGENT_ID, shaped(404, form), probe=AGENT_404, says="no such agent"),
        )
    for form in PAGES:
        add(
            f"Default-404-{form}-route-not-found",
            Case(C.DEFAULT, shaped(404, form), probe=GATEWAY_404, says="API route not found"),
        )
    # the one JSON shape of our own making still read: an `error` that is exactly a Studio name
    add(
        "InvalidAgentSession-404-unknown-json-studio-name",
        Case(C.INVALID_AGENT_SESSION, Answer(404, JSON, b'{"error": "InvalidAgentSession"}')),
    )
    return out


@pytest.fixture(scope="module")
def shared_server():
    with HostileServer() as hostile:  # one per module: shutting one down costs half a second
        yield hostile


@pytest.fixture
def server(shared_server):
    shared_server.routes.clear()
    shared_server.received.clear()
    shared_server.route("POST", "/auth/token", token)
    return shared_server


def hook_for(monkeypatch, server: HostileServer, **extra: object) -> CxoneHook:
    extras = {"client_id": "app", "client_secret": "app-secret", "api_base_url": server.url + BASE, **extra}
    conn = {"conn_type": "cxone", "host": server.url, "login": "KEY-1", "password": SECRET, "extra": extras}
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_COND", json.dumps(conn))
    return CxoneHook("cxone_cond", max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02)


@pytest.mark.parametrize("case", cases())
def test_every_condition_in_every_shape(monkeypatch, server, case):
    server.route("POST", JOIN, lambda _: case.join)
    if case.probe is not None:
        server.route("GET", f"{BASE}agents/{case.as_agent}", lambda _: case.probe)
    with hook_for(monkeypatch, server) as hook:
        outcome = join_agent_session(hook, "sess-1", case.as_agent)
    assert outcome.condition is case.expected, outcome.message
    assert case.says in outcome.message
    assert outcome.status_code == case.join.status
    probes = [r for r in server.received if r.path.startswith(BASE + "agents/")]
    assert len(probes) == (1 if case.probe is not None else 0)  # at most one extra call, only when needed
    assert all(r.method == "GET" for r in probes)
    assert SECRET not in outcome.message


def test_the_answer_carries_cxones_header_redacted_and_bounded(monkeypatch, server):
    server.route("POST", JOIN, lambda _: Answer(404, {"icStatusDescription": f"Invalid agent session Id. {SECRET}"}))
    with hook_for(monkeypatch, server) as hook, pytest.raises(CxoneApiError) as failed:
        hook.join_session("sess-1", as_agent_id=OTHER_AGENT)
    response = failed.value.response
    assert response.status_description == "Invalid agent session Id. ***"
    assert response.message == "Invalid agent session Id. ***"  # no body: the header is the message
    assert SECRET not in str(failed.value)

    server.route("POST", JOIN, lambda _: Answer(404, {"icStatusDescription": "x" * 5000}))
    with hook_for(monkeypatch, server) as hook, pytest.raises(CxoneApiError) as failed:
        hook.join_session("sess-1", as_agent_id=OTHER_AGENT)
    assert len(failed.value.response.status_description) == 200


def test_the_key_users_agent_comes_from_the_id_token(monkeypatch, server):
    with hook_for(monkeypatch, server) as hook:
        assert hook.token_holder_agent_id is None  # no token yet, and none requested for it
        hook.access_token()
        assert hook.token_holder_agent_id == KEY_USER_AGENT


def test_a_join_expecting_no_session_sends_asagentid_only_and_reports_the_live_session(monkeypatch, server):
    server.route("POST", JOIN, lambda _: Answer(202, JSON, b'{"sessionId": "live-77"}'))
    with hook_for(monkeypatch, server) as hook:
        outcome = join_agent_session(hook, None, OTHER_AGENT)
    assert (outcome.condition, outcome.session_id) == (C.SUCCESS, "live-77")
    (join,) = [r for r in server.received if r.path == JOIN]
    assert join.query == f"asAgentId={OTHER_AGENT}"


def test_connection_rules_and_operator_rules_decide_first(monkeypatch, server):
    server.route("POST", JOIN, lambda _: Answer(404, {"icStatusDescription": "Agent session expired"}))
    rules = [{"status": 404, "pattern": "(?i)session expired", "condition": "InvalidAgentSession"}]
    with hook_for(monkeypatch, server, condition_rules=rules) as hook:
        outcome = join_agent_session(hook, "sess-1", OTHER_AGENT)
    assert outcome.condition is C.INVALID_AGENT_SESSION
    assert "condition_rules[0]" in outcome.message
    # the operator's rules come before the connection's
    mine = [{"status": 404, "pattern": "expired", "condition": "Default"}]
    from cxone_provider.domain.condition_rules import parse_condition_rules

    with hook_for(monkeypatch, server, condition_rules=rules) as hook:
        outcome = join_agent_session(hook, "sess-1", OTHER_AGENT, condition_rules=parse_condition_rules(mine))
    assert outcome.condition is C.DEFAULT
    assert [r.path for r in server.received if "agents/" in r.path] == []  # a rule decided: no probe


def test_a_bad_rule_in_the_connection_names_the_field_and_value(monkeypatch, server):
    hook = hook_for(monkeypatch, server, condition_rules=[{"status": 404, "pattern": "[", "condition": "Default"}])
    with pytest.raises(CxoneConfigError, match=r"extra 'condition_rules'\[0\]\.pattern '\[' is not a valid"):
        join_agent_session(hook, "sess-1", OTHER_AGENT)
