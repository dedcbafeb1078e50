"""What a CXone task's run learnt about its tenant, for its Asset event and its OpenLineage facets.

An operator keeps a :class:`RunFacts` when its work ends (while its hook still knows the tenant and
the API host) and builds from it, on request, its Asset (:mod:`cxone_provider.assets`) and the
``OperatorLineage`` that OpenLineage's listener asks for after the task succeeded
(:func:`operator_lineage`):

- inputs: the CXone tenant's data the task read, namespace ``cxone://<API host>``, name
  ``<tenant>/agent-sessions`` (a join, a sweep) or ``<tenant>/agents`` (SetSecurityUser);
- outputs: a sweep's report, at its storage path (namespace ``file`` or ``s3://bucket``…);
- the run facet ``cxone``: the counts per condition.

No secret, no token, no personal data: no agent name, no agent or session id list. The OpenLineage
packages are imported only when the facets are asked for, so that the provider runs without
``apache-airflow-providers-openlineage`` (the ``[openlineage]`` extra); without it the facets are ``None``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cxone_provider.assets import settings_asset, tenant_authority

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from cxone_provider.client.settings import CxoneSettings
    from cxone_provider.hooks.cxone import CxoneHook

#: the run facet's key in an OpenLineage event
RUN_FACET = "cxone"


@dataclass(frozen=True)
class RunFacts:
    """What one run of a CXone task learnt: its tenant, its API host, its counts and its report."""

    settings: CxoneSettings
    tenant_id: str | None
    api_base_url: str | None
    read: str  # what the task read of the tenant: "agent-sessions" or "agents"
    counts: dict[str, int] = field(default_factory=dict)
    report: str | list[str] | None = None

    @classmethod
    def of(cls, hook: CxoneHook, read: str, counts: dict[str, int] | None = None, report: Any = None) -> RunFacts:
        """The facts ``hook`` holds once its calls are done; reading them sends nothing."""
        known = hook.client.auth.known_api_base_url if "client" in hook.__dict__ else hook.settings.api_base_url
        return cls(hook.settings, hook.tenant, known, read, dict(counts or {}), report)

    @property
    def tenant(self) -> str:
        """The tenant as the asset URI and the dataset names spell it (:func:`tenant_authority`)."""
        return tenant_authority(self.tenant_id, self.settings.auth_host)

    @property
    def namespace(self) -> str:
        """``cxone://<API host>``: the host the task's calls went to (the auth host before any call)."""
        parts = urlsplit(self.api_base_url or self.settings.auth_host)
        host = (parts.hostname or "").lower()
        return f"cxone://{host}:{parts.port}" if parts.port else f"cxone://{host}"

    def asset(self, kind: str, dag_id: str, task_id: str) -> Asset:
        return settings_asset(self.settings, self.tenant_id, kind, dag_id, task_id)

    @property
    def reports(self) -> list[str]:
        if isinstance(self.report, str):
            return [self.report]
        return [r for r in self.report or () if isinstance(r, str) and r]


def storage_dataset_name(location: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) of a file or object: ``("file", "/path")``, ``("s3://bucket", "key")``."""
    parts = urlsplit(location)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return "file", parts.path if parts.scheme == "file" else location
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


@functools.cache
def _run_facet_class() -> type:
    """The ``cxone`` run facet, an OpenLineage ``RunFacet`` (made on first use: OpenLineage is optional)."""
    import attrs
    from openlineage.client.facet_v2 import RunFacet

    @attrs.define
    class CxoneRunFacet(RunFacet):
        """A CXone task's result: items per condition (no ids, no names)."""

        counts: dict[str, int]
        total: int
        tenant: str

    return CxoneRunFacet


def operator_lineage(facts: RunFacts | None) -> Any:
    """The ``OperatorLineage`` of a run with ``facts``; ``None`` without OpenLineage or without facts
    (the task did not get as far as its hook)."""
    if facts is None:
        return None
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
    except ImportError:
        return None
    inputs = [Dataset(namespace=facts.namespace, name=f"{facts.tenant}/{facts.read}")]
    outputs = [Dataset(namespace=ns, name=name) for ns, name in map(storage_dataset_name, facts.reports)]
    facet = _run_facet_class()(counts=dict(facts.counts), total=sum(facts.counts.values()), tenant=facts.tenant)
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={RUN_FACET: facet})
