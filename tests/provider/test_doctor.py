"""cxone-doctor and cxone-sandbox --replay (issue 21, item 5), over real HTTP.

The doctor runs against the sandbox and against replays of records: the sandbox's own (record, replay,
same table) and a hand-written record shaped like a real tenant's answers (display-name time zones,
rows without sessionId, e-mail addresses and phone numbers, an ``apiversion`` list).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from conftest import counts_printed_lines
from published_contract import contract_violations

from cxone_provider import doctor
from cxone_provider import testing as cxone_testing
from cxone_provider.testing import SandboxServer
from cxone_sandbox.cli import main as sandbox_main
from cxone_sandbox.replay import RECORD_FORMAT, load_recording

if TYPE_CHECKING:
    from collections.abc import Iterator

cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

HOOK_USER_AGENT = "airflow-provider-cxone"
HAS_RESOLVER = importlib.util.find_spec("cxone_provider.domain.timezones") is not None


def run_doctor(*args: str) -> tuple[int, str, dict[str, doctor.Check]]:
    """Run the doctor in-process on ``cxone_default``: exit code, printed text, rows by name."""
    lines: list[str] = []
    code = doctor.main(list(args), out=lines.append)
    text = "\n".join(lines)
    return code, text, {row.name: row for row in parse_table(text)}


def parse_table(text: str) -> list[doctor.Check]:
    rows = []
    for line in text.splitlines():
        match = re.match(r"^(\S+(?: \S+)?)\s{2,}(PASS|WARN|FAIL|NOTE|SKIP)\s{2,}(.*)$", line)
        if match:
            rows.append(doctor.Check(*match.groups()))
    return rows


def table_of(text: str) -> str:
    """The table without the first line, which names the server's address."""
    return "\n".join(line for line in text.splitlines()[1:] if not line.startswith("recorded "))


def sent_by_hook(server: SandboxServer) -> list[dict[str, Any]]:
    return [e for e in server.journal() if e.get("user_agent") == HOOK_USER_AGENT]


def assert_read_only(server: SandboxServer) -> None:
    calls = {(e["method"], e["path"].split("/services/")[-1]) for e in sent_by_hook(server)}
    assert calls, "the doctor sent nothing"
    changing = {c for c in calls if c[0] != "GET" and c != ("POST", "/auth/token")}
    assert changing == set(), f"the doctor changed state: {changing}"


# ------------------------------------------------------------------------------------------ the doctor


def test_a_healthy_sandbox_passes_and_only_reads(cxone_sandbox: SandboxServer) -> None:
    code, text, rows = run_doctor("--agent-id", "1001")
    assert code == 0, text
    assert text.splitlines()[0].endswith(f"API base {cxone_sandbox.url}/inContactAPI/services/v33.0/")
    for name in ("connection", "token", "discovery", "agent", "time zone", "agent states"):
        assert rows[name].result == "PASS", text
    assert "agent 1001 (from --agent-id)" in rows["agent"].detail
    assert "America/Denver" in rows["time zone"].detail
    assert rows["apiversion"].result in ("PASS", "WARN")  # informational: the provider does not need it
    assert_read_only(cxone_sandbox)
    # Exactly the calls the table names: one token, discovery, the agent, one page of states, apiversion.
    paths = [e["path"].split("/services/")[-1] for e in sent_by_hook(cxone_sandbox)]
    assert paths == [
        "/auth/token",
        "/.well-known/cxone-configuration",
        "v33.0/agents/1001",
        "v33.0/agents/states",
        "v33.0/apiversion",
    ]


def test_without_agent_id_the_key_users_own_agent_is_read_when_the_id_token_names_it(
    cxone_sandbox: SandboxServer,
) -> None:
    token = requests.post(
        f"{cxone_sandbox.url}/auth/token",
        data={"grant_type": "password", "username": "SANDBOX-QA-KEY", "password": "sandbox-qa-secret"},
        auth=("sandbox-client", "sandbox-client-secret"),
        timeout=10,
    ).json()
    own = doctor.jwt_claims(token["id_token"]).get("icAgentId")
    code, text, rows = run_doctor()
    if own is not None:  # the sandbox issues NICE's claims (issue 20)
        assert code == 0, text
        assert rows["agent"].result == "PASS", text
        assert f"agent {own} (the key user's own, from the id_token's icAgentId)" in rows["agent"].detail
    else:
        assert rows["id_token"].result == "WARN"
        assert "pass --agent-id" in rows["id_token"].detail
        assert rows["agent"].result == "SKIP"
        assert "pass --agent-id" in rows["agent"].detail
        assert code == 0, "an agent not checked is no failure of the tenant"


def test_an_inactive_agent_fails_with_a_non_zero_exit(cxone_sandbox: SandboxServer) -> None:
    code, _, rows = run_doctor("--agent-id", "1003")
    assert code == 1
    assert rows["agent"].result == "FAIL"
    assert "isActive is False: SetSecurityUser refuses it" in rows["agent"].detail


def test_an_unknown_agent_fails_naming_it(cxone_sandbox: SandboxServer) -> None:
    code, _, rows = run_doctor("--agent-id", "424242")
    assert code == 1
    assert rows["agent"].result == "FAIL"
    assert "agent 424242" in rows["agent"].detail
    assert rows["time zone"].result == "SKIP"


def test_a_refused_secret_fails_at_the_token_and_stays_out_of_the_output(
    cxone_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = cxone_sandbox.connection()
    conn["password"] = "wrong-secret-4711"
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_DEFAULT", json.dumps(conn))
    code, text, rows = run_doctor()
    assert code == 1
    assert rows["token"].result == "FAIL"
    assert "invalid_grant" in rows["token"].detail
    assert "wrong-secret-4711" not in text
    assert list(rows) == ["connection", "token"], "nothing is asked without a token"


def test_a_missing_connection_fails_before_any_request(cxone_sandbox: SandboxServer) -> None:
    code, _, rows = run_doctor("--conn-id", "no_such_conn")
    assert code == 1
    assert rows["connection"].result == "FAIL"
    assert "no_such_conn" in rows["connection"].detail
    assert sent_by_hook(cxone_sandbox) == []


def test_a_bad_agent_id_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        doctor.main(["--agent-id", "-3"])
    assert exit_.value.code == 2
    assert "--agent-id must be a positive integer, got '-3'" in capsys.readouterr().err


@counts_printed_lines
def test_the_command_and_the_module_run_the_same(cxone_sandbox: SandboxServer, tmp_path: Path) -> None:
    name, value = cxone_sandbox.connection_env("cxone_doc")
    env = {**os.environ, name: value}
    command = Path(sys.executable).parent / "cxone-doctor"
    outputs = []
    for argv in ([str(command)], [sys.executable, "-m", "cxone_provider.doctor"]):
        done = subprocess.run(
            [*argv, "--conn-id", "cxone_doc", "--agent-id", "1001", "--record", str(tmp_path / "r.json")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(table_of(done.stdout))
    assert outputs[0] == outputs[1]
    assert "recorded 5 answer(s)" in done.stdout
    assert json.loads((tmp_path / "r.json").read_text())["format"] == RECORD_FORMAT


def test_the_module_is_safe_to_import_under_another_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's plugin loader imports every file of plugins/cxone_provider as a top-level module."""
    spec = importlib.util.spec_from_file_location("doctor", doctor.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "doctor", module)  # as the loader does
    spec.loader.exec_module(module)
    assert capsys.readouterr() == ("", "")
    assert callable(module.main)


# ------------------------------------------------------------------------------------------ record


def test_the_record_holds_no_secret_token_name_phone_or_email(cxone_sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    code, _, _ = run_doctor("--agent-id", "1001", "--record", str(path))
    assert code == 0
    text = path.read_text(encoding="utf-8")
    seed = cxone_sandbox.seed
    forbidden = {seed["tenant_id"]}
    for user in seed["users"]:
        forbidden |= {user["access_key_id"], user["access_key_secret"]}
    for app in seed["applications"]:
        forbidden |= {app["client_id"], app["client_secret"]}
    for agent in seed["agents"]:
        forbidden |= {agent["first_name"], agent["last_name"]}
    # Whole words: "Ava" is a name, "Available" a state.
    leaked = sorted(s for s in forbidden if re.search(rf"\b{re.escape(s)}\b", text))
    assert leaked == []
    for marker in ("sbx-at-", "sbx-rt-", "eyJ"):  # the sandbox's access and refresh tokens, any JWT
        assert marker not in text
    record = json.loads(text)
    assert [(a["method"], a["status"]) for a in record["answers"]] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
        ("GET", 200),
        ("GET", record["answers"][-1]["status"]),
    ]
    states = record["answers"][3]["body"]["agentStates"]
    assert {row["firstName"] for row in states} == {"<redacted>"}
    assert {row["agentStateName"] for row in states} > {"LoggedOut"}, "state names are kept: the provider reads them"


# A tenant's answers as the doctor would record them before redaction: what a real tenant's records look like.
TENANT_CLAIMS = {
    "tenantId": "11ee1111-2222-4333-8444-555566667777",
    "icAgentId": "30001",
    "icBUId": "4601234",
    "icClusterId": "C32",
    "sub": "user:11ee9999-aaaa-4bbb-8ccc-dddddddddddd",
    "given_name": "Morgan",
    "family_name": "Blackwood",
    "name": "Morgan Blackwood",
    "email": "morgan.blackwood@example-contact-centre.com",
    "iss": "{auth_host}",
}


def _jwt(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{payload}."


def tenant_record() -> dict[str, Any]:
    api = "/inContactAPI/services/v26.0/"
    row = {
        "agentId": 30001,
        "agentStateName": "Available",
        "businessUnitId": 4601234,
        "teamId": 77,
        "stationId": 9001,
        "sessionStartTime": "2026-12-06T08:00:00.000Z",
        "firstName": "Morgan",
        "lastName": "Blackwood",
        "userName": "morgan.blackwood@example-contact-centre.com",
        "stationPhoneNumber": "+1 (602) 555-0147",
        "skillName": "Billing",
    }
    other = {**row, "agentId": 30002, "agentStateName": "LoggedOut", "firstName": "Rui", "lastName": "Takeda"}
    other |= {"userName": "rui.takeda@example-contact-centre.com", "stationPhoneNumber": "602.555.0199"}
    return {
        "format": RECORD_FORMAT,
        "api_version": "v26.0",
        "answers": [
            {
                "method": "POST",
                "path": "/auth/token",
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": {
                    "access_token": "<redacted>",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": "<redacted>",
                    "id_token": "<redacted>",
                },
                "id_token_claims": TENANT_CLAIMS,
            },
            {
                "method": "GET",
                "path": "/.well-known/cxone-configuration",
                "query": {"tenantId": "<tenant>"},
                "status": 200,
                "body": {
                    "private": False,
                    "ui_endpoint": "{auth_host}",
                    "auth_endpoint": "{auth_host}",
                    "api_endpoint": "{api_host}",
                    "domain": "nice-incontact.com",
                    "uhDomain": "nice-incontact.com",
                    "area": "na1",
                    "cluster": "C32",
                },
            },
            {
                "method": "GET",
                "path": api + "agents/30001",
                "status": 200,
                "body": {
                    "agents": [
                        {
                            "agentId": 30001,
                            "isActive": True,
                            "firstName": "Morgan",
                            "lastName": "Blackwood",
                            "emailAddress": "morgan.blackwood@example-contact-centre.com",
                            "teamId": 77,
                            "timeZone": "(GMT-07:00) Arizona",
                            "timeZoneOffset": "-07:00",
                            "notes": "call me on 602-555-0147",
                        }
                    ]
                },
            },
            {
                "method": "GET",
                "path": api + "agents/states",
                "query": {"top": "1000", "skip": "0"},
                "status": 200,
                "body": {
                    "totalRecords": 2,
                    "_links": {"self": "{api_host}" + api + "agents/states?top=1000&skip=0", "next": None},
                    "lastPollTime": "2026-12-06T10:00:00.000Z",
                    "agentStates": [row, other],
                },
            },
            {
                "method": "GET",
                "path": api + "apiversion",
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": {
                    "apiInfo": [
                        {"uri": "agent-sessions/join", "version": 23, "verb": "POST"},
                        {"uri": "agents/states", "version": 26, "verb": "GET"},
                    ]
                },
            },
        ],
    }


@pytest.fixture
def tenant_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(tenant_record()), encoding="utf-8")
    with SandboxServer(replay=path) as server:
        name, value = server.connection_env()
        monkeypatch.setenv(name, value)
        yield server


def test_a_tenant_shaped_replay_reads_as_a_tenant(tenant_replay: SandboxServer) -> None:
    code, text, rows = run_doctor()
    assert rows["id_token"].result == "PASS", text
    assert "agent 30001 (the key user's own, from the id_token's icAgentId)" in rows["agent"].detail
    assert rows["agent"].result == "PASS"
    assert rows["session ids"].result == "PASS"
    assert "no sessionId" in rows["session ids"].detail
    assert rows["apiversion"].result == "PASS"
    assert "agent-sessions/join v23, agents/states v26" in rows["apiversion"].detail
    assert "(v26.0)" in rows["connection"].detail
    if HAS_RESOLVER:  # issue 21's resolver maps CXone's display names
        assert rows["time zone"].result in ("PASS", "WARN")
        assert "'(GMT-07:00) Arizona' -> " in rows["time zone"].detail
        assert code == 0, text
    else:  # this build hands the time zone to pendulum, which SetSecurityUser would fail on
        assert rows["time zone"].result == "FAIL"
        assert "not an IANA name" in rows["time zone"].detail
        assert code == 1
    assert_read_only(tenant_replay)
    assert contract_violations(sent_by_hook(tenant_replay)) == []


def test_recording_a_tenant_redacts_its_names_phones_and_emails(tenant_replay: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "again.json"
    run_doctor("--record", str(path))
    text = path.read_text(encoding="utf-8")
    for personal in ("Morgan", "Blackwood", "Rui", "Takeda", "example-contact-centre", "555-0147", "555-0199"):
        assert personal not in text
    assert TENANT_CLAIMS["tenantId"] not in text
    assert "127.0.0.1" not in text, "hosts are placeholders"
    record = json.loads(text)
    agent = record["answers"][2]["body"]["agents"][0]
    assert agent["timeZone"] == "(GMT-07:00) Arizona", "what the provider parses is kept"
    assert agent["notes"] == "call me on <redacted>"
    claims = record["answers"][0]["id_token_claims"]
    assert claims["icAgentId"] == "30001"
    assert claims["name"] == "<redacted>"
    assert claims["tenantId"] == "<tenant>"


def test_a_row_without_agent_state_name_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tenant_record()
    del record["answers"][3]["body"]["agentStates"][1]["agentStateName"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with SandboxServer(replay=path) as server:
        monkeypatch.setenv(*server.connection_env())
        code, _, rows = run_doctor()
    assert code == 1
    assert rows["agent states"].result == "FAIL"
    assert "rows without agentStateName" in rows["agent states"].detail


# ------------------------------------------------------------------------------------------ replay


def test_record_then_replay_gives_the_same_table(
    cxone_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "record.json"
    code, live, _ = run_doctor("--agent-id", "1001", "--record", str(path))
    assert code == 0
    with SandboxServer(replay=path) as replay:
        monkeypatch.setenv(*replay.connection_env())
        replayed_code, replayed, _ = run_doctor("--agent-id", "1001")
        assert_read_only(replay)
        assert contract_violations(sent_by_hook(replay)) == []
    assert replayed_code == code
    assert table_of(replayed) == table_of(live)


def test_the_replay_answers_only_what_it_recorded(tenant_replay: SandboxServer) -> None:
    url = tenant_replay.url
    api = f"{url}/inContactAPI/services/v26.0/"
    conn = tenant_replay.connection()
    token = requests.post(
        f"{url}/auth/token",
        data={"grant_type": "password", "username": conn["login"], "password": conn["password"]},
        auth=(conn["extra"]["client_id"], conn["extra"]["client_secret"]),
        timeout=10,
    )
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert doctor.jwt_claims(token.json()["id_token"])["icAgentId"] == "30001"

    recorded = requests.get(f"{api}agents/states?skip=0&top=1000", headers=bearer, timeout=10)
    assert recorded.status_code == 200
    assert recorded.json()["_links"]["self"].startswith(f"{url}/inContactAPI/"), "links lead back to the replay"
    # The prefix and the version in another case are the same call.
    assert requests.get(f"{url}/incontactapi/services/V26.0/agents/30001", headers=bearer, timeout=10).ok

    assert requests.get(f"{api}agents/states?top=1000&skip=0", timeout=10).status_code == 401
    wrong_secret = requests.post(
        f"{url}/auth/token",
        data={"grant_type": "password", "username": conn["login"], "password": "nope"},
        auth=(conn["extra"]["client_id"], conn["extra"]["client_secret"]),
        timeout=10,
    )
    assert wrong_secret.status_code == 400
    unrecorded = requests.get(f"{api}agents/states?top=5", headers=bearer, timeout=10)
    assert unrecorded.status_code == 404
    message = unrecorded.json()["message"]
    assert message == "GET /inContactAPI/services/v26.0/agents/states?top=5: not in the replayed record"
    join = requests.post(f"{api}agent-sessions/join", json={"asAgentId": 30001}, headers=bearer, timeout=10)
    assert join.status_code == 501
    assert "not in the replayed record: a replay changes nothing" in join.json()["message"]
    # The sandbox's own layer still journals every request.
    assert [e["status"] for e in tenant_replay.journal()][-2:] == [404, 501]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "har"}, "format must be 'cxone-doctor-record/1', got 'har'"),
        ({"api_version": ""}, "api_version must be a version such as 'v33.0', got ''"),
        ({"answers": {}}, "answers must be a list, got dict"),
        ({"answers": [{"method": "GET", "path": "x", "status": 200}]}, "answers[0].path must be a path starting"),
        ({"answers": [{"method": "GET", "path": "/x", "status": 99}]}, "answers[0].status must be an HTTP status"),
        ({"answers": [{"method": "FETCH", "path": "/x", "status": 200}]}, "answers[0].method must be an HTTP"),
        ({"answers": [{"method": "GET", "path": "/x", "status": 200, "query": {"a": 1}}]}, "answers[0].query must"),
    ],
)
def test_a_bad_record_is_refused_naming_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**tenant_record(), **change}), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_recording(path)


def test_cxone_sandbox_refuses_a_bad_replay_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not json", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        sandbox_main(["--port", "0", "--replay", str(path)])
    assert exit_.value.code == 2
    assert f"replay record {path}: not JSON" in capsys.readouterr().err


def test_a_first_page_larger_than_the_provider_reads_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tenant_record()
    rows = record["answers"][3]["body"]["agentStates"]
    # About 9 MiB: past what the provider reads of an answer (8 MiB; a 1,000-row page is ~600 KB).
    rows[:] = [{**rows[0], "agentId": 40000 + n, "skillName": "x" * 3000} for n in range(3000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with SandboxServer(replay=path) as server:
        monkeypatch.setenv(*server.connection_env())
        code, _, checks = run_doctor()
    assert code == 1
    assert checks["agent states"].result == "FAIL"
    assert "larger than 8192 KiB" in checks["agent states"].detail


def test_a_recorded_error_is_replayed_with_its_icstatusdescription(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tenant_record()
    record["answers"][2] = {
        "method": "GET",
        "path": "/inContactAPI/services/v26.0/agents/30001",
        "status": 404,
        "headers": {"icStatusDescription": "Invalid Agent Id"},
        "body": None,
    }
    path = tmp_path / "gone.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with SandboxServer(replay=path) as server:
        monkeypatch.setenv(*server.connection_env())
        code, _, checks = run_doctor("--record", str(tmp_path / "again.json"))
    assert code == 1
    assert checks["agent"].result == "FAIL"
    assert "agent 30001" in checks["agent"].detail
    again = json.loads((tmp_path / "again.json").read_text())["answers"][2]
    assert (again["status"], again["headers"]["icstatusdescription"]) == (404, "Invalid Agent Id")


@pytest.mark.parametrize(
    ("answer", "result", "detail"),
    [
        (["v2.0", "V26.0"], "PASS", "2 versions listed, the connection's v26.0 among them"),
        (["v2.0", "v33.0"], "WARN", "2 versions listed, not the connection's v26.0"),
        ({"versions": 3}, "WARN", "answered with neither an apiInfo list nor a list of versions"),
    ],
)
def test_apiversion_as_a_list_of_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: Any, result: str, detail: str
) -> None:
    record = tenant_record()
    record["answers"][4]["body"] = answer
    path = tmp_path / "versions.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with SandboxServer(replay=path) as server:
        monkeypatch.setenv(*server.connection_env())
        _, _, checks = run_doctor()
    assert (checks["apiversion"].result, checks["apiversion"].detail) == (result, detail)


# --- issue 26, 2: a record holds no form of a secret an echoing server sends back ---------------------------


def test_a_record_holds_no_form_of_a_secret_an_echoing_token_server_sent_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A proxy in front of the token endpoint that quotes the request it refused: its Basic header (the
    base64 of ``client_id:client_secret``) and its form body, in lower-case hex and HTML-escaped."""
    import html
    from urllib.parse import quote, quote_plus

    from hostile_server import Answer, HostileServer

    secret, client_secret = "Acc3ss+Key/Secret=With&Odd'Chars-42", "client-secret-9e4d"
    basic = base64.b64encode(f"app:{client_secret}".encode()).decode()

    def lower_hex(text: str) -> str:
        return re.sub(r"%[0-9A-F]{2}", lambda hit: hit.group().lower(), text)

    def echo(request: Any) -> Answer:
        seen = f"{request.headers.get('Authorization')} {request.body.decode()}"
        body = {"error": "invalid_request", "error_description": lower_hex(seen)}
        return Answer(400, {"Content-Type": "application/json", "X-Echo": "1"}, json.dumps(body).encode())

    def page(request: Any) -> Answer:
        title = html.escape(f"Rejected {request.headers.get('Authorization')} {secret}")
        return Answer(400, {"Content-Type": "text/html"}, f"<html><title>{title}</title></html>".encode())

    forms = {basic, secret, client_secret, html.escape(secret), html.escape(secret, quote=False)}
    for encoded in (quote(secret, safe=""), quote_plus(secret)):
        forms |= {encoded, lower_hex(encoded)}
    for handler in (echo, page):
        with HostileServer() as server:
            server.route("POST", "/auth/token", handler)
            extras = {"client_id": "app", "client_secret": client_secret, "api_base_url": server.url + "/x/"}
            conn = {"conn_type": "cxone", "host": server.url, "login": "KEY-1", "password": secret, "extra": extras}
            monkeypatch.setenv("AIRFLOW_CONN_CXONE_ECHO", json.dumps(conn))
            path = tmp_path / f"{handler.__name__}.json"
            lines: list[str] = []
            assert doctor.main(["--conn-id", "cxone_echo", "--record", str(path)], out=lines.append) == 1
        text = path.read_text(encoding="utf-8")
        assert "Basic <redacted>" in text or "Rejected Basic ***" in text  # the echo was recorded, cut
        leaked = sorted(form for form in forms if form in text or form in "\n".join(lines))
        assert leaked == [], f"{handler.__name__}: {leaked}"
