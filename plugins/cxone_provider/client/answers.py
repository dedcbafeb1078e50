"""Reading an answer, once for both faces of the client: bounded, redacted, with the same messages.

Sans-IO: each face streams at most :func:`body_limit` bytes within ``read_timeout`` from its own
library, then hands the bytes here. A redirect is never followed nor read: :func:`redirect_answer`.
"""

from __future__ import annotations

import json
import math
import re
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from cxone_provider.response import STATUS_DESCRIPTION_HEADER, ApiResponse, error_name_and_message

# Error bodies are for messages; a proxy's multi-megabyte HTML page is not read past this.
MAX_BODY_BYTES = 64 * 1024
# A 2xx body is data: a page of 1,000 agent-state rows with CXone's published fields is ~600 KB.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_CHARS = 300
# icStatusDescription is a short sentence ("Invalid agent session Id."); a server may send anything.
MAX_STATUS_DESCRIPTION_CHARS = 200
# A Retry-After further away than this (or negative, or not a finite number) is no advice: treated
# as missing, so the call's own backoff decides.
RETRY_AFTER_RANGE_S = 24 * 3600.0
USER_AGENT = "airflow-provider-cxone"
#: The headers every request of either face carries.
BASE_HEADERS: Mapping[str, str] = {"Accept": "application/json", "User-Agent": USER_AGENT}


def is_redirect(status: int) -> bool:
    return 300 <= status < 400


def body_limit(status: int) -> int:
    """How much of an answer's body is read: a 2xx is data, anything else only a message."""
    return MAX_ANSWER_BYTES if 200 <= status < 300 else MAX_BODY_BYTES


# zlib's window bits for each Content-Encoding undone (16 + …: the gzip wrapper).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BoundedDecoder:
    """An answer's ``Content-Encoding`` undone a chunk at a time, never into more than the room left.

    A 1 MB gzip of zeros is 1 GiB of text: a decoder that inflates each chunk it is given whole (httpx's)
    makes a few hundred MiB of one network chunk before a body limit is checked. zlib's ``max_length``
    stops at the room left instead. ``gzip``/``x-gzip`` and ``deflate`` (zlib-wrapped or raw, as httpx
    reads it) are undone; any other coding is passed on as sent, still bounded by the body limit.
    """

    def __init__(self, content_encoding: str | None) -> None:
        coding = (content_encoding or "").strip().lower()
        self._wbits = _WBITS.get(coding)
        self._inflate = zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._first = True

    def decode(self, data: bytes, room: int) -> bytes:
        """At most ``room`` bytes of what ``data`` decodes to (what is left over is never needed: the
        caller stops once the body is over its limit).

        :raises ValueError: the data is not in the coding the answer names.
        """
        if self._inflate is None:
            return data[:room]
        first, self._first = self._first, False
        try:
            return self._inflate.decompress(data, max(room, 1))
        except zlib.error as error:
            if first and self._wbits == zlib.MAX_WBITS:  # a raw deflate stream, without zlib's header
                self._inflate, self._wbits = zlib.decompressobj(-zlib.MAX_WBITS), -zlib.MAX_WBITS
                return self.decode(data, room)
            raise ValueError(f"the answer is not valid {self._coding_name()} data: {error}") from None

    def _coding_name(self) -> str:
        return "deflate" if self._wbits is not None and abs(self._wbits) == zlib.MAX_WBITS else "gzip"


def still_arriving(read_timeout: float, read: int) -> str:
    """The message of a body that outlasted ``read_timeout`` (each face raises its library's read timeout)."""
    return f"the answer was still arriving after {read_timeout:g}s (read_timeout); {read} bytes read"


def redirect_answer(status: int, url: str, location: str | None, redact: Callable[[str], str]) -> ApiResponse:
    """A redirect's answer: not followed and not read (its body can be as large or as slow as its
    sender likes); the message names where it pointed, host and port, never the path or query."""
    target = urlsplit(urljoin(url, location or ""))
    where = f"{target.hostname}:{target.port}" if target.hostname and target.port else target.hostname or "no Location"
    message = f"redirected (HTTP {status}) to {where}; calls to CXone follow no redirect"
    return ApiResponse(status_code=status, error=f"HTTP {status}", message=redact(message)[:MAX_MESSAGE_CHARS])


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` when missing or
    unusable: not a number or date, not finite, negative, or more than a day away."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        # A date already past means "now"; a date in a month's time is no advice.
        seconds = max(moment.timestamp() - time.time(), 0.0)
    if not math.isfinite(seconds) or not 0.0 <= seconds <= RETRY_AFTER_RANGE_S:
        return None
    return seconds


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_answer(
    raw: bytes,
    complete: bool,
    *,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    encoding: str | None,
    redact: Callable[[str], str],
    limit: int = MAX_BODY_BYTES,
) -> ApiResponse:
    """An answer's body (at most ``limit`` bytes; ``complete``: all of it) as an :class:`ApiResponse`.

    The one reading of an answer, whichever face fetched it: JSON when it parses, CXone's error name
    and message from it, else a one-line summary; CXone's ``icStatusDescription`` header is kept, and
    is the message of an answer with no body. Every text the server chose is redacted before it is cut.
    """
    text = raw[:limit].decode(encoding or "utf-8", errors="replace")
    content_type = headers.get("Content-Type", "")
    body: Any = None
    problem = ""
    if not complete:
        problem = f"answer larger than {limit // 1024} KiB ({content_type or 'no type'}), not read"
    elif text:
        try:
            body = json.loads(text)
        except RecursionError:
            problem = f"invalid JSON ({len(raw)} bytes): nested too deeply"
        except ValueError:
            if "json" in content_type:
                problem = f"invalid JSON ({len(raw)} bytes): {_one_line(text)[:80]}"
    # Redacted before it is cut, like every text the server chose.
    description = redact(_one_line(headers.get(STATUS_DESCRIPTION_HEADER) or ""))[:MAX_STATUS_DESCRIPTION_CHARS]
    # The text summary only matters when there is no JSON object to read the error from.
    if isinstance(body, Mapping):
        fallback = ""
    elif not text.strip() and description:
        fallback = description  # CXone's way: no body, the error text in the header
    else:
        fallback = problem or _summarise_text(text, status, reason, content_type)
    name, message = error_name_and_message(body, fallback)
    if not message and description:
        message = description
    return ApiResponse(
        status_code=status,
        body=body,
        # The error name is the server's text too: a proxy may echo the request body in it.
        error=redact(name)[:80] if name and not (200 <= status < 300) else None,
        message=redact(message)[:MAX_MESSAGE_CHARS],
        retry_after_s=retry_after(headers.get("Retry-After")),
        unreadable=problem,
        status_description=description,
        body_size=len(raw),
    )


def _summarise_text(text: str, status: int, reason: str, content_type: str) -> str:
    """A one-line description of a non-JSON body (an HTML error page from a proxy, say)."""
    stripped = _one_line(text)
    if not stripped:
        return f"HTTP {status} {reason}".strip()
    if "json" not in content_type and stripped.startswith("<"):
        title = re.search(r"<title>(.*?)</title>", stripped, re.IGNORECASE)
        label = title.group(1).strip() if title else "no title"
        return f"non-JSON answer ({content_type or 'unknown type'}): {label}"
    return stripped  # cut by the caller, after redaction: a cut could split a secret the redaction would miss
