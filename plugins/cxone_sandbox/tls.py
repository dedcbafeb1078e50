"""HTTPS for the sandbox: a CA and a server certificate, both made at start, valid for a day.

``cxone-sandbox --tls`` makes a fresh certificate authority, signs with it a certificate for the names
the sandbox answers to (the bind host, ``127.0.0.1``, ``localhost`` and every ``--tls-name``), serves
HTTPS with it and writes the CA's certificate to a file, which a client then trusts, e.g. as the
``verify_ssl`` extra of a ``cxone`` connection. Nothing outlives the process but that file, which
holds no secret: the private keys stay in memory and in a file only the owner may read, removed at exit.

Why make a CA rather than one self-signed certificate: a client verifying against a CA file checks the
server's names against the certificate's, exactly as against a public CA, so a test proves that
verification is on. The CA may sign server certificates only (``path_length=0``), for a day.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The names every sandbox certificate holds, whatever it binds: this machine reaches it by them.
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
_VALIDITY = datetime.timedelta(days=1)
# A little in the past, so that a client whose clock lags the server's by a minute still accepts it.
_SKEW = datetime.timedelta(minutes=5)
# What the CA's key may do: sign certificates (and revocation lists), nothing else.
_CA_KEY_USAGE = {
    **dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    ),
    **dict.fromkeys(("encipher_only", "decipher_only"), False),
    "key_cert_sign": True,
    "crl_sign": True,
}
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names of "every interface", not bindings


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificates of one sandbox run are.

    :param ca_file: the CA's certificate (PEM): what a client trusts.
    :param cert_file: the server's certificate (PEM).
    :param key_file: the server's private key (PEM, readable by its owner only).
    :param names: the names the server certificate holds, in the order asked.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    names: tuple[str, ...]


def certificate_names(host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names a sandbox bound to ``host`` answers to: ``host`` (unless it means every interface),
    the loopback names, then ``extra`` (``--tls-name``), without repeats."""
    names: list[str] = []
    for name in (host.strip("[]"), *LOOPBACK_NAMES, *extra):
        name = name.strip()
        if name and name not in _WILDCARD_HOSTS and name not in names:
            names.append(name)
    return tuple(names)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cxone-sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def make_certificates(
    names: Iterable[str], key_dir: str | os.PathLike[str], ca_file: str | os.PathLike[str]
) -> TlsFiles:
    """Make a CA and a server certificate for ``names``; write the CA's certificate to ``ca_file``.

    :param names: host names and addresses the server certificate is valid for (at least one).
    :param key_dir: an existing private folder for the server's certificate and key.
    :param ca_file: where the CA certificate goes (its folder is created); an older file is replaced.
    :raises ValueError: when ``names`` is empty.
    """
    wanted = tuple(dict.fromkeys(names))
    if not wanted:
        raise ValueError("a TLS certificate needs at least one name")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _subject("cxone-sandbox CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**_CA_KEY_USAGE),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(wanted[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in wanted]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(key_dir)
    cert_file, key_file = folder / "server.pem", folder / "server-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    ca_path = Path(ca_file)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    # Replaced in one step: a client reading the file while a restarted sandbox writes it sees one whole CA.
    fd, partial = tempfile.mkstemp(dir=ca_path.parent, prefix=".ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as fh:
        fh.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(partial, 0o644)  # a certificate, public by nature: every client must read it
    os.replace(partial, ca_path)
    return TlsFiles(ca_file=ca_path, cert_file=cert_file, key_file=key_file, names=wanted)


def certificate_san(cert_file: str | os.PathLike[str]) -> list[str]:
    """The subject alternative names of a PEM certificate, as text (for tests and the curious)."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in san]
