"""docs/endpoints.md's table as data: each row's endpoint (method and path) and the tests it names.

A support module, not a test module: ``test_endpoint_table.py`` holds the table to the published
contract and to the tests that exist, and ``test_sdk_contract.py`` holds it to every call NICE's SDK made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
TABLE: Final = REPO / "docs" / "endpoints.md"
# Agent API rows are written relative to {api_endpoint}/inContactAPI/services/{version}/.
_API_PREFIX: Final = "/inContactAPI/services/v33.0/"
_API_PATTERN: Final = r"/(?i:incontactapi)/services/[vV]\d+\.0/"
_CALL: Final = re.compile(r"`(GET|POST|PUT|DELETE) ([^`\s]+)`")
_SIBLING: Final = re.compile(r"`(/[\w-]+)`")


@dataclass(frozen=True)
class Row:
    """One endpoint of the table (a row naming several, ``coach``, ``/barge``…, gives one each)."""

    method: str
    #: the path as written, ``{name}`` for a path parameter, without the query
    path: str
    #: the test column's cell
    tests: str

    def _absolute(self, api: str) -> str:
        return self.path if self.path.startswith("/") else api + self.path

    def sample(self) -> str:
        """A concrete path of the row, its parameters filled in (``x1``), on API version v33.0."""
        return re.sub(r"\{[^}]+\}", "x1", self._absolute(_API_PREFIX))

    def matches(self, method: str, path: str) -> bool:
        """Whether a request's method and path are this row's endpoint (any version, any case of the prefix)."""
        escaped = re.escape(self._absolute("\0")).replace(re.escape("\0"), _API_PATTERN)
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", escaped)
        return method == self.method and re.fullmatch(pattern, path) is not None


def rows() -> list[Row]:
    """The table's endpoints, in its order."""
    found: list[Row] = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        call = _CALL.match(cells[0])
        assert call is not None, f"docs/endpoints.md: a row without `METHOD path`: {line}"
        method, path = call.group(1), call.group(2).split("?")[0]
        found.append(Row(method, path, cells[3]))
        # "`POST agent-sessions/{sessionId}/coach`, `/barge`, `/take-over`": the last segment replaced.
        for sibling in _SIBLING.findall(cells[0][call.end() :].split(" (")[0]):
            found.append(Row(method, path.rsplit("/", 1)[0] + sibling, cells[3]))
    return found
