"""The Assets the CXone tasks update: ``cxone://<tenant>/sweeps/<dag_id>/<task_id>`` and ``…/joins/…``.

A sweep (and, opted in, a join) declares an outlet :class:`~airflow.sdk.AssetAlias` when the DAG is
parsed and, when it succeeds, adds an event to the Asset of its tenant through it. The tenant is known
only at run time — the connection's ``tenant_id`` extra, else the token's ``tenantId`` claim (the same
tenant CXone's discovery is asked about), else the auth host — and an alias is how Airflow lets a task
name its Asset then; Airflow creates the Asset on its first event if no DAG declared it before.

The event's ``extra`` is a summary a downstream DAG can read (:func:`sweep_extra`): counts per
condition, the report's location and the run's figures. It holds no secret, no token and no personal
data: no agent names and no lists of agents or sessions.

.. seealso:: ``docs/assets.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

from airflow.sdk import Asset, AssetAlias

from cxone_provider.sweeps.result import retries_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cxone_provider.client.settings import CxoneSettings

SCHEME = "cxone"
#: the version of the event's ``extra``; a change that breaks readers bumps it
EXTRA_SCHEMA = "cxone.asset/1"
KINDS = ("sweeps", "joins")


def tenant_authority(tenant_id: str | None, auth_host: str) -> str:
    """The URI's authority: the tenant id (lower case, URL-quoted), else the auth host's ``host[:port]``."""
    if tenant_id and tenant_id.strip():
        return quote(tenant_id.strip().lower(), safe="-._~")
    parts = urlsplit(auth_host if "://" in auth_host else f"https://{auth_host}")
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def asset_uri(tenant: str, kind: str, dag_id: str, task_id: str) -> str:
    """``cxone://<tenant>/<kind>/<dag_id>/<task_id>``; ``tenant`` as :func:`tenant_authority` gives it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, value in (("tenant", tenant), ("dag_id", dag_id), ("task_id", task_id)):
        if not value or "/" in value:
            raise ValueError(f"{name} {value!r} cannot be one part of a {SCHEME}:// asset URI")
    return f"{SCHEME}://{tenant.lower()}/{kind}/{dag_id}/{task_id}"


def sweep_asset(tenant: str, dag_id: str, task_id: str) -> Asset:
    """The Asset a sweep updates, for a downstream DAG's ``schedule``:
    ``schedule=[sweep_asset("<tenant id>", "qa_sweep", "sweep")]``."""
    return Asset(asset_uri(tenant, "sweeps", dag_id, task_id))


def join_asset(tenant: str, dag_id: str, task_id: str) -> Asset:
    """The Asset a join with ``emit_asset=True`` updates."""
    return Asset(asset_uri(tenant, "joins", dag_id, task_id))


def outlet_alias(kind: str, dag_id: str, task_id: str) -> AssetAlias:
    """The alias a task declares as its outlet when parsed, through which it names its Asset when it runs."""
    return AssetAlias(name=f"{SCHEME}-{kind}:{dag_id}.{task_id}")


def is_outlet_alias(outlet: object, kind: str) -> bool:
    return isinstance(outlet, AssetAlias) and outlet.name.startswith(f"{SCHEME}-{kind}:")


def settings_asset(settings: CxoneSettings, tenant_id: str | None, kind: str, dag_id: str, task_id: str) -> Asset:
    """The Asset of a task that used ``settings``'s connection, ``tenant_id`` as the hook found it."""
    return Asset(asset_uri(tenant_authority(tenant_id, settings.auth_host), kind, dag_id, task_id))


def sweep_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep result's summary for its Asset event: counts, the report's location and the run's figures."""
    stats: Mapping[str, Any] = result.get("stats") or {}
    retries = stats.get("retries")
    throttled = int(retries.get("429") or 0) if isinstance(retries, dict) else None
    counts = {str(k): int(v) for k, v in (result.get("counts") or {}).items()}
    return {
        "schema": EXTRA_SCHEMA,
        "counts": counts,
        "total": sum(counts.values()),
        "report": result.get("report"),
        "figures": {
            "sessions_per_s": stats.get("joins_per_s"),
            "elapsed_s": stats.get("elapsed_s"),
            "requests": stats.get("requests"),
            "retries": retries_of(stats),
            "retries_429": throttled,
            "resumed": stats.get("resumed"),
            "deadline_passed": stats.get("deadline_passed"),
            "stopped_early": stats.get("stopped_early"),
        },
    }


def join_extra(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """A join outcome's summary for its Asset event: the condition and its figures, no session id."""
    condition = str(outcome.get("condition"))
    return {
        "schema": EXTRA_SCHEMA,
        "counts": {condition: 1},
        "total": 1,
        "condition": condition,
        "status_code": outcome.get("status_code"),
        "attempts": outcome.get("attempts"),
        "elapsed_s": outcome.get("elapsed_s"),
    }


def normalize_uri(parts: SplitResult) -> SplitResult:
    """Airflow's URI handler for the ``cxone`` scheme (``asset-uris`` in the provider info).

    :raises ValueError: not ``cxone://<tenant>/<sweeps|joins>/<dag_id>/<task_id>``, naming the URI.
    """
    segments = parts.path.strip("/").split("/")
    if not parts.netloc or len(segments) != 3 or segments[0] not in KINDS or not all(segments):
        raise ValueError(
            f"{parts.geturl()!r} is not a CXone asset URI: expected {SCHEME}://<tenant>/<sweeps|joins>/<dag_id>/<task_id>"
        )
    return parts._replace(netloc=parts.netloc.lower())
