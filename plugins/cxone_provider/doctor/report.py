"""The doctor's table: one :class:`Check` per row, gathered in a :class:`Report`, and the field lists
the checks compare CXone's answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

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
