"""The result-condition table and the checks made before any request, row by row."""

from __future__ import annotations

import json

import pytest

from cxone_provider.domain.classification import (
    JoinFacts,
    classify_join,
    classify_response,
    decide,
    join_outcome,
    needs_probe,
    same_for_every_session,
)
from cxone_provider.domain.condition_rules import parse_condition_rules
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.inputs import check_agent_id, check_session_id
from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.domain.security_user import SecurityUser, parse_security_user
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError
from cxone_provider.response import ApiResponse

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
        # a 409 to a join: the session is in no state to join, whatever the text says
        pytest.param(409, {"message": "Agent session has ended"}, C.INVALID_AGENT_SESSION, id="409-session-text-only"),
        pytest.param(
            404,
            {"message": "Not Found: POST /inContactAPI/services/v33.0/typo/agent-sessions/join"},
            C.DEFAULT,
            id="404-route-naming-a-session",
        ),
        pytest.param(404, {"errorCode": "InvalidAgentSession"}, C.DEFAULT, id="404-name-outside-error-field"),
        pytest.param(409, _err("InvalidAgentId"), C.INVALID_AGENT_SESSION, id="409-agent-name-does-not-fit-409"),
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
        pytest.param(404, _err("InvalidAgentSession", "gone"), C.INVALID_AGENT_SESSION, "gone", id="cxone-404"),
    ],
)
def test_join_answers(status, body, expected, in_message):
    condition, message = classify_join("sess-1", status, body, "gone" if body and "error" in body else "")
    assert condition is expected
    assert in_message in message


@pytest.mark.parametrize(
    ("condition", "status", "route_not_found", "every_session"),
    [
        pytest.param(C.DEFAULT, 404, True, True, id="route-not-found"),
        pytest.param(C.DEFAULT, 404, False, False, id="404-undecided"),
        pytest.param(C.DEFAULT, 503, False, False, id="outage"),
        pytest.param(C.IMPERSONATE_NOT_ENABLED, 403, False, True, id="no-impersonation"),
        pytest.param(C.INVALID_SECURITY_USER, 403, False, True, id="403"),
        pytest.param(C.INVALID_SECURITY_USER, 401, False, False, id="401-may-be-one-token"),
        pytest.param(C.INVALID_AGENT_ID, 404, False, True, id="unknown-agent"),
        pytest.param(C.INVALID_AGENT_SESSION, 409, False, False, id="ended-session"),
        pytest.param(C.SUCCESS, 202, False, False, id="success"),
    ],
)
def test_answers_that_hold_for_every_session(condition, status, route_not_found, every_session):
    assert same_for_every_session(condition, status, route_not_found=route_not_found) is every_session


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


# --- the published facts: icStatusDescription, the errorDescription shape, the call, what is known ----

ACTING_AS_OTHER = JoinFacts(as_agent_id=2001, token_holder_agent_id=1001)
ACTING_AS_SELF = JoinFacts(as_agent_id=1001, token_holder_agent_id=1001)
HOLDER_UNKNOWN = JoinFacts(as_agent_id=2001)


@pytest.mark.parametrize(
    ("status", "description", "body", "facts", "expected"),
    [
        # each wording CXone publishes in the icStatusDescription header, with no body
        pytest.param(404, "InvalidAgentSession", None, None, C.INVALID_AGENT_SESSION, id="404-InvalidAgentSession"),
        pytest.param(404, "Invalid agent session Id.", None, None, C.INVALID_AGENT_SESSION, id="404-sentence"),
        pytest.param(409, "Invalid State", None, None, C.INVALID_AGENT_SESSION, id="409-Invalid-State"),
        pytest.param(404, "InvalidAgentId", None, None, C.INVALID_AGENT_ID, id="404-InvalidAgentId"),
        pytest.param(400, "Invalid Agent Id", None, None, C.INVALID_AGENT_ID, id="400-Invalid-Agent-Id"),
        pytest.param(400, "Invalid state request.", None, None, C.DEFAULT, id="400-state-request-is-no-join-fact"),
        # a wording whose status does not fit it decides nothing
        pytest.param(500, "InvalidAgentSession", None, None, C.DEFAULT, id="500-wording-does-not-fit"),
        # the published {"error", "errorDescription"} shape
        pytest.param(
            404,
            "",
            {"error": "NotFound", "errorDescription": "Invalid agent session Id."},
            None,
            C.INVALID_AGENT_SESSION,
            id="errorDescription-shape",
        ),
        pytest.param(
            400,
            "",
            {"error": "InvalidAgentId", "errorDescription": "Agent 9 unknown"},
            None,
            C.INVALID_AGENT_ID,
            id="errorDescription-shape-error-name",
        ),
        # an unknown JSON shape: its free text never decides, an exact Studio name in `error` does
        pytest.param(404, "", {"message": "Invalid agent session Id."}, None, C.DEFAULT, id="unknown-shape-text"),
        pytest.param(404, "", {"error": "InvalidAgentSession"}, None, C.INVALID_AGENT_SESSION, id="unknown-shape-name"),
        pytest.param(404, "", {"error": "invalid agent session"}, None, C.DEFAULT, id="unknown-shape-not-exact"),
        # 403: decided by who acted as whom
        pytest.param(403, "", None, ACTING_AS_OTHER, C.IMPERSONATE_NOT_ENABLED, id="403-as-another-agent"),
        pytest.param(403, "", None, ACTING_AS_SELF, C.INVALID_SECURITY_USER, id="403-as-own-agent"),
        pytest.param(403, "", None, HOLDER_UNKNOWN, C.INVALID_SECURITY_USER, id="403-holder-unknown"),
        pytest.param(403, "Forbidden", "<html>403</html>", ACTING_AS_OTHER, C.IMPERSONATE_NOT_ENABLED, id="403-html"),
        pytest.param(401, "", None, ACTING_AS_OTHER, C.INVALID_SECURITY_USER, id="401"),
        pytest.param(409, "", None, None, C.INVALID_AGENT_SESSION, id="409-no-text"),
        pytest.param(404, "", None, None, C.DEFAULT, id="404-nothing-names-a-condition"),
    ],
)
def test_published_facts_decide(status, description, body, facts, expected):
    assert classify_response(status, body, description=description, facts=facts) is expected


def test_403_explains_the_inference():
    condition, note = decide(403, None, "", facts=ACTING_AS_OTHER)
    assert condition is C.IMPERSONATE_NOT_ENABLED
    assert "agent 2001" in note
    assert "agent 1001" in note


def test_only_an_undecided_404_needs_a_probe():
    assert needs_probe(404, None, "")
    assert needs_probe(404, {"message": "Not Found"}, "")
    assert not needs_probe(404, None, "InvalidAgentSession")
    assert not needs_probe(404, {"error": "InvalidAgentId"}, "")
    assert not needs_probe(409, None, "")
    rules = parse_condition_rules([{"status": 404, "condition": "InvalidAgentSession"}])
    assert not needs_probe(404, None, "", JoinFacts(rules=rules))


def _answer(status, body=None, description="", size=None):
    size = size if size is not None else (0 if body is None else len(json.dumps(body)))
    return ApiResponse(
        status,
        body=body,
        message=description or f"HTTP {status}",
        status_description=description,
        body_size=size,
        attempts=1,
    )


@pytest.mark.parametrize(
    ("probe", "expected", "every_session", "says"),
    [
        pytest.param(
            _answer(200, {"agents": [{"agentId": 2001}]}),
            C.INVALID_AGENT_SESSION,
            False,
            "agent 2001 exists",
            id="agent-exists-so-the-session-is-unknown",
        ),
        pytest.param(
            CxoneApiError(_answer(404), "check"), C.INVALID_AGENT_ID, True, "no such agent", id="agent-404-no-body"
        ),
        pytest.param(
            CxoneApiError(_answer(404, description="Invalid Agent Id"), "check"),
            C.INVALID_AGENT_ID,
            True,
            "no such agent",
            id="agent-404-named",
        ),
        pytest.param(
            CxoneApiError(_answer(404, {"message": "Not Found"}), "check"),
            C.DEFAULT,
            True,
            "API route not found",
            id="agent-404-page-route",
        ),
        pytest.param(
            CxoneApiError(_answer(503), "check"),
            C.DEFAULT,
            False,
            "GET agents/2001: HTTP 503",
            id="agent-503-undecided",
        ),
        pytest.param(None, C.DEFAULT, False, "no check was possible", id="no-probe"),
    ],
)
def test_an_ambiguous_404_is_decided_by_one_read_of_the_agent(probe, expected, every_session, says):
    outcome = join_outcome("sess-1", CxoneApiError(_answer(404), "join"), facts=ACTING_AS_OTHER, probe=probe)
    assert outcome.condition is expected
    assert outcome.same_for_every_session is every_session
    assert says in outcome.message


def test_a_404_probe_for_the_key_users_own_agent_means_the_route():
    outcome = join_outcome(
        "sess-1", CxoneApiError(_answer(404), "join"), facts=ACTING_AS_SELF, probe=CxoneApiError(_answer(404), "c")
    )
    assert (outcome.condition, outcome.same_for_every_session) == (C.DEFAULT, True)
    assert "API route not found" in outcome.message


def test_without_a_probe_a_404_page_is_the_route():
    outcome = join_outcome("sess-1", CxoneApiError(_answer(404, {"message": "Not Found"}), "join"))
    assert (outcome.condition, outcome.same_for_every_session) == (C.DEFAULT, True)
    assert "API route not found: check api_base_url / api_version" in outcome.message


def test_a_join_expecting_no_session_reports_the_live_one():
    outcome = join_outcome(None, _answer(202, {"sessionId": "live-9"}))
    assert (outcome.condition, outcome.session_id, outcome.message) == (C.SUCCESS, "live-9", "joined")
    assert join_outcome(None, _answer(202, {})).condition is C.DEFAULT
    assert join_outcome("sess-1", _answer(202, {"sessionId": "live-9"})).condition is C.INVALID_AGENT_SESSION


# --- a tenant's own rules -----------------------------------------------------------------------------


def test_rules_come_before_the_published_table():
    rules = parse_condition_rules(
        [
            {"status": 404, "pattern": "(?i)session .* expired", "condition": "InvalidAgentSession"},
            {"status": [400, 422], "pattern": "agent", "condition": "InvalidAgentId"},
            {"status": "403", "condition": "InvalidSecurityUser"},
        ]
    )
    facts = JoinFacts(as_agent_id=2001, token_holder_agent_id=1001, rules=rules)
    assert decide(404, None, "", description="Session 42 EXPIRED", facts=facts) == (
        C.INVALID_AGENT_SESSION,
        "condition_rules[0]",
    )
    assert classify_response(422, {"error": "bad agent"}, facts=facts) is C.INVALID_AGENT_ID
    assert classify_response(422, {"error": "bad station"}, facts=facts) is C.DEFAULT
    # the third rule overrides the impersonation inference for every 403
    assert classify_response(403, None, facts=facts) is C.INVALID_SECURITY_USER
    assert classify_response(403, None, facts=ACTING_AS_OTHER) is C.IMPERSONATE_NOT_ENABLED


def test_rules_may_be_json_text():
    (rule,) = parse_condition_rules('[{"status": 409, "condition": "Default"}]')
    assert (rule.statuses, rule.pattern, rule.condition) == (frozenset({409}), None, C.DEFAULT)
    assert parse_condition_rules(None) == parse_condition_rules("") == parse_condition_rules([]) == ()


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        pytest.param(
            [{"status": 404, "pattern": "(", "condition": "InvalidAgentId"}],
            r"condition_rules\[0\]\.pattern '\(' is not a valid regular expression",
            id="bad-regex",
        ),
        pytest.param(
            [{"status": 404, "condition": "InvalidSession"}],
            r"condition_rules\[0\]\.condition: unknown result condition 'InvalidSession'",
            id="unknown-condition",
        ),
        pytest.param(
            [{"status": 404, "condition": "Success"}], r"condition_rules\[0\]\.condition 'Success'", id="success"
        ),
        pytest.param(
            [{"status": 200, "condition": "Default"}],
            r"condition_rules\[0\]\.status 200 is not an HTTP error",
            id="status-2xx",
        ),
        pytest.param(
            [{"status": "four-oh-four", "condition": "Default"}],
            r"\.status 'four-oh-four' is not an HTTP",
            id="status-text",
        ),
        pytest.param([{"status": True, "condition": "Default"}], r"\.status True is not an HTTP", id="status-bool"),
        pytest.param([{"status": [], "condition": "Default"}], r"\.status is an empty list", id="status-empty"),
        pytest.param([{"condition": "Default"}], r"\.status None is not an HTTP", id="status-missing"),
        pytest.param(
            [{"status": 404, "condition": "Default", "regex": "x"}], r"unknown key\(s\) \['regex'\]", id="unknown-key"
        ),
        pytest.param(
            [{"status": 404, "pattern": 5, "condition": "Default"}],
            r"\.pattern must be a regular expression",
            id="pattern-not-text",
        ),
        pytest.param(["404 -> Default"], r"condition_rules\[0\] must be a mapping", id="not-a-mapping"),
        pytest.param({"status": 404}, r"condition_rules must be a list of rules, got dict", id="not-a-list"),
        pytest.param("[{", r"condition_rules must be a list of rules \(JSON\)", id="bad-json"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_value(rules, says):
    with pytest.raises(ValueError, match=says):
        parse_condition_rules(rules)
