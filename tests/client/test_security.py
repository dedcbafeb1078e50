"""Security: hostile servers the tests start on 127.0.0.1, and hostile inputs (issue 14).

Every test here failed on the main of before the fix: a redirect re-posted the access key secret,
redirect bodies were read whole, deep nesting raised RecursionError, oversized literals were parsed,
discovery could send the token anywhere, secrets survived a cut or URL-encoding, and the cluster policy
imported the provider for every DAG.
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from urllib.parse import parse_qsl, quote, quote_plus

import psutil
import pytest
from conftest import DAGBAG_MODULE, counts_printed_lines
from hostile_server import Answer, HostileServer

from cxone_provider.client.settings import check_discovered_endpoint
from cxone_provider.domain.conditions import InputRejected, JoinCondition
from cxone_provider.domain.security_user import parse_security_user
from cxone_provider.exceptions import CxoneApiError, CxoneAuthError, CxoneConfigError, UnsafePathIdError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import as_list, join_agent_session

C = JoinCondition
SECRET = "Acc3ss+Key/Secret=With&Odd=Chars-0123456789"  # 44 characters, URL-special ones included
CLIENT_SECRET = "client-secret-7d1e"
TOKEN = "hostile-access-token-5b2c"
JSON = {"Content-Type": "application/json"}


def token_answer(**extra: object) -> Answer:
    body = {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600, **extra}
    return Answer(200, JSON, json.dumps(body).encode())


def connect(monkeypatch, server: HostileServer, conn_id: str = "cxone_hostile", **extra: object) -> CxoneHook:
    extras = {"client_id": "app", "client_secret": CLIENT_SECRET, "read_timeout": 2, **extra}
    if "tenant_id" not in extras and "api_base_url" not in extras:
        extras["api_base_url"] = f"{server.url}/inContactAPI/services/v33.0/"
    conn = {"conn_type": "cxone", "host": server.url, "login": "KEY-1", "password": SECRET, "extra": extras}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return CxoneHook(conn_id, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.05)


def all_forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote_plus(secret)]


@pytest.fixture
def server():
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture
def elsewhere():
    """Where a redirect points: it must never receive anything."""
    with HostileServer() as target:
        yield target


# --- 1, 2: no redirect is followed --------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_token_request_follows_no_redirect(monkeypatch, server, elsewhere, face, status):
    server.route("POST", "/auth/token", lambda _: Answer(status, {"Location": f"{elsewhere.url}/steal"}))
    client = face(connect(monkeypatch, server))
    with pytest.raises(CxoneAuthError) as refused:
        client.access_token()
    message = str(refused.value)
    assert f"HTTP {status}" in message
    assert "redirect" in message
    assert elsewhere.url.removeprefix("http://") in message  # the Location's host, named
    assert elsewhere.received == []  # the secret went nowhere else
    assert all(form not in message for form in all_forms(SECRET))


@pytest.mark.parametrize("status", [302, 307])
def test_an_api_redirect_is_default_naming_where_it_pointed(monkeypatch, server, elsewhere, status):
    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route(
        "POST",
        "/inContactAPI/services/v33.0/agent-sessions/join",
        lambda _: Answer(status, {"Location": f"{elsewhere.url}/join"}),
    )
    outcome = join_agent_session(connect(monkeypatch, server), "sess-1", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.status_code == status
    assert "redirect" in outcome.message
    assert elsewhere.url.removeprefix("http://") in outcome.message
    assert outcome.attempts == 1
    assert elsewhere.received == []


@pytest.mark.parametrize("status", [302, 307])
def test_an_api_redirect_is_refused_with_the_same_message_on_both_faces(monkeypatch, server, elsewhere, face, status):
    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route(
        "POST",
        "/inContactAPI/services/v33.0/agent-sessions/join",
        lambda _: Answer(status, {"Location": f"{elsewhere.url}/join?x=1"}),
    )
    with pytest.raises(CxoneApiError) as refused:
        face(connect(monkeypatch, server)).join()
    assert refused.value.http_status == status
    where = elsewhere.url.removeprefix("http://")
    assert f"redirected (HTTP {status}) to {where}; calls to CXone follow no redirect" in str(refused.value)
    assert "/join" not in str(refused.value)  # the host and port only
    assert elsewhere.received == []


def test_a_huge_redirect_body_is_never_read(monkeypatch, server, face):
    size = 400 * 1024 * 1024
    chunk = b"x" * (1024 * 1024)
    server.route(
        "POST",
        "/auth/token",
        lambda _: Answer(
            302,
            {"Location": "https://elsewhere.invalid/", **JSON},
            chunks=((chunk, 0) for _ in range(400)),
            length=size,
        ),
    )
    client = face(connect(monkeypatch, server))
    process = psutil.Process()
    before = process.memory_info().rss
    with pytest.raises(CxoneAuthError, match="HTTP 302"):
        client.access_token()
    assert process.memory_info().rss - before < 64 * 1024 * 1024
    # the client hung up: the server could not send the 400 MiB (a socket buffer's worth went out)
    (served,) = server.wait_served()
    assert not served.whole
    assert served.chunks_sent < 100, served


def test_a_dripping_redirect_body_does_not_outlast_read_timeout(monkeypatch, server, face):
    server.route(
        "POST",
        "/auth/token",
        lambda _: Answer(
            302, {"Location": "https://elsewhere.invalid/"}, chunks=((b"x", 0.4) for _ in range(30)), length=30
        ),
    )
    client = face(connect(monkeypatch, server))  # read_timeout 2 s; the drip takes 12 s
    with pytest.raises(CxoneAuthError, match="HTTP 302"):
        client.access_token()
    # the client left mid-drip: the server's next bytes found nobody reading, so the drip never ran its course
    (served,) = server.wait_served()
    assert not served.whole
    assert served.chunks_sent < 30, served


# --- 3, 4: deep nesting and oversized literals ----------------------------------------------------------


def test_a_deeply_nested_answer_is_default_not_a_crash(monkeypatch, server):
    server.route("POST", "/auth/token", lambda _: token_answer())
    nested = b"[" * 30_000 + b"]" * 30_000  # 60,000 bytes: under the 64 KiB cap, so it is parsed
    server.route("POST", "/inContactAPI/services/v33.0/agent-sessions/join", lambda _: Answer(200, JSON, nested[:2048]))
    server.route("GET", "/inContactAPI/services/v33.0/agents/states", lambda _: Answer(200, JSON, nested))
    hook = connect(monkeypatch, server)
    outcome = join_agent_session(hook, "sess-1", 1001)
    assert outcome.condition is C.DEFAULT
    assert "JSON" in outcome.message
    ok, message = hook.test_connection()
    assert not ok
    assert "JSON" in message


def test_a_deeply_nested_answer_is_an_api_error_on_both_faces(monkeypatch, server, face):
    server.route("POST", "/auth/token", lambda _: token_answer())
    nested = b"[" * 30_000 + b"]" * 30_000
    server.route("GET", "/inContactAPI/services/v33.0/agents/states", lambda _: Answer(200, JSON, nested))
    with pytest.raises(CxoneApiError, match=r"invalid JSON.*nested too deeply"):
        face(connect(monkeypatch, server)).agent_states()


def test_a_deeply_nested_id_token_is_a_clear_configuration_error(monkeypatch, server, face):
    claims = base64.urlsafe_b64encode(b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}").rstrip(b"=").decode()
    server.route("POST", "/auth/token", lambda _: token_answer(id_token=f"eyJhbGciOiJub25lIn0.{claims}."))
    client = face(connect(monkeypatch, server, tenant_id="", api_base_url=""))
    with pytest.raises(CxoneConfigError, match="tenant_id"):
        client.api_base_url()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{'agent_id': " + "[" * 5000 + "]" * 5000 + "}", id="repr"),
        pytest.param('{"agent_id": ' + "[" * 5000 + "]" * 5000 + "}", id="json"),
    ],
)
def test_a_deeply_nested_security_user_is_invalid_security_user(text):
    with pytest.raises(InputRejected) as rejected:
        parse_security_user(text)
    assert rejected.value.condition is C.INVALID_SECURITY_USER
    assert "security_user" in rejected.value.message


def test_a_deeply_nested_session_id_list_is_an_error_naming_the_field():
    from cxone_provider.compat import AirflowFailException

    with pytest.raises(AirflowFailException, match="session_ids"):
        as_list("session_ids", "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    ("huge", "length"),
    [
        pytest.param("{'agent_id': 1001, 'name': '" + "x" * 10_000_000 + "'}", 10_000_030, id="well-formed"),
        # unterminated: a parser that ran first would report the syntax, not the size
        pytest.param("{'agent_id': 1001, 'name': '" + "x" * 10_000_000, 10_000_028, id="malformed"),
    ],
)
def test_an_oversized_security_user_is_refused_before_parsing(huge, length):
    with pytest.raises(InputRejected, match=f"security_user is {length} characters long") as rejected:
        parse_security_user(huge)
    assert rejected.value.condition is C.INVALID_SECURITY_USER


@pytest.mark.parametrize("render", [json.dumps, repr], ids=["json", "repr"])
def test_a_hundred_thousand_session_ids_still_parse(render):
    ids = [f"sess-{n}" for n in range(100_000)]
    assert as_list("session_ids", render(ids)) == ids


# --- 5: discovered endpoints stay on CXone -----------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8793",  # Airflow's log server
        "http://localhost:6379",  # Redis
        "http://[::1]:8080",
        "https://10.0.0.5",
        "https://metadata.internal",
        "https://api-na1.niceincontact.com.evil.example",
        "http://api-na1.niceincontact.com",  # a CXone host, but in clear text
    ],
)
def test_a_discovered_endpoint_off_cxone_is_refused_and_gets_no_token(monkeypatch, server, endpoint):
    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route(
        "GET",
        "/.well-known/cxone-configuration",
        lambda _: Answer(200, JSON, json.dumps({"api_endpoint": endpoint}).encode()),
    )
    hook = connect(monkeypatch, server, tenant_id="t-1", api_base_url="")
    outcome = join_agent_session(hook, "sess-1", 1001)
    assert outcome.condition is C.DEFAULT
    assert "not a CXone API endpoint" in outcome.message
    # discovery comes first (the tenant id is known): the token is not even requested, and no request
    # carried one anywhere
    assert [r.path for r in server.received] == ["/.well-known/cxone-configuration"]
    assert not any("Authorization" in r.headers for r in server.received)
    ok, message = hook.test_connection()
    assert not ok
    assert "not a CXone API endpoint" in message


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8793", "https://api-na1.niceincontact.com.evil.example"])
def test_a_discovered_endpoint_off_cxone_gets_no_token_from_either_face(monkeypatch, server, face, endpoint):
    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route(
        "GET",
        "/.well-known/cxone-configuration",
        lambda _: Answer(200, JSON, json.dumps({"api_endpoint": endpoint}).encode()),
    )
    client = face(connect(monkeypatch, server, tenant_id="t-1", api_base_url=""))
    with pytest.raises(CxoneApiError, match="not a CXone API endpoint"):
        client.join()
    assert [r.path for r in server.received] == ["/.well-known/cxone-configuration"]
    assert not any("Authorization" in r.headers for r in server.received)


@pytest.mark.parametrize(
    ("endpoint", "auth_host", "extra_domains", "allowed"),
    [
        ("https://api-na1.niceincontact.com", "https://cxone.niceincontact.com", None, True),
        ("https://api-c32.nice-incontact.com", "https://cxone.niceincontact.com", None, True),
        ("https://api-au1.nicecxone.com", "https://cxone.niceincontact.com", None, True),
        ("https://api.cxone.corp.example", "https://cxone.niceincontact.com", None, False),
        ("https://api.cxone.corp.example", "https://cxone.niceincontact.com", ["cxone.corp.example"], True),
        ("https://niceincontact.com.evil.example", "https://cxone.niceincontact.com", None, False),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765", None, True),  # the sandbox discovering itself
        ("http://127.0.0.1:8793", "http://127.0.0.1:8765", None, False),  # another loopback service
        ("http://127.0.0.1:8765", "https://cxone.niceincontact.com", None, False),
    ],
)
def test_the_endpoint_rule(endpoint, auth_host, extra_domains, allowed):
    problem = check_discovered_endpoint(endpoint, auth_host=auth_host, extra_domains=extra_domains or ())
    assert (problem is None) is allowed, problem


# --- 7: redaction ------------------------------------------------------------------------------------------


# Global Auth's published shape (errorDescription) and the legacy token service's (error_description).
@pytest.mark.parametrize("field", ["errorDescription", "error_description"])
def test_secrets_are_redacted_before_the_cut_and_in_url_encoded_form(monkeypatch, server, caplog, face, field):
    caplog.set_level(logging.DEBUG)

    def echo_the_form(request):
        # A careless auth proxy that echoes the request body, URL-encoded, near the end of a long message.
        padding = "p" * (300 - len("grant_type=password&username=KEY-1&password=") - 10)
        described = f"{padding}{request.body.decode()}"
        return Answer(400, JSON, json.dumps({"error": "invalid_request", field: described}).encode())

    server.route("POST", "/auth/token", echo_the_form)
    client = face(connect(monkeypatch, server))
    with pytest.raises(CxoneAuthError) as refused:
        client.access_token()
    text = str(refused.value) + caplog.text
    for form in all_forms(SECRET):
        assert form not in text
        assert form[:8] not in text  # not even the part that survives a cut
    assert "***" in text
    assert "pppppppp" in str(refused.value)  # the description was read, only the secret withheld


# --- 8: the cluster policy costs nothing for DAGs without CXone operators ----------------------------------


def test_the_cluster_policy_never_imports_the_provider_for_other_dags(tmp_path):
    (tmp_path / "plain.py").write_text(
        textwrap.dedent(
            """
            import pendulum
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.empty import EmptyOperator

            with DAG("plain", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
                EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import json, sys
        # A broken dependency of the provider: importing its operators now fails.
        for name in ("cxone_provider.operators.agent_session", "cxone_provider.operators.sweep"):
            sys.modules[name] = None
        from {DAGBAG_MODULE} import DagBag
        bag = DagBag(dag_folder={str(tmp_path)!r})
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": list(bag.import_errors.values())}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"dags": ["plain"], "errors": []}


# --- 9: verify_ssl ------------------------------------------------------------------------------------------


@counts_printed_lines
def test_switching_tls_verification_off_warns_once(monkeypatch, server, caplog, capfd):
    caplog.set_level(logging.WARNING)
    hook = connect(monkeypatch, server, verify_ssl=False)
    for _ in range(3):
        hook.get_conn()
    output = "".join(capfd.readouterr()) + caplog.text
    warnings = [line for line in output.splitlines() if "verification is off" in line]
    assert len(warnings) == 1, output
    assert "cxone_hostile" in warnings[0]


def test_verify_ssl_accepts_a_ca_bundle_path(monkeypatch, server, tmp_path):
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert connect(monkeypatch, server, verify_ssl=str(bundle)).session.verify == str(bundle)
    with pytest.raises(CxoneConfigError, match=r"extra 'verify_ssl'.*no-such\.pem"):
        _ = connect(monkeypatch, server, "cxone_nobundle", verify_ssl=str(tmp_path / "no-such.pem")).settings


def test_a_secret_echoed_in_the_error_field_is_redacted_too(monkeypatch, server):
    """A proxy that echoes the form body as the OAuth ``error`` name: the outcome (XCom) holds no form of it."""
    server.route(
        "POST",
        "/auth/token",
        lambda request: Answer(400, JSON, json.dumps({"error": request.body.decode()}).encode()),
    )
    outcome = join_agent_session(connect(monkeypatch, server), "sess-1", 1001)
    text = json.dumps(outcome.to_dict())
    for form in all_forms(SECRET):
        assert form not in text
    assert "***" in text


@pytest.mark.off_contract
def test_set_security_user_names_a_wrong_url_not_a_missing_agent(cxone_sandbox, monkeypatch):
    from cxone_provider.compat import AirflowFailException
    from cxone_provider.domain.classification import ROUTE_NOT_FOUND
    from cxone_provider.operators.security_user import SetSecurityUserOperator

    name, value = cxone_sandbox.connection_env("cxone_typo", api_version="v99.9")
    monkeypatch.setenv(name, value)
    with pytest.raises(AirflowFailException, match="API route not found") as failed:
        SetSecurityUserOperator(task_id="s", agent_id=1001, cxone_conn_id="cxone_typo").execute(context={})
    assert ROUTE_NOT_FOUND in str(failed.value)
    assert "is not a CXone agent" not in str(failed.value)


# --- issue 26, 1: no id reaches another path ------------------------------------------------------------------

UNSAFE_IDS = [
    "",
    "   ",
    ".",
    "..",
    "%2e",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%252e%252e",  # encoded twice
    "..;",  # a path parameter some servers strip
    "\uff0e\uff0e",  # full-width dots, normalised to ".." by some stacks
    "a/b",
    "%2F",
    "..%2f",
    "a\\b",
    "\uff0fx",  # full-width solidus
    "a?b",
    "a#b",
    "a%00b",
]
PATH_CALLS = {
    "end_agent_session": lambda hook, value: hook.end_agent_session(value),
    "monitor": lambda hook, value: hook.monitor(value, target_agent_id=1001),
    "coach": lambda hook, value: hook.coach(value),
    "barge": lambda hook, value: hook.barge(value),
    "take_over": lambda hook, value: hook.take_over(value),
    "get_next_event": lambda hook, value: hook.get_next_event(value, timeout=0),
}


@pytest.mark.parametrize("method", PATH_CALLS)
@pytest.mark.parametrize("session_id", UNSAFE_IDS)
def test_an_id_that_would_change_the_path_is_refused_and_nothing_is_sent(cxone_sandbox, method, session_id):
    hook = CxoneHook()
    with pytest.raises(UnsafePathIdError) as refused:
        PATH_CALLS[method](hook, session_id)
    message = str(refused.value)
    assert f"CxoneHook.{method}" in message
    assert repr(session_id) in message
    assert "nothing was sent" in message
    assert cxone_sandbox.journal() == []  # not a token request either


@pytest.mark.parametrize("session_id", [".", "..", "%2e%2e", "a/b", ""])
def test_the_triggers_event_poll_refuses_such_ids_too_and_sends_nothing(cxone_sandbox, session_id):
    from cxone_provider.client.async_api import AsyncCxoneClient

    hook = CxoneHook()

    async def poll() -> None:
        client = await AsyncCxoneClient.open(hook.settings, hook.options, log=hook.log)
        try:
            await client.next_event(session_id, 0)
        finally:
            await client.aclose()

    with pytest.raises(UnsafePathIdError, match=re.escape(f"CxoneHook.get_next_event: session_id {session_id!r}")):
        asyncio.run(poll())
    assert cxone_sandbox.journal() == []


def test_ids_with_dots_that_change_no_path_are_still_sent(cxone_sandbox):
    hook = CxoneHook()
    for session_id in ("...", "sess.2001", "a..b"):
        with pytest.raises(CxoneApiError):  # the sandbox knows no such session: 404, but it was asked
            hook.end_agent_session(session_id)
    sent = [entry["path"] for entry in cxone_sandbox.journal() if entry["method"] == "DELETE"]
    assert sent == [
        "/inContactAPI/services/v33.0/agent-sessions/...",
        "/inContactAPI/services/v33.0/agent-sessions/sess.2001",
        "/inContactAPI/services/v33.0/agent-sessions/a..b",
    ]


@pytest.mark.parametrize("session_id", [".", "..", "%2e%2e", "a/b"])
def test_the_operators_map_such_ids_to_invalid_agent_session_without_a_request(cxone_sandbox, session_id):
    outcome = join_agent_session(CxoneHook(), session_id, 1001)
    assert outcome.condition is C.INVALID_AGENT_SESSION
    assert repr(session_id) in outcome.message
    assert cxone_sandbox.journal() == []


# --- issue 26, 2: every form of a secret is redacted, by the hook and by Airflow's masker ---------------------


def secret_forms_of(secret: str) -> list[str]:
    """The forms an echoing server may send a secret back in (written here, not taken from the code)."""
    upper = [quote(secret, safe=""), quote_plus(secret)]
    lower = [re.sub(r"%[0-9A-F]{2}", lambda hit: hit.group().lower(), form) for form in upper]
    return list(dict.fromkeys([secret, *upper, *lower, html.escape(secret), html.escape(secret, quote=False)]))


BASIC_PAIR = base64.b64encode(f"app:{CLIENT_SECRET}".encode()).decode()
ECHO_STYLES = {
    "json": lambda echoed: Answer(
        400, JSON, json.dumps({"error": "invalid_request", "error_description": echoed}).encode()
    ),
    "lowercase-hex": lambda echoed: ECHO_STYLES["json"](re.sub(r"%[0-9A-F]{2}", lambda h: h.group().lower(), echoed)),
    "html-title": lambda echoed: Answer(
        400,
        {"Content-Type": "text/html"},
        f"<html><head><title>Rejected: {html.escape(echoed)}</title></head><body></body></html>".encode(),
    ),
}


def echo_server_routes(server: HostileServer, failing: str, style: str) -> None:
    """A proxy that answers ``failing`` with what it was sent: this request's Authorization header and
    the token request it passed on (its Basic header, its form body, and the fields decoded)."""
    seen: dict[str, str] = {}

    def echo(request) -> Answer:
        if request.path == "/auth/token":
            body = request.body.decode()
            fields = "; ".join(f"{k}={v}" for k, v in parse_qsl(body))
            seen["token"] = f"{request.headers.get('Authorization')} {body} ({fields})"
        echoed = f"{request.headers.get('Authorization')} after {seen.get('token', '')}"
        return ECHO_STYLES[style](echoed)

    def token(request) -> Answer:
        echo(request)
        return token_answer()

    api = "/inContactAPI/services/v33.0/"
    server.route("POST", "/auth/token", echo if failing == "token" else token)
    discovery_ok = Answer(200, JSON, json.dumps({"api_endpoint": server.url}).encode())
    server.route("GET", "/.well-known/cxone-configuration", echo if failing == "discovery" else lambda _: discovery_ok)
    server.route("POST", api + "agent-sessions/join", echo)
    server.route("GET", api + "agents/states", echo)


def assert_no_form_of_any_secret(text: str) -> None:
    for secret in (SECRET, CLIENT_SECRET, BASIC_PAIR, TOKEN):
        for form in secret_forms_of(secret):
            assert form not in text, f"{form!r} (a form of {secret!r}) in {text!r}"
            assert form[:10] not in text
    assert "***" in text


@pytest.mark.parametrize("style", ECHO_STYLES)
@pytest.mark.parametrize("failing", ["token", "discovery", "api", "trigger"])
def test_a_secret_echoed_in_any_form_on_any_error_path_is_redacted(monkeypatch, server, caplog, capfd, failing, style):
    caplog.set_level(logging.DEBUG)
    echo_server_routes(server, failing, style)
    extra = {"tenant_id": "t-1", "api_base_url": ""} if failing == "discovery" else {}
    hook = connect(monkeypatch, server, **extra)
    if failing == "discovery":
        hook.access_token()  # what the proxy echoes: the token request it passed on before
    if failing == "trigger":
        from cxone_provider.triggers.agent_state import AgentStateTrigger

        event = asyncio.run(AgentStateTrigger(agent_id=1001, cxone_conn_id="cxone_hostile", timeout=30).wait())
        assert event["status"] == "error"
        texts = [event["message"]]
    else:
        call = {
            "token": hook.access_token,
            "discovery": lambda: hook.api_base_url,
            "api": lambda: hook.join_session("sess-1", as_agent_id=1001),
        }[failing]
        with pytest.raises((CxoneAuthError, CxoneApiError)) as failed:
            call()
        outcome = join_agent_session(connect(monkeypatch, server, "cxone_hostile_again", **extra), "sess-1", 1001)
        assert outcome.condition is C.DEFAULT
        texts = [str(failed.value), json.dumps(outcome.to_dict())]
    # the echo reached the message (else this test proves nothing), with every secret cut out of it
    assert ("Rejected" if style == "html-title" else "after") in texts[0]
    for text in texts:
        assert_no_form_of_any_secret(text)
    logged = caplog.text + "".join(capfd.readouterr())
    for secret in (SECRET, CLIENT_SECRET, BASIC_PAIR, TOKEN):
        assert not any(form in logged for form in secret_forms_of(secret))


@pytest.mark.parametrize("style", ECHO_STYLES)
@pytest.mark.parametrize("failing", ["token", "discovery", "api"])
def test_a_secret_echoed_in_any_form_is_redacted_by_either_face(
    monkeypatch, server, caplog, capfd, face, failing, style
):
    caplog.set_level(logging.DEBUG)
    echo_server_routes(server, failing, style)
    extra = {"tenant_id": "t-1", "api_base_url": ""} if failing == "discovery" else {}
    client = face(connect(monkeypatch, server, **extra))
    if failing == "discovery":
        client.access_token()  # what the proxy echoes: the token request it passed on before
    call = {"token": client.access_token, "discovery": client.api_base_url, "api": client.join}[failing]
    with pytest.raises((CxoneAuthError, CxoneApiError)) as failed:
        call()
    text = str(failed.value)
    assert ("Rejected" if style == "html-title" else "after") in text  # the echo reached the message
    assert_no_form_of_any_secret(text)
    logged = caplog.text + "".join(capfd.readouterr())
    for secret in (SECRET, CLIENT_SECRET, BASIC_PAIR, TOKEN):
        assert not any(form in logged for form in secret_forms_of(secret))


def test_airflows_masker_knows_every_form_the_hook_sends_a_secret_in(monkeypatch, server, face):
    from cxone_provider.compat import redact

    server.route("POST", "/auth/token", lambda _: token_answer())
    face(connect(monkeypatch, server)).access_token()
    for secret in (SECRET, CLIENT_SECRET, BASIC_PAIR, TOKEN):
        for form in secret_forms_of(secret):
            assert redact(f"echoed: {form}!") == "echoed: ***!", form


def test_the_forms_are_registered_once_per_hook_not_per_call(monkeypatch, server, face):
    import airflow.sdk.log

    registered: list[object] = []
    real = airflow.sdk.log.mask_secret

    def counting(value: object, name: str | None = None) -> None:
        registered.append(value)
        real(value, name)

    monkeypatch.setattr(airflow.sdk.log, "mask_secret", counting)
    nobody = Answer(200, JSON, b'{"agentStates": []}')
    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route("GET", "/inContactAPI/services/v33.0/agents/states", lambda _: nobody)
    client = face(connect(monkeypatch, server))
    for _ in range(20):
        client.agent_states()
    # the two secrets, the Basic pair, the one token: one registration each (of all its forms), whatever the
    # number of calls; Airflow itself registers the connection's fields too, as a dict and a string
    ours = [value for value in registered if isinstance(value, list)]
    assert len(ours) == 4, registered


# --- issue 26, 3: bounded waits ----------------------------------------------------------------------------


def throttled(server: HostileServer, retry_after: str, times: list[float]) -> None:
    def answer(_request) -> Answer:
        times.append(time.monotonic())
        return Answer(429, {**JSON, "Retry-After": retry_after}, b'{"error": "TooManyRequests"}')

    server.route("POST", "/auth/token", lambda _: token_answer())
    server.route("POST", "/inContactAPI/services/v33.0/agent-sessions/join", answer)


def test_a_call_stops_retrying_when_its_wait_budget_is_spent(monkeypatch, server):
    times: list[float] = []
    throttled(server, "0.4", times)
    conn = connect(monkeypatch, server)
    hook = CxoneHook("cxone_hostile", max_attempts=10, backoff_initial_s=0.01, max_wait_s=1.0)
    assert conn.cxone_conn_id == hook.cxone_conn_id
    outcome = join_agent_session(hook, "sess-1", 1001)
    assert outcome.condition is C.DEFAULT
    assert outcome.attempts == 3  # waited 0.4 + 0.4; a third wait would pass 1 s
    assert "wait budget (max_wait_s=1)" in outcome.message
    assert len(times) == 3  # CXone saw three joins: no fourth after the budget was spent
    assert all(later - earlier >= 0.39 for earlier, later in itertools.pairwise(times)), times


def test_either_face_stops_retrying_when_its_wait_budget_is_spent(monkeypatch, server, face):
    times: list[float] = []
    throttled(server, "0.4", times)
    connect(monkeypatch, server)
    client = face(CxoneHook("cxone_hostile", max_attempts=10, backoff_initial_s=0.01, max_wait_s=1.0))
    with pytest.raises(CxoneApiError) as throttled_out:
        client.join()
    assert throttled_out.value.response.attempts == 3  # waited 0.4 + 0.4; a third wait would pass 1 s
    assert "wait budget (max_wait_s=1)" in str(throttled_out.value)
    assert len(times) == 3


def test_a_long_retry_after_spends_the_budget_at_once(monkeypatch, server):
    times: list[float] = []
    throttled(server, "30", times)
    connect(monkeypatch, server)
    outcome = join_agent_session(CxoneHook("cxone_hostile", max_wait_s=5), "sess-1", 1001)
    assert outcome.attempts == 1
    assert len(times) == 1  # gave up at once: no join after a 30 s wait
    assert re.search(r"waiting 30\.\ds more would pass the call.s wait budget", outcome.message)


def test_the_wait_budget_is_checked_when_the_hook_is_made():
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_wait_s"):
            CxoneHook("cxone_hostile", max_wait_s=bad)


@counts_printed_lines
@pytest.mark.parametrize("retry_after", ["nan", "-5", "inf", "1e400", "Wed, 21 Oct 2099 07:28:00 GMT", "soon"], ids=str)
def test_an_unusable_retry_after_is_ignored_and_logged_once(monkeypatch, server, caplog, capfd, face, retry_after):
    caplog.set_level(logging.INFO)
    times: list[float] = []
    throttled(server, retry_after, times)
    connect(monkeypatch, server)
    client = face(CxoneHook("cxone_hostile", max_attempts=2, backoff_initial_s=0.3, backoff_max_s=0.3, max_wait_s=5))
    for _ in range(2):
        with pytest.raises(CxoneApiError, match="gave up after 2 attempts"):
            client.join()
    # the hook's own backoff decided (at least 0.3 s), neither "at once" nor the header's value (a wait past the
    # 5 s budget would have given up after one attempt)
    gaps = [later - earlier for earlier, later in zip(times[::2], times[1::2], strict=True)]
    assert len(gaps) == 2
    assert all(gap >= 0.29 for gap in gaps), gaps
    logged = caplog.text + "".join(capfd.readouterr())
    assert logged.count("CXone sent Retry-After") == 1, logged


@counts_printed_lines
@pytest.mark.parametrize("expires_in", ["NaN", "1e400", "1000000000000", "-5", "0", '"soon"'])
def test_an_unusable_expires_in_is_treated_as_missing_and_logged_once(
    monkeypatch, server, caplog, capfd, face, expires_in
):
    caplog.set_level(logging.INFO)
    body = f'{{"access_token": "{TOKEN}", "token_type": "bearer", "expires_in": {expires_in}}}'.encode()
    server.route("POST", "/auth/token", lambda _: Answer(200, JSON, body))
    client = face(connect(monkeypatch, server))
    client.access_token()
    renew_in = client.client.auth._token.renew_at - time.monotonic()
    assert 3000 < renew_in <= 3600  # renewed as if the token lasted an hour: on time, not never
    client.renew_token(stale=TOKEN)  # a second token, the same answer: logged once
    logged = caplog.text + "".join(capfd.readouterr())
    assert logged.count("CXone sent expires_in") == 1, logged


def test_a_usable_expires_in_is_kept(monkeypatch, server, face):
    server.route("POST", "/auth/token", lambda _: token_answer(expires_in=600))
    client = face(connect(monkeypatch, server))
    client.access_token()
    assert 530 < client.client.auth._token.renew_at - time.monotonic() <= 540  # 600 s less 10 %


# --- issue 26, 4: the token's repr ---------------------------------------------------------------------------


def test_no_repr_in_the_client_holds_the_token(monkeypatch, server):
    server.route("POST", "/auth/token", lambda _: token_answer(refresh_token=TOKEN + "-refresh"))
    hook = connect(monkeypatch, server)
    hook.access_token()
    client = hook.client
    objects = [hook, client, client.auth, client.auth._token, client.transport, client.secrets, client.settings]
    objects += [hook.options, client.transport.session, client.transport.session.headers]
    for thing in objects:
        assert TOKEN not in repr(thing), type(thing).__name__
        assert SECRET not in repr(thing), type(thing).__name__


def test_no_repr_in_either_face_holds_the_token(monkeypatch, server, face):
    server.route("POST", "/auth/token", lambda _: token_answer(refresh_token=TOKEN + "-refresh"))
    async_face = face(connect(monkeypatch, server))
    async_face.access_token()
    client = async_face.client
    objects = [client, client.auth, client.auth._token, client.transport, client.secrets, client.settings]
    objects += [client.options, getattr(client.transport, "http", None)]
    for thing in objects:
        assert TOKEN not in repr(thing), type(thing).__name__
        assert SECRET not in repr(thing), type(thing).__name__


# --- issue 26, 4: CSV cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    [" =1+2", "\n=1+2", "\t=1", "\uff1d1+2", "\uff0b1", "\uff0d1", "\uff20SUM(1)", "\u200b=1+2", "\ufeff+1", "=1"],
)
def test_the_ui_csv_escapes_formulas_behind_white_space_invisible_or_full_width_characters(cell):
    import csv
    import io

    from cxone_provider.ui.data import sessions_csv

    text = sessions_csv([{"session_id": cell, "condition": "Default", "message": cell}])
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["session_id"] == "'" + cell
    assert row["message"] == "'" + cell


@pytest.mark.parametrize("cell", [" hello", "a=b", "sess-2001", "\u200bsess", "\uff21BC"])
def test_the_ui_csv_leaves_ordinary_text_alone(cell):
    import csv
    import io

    from cxone_provider.ui.data import sessions_csv

    row = next(csv.DictReader(io.StringIO(sessions_csv([{"session_id": cell}]))))
    assert row["session_id"] == cell
