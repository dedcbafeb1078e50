"""The credentials one client has seen: registered with Airflow's log masker, and cut out of texts.

Both faces of the client hold one :class:`Secrets`; the async face registers from a worker thread,
because the masker talks to Airflow's supervisor synchronously.
"""

from __future__ import annotations

import base64
import html
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def secret_forms(value: str) -> list[str]:
    """``value`` in every form the provider sends it in, or a server that echoes it sends it back in.

    As is (a JSON body, a header); URL-encoded as a path or query part and form-encoded (``+`` for a
    space), each with upper- and lower-case hex (a proxy may normalise either way); HTML-escaped (an
    error page that quotes the request in its ``<title>``).
    """
    forms = [value]
    for encoded in (quote(value, safe=""), quote_plus(value)):
        forms += [encoded, _PERCENT_ESCAPE.sub(lambda hit: hit.group().lower(), encoded)]
    escaped = html.escape(value)
    forms += [escaped, escaped.replace("&#x27;", "&#39;"), html.escape(value, quote=False)]
    return list(dict.fromkeys(forms))


def basic_credentials(user: str, password: str) -> str:
    """The base64 of ``user:password`` as an HTTP Basic ``Authorization`` header carries it (latin-1
    when it can be, as ``requests`` and ``httpx`` both encode it, else UTF-8)."""
    pair = f"{user}:{password}"
    try:
        raw = pair.encode("latin-1")
    except UnicodeEncodeError:
        raw = pair.encode()
    return base64.b64encode(raw).decode("ascii")


class Secrets:
    """The credentials one client has seen: registered with Airflow's log masker, and cut out of texts.

    Each credential is registered in every form of :func:`secret_forms`, once: the connection's secrets
    when the client is made, a token when it is issued. Airflow's masker recompiles its pattern for
    every new form, so nothing is registered per call.
    """

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._longest_first: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def remember(self, value: str | None) -> None:
        """Register a credential in all its forms (:func:`secret_forms`)."""
        if not value or value in self._known:
            return
        self._register(secret_forms(value))

    def remember_basic_auth(self, user: str, password: str) -> None:
        """Register the HTTP Basic pair ``user:password`` as the ``Authorization`` header carries it."""
        self.remember(basic_credentials(user, password))

    def _register(self, forms: list[str]) -> None:
        with self._lock:
            fresh = [form for form in forms if form not in self._known]
            if not fresh:
                return
            self._known.update(fresh)
            # Longest first: a form that holds a shorter one is cut out whole, not around it.
            self._longest_first = tuple(sorted(self._known, key=len, reverse=True))
        from airflow.sdk.log import mask_secret

        every_form: Any = fresh
        mask_secret(every_form)  # one message to the supervisor for all of them

    def redact(self, text: str) -> str:
        """``text`` with every credential seen replaced by ``***``."""
        for secret in self._longest_first:  # a snapshot: another thread may add a renewed token
            text = text.replace(secret, "***")
        return text
