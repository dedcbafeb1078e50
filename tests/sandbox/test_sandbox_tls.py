"""The sandbox over HTTPS (``cxone-sandbox --tls``): the hook verifies it against the CA it made."""

from __future__ import annotations

import ipaddress
import json
import shlex
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from cryptography import x509

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.exceptions import CxoneAuthError
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import join_agent_session
from cxone_provider.testing import SandboxServer
from cxone_sandbox.cli import CA_FILE_PREFIX
from cxone_sandbox.tls import certificate_names, make_certificates

if TYPE_CHECKING:
    from collections.abc import Iterator

PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


@pytest.fixture(scope="module")
def tls_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(tls=True, tls_names=["cxone-sandbox"]) as server:
        yield server


@pytest.fixture
def sandbox(tls_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    tls_sandbox.reset()
    # The default trust store is certifi's, whatever the machine running the tests adds to it.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    return tls_sandbox


def _served_certificate(server: SandboxServer) -> x509.Certificate:
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    pem = ssl.get_server_certificate((host, int(port)), ca_certs=server.ca_file)
    return x509.load_pem_x509_certificate(pem.encode())


def test_the_hook_joins_over_https_verifying_the_sandboxs_ca(sandbox: SandboxServer, monkeypatch) -> None:
    assert sandbox.url.startswith("https://127.0.0.1:")
    conn = sandbox.connection()
    assert conn["host"] == sandbox.url
    assert conn["extra"]["verify_ssl"] == sandbox.ca_file
    assert Path(conn["extra"]["verify_ssl"]).is_file()
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_TLS", json.dumps(conn))
    with CxoneHook("cxone_tls") as hook:
        assert hook.settings.verify_ssl == sandbox.ca_file
        outcome = join_agent_session(hook, "sess-1001", 1001)  # the key user's own session: the published join
    assert outcome.condition is JoinCondition.SUCCESS, outcome
    assert sandbox.state()["joins"] == [["sess-1001", 1001]]
    paths = [e["path"] for e in sandbox.journal()]
    assert "/auth/token" in paths
    assert paths[-1].endswith("/agent-sessions/join")


def test_the_connections_ca_wins_over_a_ca_bundle_in_the_environment(sandbox: SandboxServer, monkeypatch) -> None:
    import certifi

    # A machine-wide bundle (as many images set) that does not hold the sandbox's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_TLS", json.dumps(sandbox.connection()))
    with CxoneHook("cxone_tls") as hook:
        outcome = join_agent_session(hook, "sess-1001", 1001)
    assert outcome.condition is JoinCondition.SUCCESS, outcome


def test_without_the_ca_verification_fails_and_nothing_is_sent(sandbox: SandboxServer, monkeypatch) -> None:
    conn = sandbox.connection()
    del conn["extra"]["verify_ssl"]  # verification on, against the default trust store
    monkeypatch.setenv("AIRFLOW_CONN_CXONE_TLS", json.dumps(conn))
    with CxoneHook("cxone_tls") as hook, pytest.raises(CxoneAuthError) as failed:
        hook.access_token()
    message = str(failed.value)
    assert "SSL" in message or "certificate" in message, message
    assert conn["password"] not in message
    # The handshake failed: not a byte of the token request reached the sandbox.
    assert sandbox.journal() == []
    assert sandbox.state()["tokens_issued"] == 0
    # The same with requests directly: an SSL error, not an answer.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sandbox.url}/.well-known/cxone-configuration", timeout=10)


def test_the_certificate_names_what_was_asked(sandbox: SandboxServer) -> None:
    cert = _served_certificate(sandbox)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "cxone-sandbox"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ca = x509.load_pem_x509_certificate(Path(str(sandbox.ca_file)).read_bytes())
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    # The admin helpers verify too.
    assert sandbox.faults()["rate_503"] == 0.0


@pytest.mark.parametrize(
    ("host", "extra", "names"),
    [
        ("127.0.0.1", [], ("127.0.0.1", "localhost")),
        ("0.0.0.0", ["cxone-sandbox"], ("127.0.0.1", "localhost", "cxone-sandbox")),  # noqa: S104
        ("::", [], ("127.0.0.1", "localhost")),
        ("10.1.2.3", ["localhost", "a.example"], ("10.1.2.3", "127.0.0.1", "localhost", "a.example")),
        ("[::1]", [], ("::1", "127.0.0.1", "localhost")),
    ],
)
def test_certificate_names(host: str, extra: list[str], names: tuple[str, ...]) -> None:
    assert certificate_names(host, extra) == names


def test_the_ca_file_is_public_and_the_key_private(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    files = make_certificates(["localhost", "::1"], keys, tmp_path / "shared" / "ca.pem")
    assert files.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert files.ca_file.stat().st_mode & 0o777 == 0o644
    assert files.key_file.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in files.ca_file.read_bytes()
    # A second start replaces the CA, in one step.
    again = make_certificates(["localhost"], keys, files.ca_file)
    assert again.ca_file == files.ca_file
    assert sorted(p.name for p in files.ca_file.parent.iterdir()) == ["ca.pem"]


def test_cli_tls_prints_the_ca_after_the_listening_line(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    env = {"PYTHONPATH": PLUGINS, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "cxone_sandbox.cli", "--port", "0", "--tls", "--tls-ca-file", str(ca_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("CXone sandbox listening on https://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        assert proc.stdout.readline().strip() == f"{CA_FILE_PREFIX}{ca_file}"
        name, _, value = proc.stdout.readline().strip().partition("=")
        assert name == "AIRFLOW_CONN_CXONE_DEFAULT"
        conn = json.loads(shlex.split(value)[0])
        assert conn["host"] == url
        assert conn["extra"]["verify_ssl"] == str(ca_file)
        assert requests.get(f"{url}/_sandbox/faults", verify=str(ca_file), timeout=10).ok
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""
    # The CA file it was told to write stays (it is no secret); the keys went with the process.
    assert ca_file.is_file()
