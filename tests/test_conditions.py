"""The result-condition table and the checks made before any request, row by row."""

from __future__ import annotations

import json

import pytest

from cxone_provider.conditions import (
    InputRejected,
    JoinCondition,
    JoinOutcome,
    SecurityUser,
    check_agent_id,
    check_session_id,
    classify_join,
    classify_response,
    join_outcome,
    parse_security_user,
    same_for_every_session,
)
from cxone_provider.exceptions import CxoneAuthError

C = JoinCondition


def test_condition_values_are_studio_names():
    assert [c.value for c in JoinCondition] == [
        "Default",
        "Success",
        "InvalidSecurityUser",
        "InvalidAgentSession",
        "InvalidAgentId",
        "ImpersonateNotEnabled",
    ]
    assert JoinCondition.SUCCESS == "Success"
    assert JoinCondition.parse("InvalidAgentId") is C.INVALID_AGENT_ID
    with pytest.raises(ValueError, match=r"'Sucess'.*expected one of: Default, Success"):
        JoinCondition.parse("Sucess")


def _err(name: str, text: str = "") -> dict[str, str]:
    return {"error": name, "error_description": text}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(200, {"sessionId": "s"}, C.SUCCESS, id="200"),
        pytest.param(202, {"sessionId": "s"}, C.SUCCESS, id="202"),
        pytest.param(204, None, C.SUCCESS, id="204"),
        pytest.param(401, _err("invalid_token", "expired"), C.INVALID_SECURITY_USER, id="401"),
        pytest.param(403, _err("ImpersonateNotEnabled"), C.IMPERSONATE_NOT_ENABLED, id="403-impersonate-name"),
        pytest.param(403, {"message": "Impersonation is disabled"}, C.INVALID_SECURITY_USER, id="403-text-only"),
        pytest.param(403, _err("Forbidden", "missing permission"), C.INVALID_SECURITY_USER, id="403-other"),
        pytest.param(400, _err("InvalidAgentId"), C.INVALID_AGENT_ID, id="400-agent-name"),
        pytest.param(404, _err("InvalidAgentId"), C.INVALID_AGENT_ID, id="404-agent-name"),
        pytest.param(404, {"message": "Invalid agent id 77"}, C.DEFAULT, id="404-agent-text-only"),
        pytest.param(400, _err("InvalidAgentSession"), C.INVALID_AGENT_SESSION, id="400-session-name"),
        pytest.param(404, _err("InvalidAgentSession"), C.INVALID_AGENT_SESSION, id="404-session-name"),
        pytest.param(409, _err("InvalidAgentSession"), C.INVALID_AGENT_SESSION, id="409-session-name"),
        pytest.param(409, {"message": "Agent session has ended"}, C.DEFAULT, id="409-session-text-only"),
        pytest.param(
            404,
            {"message": "Not Found: POST /inContactAPI/services/v33.0/typo/agent-sessions/join"},
            C.DEFAULT,
            id="404-route-naming-a-session",
        ),
        pytest.param(404, {"errorCode": "InvalidAgentSession"}, C.DEFAULT, id="404-name-outside-error-field"),
        pytest.param(409, _err("InvalidAgentId"), C.DEFAULT, id="409-agent-name-not-in-table"),
        pytest.param(400, {"message": "the agent is busy"}, C.DEFAULT, id="400-agent-word-alone"),
        pytest.param(429, _err("TooManyRequests"), C.DEFAULT, id="429"),
        pytest.param(500, _err("InternalError"), C.DEFAULT, id="500"),
        pytest.param(503, _err("ServiceUnavailable"), C.DEFAULT, id="503"),
        pytest.param(None, None, C.DEFAULT, id="no-response"),
        pytest.param(400, _err("Bogus", "something odd"), C.DEFAULT, id="400-unrecognised"),
        pytest.param(302, None, C.DEFAULT, id="redirect"),
    ],
)
def test_classification_table(status, body, expected):
    assert classify_response(status, body) is expected


def test_free_text_never_decides():
    assert classify_response(404, None, "Session 42 not found") is C.DEFAULT
    assert classify_response(403, None, "impersonation is off") is C.INVALID_SECURITY_USER
    assert classify_response(502, None, "<html>Bad gateway</html>") is C.DEFAULT


@pytest.mark.parametrize(
    ("status", "body", "expected", "in_message"),
    [
        pytest.param(202, {"sessionId": "sess-1"}, C.SUCCESS, "joined", id="the-session-asked-for"),
        pytest.param(
            202,
            {"sessionId": "sess-other"},
            C.INVALID_AGENT_SESSION,
            "'sess-other', not the session asked for ('sess-1')",
            id="another-session",
        ),
        pytest.param(202, {}, C.DEFAULT, "without a sessionId", id="no-session-id"),
        pytest.param(200, None, C.DEFAULT, "without a sessionId", id="no-body"),
        pytest.param(404, None, C.DEFAULT, "API route not found: check api_base_url / api_version", id="route-html"),
        pytest.param(
            404,
            {"message": "Not Found"},
            C.DEFAULT,
            "API route not found: check api_base_url / api_version",
            id="route-json",
        ),
        pytest.param(404, _err("InvalidAgentSession", "gone"), C.INVALID_AGENT_SESSION, "gone", id="cxone-404"),
    ],
)
def test_join_answers(status, body, expected, in_message):
    condition, message = classify_join("sess-1", status, body, "gone" if body and "error" in body else "")
    assert condition is expected
    assert in_message in message


@pytest.mark.parametrize(
    ("condition", "status", "body", "every_session"),
    [
        pytest.param(C.DEFAULT, 404, {"message": "Not Found"}, True, id="route-not-found"),
        pytest.param(C.DEFAULT, 503, _err("ServiceUnavailable"), False, id="outage"),
        pytest.param(C.IMPERSONATE_NOT_ENABLED, 403, _err("ImpersonateNotEnabled"), True, id="no-impersonation"),
        pytest.param(C.INVALID_SECURITY_USER, 403, _err("Forbidden"), True, id="403"),
        pytest.param(C.INVALID_SECURITY_USER, 401, _err("invalid_token"), False, id="401-may-be-one-token"),
        pytest.param(C.INVALID_AGENT_ID, 404, _err("InvalidAgentId"), True, id="unknown-agent"),
        pytest.param(C.INVALID_AGENT_SESSION, 409, _err("InvalidAgentSession"), False, id="ended-session"),
        pytest.param(C.SUCCESS, 202, {"sessionId": "s"}, False, id="success"),
    ],
)
def test_answers_that_hold_for_every_session(condition, status, body, every_session):
    assert same_for_every_session(condition, status, body) is every_session


@pytest.mark.parametrize(
    ("error", "every_session"),
    [
        pytest.param(CxoneAuthError("refused", status_code=400, error="invalid_grant"), True, id="key-refused"),
        pytest.param(CxoneAuthError("down", status_code=503), False, id="token-endpoint-down"),
        pytest.param(CxoneAuthError("no answer", status_code=None), False, id="token-endpoint-unreachable"),
        pytest.param(CxoneAuthError("redirected", status_code=307, error="HTTP 307"), True, id="token-redirected"),
    ],
)
def test_a_join_not_sent_stops_a_sweep_only_when_the_cause_lasts(error, every_session):
    """A token endpoint that is down may be up for the next session; one that refuses the key is not."""
    assert join_outcome("s-1", error).same_for_every_session is every_session


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is empty", id="blank"),
        pytest.param(None, "is missing", id="None"),
        pytest.param("None", "rendered to nothing", id="None-rendered"),
        pytest.param("null", "rendered to nothing", id="null-rendered"),
        pytest.param("sess 1", "whitespace or control", id="inner-space"),
        pytest.param("sess\x001", "whitespace or control", id="control-char"),
        pytest.param("a\tb", "whitespace or control", id="tab"),
        pytest.param("x" * 257, "257 characters long", id="too-long"),
        pytest.param(["sess-1"], "must be a string", id="list"),
        pytest.param(True, "is missing", id="bool"),
        # An id that would change a request's path, as the hook's path check refuses it (issue 26).
        pytest.param(".", "dot segment", id="dot"),
        pytest.param("..", "dot segment", id="dot-dot"),
        pytest.param("%2e%2E", "dot segment", id="dot-dot-encoded"),
        pytest.param("a/b?c=d&e", "path separator", id="slash"),
        pytest.param("%2F", "path separator", id="slash-encoded"),
    ],
)
def test_bad_session_ids_are_invalid_agent_session(value, reason):
    with pytest.raises(InputRejected, match=reason) as rejected:
        check_session_id(value)
    assert rejected.value.condition is C.INVALID_AGENT_SESSION
    assert "session_id" in rejected.value.message


def test_good_session_ids_are_trimmed_and_kept():
    assert check_session_id("  sess-2001 ") == "sess-2001"
    assert check_session_id(12345) == "12345"
    assert check_session_id("x" * 256) == "x" * 256
    assert check_session_id("a+b=c&e") == "a+b=c&e"  # sent URL-encoded, not rejected
    assert check_session_id("...") == "..."  # not a dot segment
    assert check_session_id("sess.2001..x") == "sess.2001..x"


@pytest.mark.parametrize("value", [0, -1, "0", "-1", "abc", "", None, 1.5, True, [1001]])
def test_bad_agent_ids_are_invalid_agent_id(value):
    with pytest.raises(InputRejected) as rejected:
        check_agent_id(value)
    assert rejected.value.condition is C.INVALID_AGENT_ID
    assert repr(value) in rejected.value.message


@pytest.mark.parametrize(
    ("value", "agent_id"),
    [
        pytest.param({"agent_id": 1001, "conn_id": "c"}, 1001, id="mapping"),
        pytest.param('{"agent_id": 1001}', 1001, id="json"),
        pytest.param("{'agent_id': 1001, 'time_zone': 'UTC'}", 1001, id="python-repr"),
        pytest.param({"agentId": "1001"}, 1001, id="api-key-and-string-id"),
        pytest.param(1001, 1001, id="bare-int"),
        pytest.param(" 1001 ", 1001, id="bare-string"),
    ],
)
def test_security_user_shapes(value, agent_id):
    assert parse_security_user(value).agent_id == agent_id


@pytest.mark.parametrize(
    ("value", "condition"),
    [
        pytest.param(["not", "a", "mapping"], C.INVALID_SECURITY_USER, id="list"),
        pytest.param("SecurityUser", C.INVALID_SECURITY_USER, id="unrendered-name"),
        pytest.param(None, C.INVALID_SECURITY_USER, id="None"),
        pytest.param({"conn_id": "x"}, C.INVALID_SECURITY_USER, id="no-agent-id"),
        pytest.param({"agent_id": ""}, C.INVALID_SECURITY_USER, id="blank-agent-id"),
        pytest.param("{not a literal", C.INVALID_SECURITY_USER, id="broken-text"),
        pytest.param("{'agent_id': __import__('os')}", C.INVALID_SECURITY_USER, id="code-is-not-evaluated"),
        pytest.param({"agent_id": 0}, C.INVALID_AGENT_ID, id="agent-0"),
        pytest.param({"agent_id": -1}, C.INVALID_AGENT_ID, id="agent-minus-1"),
        pytest.param({"agent_id": "abc"}, C.INVALID_AGENT_ID, id="agent-abc"),
        pytest.param(0, C.INVALID_AGENT_ID, id="bare-0"),
        pytest.param("-1", C.INVALID_AGENT_ID, id="bare-minus-1"),
    ],
)
def test_bad_security_users(value, condition):
    with pytest.raises(InputRejected) as rejected:
        parse_security_user(value)
    assert rejected.value.condition is condition


def test_security_user_xcom_holds_no_credentials():
    user = SecurityUser(agent_id=1001, conn_id="cxone_default", time_zone="UTC")
    assert user.to_xcom() == {"agent_id": 1001, "conn_id": "cxone_default", "time_zone": "UTC"}
    assert parse_security_user(str(user.to_xcom())) == user


def test_outcome_round_trips_through_json():
    outcome = JoinOutcome(C.INVALID_AGENT_SESSION, "sess-9", 409, "Session sess-9 has ended", 1, 0.0123456)
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data == {
        "condition": "InvalidAgentSession",
        "session_id": "sess-9",
        "status_code": 409,
        "message": "Session sess-9 has ended",
        "attempts": 1,
        "elapsed_s": 0.0123,
    }
    assert JoinOutcome.from_dict(data).condition is C.INVALID_AGENT_SESSION
