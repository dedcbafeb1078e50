"""``GET agents/states``, every page: the paging rules both faces follow (sans-IO).

A face asks :class:`StatePages` for the first request, sends it, and hands each answer's body to
:meth:`StatePages.take`, which keeps the rows and names the next page (or ``None``); the sync client
loops with ``requests``, the async one with ``httpx``, and both read the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from cxone_provider.exceptions import CxoneApiError
from cxone_provider.response import ApiResponse

if TYPE_CHECKING:
    from cxone_provider.client.core import TransportBase

AGENT_STATES_PATH = "agents/states"
ACTION = "list agent states"
# agents/states pages are followed through _links.next; a loop or a runaway listing stops here.
MAX_STATE_PAGES = 1000


def next_page_url(body: Mapping[str, Any], api_base: str, seen: set[str]) -> str | None:
    """The absolute URL of the next ``agents/states`` page, or ``None`` after the last one.

    The link must stay on the API base (the token goes with it); a link already followed ends the
    listing.
    """
    links = body.get("_links")
    link = links.get("next") if isinstance(links, Mapping) else None
    if isinstance(link, Mapping):  # some CXone answers wrap links as {"href": …}
        link = link.get("href")
    if not isinstance(link, str) or not link.strip():
        return None
    url = urljoin(api_base, link.strip())
    if not url.startswith(api_base):
        raise CxoneApiError(
            ApiResponse(status_code=200, message=f"next page link leaves the API base: {link[:120]!r}"), ACTION
        )
    if url in seen:
        return None
    seen.add(url)
    return url


class StatePages:
    """One listing of ``agents/states``: the rows so far and the page to ask for next.

    A row that is not a JSON object is skipped, on both faces, and logged once per client: the other
    rows (the agent a sensor waits for among them) are still good.

    :param api_base: the Agent API base the listing must stay on.
    :param page_size: rows per page asked for (CXone may send fewer: pages are followed).
    :param notes: where an unusable row is logged once (either face's transport).
    """

    def __init__(self, api_base: str, page_size: int, notes: TransportBase) -> None:
        self.api_base = api_base
        self.notes = notes
        self.rows: list[dict[str, Any]] = []
        self.pages = 0
        self._seen: set[str] = set()
        #: the next request: a path or URL, and its query parameters
        self.next: tuple[str, dict[str, Any] | None] | None = (AGENT_STATES_PATH, {"top": page_size, "skip": 0})

    def take(self, body: object) -> None:
        """Keep one page's rows and find the next page (``next`` is ``None`` after the last one).

        :raises CxoneApiError: a page's link leaves the API base, or more than ``MAX_STATE_PAGES`` pages.
        """
        self.pages += 1
        if not isinstance(body, Mapping):  # 204 No Content: nobody to list
            self.next = None
            return
        for row in body.get("agentStates") or []:
            if isinstance(row, Mapping):
                self.rows.append(dict(row))
            else:
                self.notes.note_ignored("an agents/states row", row, "rows that are not objects are skipped")
        url = next_page_url(body, self.api_base, self._seen)
        if url is not None and self.pages >= MAX_STATE_PAGES:
            raise CxoneApiError(ApiResponse(status_code=200, message=f"more than {MAX_STATE_PAGES} pages"), ACTION)
        self.next = None if url is None else (url, None)
