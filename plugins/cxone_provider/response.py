"""One API call's final answer, and how CXone's error shape reads.

The lowest layer: plain data, imported by the transport that builds answers, by the
exceptions that carry them and by :mod:`cxone_provider.domain.classification`, which decides what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: CXone's error text travels in this response header (NICE publishes no Agent API error body).
STATUS_DESCRIPTION_HEADER = "icStatusDescription"

# Human text, in the order CXone's and gateways' error shapes carry it (Global Auth writes errorDescription,
# its legacy token service and the sandbox's Agent API error_description); never used to decide a condition.
_MESSAGE_KEYS = ("errorDescription", "error_description", "message", "errorMessage", "Message", "detail", "description")


def error_name_and_message(body: object, text: str = "") -> tuple[str | None, str]:
    """CXone's ``error`` name (``None`` when the body has none) and the human message of an answer."""
    if isinstance(body, Mapping):
        raw_name = body.get("error")
        name = str(raw_name) if isinstance(raw_name, str | int) and str(raw_name).strip() else None
        message = next((str(body[k]) for k in _MESSAGE_KEYS if body.get(k) not in (None, "")), "")
        return name, message or name or text.strip()
    return None, text.strip()


@dataclass
class ApiResponse:
    """One API call's final answer, after retries. ``status_code`` is ``None`` when nothing came back."""

    status_code: int | None
    body: Any = None
    error: str | None = None
    message: str = ""
    attempts: int = 0
    elapsed_s: float = 0.0
    retries: list[str] = field(default_factory=list)
    retry_after_s: float | None = None
    #: why the body could not be read (too large, invalid or too deeply nested JSON); '' when it could
    unreadable: str = ""
    #: CXone's ``icStatusDescription`` header (redacted, one line, bounded); '' when absent
    status_description: str = ""
    #: bytes of body read: CXone answers Agent API errors with none, a gateway or proxy with a page
    body_size: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
