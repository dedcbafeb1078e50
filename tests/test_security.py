"""Security: hostile servers the tests start on 127.0.0.1, and hostile inputs (issue 14).

Every test here failed on the main of before the fix: a redirect re-posted the access key secret,
redirect bodies were read whole, deep nesting raised RecursionError, oversized literals were parsed,
discovery could send the token anywhere, secrets survived a cut or URL-encoding, and the cluster policy
imported the provider for every DAG.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import textwrap
import time
from urllib.parse import quote, quote_plus

import psutil
import pytest
from hostile_server import Answer, HostileServer

from cxone_provider.client.settings import check_discovered_endpoint
from cxone_provider.conditions import InputRejected, JoinCondition, parse_security_user
from cxone_provider.exceptions import CxoneAuthError, CxoneConfigError
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
def test_the_token_request_follows_no_redirect(monkeypatch, server, elsewhere, status):
    server.route("POST", "/auth/token", lambda _: Answer(status, {"Location": f"{elsewhere.url}/steal"}))
    hook = connect(monkeypatch, server)
    with pytest.raises(CxoneAuthError) as refused:
        hook.access_token()
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


def test_a_huge_redirect_body_is_never_read(monkeypatch, server):
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
    hook = connect(monkeypatch, server)
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.monotonic()
    with pytest.raises(CxoneAuthError, match="HTTP 302"):
        hook.access_token()
    assert time.monotonic() - started < 10  # generous: reading 400 MiB whole is what is ruled out
    assert process.memory_info().rss - before < 64 * 1024 * 1024


def test_a_dripping_redirect_body_does_not_outlast_read_timeout(monkeypatch, server):
    server.route(
        "POST",
        "/auth/token",
        lambda _: Answer(
            302, {"Location": "https://elsewhere.invalid/"}, chunks=((b"x", 0.4) for _ in range(30)), length=30
        ),
    )
    hook = connect(monkeypatch, server)  # read_timeout 2 s; the drip takes 12 s
    started = time.monotonic()
    with pytest.raises(CxoneAuthError, match="HTTP 302"):
        hook.access_token()
    assert time.monotonic() - started < 6


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


def test_a_deeply_nested_id_token_is_a_clear_configuration_error(monkeypatch, server):
    claims = base64.urlsafe_b64encode(b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}").rstrip(b"=").decode()
    server.route("POST", "/auth/token", lambda _: token_answer(id_token=f"eyJhbGciOiJub25lIn0.{claims}."))
    hook = connect(monkeypatch, server, tenant_id="", api_base_url="")
    with pytest.raises(CxoneConfigError, match="tenant_id"):
        _ = hook.api_base_url


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
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="session_ids"):
        as_list("session_ids", "[" * 5000 + "]" * 5000)


def test_an_oversized_security_user_is_refused_before_parsing():
    huge = "{'agent_id': 1001, 'name': '" + "x" * 10_000_000 + "'}"
    started = time.monotonic()
    with pytest.raises(InputRejected, match="security_user is 10000030 characters long") as rejected:
        parse_security_user(huge)
    assert rejected.value.condition is C.INVALID_SECURITY_USER
    assert time.monotonic() - started < 1  # refused by its size, not after parsing 10 MB


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
def test_secrets_are_redacted_before_the_cut_and_in_url_encoded_form(monkeypatch, server, caplog, field):
    caplog.set_level(logging.DEBUG)

    def echo_the_form(request):
        # A careless auth proxy that echoes the request body, URL-encoded, near the end of a long message.
        padding = "p" * (300 - len("grant_type=password&username=KEY-1&password=") - 10)
        described = f"{padding}{request.body.decode()}"
        return Answer(400, JSON, json.dumps({"error": "invalid_request", field: described}).encode())

    server.route("POST", "/auth/token", echo_the_form)
    hook = connect(monkeypatch, server)
    with pytest.raises(CxoneAuthError) as refused:
        hook.access_token()
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
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(tmp_path)!r})
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": list(bag.import_errors.values())}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"dags": ["plain"], "errors": []}


# --- 9: verify_ssl ------------------------------------------------------------------------------------------


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
    from airflow.sdk.exceptions import AirflowFailException

    from cxone_provider.conditions import ROUTE_NOT_FOUND
    from cxone_provider.operators.security_user import SetSecurityUserOperator

    name, value = cxone_sandbox.connection_env("cxone_typo", api_version="v99.9")
    monkeypatch.setenv(name, value)
    with pytest.raises(AirflowFailException, match="API route not found") as failed:
        SetSecurityUserOperator(task_id="s", agent_id=1001, cxone_conn_id="cxone_typo").execute(context={})
    assert ROUTE_NOT_FOUND in str(failed.value)
    assert "is not a CXone agent" not in str(failed.value)
