"""What one join ended with: :class:`JoinOutcome`, the operators' XCom value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.conditions import JoinCondition

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JoinOutcome"]


# slots: a sweep holds every item's outcome until it ends (a __dict__ each was ~5 MiB per 100,000).
@dataclass(slots=True)
class JoinOutcome:
    """What one join ended with; :meth:`to_dict` is the operator's XCom ``return_value``.

    ``message`` is the API's error text or the local cause; it never holds a token or a secret.
    ``same_for_every_session`` (not part of the XCom value) marks an answer about the SecurityUser or
    the connection rather than this session — the route does not exist, CXone refused the access key,
    the agent may not impersonate or is unknown — which every other join as that SecurityUser would
    get too; a sweep stops sending on it.
    """

    condition: JoinCondition
    session_id: str
    status_code: int | None = None
    message: str = ""
    attempts: int = 0
    elapsed_s: float = 0.0
    agent_id: int | None = None
    same_for_every_session: bool = field(default=False, compare=False)
    #: how a sweep of (agent, session) items names this outcome (the agent id); ``None``: the session id
    item_key: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """What a sweep keys this outcome by in its checkpoint and report."""
        return self.item_key if self.item_key is not None else self.session_id

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "condition": self.condition.value,
            "session_id": self.session_id,
            "status_code": self.status_code,
            "message": self.message,
            "attempts": self.attempts,
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.agent_id is not None or self.item_key is not None:
            data["agent_id"] = self.agent_id
        if self.item_key is not None:
            data["item"] = self.item_key
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JoinOutcome:
        return cls(
            condition=JoinCondition.parse(data["condition"]),
            session_id=str(data["session_id"]),
            status_code=data.get("status_code"),
            message=str(data.get("message", "")),
            attempts=int(data.get("attempts", 0)),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            agent_id=data.get("agent_id"),
            item_key=data.get("item"),
        )
