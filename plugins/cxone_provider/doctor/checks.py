"""The doctor's checks: what the provider relies on, asked of the tenant read-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cxone_provider.client.auth import jwt_claims
from cxone_provider.doctor.record import Recorder
from cxone_provider.doctor.report import (
    AGENT_NEEDED,
    AGENT_USED,
    DISCOVERY_REQUIRED,
    FAIL,
    ID_TOKEN_CLAIMS,
    NOTE,
    PASS,
    SKIP,
    STATE_NEEDED,
    STATE_USED,
    WARN,
    Report,
)
from cxone_provider.domain.timezones import resolve_time_zone

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cxone_provider.hooks.cxone import CxoneHook


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
    resolved = resolve_time_zone(value)
    detail = f"{value!r} -> {resolved.name} ({resolved.source})"
    if resolved.warning:
        report.add("time zone", WARN, f"{detail}: {resolved.warning}")
    else:
        report.add("time zone", PASS, detail)


def _check_agent_states(report: Report, hook: CxoneHook) -> None:
    import inspect

    from cxone_provider.client.policy import RETRY_POLICY
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
    from cxone_provider.client.policy import RetryWhen
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
