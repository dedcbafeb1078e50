"""``cxone-doctor`` (or ``python -m cxone_provider.doctor``): check a CXone tenant before trusting it.

Read-only: with an Airflow ``cxone`` connection it goes through the provider's own
:class:`~cxone_provider.hooks.cxone.CxoneHook` — so it sees what the provider really sends and reads —
and asks for a token (one ``POST /auth/token``), discovery (when the connection uses it), the
SecurityUser's agent, the first page of ``agents/states`` and ``apiversion``; every other request is a
``GET``. It prints a pass/fail table of what the provider relies on and exits non-zero when something
the provider needs is missing.

``--record PATH`` writes every answer it got, redacted, to a JSON file that ``cxone-sandbox --replay
PATH`` serves (see :mod:`cxone_provider.sandbox.replay` and ``docs/doctor.md`` for the format).

Airflow's plugin loader imports every ``.py`` file of a plugins folder under its own name: this module
only defines things at import time and runs only when started as a program.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from cxone_provider.client.auth import jwt_claims

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import requests

    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.response import ApiResponse

#: The ``format`` of a record file; :mod:`cxone_provider.sandbox.replay` refuses any other.
RECORD_FORMAT: Final = "cxone-doctor-record/1"
#: What stands in for every redacted value in a record.
REDACTED: Final = "<redacted>"
#: What stands in for the tenant's id (not a secret, but it names the customer).
REDACTED_TENANT: Final = "<tenant>"
#: Placeholders for the origins the answers were read from; the replay puts its own address there.
AUTH_HOST: Final = "{auth_host}"
API_HOST: Final = "{api_host}"

PASS, WARN, FAIL, NOTE, SKIP = "PASS", "WARN", "FAIL", "NOTE", "SKIP"

#: Discovery fields NICE publishes as required; the provider itself needs only ``api_endpoint``.
DISCOVERY_REQUIRED: Final = ("private", "ui_endpoint", "auth_endpoint", "api_endpoint", "domain", "uhDomain")
#: id_token claims NICE's SDK reads; the provider reads ``tenantId`` (discovery without ``tenant_id``)
#: and the doctor ``icAgentId`` (the key user's own agent).
ID_TOKEN_CLAIMS: Final = ("tenantId", "icAgentId", "icBUId", "icClusterId", "sub", "teamId")
#: Agent record fields: those SetSecurityUser needs, then those it uses when present.
AGENT_NEEDED: Final = ("agentId", "isActive")
AGENT_USED: Final = ("timeZone", "firstName", "lastName", "teamId")
#: agents/states row fields: those the listing, the sensor and its trigger need, then those they filter on.
STATE_NEEDED: Final = ("agentId", "agentStateName")
STATE_USED: Final = ("teamId", "businessUnitId", "stationId", "sessionStartTime")

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


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    name: str
    result: str
    detail: str


@dataclass
class Report:
    """The doctor's findings: the table's rows and where the API was found."""

    conn_id: str
    checks: list[Check] = field(default_factory=list)
    api_base: str | None = None
    api_version: str = ""

    def add(self, name: str, result: str, detail: str) -> None:
        self.checks.append(Check(name, result, detail))

    @property
    def failed(self) -> bool:
        return any(c.result == FAIL for c in self.checks)

    def table(self) -> str:
        """The rows as an aligned text table, with a count of each result at the end."""
        rows = [("CHECK", "RESULT", "DETAIL"), *((c.name, c.result, c.detail) for c in self.checks)]
        width = [max(len(r[i]) for r in rows) for i in (0, 1)]
        lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}".rstrip() for r in rows]
        counts = {k: sum(c.result == k for c in self.checks) for k in (PASS, WARN, FAIL, NOTE, SKIP)}
        lines.append(", ".join(f"{n} {k.lower()}" for k, n in counts.items() if n) or "nothing checked")
        return "\n".join(lines)

    def text(self) -> str:
        where = f"API base {self.api_base}" if self.api_base else "API base not found"
        return f"cxone-doctor: connection {self.conn_id!r}, {where}\n{self.table()}"


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
        if value:
            self._secrets.update({value, quote(value, safe=""), quote_plus(value)})

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


def _fields(record: Mapping[str, Any], names: Sequence[str]) -> tuple[list[str], list[str]]:
    present = [n for n in names if record.get(n) not in (None, "")]
    return present, [n for n in names if n not in present]


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _why(exc: BaseException, hook: CxoneHook | None) -> str:
    text = " ".join(str(exc).split())
    if hook is not None and "client" in hook.__dict__:
        text = hook.redact(text)
    return text[:300]


# ------------------------------------------------------------------------------------------ the checks


def diagnose(conn_id: str, *, agent_id: int | None = None, recorder: Recorder | None = None) -> Report:
    """Check connection ``conn_id`` against its tenant; read-only (one token request, then GETs).

    :param agent_id: the SecurityUser's agent; default: the key user's own, from the id_token's ``icAgentId``.
    :param recorder: sees every answer (``--record`` writes it afterwards); default: a private one.
    """
    from cxone_provider.hooks.cxone import CxoneHook

    report = Report(conn_id)
    seen = recorder or Recorder()
    hook = CxoneHook(conn_id, max_attempts=3)
    try:
        try:
            settings = hook.settings
            seen.attach(hook)
        except Exception as exc:  # a missing connection or an unusable field: nothing else can be asked
            report.add("connection", FAIL, _why(exc, None))
            return report
        report.api_version = settings.api_version
        tenant = "tenant_id" if settings.tenant_id else "the id_token tenantId"
        how = "api_base_url pinned" if settings.api_base_url else f"discovery with {tenant}"
        report.add("connection", PASS, f"access key and application set; API base from {how} ({settings.api_version})")
        claims = _check_token(report, hook, seen)
        if claims is None:
            return report
        _check_discovery(report, hook, seen)
        if report.api_base is None:
            return report
        agent = _check_agent(report, hook, agent_id, claims)
        _check_time_zone(report, agent)
        _check_agent_states(report, hook)
        _check_apiversion(report, hook)
        return report
    finally:
        hook.close()


def _check_token(report: Report, hook: CxoneHook, seen: Recorder) -> dict[str, Any] | None:
    """The token row and the id_token row; the id_token's claims, or ``None`` when no token came."""
    try:
        hook.access_token()
    except Exception as exc:
        report.add("token", FAIL, _why(exc, hook))
        return None
    answer = seen.find("POST", "/auth/token")
    body = answer.body if answer is not None and isinstance(answer.body, Mapping) else {}
    present, missing = _fields(body, ("access_token", "token_type", "expires_in", "refresh_token", "id_token"))
    expires = body.get("expires_in")
    detail = f"fields: {_listed(present)}"
    result = PASS
    if isinstance(expires, bool) or not isinstance(expires, int | float | str):
        result, detail = WARN, detail + "; no usable expires_in (the provider assumes 3600 s)"
    if missing:
        detail += f"; missing: {_listed(missing)}"
    report.add("token", result, detail)

    claims = jwt_claims(body.get("id_token"))
    settings = hook.settings
    if not claims:
        needed = not settings.tenant_id and not settings.api_base_url
        report.add(
            "id_token",
            FAIL if needed else WARN,
            "no readable id_token"
            + ("; the provider needs its tenantId: set the extra tenant_id or api_base_url" if needed else ""),
        )
        return {}
    present, missing = _fields(claims, ID_TOKEN_CLAIMS)
    result = PASS
    detail = f"claims: {_listed(present)}"
    if missing:
        detail += f"; missing: {_listed(missing)}"
    if "tenantId" in missing and not settings.tenant_id and not settings.api_base_url:
        result, detail = FAIL, detail + " (discovery needs tenantId: set the extra tenant_id or api_base_url)"
    elif "icAgentId" in missing:
        result, detail = WARN, detail + " (the key user's own agent is unknown: pass --agent-id)"
    report.add("id_token", result, detail)
    return claims


def _check_discovery(report: Report, hook: CxoneHook, seen: Recorder) -> None:
    try:
        report.api_base = hook.api_base_url
    except Exception as exc:
        report.add("discovery", FAIL, _why(exc, hook))
        return
    if hook.settings.api_base_url:
        report.add("discovery", SKIP, "the connection pins api_base_url")
        return
    answer = seen.find("GET", "/.well-known/cxone-configuration")
    body = answer.body if answer is not None and isinstance(answer.body, Mapping) else {}
    _, missing = _fields(body, DISCOVERY_REQUIRED)
    if missing:
        report.add("discovery", WARN, f"api_endpoint used; published fields missing: {_listed(missing)}")
    else:
        report.add("discovery", PASS, "api_endpoint used; every published required field present")


def _check_agent(report: Report, hook: CxoneHook, agent_id: int | None, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The agent row; the agent's record, or ``{}`` when it could not be read."""
    if agent_id is not None:
        whose = f"agent {agent_id} (from --agent-id)"
    else:
        raw = claims.get("icAgentId")
        try:
            agent_id = int(str(raw))
        except ValueError:
            report.add("agent", SKIP, "no agent to read: the id_token carries no icAgentId; pass --agent-id N")
            return {}
        whose = f"agent {agent_id} (the key user's own, from the id_token's icAgentId)"
    try:
        agent = hook.get_agent(agent_id)
    except Exception as exc:
        report.add("agent", FAIL, f"{whose}: {_why(exc, hook)}")
        return {}
    needed, lacking = _fields(agent, AGENT_NEEDED)
    used, unused = _fields(agent, AGENT_USED)
    detail = f"{whose}: fields {_listed(needed + used)}"
    if unused:
        detail += f"; missing: {_listed(unused)}"
    if lacking:
        report.add("agent", FAIL, f"{detail}; SetSecurityUser needs {_listed(lacking)}")
    elif agent.get("isActive") is not True:
        report.add("agent", FAIL, f"{detail}; isActive is {agent.get('isActive')!r}: SetSecurityUser refuses it")
    elif str(agent.get("agentId")) != str(agent_id):
        report.add("agent", FAIL, f"{detail}; the answer is agent {agent.get('agentId')!r}, not {agent_id}")
    else:
        report.add("agent", PASS, f"{detail}; active")
    return agent


def _check_time_zone(report: Report, agent: Mapping[str, Any]) -> None:
    if not agent:
        report.add("time zone", SKIP, "no agent record")
        return
    value = agent.get("timeZone")
    if value in (None, ""):
        report.add("time zone", WARN, "the agent has no timeZone: SetSecurityUser uses UTC")
        return
    try:  # issue 21's resolver, when this build has it
        from cxone_provider.domain.timezones import resolve_time_zone  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        _check_time_zone_as_iana(report, str(value))
        return
    resolved = resolve_time_zone(value)
    detail = f"{value!r} -> {resolved.name} ({resolved.source})"
    if resolved.warning:
        report.add("time zone", WARN, f"{detail}: {resolved.warning}")
    else:
        report.add("time zone", PASS, detail)


def _check_time_zone_as_iana(report: Report, value: str) -> None:
    """A provider without the resolver hands the agent's time zone to pendulum: it must be an IANA name."""
    import pendulum

    try:
        pendulum.timezone(value)
    except Exception:
        report.add("time zone", FAIL, f"{value!r} is not an IANA name: SetSecurityUser fails on it in this build")
        return
    report.add("time zone", PASS, f"{value!r} (an IANA name)")


def _check_agent_states(report: Report, hook: CxoneHook) -> None:
    import inspect

    from cxone_provider.client.transport import RETRY_POLICY
    from cxone_provider.hooks.cxone import AGENT_STATES_PATH

    # The first page exactly as the provider asks for it, so the answer's size is the provider's problem too.
    page_size = inspect.signature(hook.get_agent_states).parameters["page_size"].default
    try:
        answer = hook.client.request(
            "list agent states",
            "GET",
            AGENT_STATES_PATH,
            params={"top": page_size, "skip": 0},
            retry_when=RETRY_POLICY["agent_states"],
        )
    except Exception as exc:
        report.add("agent states", FAIL, _why(exc, hook))
        return
    body = answer.body
    if answer.status_code == 204 or body is None:
        report.add("agent states", WARN, f"HTTP {answer.status_code}, no rows: nobody to list")
        return
    rows = body.get("agentStates") if isinstance(body, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        report.add("agent states", FAIL, "the answer holds no agentStates list")
        return
    links = body.get("_links")
    shape = f"{len(rows)} row(s) on the first page, totalRecords {body.get('totalRecords')!r}"
    shape += ", _links" + ("" if isinstance(links, Mapping) else " missing")
    if not rows:
        report.add("agent states", WARN, f"{shape}: no row to check the fields of")
        return
    lacking = [n for n in STATE_NEEDED if any(r.get(n) in (None, "") for r in rows)]
    used, unused = _fields({n: any(r.get(n) not in (None, "") for r in rows) or None for n in STATE_USED}, STATE_USED)
    detail = f"{shape}; fields {_listed([*STATE_NEEDED, *used])}"
    if unused:
        detail += f"; missing: {_listed(unused)}"
    if lacking:
        report.add("agent states", FAIL, f"{detail}; rows without {_listed(lacking)}")
    else:
        report.add("agent states", PASS, detail)
    with_session = sum(r.get("sessionId") not in (None, "") for r in rows)
    if with_session:
        report.add(
            "session ids",
            NOTE,
            f"{with_session} of {len(rows)} rows carry a sessionId: an extension (NICE publishes rows without one)",
        )
    else:
        report.add("session ids", PASS, "rows carry no sessionId, as NICE publishes: the sweep joins by agent")


def _check_apiversion(report: Report, hook: CxoneHook) -> None:
    from cxone_provider.client.transport import RetryWhen
    from cxone_provider.exceptions import CxoneApiError

    try:
        answer = hook.client.request("list API versions", "GET", "apiversion", retry_when=RetryWhen.ANY_FAILURE)
    except CxoneApiError as exc:
        # Informational: the provider calls fixed versions and does not read this list.
        report.add("apiversion", WARN, f"not answered (HTTP {exc.http_status}); the provider does not need it")
        return
    except Exception as exc:
        report.add("apiversion", WARN, _why(exc, hook))
        return
    version = hook.settings.api_version
    if isinstance(answer.body, list) and all(isinstance(v, str) for v in answer.body):
        # A plain list of versions ("v33.0"…), as some gateways (and the sandbox) answer.
        listed = {v.lower() for v in answer.body}
        if version.lower() in listed:
            report.add("apiversion", PASS, f"{len(listed)} versions listed, the connection's {version} among them")
        else:
            report.add("apiversion", WARN, f"{len(listed)} versions listed, not the connection's {version}")
        return
    body = answer.body if isinstance(answer.body, Mapping) else {}
    info = body.get("apiInfo")
    if not isinstance(info, list):
        report.add("apiversion", WARN, "answered with neither an apiInfo list nor a list of versions")
        return
    # NICE's Admin API: {"apiInfo": [{"uri", "version", "verb"}]}, a version number per call.
    uris = {str(i.get("uri", "")).strip("/").lower(): i.get("version") for i in info if isinstance(i, Mapping)}
    wanted = ("agent-sessions/join", "agents/states")
    found = [f"{u} v{uris[u]}" for u in wanted if u in uris]
    report.add("apiversion", PASS, f"{len(info)} entries" + (f"; {', '.join(found)}" if found else ""))


# ------------------------------------------------------------------------------------------ the command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxone-doctor",
        description="Check, read-only, that a CXone tenant answers what the provider relies on.",
    )
    p.add_argument("--conn-id", default="cxone_default", help="the Airflow cxone connection (default: %(default)s)")
    p.add_argument(
        "--agent-id",
        type=_agent_id,
        metavar="N",
        help="the SecurityUser's agent to read (default: the key user's own, from the id_token's icAgentId)",
    )
    p.add_argument("--record", metavar="PATH", help="write every answer, redacted, to this JSON file")
    return p


def _agent_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--agent-id must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--agent-id must be a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """Run the doctor; 0 when nothing the provider needs is missing, 1 otherwise (2: bad arguments)."""
    args = build_parser().parse_args(argv)
    recorder = Recorder()
    report = diagnose(args.conn_id, agent_id=args.agent_id, recorder=recorder)
    out(report.text())
    if args.record:
        record = recorder.record(report.api_version)
        Path(args.record).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        out(f"recorded {len(record['answers'])} answer(s), redacted, to {args.record}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
