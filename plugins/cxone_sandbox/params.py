"""CXone's parameter rules and error shape, as the sandbox's tenant state applies them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

POSITIVE_INT = re.compile(r"^\d{1,18}$")


#: NICE's published wordings of the Agent API's errors (``icStatusDescription``), by status and name;
#: ``status_description="sentence"`` sends them. A pair missing here sends the error's own description.
PUBLISHED_SENTENCES: Final[dict[tuple[int, str], str]] = {
    (404, "InvalidAgentSession"): "Invalid agent session Id.",
    (409, "InvalidAgentSession"): "Invalid State",
    (400, "InvalidAgentId"): "Invalid Agent Id",
    (404, "InvalidAgentId"): "Invalid Agent Id",
    (400, "InvalidState"): "Invalid state request.",
    (409, "InvalidState"): "Invalid State",
}


class ApiError(Exception):
    """A failure the sandbox answers in CXone's shape: on the Agent API the status and the
    ``icStatusDescription`` header (see :func:`~cxone_sandbox.answers.agent_error_response`),
    elsewhere ``{"error", "error_description"}`` (the token endpoint and discovery raise
    :class:`~cxone_sandbox.tokens.AuthError`: ``{"error", "errorDescription"}``).

    :param status: the HTTP status.
    :param error: the error's name (``InvalidAgentId``…): the header's text under
        ``status_description="name"``, the body's ``error`` field.
    :param description: a sentence for people (the legacy body's ``error_description``).
    :param headers: extra response headers.
    """

    def __init__(self, status: int, error: str, description: str, headers: Mapping[str, str] | None = None):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    @property
    def sentence(self) -> str:
        """NICE's published wording for this error, else its own description."""
        return PUBLISHED_SENTENCES.get((self.status, self.error), self.description)


def iso_time(moment: datetime | None) -> str | None:
    """CXone's form of a time: UTC, milliseconds, ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_bool(raw: str | None, name: str) -> bool | None:
    """A boolean parameter as CXone takes it (``true``/``false``); ``None`` when absent."""
    if raw is None or raw == "":
        return None
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise ApiError(400, "InvalidParameter", f"{name} must be true or false, got {raw!r}")


def parse_int(raw: str | None, name: str, *, minimum: int = 0) -> int | None:
    """A whole-number parameter; ``None`` when absent."""
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"-?\d{1,18}", raw) or int(raw) < minimum:
        raise ApiError(400, "InvalidParameter", f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def parse_datetime(raw: str, name: str) -> datetime:
    """An ISO 8601 date-time parameter (``Z`` or an offset; a naive one is UTC).

    :raises ApiError: 400 ``InvalidParameter`` when it is not one.
    """
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} is not an ISO 8601 date-time: {raw!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_agent_id(raw: str | None, what: str = "agent") -> int:
    """Parse an agent id from a path or query, or raise CXone's 400 ``InvalidAgentId``."""
    if raw is None or not POSITIVE_INT.match(raw) or int(raw) <= 0:
        shown = "missing" if raw is None else repr(raw)
        raise ApiError(400, "InvalidAgentId", f"The {what} id is not a positive integer: {shown}")
    return int(raw)
