"""Ids that go into an Agent API path, checked in one place so that no id reaches another path.

``quote(value, safe="")`` keeps a path segment from growing new ``/`` separators, but it leaves dots
alone: an id of ``.`` or ``..`` is a dot segment that the HTTP stack (and every server after it)
removes, so ``DELETE agent-sessions/..`` would be sent as ``DELETE …/v33.0/``. Servers and proxies also
percent-decode a path (some twice) and normalise Unicode before routing it, so the checks apply to
every decoding of the id, not only to the id as given (:func:`~cxone_provider.domain.inputs.path_id_problem`).
"""

from __future__ import annotations

from urllib.parse import quote

from cxone_provider.domain.inputs import path_id_problem
from cxone_provider.exceptions import UnsafePathIdError


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
