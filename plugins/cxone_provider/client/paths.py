"""Ids that go into an Agent API path, checked in one place so that no id reaches another path.

``quote(value, safe="")`` keeps a path segment from growing new ``/`` separators, but it leaves dots
alone: an id of ``.`` or ``..`` is a dot segment that the HTTP stack (and every server after it)
removes, so ``DELETE agent-sessions/..`` would be sent as ``DELETE …/v33.0/``. Servers and proxies also
percent-decode a path (some twice) and normalise Unicode before routing it, so the checks below apply
to every decoding of the id, not only to the id as given.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote

from cxone_provider.exceptions import UnsafePathIdError

#: Characters that end or split a path segment, in any decoding of an id.
_PATH_CHARS = frozenset("/\\?#")
#: How many rounds of percent-decoding are checked (``%252e`` is ``%2e`` after one, ``.`` after two).
_DECODINGS = 3


def path_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be one segment of a request path, or ``None`` when it can.

    Refused: an empty or blank id, a dot segment (``.``, ``..``, also with a ``;parameter`` that some
    servers strip), a path separator, ``?``, ``#`` or a control character — as given, after each round
    of percent-decoding, and after Unicode normalisation (full-width dots U+FF0E, solidus U+FF0F).
    """
    if not value.strip():
        return "is empty"
    form = value
    for _ in range(_DECODINGS + 1):
        for candidate in (form, unicodedata.normalize("NFKC", form)):
            if any(char in _PATH_CHARS for char in candidate):
                return "holds a path separator, '?' or '#' (also once percent-decoded)"
            if any(ord(char) < 32 or ord(char) == 127 for char in candidate):
                return "holds a control character (also once percent-decoded)"
            if candidate.split(";", 1)[0].strip() in ("", ".", ".."):
                return "is a dot segment such as '.' or '..' (also once percent-decoded)"
        decoded = unquote(form)
        if decoded == form:
            break
        form = decoded
    return None


def path_segment(method: str, field: str, value: object) -> str:
    """``value`` quoted as one segment of the path of ``CxoneHook.<method>``'s request.

    Every hook method that puts an id into a path goes through here, before anything is sent (not even
    a token request).

    :raises UnsafePathIdError: naming the method, the field and the value, for an id that would change
        the path (see :func:`path_id_problem`).
    """
    text = value if isinstance(value, str) else str(value)
    problem = path_id_problem(text)
    if problem is not None or isinstance(value, bool) or value is None:
        raise UnsafePathIdError(
            f"CxoneHook.{method}: {field} {value!r} {problem or 'is not an id'}, so it would change the "
            "request's path; nothing was sent"
        )
    return quote(text, safe="")
