"""The sandbox's id_token signing key: one RSA key per process, published as a JWKS.

CXone signs its id_tokens with RS256 and publishes the public key at ``/auth/jwks``; NICE's SDK finds
the key by the token header's ``kid`` and verifies the signature before it trusts a single claim. The
key is made on first use, not at import (Airflow's plugin loader imports every module of the plugins
folder), and lives as long as the process: every sandbox of a process signs with it, a reset keeps it,
a restarted sandbox has a new one (and a new ``kid``), as after a key rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The algorithm of every id_token the sandbox signs (the only one CXone's OIDC document names).
ALGORITHM: Final = "RS256"
# The header's leading fields, fixed; the kid follows. 33 bytes, a whole number of base64 groups, so
# its encoding is the same first characters of every id_token whatever the key.
_HEADER_PREFIX: Final = '{"alg":"RS256","typ":"JWT","kid":'
#: The first characters of every id_token the sandbox issues (its JWT header up to the ``kid``), in
#: every process: a leak scan finds an id_token by it without knowing the key.
ID_TOKEN_HEADER: Final = base64.urlsafe_b64encode(_HEADER_PREFIX.encode()).decode("ascii")
_KEY_BITS: Final = 2048


def b64url(raw: bytes) -> str:
    """Base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    """A private key, its ``kid`` and the header every token it signs carries."""

    private_key: rsa.RSAPrivateKey
    kid: str
    header: str  # the encoded JWT header

    @property
    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517), as ``/auth/jwks`` lists it."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": ALGORITHM,
            "kid": self.kid,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
        }

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of ``claims``, RS256-signed."""
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self.header}.{payload}".encode("ascii")
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{self.header}.{payload}.{b64url(signature)}"


_key: SigningKey | None = None
_key_lock = threading.Lock()


def signing_key() -> SigningKey:
    """This process's key, made on the first call (under 0.1 s); the same for every thread."""
    global _key  # one key per process is the point
    with _key_lock:
        if _key is None:
            _key = _make_key()
        return _key


def _make_key() -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    numbers = private_key.public_key().public_numbers()
    # RFC 7638's thumbprint names the key. The header is ASCII without '>', '?' or '~', so its base64url
    # holds no '-' or '_': NICE's SDK decodes the header with the browser's atob, which refuses both.
    canonical = json.dumps(
        {"e": _int_b64url(numbers.e), "kty": "RSA", "n": _int_b64url(numbers.n)}, separators=(",", ":")
    )
    kid = "sbx-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    header = b64url((_HEADER_PREFIX + json.dumps(kid) + "}").encode())
    return SigningKey(private_key, kid, header)
