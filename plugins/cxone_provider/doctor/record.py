"""The doctor's ``--record``: every answer the hook's transport reads, kept for the checks and written
redacted in the format ``cxone-sandbox --replay`` serves (``docs/doctor.md``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from cxone_provider.client.auth import jwt_claims
from cxone_provider.client.secrets import basic_credentials, secret_forms

if TYPE_CHECKING:
    import requests

    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.response import ApiResponse

#: The ``format`` of a record file; :mod:`cxone_sandbox.replay` refuses any other.
RECORD_FORMAT: Final = "cxone-doctor-record/1"
#: What stands in for every redacted value in a record.
REDACTED: Final = "<redacted>"
#: What stands in for the tenant's id (not a secret, but it names the customer).
REDACTED_TENANT: Final = "<tenant>"
#: Placeholders for the origins the answers were read from; the replay puts its own address there.
AUTH_HOST: Final = "{auth_host}"
API_HOST: Final = "{api_host}"

#: Response headers a record keeps: the ones the provider (or a reader of the record) looks at.
KEPT_HEADERS: Final = ("content-type", "icstatusdescription", "retry-after", "www-authenticate", "cache-control")
_TOKEN_KEYS: Final = frozenset({"access_token", "refresh_token", "id_token", "issued_token_type_value"})
# Keys whose values are people's names, contact details or credentials: redacted whatever they hold.
_PERSONAL_KEY: Final = re.compile(
    r"name|e-?mail|phone|mobile|fax|address|password|secret|token|federated|tenant$|^sub$", re.IGNORECASE
)
# ... except these, which name CXone things, not people (and the provider reads agentStateName).
_THING_NAMES: Final = frozenset(
    {"agentstatename", "skillname", "teamname", "standardname", "mediatypename", "statename", "token_type"}
)
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A phone number written as one: a leading +, or at least ten digits in groups split by spaces, dots,
# dashes or brackets. Plain digit strings are ids (agentId, stationId) and stay.
_PHONE: Final = re.compile(r"\+\d[\d\s().-]{6,}\d|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}")
_JWT: Final = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")


@dataclass
class Answer:
    """One answer as the provider's transport read it (kept in memory, unredacted, for the checks)."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: Any
    text: str


class Recorder:
    """Sees every answer the hook's transport reads, and writes them redacted (``--record``)."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._secrets: set[str] = set()
        self._origins: dict[str, str] = {}
        self._tenants: set[str] = set()

    def attach(self, hook: CxoneHook) -> None:
        """Wrap the hook's transport so that each answer it reads is seen here too.

        Observation only: the transport reads, retries and decides exactly as without it.
        """
        transport = hook.client.transport
        read = transport._read

        def reading(response: requests.Response) -> ApiResponse:
            answer = read(response)
            self.observe(response, answer)
            return answer

        transport._read = reading  # type: ignore[method-assign]
        settings = hook.settings
        for secret in (settings.access_key_id, settings.access_key_secret, settings.client_id, settings.client_secret):
            self.secret(secret)
        if settings.client_id and settings.client_secret:
            # The token request's Basic header: a proxy that echoes it puts the pair's base64 in its answer.
            self.secret(basic_credentials(settings.client_id, settings.client_secret))
        self.origin(settings.auth_host, AUTH_HOST)
        if settings.api_base_url:
            self.origin(settings.api_base_url, API_HOST)
        if settings.tenant_id:
            self._tenants.add(settings.tenant_id)

    def observe(self, response: requests.Response, answer: ApiResponse) -> None:
        method = str(response.request.method if response.request is not None else "GET")
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
        self.answers.append(
            Answer(method, str(response.url), response.status_code, headers, answer.body, answer.message)
        )
        body = answer.body if isinstance(answer.body, Mapping) else {}
        for key in _TOKEN_KEYS:
            self.secret(body.get(key) if isinstance(body.get(key), str) else None)
        claims = jwt_claims(body.get("id_token"))
        if claims.get("tenantId"):
            self._tenants.add(str(claims["tenantId"]))
        endpoint = body.get("api_endpoint")
        if isinstance(endpoint, str) and endpoint:
            self.origin(endpoint, API_HOST)

    def secret(self, value: str | None) -> None:
        """Cut ``value`` out of the record in every form the hook's own redaction knows (:func:`secret_forms`)."""
        if value:
            self._secrets.update(secret_forms(value))

    def origin(self, url: str, placeholder: str) -> None:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            self._origins.setdefault(f"{parts.scheme}://{parts.netloc}", placeholder)

    def find(self, method: str, path_suffix: str) -> Answer | None:
        """The last answer to ``method`` on a URL whose path ends with ``path_suffix``."""
        for answer in reversed(self.answers):
            if answer.method == method and urlsplit(answer.url).path.lower().endswith(path_suffix.lower()):
                return answer
        return None

    # --- the record ------------------------------------------------------------------------------

    def record(self, api_version: str) -> dict[str, Any]:
        """Every answer, redacted, in the record format (``docs/doctor.md``)."""
        from cxone_provider import __version__

        entries = []
        for answer in self.answers:
            parts = urlsplit(answer.url)
            entry: dict[str, Any] = {
                "method": answer.method,
                "path": parts.path,
                "query": {k: self._clean(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)},
                "status": answer.status,
                "headers": {k: self._clean(k, v) for k, v in answer.headers.items()},
                "body": self._clean("", answer.body),
            }
            if answer.body is None and answer.text:
                entry["text"] = self._clean("", answer.text)
            claims = jwt_claims(answer.body.get("id_token")) if isinstance(answer.body, Mapping) else {}
            if claims:
                # The token itself is redacted; its claims (redacted too) let the replay issue a like one.
                entry["id_token_claims"] = self._clean("", claims)
            entries.append(entry)
        return {
            "format": RECORD_FORMAT,
            "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "provider_version": __version__,
            "api_version": api_version,
            "answers": entries,
        }

    def _clean(self, key: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(key, v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        if key.lower() in ("tenantid", "tenant_id") and value:
            return REDACTED_TENANT
        if key and key.lower() not in _THING_NAMES and _PERSONAL_KEY.search(key):
            return REDACTED if value != "" else value
        if not isinstance(value, str):
            return value
        return self._clean_text(value)

    def _clean_text(self, text: str) -> str:
        for origin, placeholder in sorted(self._origins.items(), key=lambda o: -len(o[0])):
            text = text.replace(origin, placeholder)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        for tenant in self._tenants:
            text = text.replace(tenant, REDACTED_TENANT)
        text = _JWT.sub(REDACTED, text)
        text = _EMAIL.sub(REDACTED, text)
        return _PHONE.sub(REDACTED, text)
