"""The checks made on inputs before any request, and the one rule for list-valued template fields.

* :func:`check_session_id`, :func:`check_agent_id` reject an id that cannot be valid, with the
  condition Studio gives it (:class:`~cxone_provider.domain.conditions.InputRejected`);
* :func:`path_id_problem` refuses an id that would change a request's path;
* :func:`parse_rendered_literal` reads the JSON or Python repr a plain Jinja render writes;
* :func:`parse_list` is THE parser of every list-valued template field (its rule is in its docstring).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

from cxone_provider.domain.conditions import InputRejected, JoinCondition

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "check_agent_id",
    "check_session_id",
    "parse_list",
    "parse_rendered_literal",
    "path_id_problem",
    "session_label",
]

MAX_SESSION_ID_LENGTH = 256
# Values a Jinja render produces from a missing or null input; never a real CXone session id.
_RENDERED_NOTHING = frozenset({"none", "null", "undefined"})
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
# How plain (non-native) Jinja renders a None: a list field left unset upstream.
_RENDERED_NONE = frozenset({"None", "null"})
# A text starting so is a literal (JSON or a Python repr), not a comma-separated list.
_LITERAL_STARTS = ("[", "(", "{")


def parse_list(field_name: str, value: object) -> list[Any] | None:
    """The items of a list-valued template field, by the one rule every such field follows.

    After rendering, the value may be:

    * ``None``, or the text ``"None"`` / ``"null"`` (a ``None`` rendered by plain Jinja): not given,
      ``None`` (the field's default applies);
    * a list or tuple: its items, as given;
    * a text that starts with ``[``, ``(`` or ``{``: a JSON or Python literal, as plain Jinja renders a
      list (``"['Available', 'Unavailable']"``), which must be a list or tuple: its items, as given;
    * any other text: split on commas, each item stripped (``"Available, Unavailable"`` is two items,
      ``"2001"`` one); a blank text is no items, and an empty item (``"a,,b"``, ``"a,"``) is an error.

    Anything else (a number, a mapping) is an error. Whether each item is valid is the field's own check.

    :raises ValueError: naming the field and the value.
    """
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be a list, got {type(value).__name__}: {value!r:.80}")
    text = value.strip()
    if not text:
        return []
    if text in _RENDERED_NONE:
        return None
    if text.startswith(_LITERAL_STARTS):
        try:
            parsed = parse_rendered_literal(text)
        except ValueError:
            raise ValueError(f"{field_name} must be a list, got {text[:80]!r}: not a JSON or Python literal") from None
        if not isinstance(parsed, list | tuple):
            raise ValueError(f"{field_name} must be a list, got {type(parsed).__name__}: {text[:80]!r}")
        return list(parsed)
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ValueError(f"{field_name} {text[:80]!r} has an empty item: separate the items with single commas")
    return items


def check_session_id(value: object) -> str:
    """Return the session id to send, or raise :class:`InputRejected` (``InvalidAgentSession``)."""
    if isinstance(value, bool) or value is None:
        raise _bad_session(value, "is missing")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise _bad_session(value, f"must be a string, not {type(value).__name__}")
    session_id = value.strip()
    if not session_id:
        raise _bad_session(value, "is empty")
    if session_id.lower() in _RENDERED_NOTHING:
        raise _bad_session(value, "rendered to nothing (check the template or the upstream task)")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise _bad_session(session_id[:40] + "…", f"is {len(session_id)} characters long (max {MAX_SESSION_ID_LENGTH})")
    if _WHITESPACE_OR_CONTROL.search(session_id):
        raise _bad_session(value, "contains whitespace or control characters")
    # The id may later go into a path (end a session, supervise from it): one that would change the
    # path (".", "..", "a/b", "%2e%2e") is no session id.
    problem = path_id_problem(session_id)
    if problem is not None:
        raise _bad_session(value, problem)
    return session_id


def session_label(value: object) -> str:
    """How a session id given as ``value`` is reported: as given when a string, else its repr."""
    return value if isinstance(value, str) else repr(value)


def _bad_session(value: object, reason: str) -> InputRejected:
    return InputRejected(JoinCondition.INVALID_AGENT_SESSION, f"session_id {value!r} {reason}")


def check_agent_id(value: object, *, field_name: str = "agent_id") -> int:
    """Return ``value`` as a positive agent id, or raise :class:`InputRejected` (``InvalidAgentId``)."""
    agent_id: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        agent_id = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        agent_id = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        agent_id = int(value)
    if agent_id is None:
        raise InputRejected(JoinCondition.INVALID_AGENT_ID, f"{field_name} {value!r} is not an integer")
    if agent_id <= 0:
        raise InputRejected(JoinCondition.INVALID_AGENT_ID, f"{field_name} {value!r} is not positive")
    return agent_id


def parse_rendered_literal(text: str) -> object:
    """A value from its JSON, or from the Python repr a plain (non-native) Jinja render gives.

    ``ast.literal_eval`` evaluates literals only, never code. Raises :class:`ValueError`.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{text[:80]!r} is nested too deeply") from None
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{text[:80]!r} is neither JSON nor a Python literal") from None


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
