"""docs/endpoints.md's table holds: a row for every call of the published contract, and only tests
(and steps of NICE's SDK contract) that exist. ``test_sdk_contract.py`` checks that it has a row for
every call NICE's SDK made.
"""

from __future__ import annotations

import re

from endpoint_table import REPO, rows
from published_contract import PUBLISHED_CALLS

DRIVER = REPO / "tests" / "sandbox" / "sdk_contract" / "driver.mjs"


def test_every_published_call_has_a_row() -> None:
    table = rows()
    missing = [call.name for call in PUBLISHED_CALLS if not any(call.matches(r.method, r.sample()) for r in table)]
    assert missing == [], f"docs/endpoints.md has no row for: {', '.join(missing)}"


def test_every_test_and_sdk_step_the_table_names_exists() -> None:
    test_files = {path.name for path in (REPO / "tests").rglob("test_*.py")}
    steps = set(re.findall(r"\bstep\('([\w-]+)'", DRIVER.read_text(encoding="utf-8")))
    named_files: list[str] = []
    named_steps: list[str] = []
    for row in rows():
        named_files += re.findall(r"`(test_\w+\.py)`", row.tests)
        for listed in re.findall(r"`test_sdk_contract\.py` \(([^)]*)\)", row.tests):
            named_steps += [item.split(":")[0].strip() for item in listed.split(", ")]
    assert named_steps, "no row names a step of the SDK contract"
    assert sorted(set(named_files) - test_files) == []
    assert sorted(set(named_steps) - steps) == []
