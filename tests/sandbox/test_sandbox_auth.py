"""The sandbox's auth host over real HTTP, as NICE's Global Auth publishes it and NICE's SDK uses it.

The OIDC document, the JWKS, an id_token verified against it (PyJWT, as any OIDC client would), the
claims NICE's SDK reads, CXone discovery, and the token endpoint's grants as NICE's clients send
them: the access key, refresh (with a client, with a ``client_id`` only, with none), token exchange,
bodies whatever their ``Content-Type`` label, and errors as ``{"error", "errorDescription"}``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
import requests

from cxone_provider import testing as cxone_testing
from cxone_provider.testing import SandboxServer
from cxone_sandbox import default_seed
from cxone_sandbox.state import ID_TOKEN_HEADER

# The package's own fixtures, used the way a user's conftest would use them.
cxone_sandbox_server = cxone_testing.cxone_sandbox_server
cxone_sandbox = cxone_testing.cxone_sandbox

TENANT = "11ee0000-0000-4000-8000-00000000cx01"
CLIENT = ("sandbox-client", "sandbox-client-secret")
QA = ("SANDBOX-QA-KEY", "sandbox-qa-secret")
NOIMP = ("SANDBOX-NOIMP-KEY", "sandbox-noimp-secret")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# NICE's SDK labels its refresh and token-exchange forms so (HttpUtilService.initHeader).
SDK_HEADERS = {"Content-Type": "application/json", "Originating-Service-Identifier": "CXoneAgent"}


@pytest.fixture
def sb(cxone_sandbox: SandboxServer) -> SandboxServer:
    return cxone_sandbox


def get_token(
    sb: SandboxServer, key: tuple[str, str] = QA, client: tuple[str, str] | None = CLIENT
) -> requests.Response:
    return requests.post(
        f"{sb.url}/auth/token",
        data={"grant_type": "password", "username": key[0], "password": key[1]},
        auth=client,
        timeout=10,
    )


def issued(sb: SandboxServer, key: tuple[str, str] = QA) -> dict[str, Any]:
    response = get_token(sb, key)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sdk_post(sb: SandboxServer, form: str) -> requests.Response:
    """A token request as NICE's SDK sends it: a form, unencoded, labelled ``application/json``."""
    return requests.post(f"{sb.url}/auth/token", data=form.encode(), headers=SDK_HEADERS, timeout=10)


def assert_auth_error(response: requests.Response, status: int, error: str) -> str:
    """Global Auth's published error shape; return its ``errorDescription``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "errorDescription"}, body
    assert body["error"] == error
    return str(body["errorDescription"])


def oidc(sb: SandboxServer) -> dict[str, Any]:
    response = requests.get(f"{sb.url}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def verified_claims(sb: SandboxServer, id_token: str, audience: str = CLIENT[0]) -> dict[str, Any]:
    """The id_token's claims, verified as an OIDC client does: the key the OIDC document's JWKS names
    by the token's ``kid``, RS256 only, the issuer and the audience checked, not expired."""
    jwks = requests.get(oidc(sb)["jwks_uri"], timeout=10).json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    return dict(
        jwt.decode(
            id_token,
            jwt.PyJWK(key).key,
            algorithms=["RS256"],
            audience=audience,
            issuer=sb.url,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    )


def b64_json(part: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


# ------------------------------------------------------------------------------------------ OIDC


def test_openid_configuration_names_the_sandbox_endpoints(sb: SandboxServer) -> None:
    document = oidc(sb)
    assert document["issuer"] == sb.url
    assert document["token_endpoint"] == f"{sb.url}/auth/token"
    assert document["jwks_uri"] == f"{sb.url}/auth/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert document["grant_types_supported"] == ["password", "refresh_token", "authorization_code", TOKEN_EXCHANGE]
    assert "client_credentials" not in document["grant_types_supported"]
    # The published document's other fields, and the one NICE's SDK reads beside them.
    assert document["scopes_supported"] == ["openid"]
    assert document["response_types_supported"] == ["code"]
    assert document["subject_types_supported"] == ["public"]
    assert document["display_values_supported"] == ["page", "popup"]
    assert document["code_challenge_methods_supported"] == ["S256"]


def test_openid_configuration_follows_the_host_the_client_reached(sb: SandboxServer) -> None:
    port = sb.url.rsplit(":", 1)[1]
    response = requests.get(
        f"{sb.url}/.well-known/openid-configuration", headers={"Host": f"localhost:{port}"}, timeout=10
    )
    assert response.json()["issuer"] == f"http://localhost:{port}"
    assert response.json()["jwks_uri"] == f"http://localhost:{port}/auth/jwks"


def test_jwks_publishes_one_rsa_signing_key(sb: SandboxServer) -> None:
    keys = requests.get(f"{sb.url}/auth/jwks", timeout=10).json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert set(key) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
    assert key["kid"].startswith("sbx-")
    modulus = int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4)), "big")
    assert modulus.bit_length() == 2048
    # The same key for every request of the process: a client that cached it keeps verifying.
    assert requests.get(f"{sb.url}/auth/jwks", timeout=10).json()["keys"] == keys


# ------------------------------------------------------------------------------------------ id_token


def test_id_token_verifies_against_the_jwks_with_every_claim(sb: SandboxServer) -> None:
    body = issued(sb)
    claims = verified_claims(sb, body["id_token"])
    agent = requests.get(
        f"{sb.url}/inContactAPI/services/v33.0/agents/1001",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=10,
    ).json()["agents"][0]
    discovery = requests.get(f"{sb.url}/.well-known/cxone-configuration", params={"tenantId": TENANT}, timeout=10)
    subject = claims.pop("sub")
    iat, exp = claims.pop("iat"), claims.pop("exp")
    assert claims == {
        "iss": sb.url,
        "aud": CLIENT[0],
        "tenantId": TENANT,
        "tenant": "sandbox",
        "name": "quinn.supervisor@sandbox.local",
        "given_name": agent["firstName"],
        "family_name": agent["lastName"],
        "icAgentId": "1001",
        "icBUId": 4600001,
        "icClusterId": discovery.json()["cluster"],
        "teamId": str(agent["teamId"]),
    }
    assert (claims["given_name"], claims["family_name"], claims["teamId"]) == ("Quinn", "Supervisor", "10")
    assert exp - iat == body["expires_in"] == 3600
    assert abs(iat - time.time()) < 60
    # sub is user:<uuid>, the same user on every token of the same agent, another for another agent.
    assert subject.startswith("user:")
    assert uuid.UUID(subject.removeprefix("user:")).version == 5
    assert verified_claims(sb, issued(sb)["id_token"])["sub"] == subject
    other = verified_claims(sb, issued(sb, NOIMP)["id_token"])
    assert other["sub"] != subject
    assert (other["icAgentId"], other["given_name"], other["family_name"]) == ("1002", "Nico", "Lead")


def test_id_token_header_decodes_as_nices_sdk_decodes_it(sb: SandboxServer) -> None:
    id_token = issued(sb)["id_token"]
    header = id_token.split(".")[0]
    assert header.startswith(ID_TOKEN_HEADER)
    # The SDK reads the header with the browser's atob: standard base64, so no '-' or '_'.
    assert "-" not in header
    assert "_" not in header
    kid = requests.get(f"{sb.url}/auth/jwks", timeout=10).json()["keys"][0]["kid"]
    assert b64_json(header) == {"alg": "RS256", "typ": "JWT", "kid": kid}


def test_a_tampered_id_token_fails_verification(sb: SandboxServer) -> None:
    header, payload, signature = issued(sb)["id_token"].split(".")
    claims = b64_json(payload)
    claims["icAgentId"] = "2001"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verified_claims(sb, f"{header}.{forged}.{signature}")
    with pytest.raises(jwt.InvalidAudienceError):
        verified_claims(sb, f"{header}.{payload}.{signature}", audience="another-client")


# ------------------------------------------------------------------------------------------ discovery


def test_discovery_points_back_at_the_sandbox(sb: SandboxServer) -> None:
    response = requests.get(f"{sb.url}/.well-known/cxone-configuration", params={"tenantId": TENANT}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "private": False,
        "ui_endpoint": sb.url,
        "auth_endpoint": sb.url,
        "api_endpoint": sb.url,
        "domain": "sandbox.local",
        "uhDomain": "sandbox.local",
        "area": "na1",
        "cluster": "SBX1",
        "acdDomain": "sandbox.local",
        "tenantId": TENANT,
    }


@pytest.mark.parametrize("params", [{"tenantId": "no-such-tenant"}, {}], ids=["unknown", "missing"])
def test_discovery_unknown_tenant(sb: SandboxServer, params: dict[str, str]) -> None:
    response = requests.get(f"{sb.url}/.well-known/cxone-configuration", params=params, timeout=10)
    description = assert_auth_error(response, 404, "InvalidTenant")
    assert description == f"Tenant {params.get('tenantId', '(missing)')} was not found"


# ------------------------------------------------------------------------------------------ access key


def test_token_is_issued_for_an_access_key(sb: SandboxServer) -> None:
    response = get_token(sb)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "id_token"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    assert sb.state()["tokens_issued"] == 1


@pytest.mark.parametrize(
    "client",
    [None, ("sandbox-client", "wrong"), ("no-such-client", "sandbox-client-secret")],
    ids=["missing", "wrong-secret", "unknown-client"],
)
def test_token_bad_client_is_invalid_client(sb: SandboxServer, client: tuple[str, str] | None) -> None:
    response = get_token(sb, client=client)
    assert assert_auth_error(response, 401, "invalid_client") == "Client authentication failed"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cxone"'


@pytest.mark.parametrize(
    ("key", "description"),
    [
        (("NO-SUCH-KEY", "whatever"), "The access key id or secret is invalid"),
        (("SANDBOX-QA-KEY", "not-the-secret"), "The access key id or secret is invalid"),
        (("SANDBOX-INACTIVE-KEY", "sandbox-inactive-secret"), "The user (agent 1003) is inactive"),
    ],
    ids=["unknown-key", "wrong-secret", "inactive-agent"],
)
def test_token_bad_grant_is_invalid_grant(sb: SandboxServer, key: tuple[str, str], description: str) -> None:
    assert assert_auth_error(get_token(sb, key), 400, "invalid_grant") == description


@pytest.mark.parametrize(
    ("fields", "status", "error", "description"),
    [
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type", "'client_credentials' is not supported"),
        (
            {"grant_type": "urn:ietf:params:oauth:grant-type:user-impersonation-token-exchange"},
            400,
            "unsupported_grant_type",
            "user-impersonation-token-exchange' is not supported",
        ),
        ({}, 400, "invalid_request", "grant_type is required"),
        ({"grant_type": "password", "username": QA[0]}, 400, "invalid_request", "username and password are required"),
        ({"grant_type": "authorization_code"}, 400, "invalid_request", "code is required"),
        ({"grant_type": "authorization_code", "code": "abc"}, 400, "invalid_grant", "issues no codes"),
    ],
    ids=["client-credentials", "impersonation-exchange", "no-grant", "no-password", "no-code", "any-code"],
)
def test_token_request_errors_name_what_is_wrong(
    sb: SandboxServer, fields: dict[str, str], status: int, error: str, description: str
) -> None:
    response = requests.post(f"{sb.url}/auth/token", data=fields, auth=CLIENT, timeout=10)
    assert description in assert_auth_error(response, status, error)


def test_token_with_client_credentials_as_form_fields(sb: SandboxServer) -> None:
    fields = {"grant_type": "password", "username": QA[0], "password": QA[1]}
    response = requests.post(
        f"{sb.url}/auth/token", data={**fields, "client_id": CLIENT[0], "client_secret": CLIENT[1]}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert sb.journal()[-1]["client_auth"] == "form"
    wrong = requests.post(
        f"{sb.url}/auth/token", data={**fields, "client_id": CLIENT[0], "client_secret": "nope"}, timeout=10
    )
    assert_auth_error(wrong, 401, "invalid_client")


def test_token_with_the_secret_both_ways_is_invalid_request(sb: SandboxServer) -> None:
    data = {"grant_type": "password", "username": QA[0], "password": QA[1], "client_secret": CLIENT[1]}
    response = requests.post(f"{sb.url}/auth/token", data=data, auth=CLIENT, timeout=10)
    assert "not both" in assert_auth_error(response, 400, "invalid_request")


# ------------------------------------------------------------------------------------------ bodies


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("application/json", "form"),  # NICE's SDK
        ("text/plain", "form"),
        (None, "form"),
        ("application/x-www-form-urlencoded", "form"),
        ("application/json", "json"),
        ("text/plain", "json"),
        (None, "json"),
    ],
    ids=["form-as-json", "form-as-text", "form-unlabelled", "form", "json", "json-as-text", "json-unlabelled"],
)
def test_token_reads_a_body_whatever_its_label(sb: SandboxServer, content_type: str | None, encode: str) -> None:
    fields = {"grant_type": "password", "username": QA[0], "password": QA[1]}
    raw = json.dumps(fields) if encode == "json" else "&".join(f"{k}={v}" for k, v in fields.items())
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(f"{sb.url}/auth/token", data=raw.encode(), headers=headers, auth=CLIENT, timeout=10)
    assert response.status_code == 200, response.text
    entry = sb.journal()[-1]
    assert (entry["body_fields"], entry["client_auth"]) == (["grant_type", "password", "username"], "basic")


@pytest.mark.parametrize("raw", [b'{"grant_type": "password"', b"[1, 2]"], ids=["broken-json", "json-array"])
def test_token_body_that_is_not_an_object_is_invalid_request(sb: SandboxServer, raw: bytes) -> None:
    response = requests.post(f"{sb.url}/auth/token", data=raw, headers=SDK_HEADERS, auth=CLIENT, timeout=10)
    if raw.startswith(b"{"):
        assert assert_auth_error(response, 400, "invalid_request") == "the request body is not valid JSON"
    else:  # not JSON by its first byte: a form with no grant_type
        assert assert_auth_error(response, 400, "invalid_request") == "grant_type is required"


# ------------------------------------------------------------------------------------------ refresh


def test_refresh_as_nices_sdk_sends_it(sb: SandboxServer) -> None:
    first = issued(sb)
    response = sdk_post(sb, f"grant_type=refresh_token&scope=openid&refresh_token={first['refresh_token']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] != first["access_token"]
    assert body["refresh_token"] != first["refresh_token"]
    # The refresh token named its application: the new id_token is issued to it.
    assert verified_claims(sb, body["id_token"])["icAgentId"] == "1001"
    api = f"{sb.url}/inContactAPI/services/v33.0/agents/1001"
    assert requests.get(api, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10).ok
    entry = [e for e in sb.journal() if e["path"] == "/auth/token"][-1]
    assert (entry["body_fields"], entry["client_auth"]) == (["grant_type", "refresh_token", "scope"], None)
    # A refresh token is good once.
    again = sdk_post(sb, f"grant_type=refresh_token&scope=openid&refresh_token={first['refresh_token']}")
    assert_auth_error(again, 400, "invalid_grant")
    assert sb.state()["tokens_issued"] == 2


@pytest.mark.parametrize(
    ("send", "how"),
    [
        ({"json": {"client_id": CLIENT[0]}}, "client_id only, as NICE's published spec writes it"),
        ({"data": {}, "auth": CLIENT}, "HTTP Basic, as an OAuth library sends it"),
    ],
    ids=["client-id-only", "basic"],
)
def test_refresh_with_a_client(sb: SandboxServer, send: dict[str, Any], how: str) -> None:
    refresh = issued(sb)["refresh_token"]
    body_key = "json" if "json" in send else "data"
    fields = {**send[body_key], "grant_type": "refresh_token", "refresh_token": refresh}
    response = requests.post(f"{sb.url}/auth/token", **{**send, body_key: fields}, timeout=10)
    assert response.status_code == 200, (how, response.text)


@pytest.mark.parametrize(
    ("data", "client", "status", "error"),
    [
        ({"refresh_token": "sbx-rt-never-issued"}, CLIENT, 400, "invalid_grant"),
        ({}, CLIENT, 400, "invalid_request"),
        ({}, None, 400, "invalid_request"),
        ({"refresh_token": None}, ("sandbox-client", "wrong"), 401, "invalid_client"),
        ({"refresh_token": None, "client_id": "no-such-client"}, None, 401, "invalid_client"),
    ],
    ids=["unknown", "missing", "missing-no-client", "wrong-secret", "unknown-client"],
)
def test_refresh_token_grant_refused(
    sb: SandboxServer, data: dict[str, Any], client: tuple[str, str] | None, status: int, error: str
) -> None:
    refresh = issued(sb)["refresh_token"]
    fields = {"grant_type": "refresh_token", **{k: v or refresh for k, v in data.items()}}
    response = requests.post(f"{sb.url}/auth/token", data=fields, auth=client, timeout=10)
    assert_auth_error(response, status, error)


def test_refresh_token_belongs_to_its_application() -> None:
    seed = default_seed()
    seed["applications"].append({"client_id": "other-app", "client_secret": "other-app-secret"})
    with SandboxServer(seed=seed) as two_apps:
        refresh = issued(two_apps)["refresh_token"]
        fields = {"grant_type": "refresh_token", "refresh_token": refresh}
        other = requests.post(
            f"{two_apps.url}/auth/token", data=fields, auth=("other-app", "other-app-secret"), timeout=10
        )
        assert_auth_error(other, 400, "invalid_grant")
        # Refused without being spent: its own application still refreshes with it.
        own = requests.post(f"{two_apps.url}/auth/token", data={**fields, "client_id": CLIENT[0]}, timeout=10)
        assert own.status_code == 200, own.text


# ------------------------------------------------------------------------------------------ token exchange


def test_token_exchange_as_nices_sdk_sends_it(sb: SandboxServer) -> None:
    first = issued(sb)
    response = sdk_post(
        sb,
        f"grant_type={TOKEN_EXCHANGE}&scope=openid&client_id={CLIENT[0]}"
        f"&subject_token={first['access_token']}&subject_token_type={ACCESS_TOKEN_TYPE}",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["access_token"] != first["access_token"]
    claims = verified_claims(sb, body["id_token"])
    assert (claims["icAgentId"], claims["aud"]) == ("1001", CLIENT[0])
    api = f"{sb.url}/inContactAPI/services/v33.0/agents/1001"
    for access_token in (body["access_token"], first["access_token"]):  # the subject token stays good
        assert requests.get(api, headers={"Authorization": f"Bearer {access_token}"}, timeout=10).ok
    # Its refresh token works as any other.
    refreshed = sdk_post(sb, f"grant_type=refresh_token&scope=openid&refresh_token={body['refresh_token']}")
    assert refreshed.status_code == 200, refreshed.text


def test_token_exchange_as_the_published_spec_writes_it(sb: SandboxServer) -> None:
    subject = issued(sb, NOIMP)["access_token"]
    fields = {"grant_type": "token-exchange", "subject_token": subject, "subject_token_type": "access_token"}
    response = requests.post(f"{sb.url}/auth/token", json=fields, timeout=10)
    assert response.status_code == 200, response.text
    assert verified_claims(sb, response.json()["id_token"])["icAgentId"] == "1002"


@pytest.mark.parametrize(
    ("fields", "status", "error", "description"),
    [
        ({"subject_token": None}, 400, "invalid_request", "subject_token is required"),
        (
            {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
            400,
            "invalid_request",
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token, "
            "got 'urn:ietf:params:oauth:token-type:id_token'",
        ),
        (
            {"subject_token_type": None},
            400,
            "invalid_request",
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token, got missing",
        ),
        ({"subject_token": "sbx-at-never-issued"}, 400, "invalid_grant", "The subject token is invalid or has expired"),
        ({"client_id": "no-such-client"}, 401, "invalid_client", "Client authentication failed"),
    ],
    ids=["no-subject", "id-token-type", "no-type", "unknown-subject", "unknown-client"],
)
def test_token_exchange_refused(
    sb: SandboxServer, fields: dict[str, str | None], status: int, error: str, description: str
) -> None:
    base = {
        "grant_type": TOKEN_EXCHANGE,
        "client_id": CLIENT[0],
        "subject_token": issued(sb)["access_token"],
        "subject_token_type": ACCESS_TOKEN_TYPE,
    }
    sent = {k: v for k, v in {**base, **fields}.items() if v is not None}
    response = requests.post(f"{sb.url}/auth/token", data=sent, timeout=10)
    assert assert_auth_error(response, status, error) == description


def test_token_exchange_of_an_expired_token_is_invalid_grant(sb: SandboxServer) -> None:
    sb.set_faults(token_lifetime_s=1)
    subject = issued(sb)["access_token"]
    time.sleep(1.2)
    fields = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE}
    response = requests.post(f"{sb.url}/auth/token", data=fields, timeout=10)
    assert assert_auth_error(response, 400, "invalid_grant") == "The subject token is invalid or has expired"


# ------------------------------------------------------------------------------------------ whoami


def test_whoami_describes_the_tokens_user(sb: SandboxServer) -> None:
    body = issued(sb)
    response = requests.post(
        f"{sb.url}/incontactauthorizationserver/token/whoami",
        json={"token": body["access_token"]},
        headers=SDK_HEADERS,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    who = response.json()
    assert 3590 <= who.pop("expires_in") <= 3600
    assert who == {
        "agent_id": 1001,
        "bus_no": 4600001,
        "team_id": 10,
        "sub": verified_claims(sb, body["id_token"])["sub"],
        "iss": sb.url,
        "refresh_token_server_uri": f"{sb.url}/auth/token",
        "resource_server_base_uri": f"{sb.url}/inContactAPI/",
    }
    unknown = requests.post(
        f"{sb.url}/incontactauthorizationserver/token/whoami", json={"token": "sbx-at-never-issued"}, timeout=10
    )
    assert assert_auth_error(unknown, 401, "invalid_token") == "The access token is invalid or has expired"


def test_userhub_user_record_of_the_tokens_user(sb: SandboxServer) -> None:
    """NICE's SDK asks it after a token exchange and takes the user's names from it."""
    body = issued(sb)
    user_id = verified_claims(sb, body["id_token"])["sub"].removeprefix("user:")
    response = requests.get(
        f"{sb.url}/user-management/v1/users/{user_id}",
        headers={"Authorization": f"Bearer {body['access_token']}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert {k: user[k] for k in ("id", "firstName", "lastName", "status", "teamId", "icBUId", "acdInfos")} == {
        "id": user_id,
        "firstName": "Quinn",
        "lastName": "Supervisor",
        "status": "ACTIVE",
        "teamId": "10",
        "icBUId": "4600001",
        "acdInfos": [{"loginId": "1001"}],
    }
    assert user["customAttributes"] == {}  # the SDK iterates it: an object, never missing


def test_userhub_user_record_needs_a_token_and_a_known_user(sb: SandboxServer) -> None:
    refused = requests.get(f"{sb.url}/user-management/v1/users/{uuid.uuid4()}", timeout=10)
    assert refused.status_code == 401
    assert {k: refused.json()[k] for k in ("status", "error", "path")} == {
        "status": 401,
        "error": "Unauthorized",
        "path": refused.request.path_url,
    }
    token = issued(sb)["access_token"]
    unknown = requests.get(
        f"{sb.url}/user-management/v1/users/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
