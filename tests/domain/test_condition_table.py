"""The conditions table is the one list of conditions: everything that lists them reads it.

A seventh condition is one enum member and one row; these tests prove that the UI, the operators'
branch check, the demo and ``docs/conditions.md`` then show it with no change of their own. The
rendered pages are checked against the table in ``tests/ui/test_ui.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys

import pytest
from conftest import REPO
from jinja2 import Environment, FileSystemLoader

from cxone_provider.domain.conditions import CONDITION_TABLE, ConditionRow, JoinCondition, in_display_order, row_of
from cxone_provider.exceptions import BranchConfigError
from cxone_provider.operators.agent_session import JoinAgentSessionOperator, normalise_branches
from cxone_provider.ui import data

TEMPLATES = REPO / "plugins" / "cxone_provider" / "ui" / "templates"


def conditions_markdown() -> str:
    """The table as docs/conditions.md shows it."""
    lines = ["| condition | what it means | UI colour |", "|---|---|---|"]
    lines += [f"| `{r.studio_name}` | {r.description} | `{r.colour}` |" for r in in_display_order(CONDITION_TABLE)]
    return "\n".join(lines)


def test_one_row_per_condition_each_with_its_own_place_and_colour():
    assert [row.condition for row in CONDITION_TABLE] == list(JoinCondition)
    assert sorted(row.display_order for row in CONDITION_TABLE) == list(range(len(CONDITION_TABLE)))
    assert len({row.colour for row in CONDITION_TABLE}) == len(CONDITION_TABLE)
    for row in CONDITION_TABLE:
        assert row.studio_name == row.condition.value
        assert re.fullmatch(r"#[0-9a-f]{6}", row.colour), row
        assert row.description.strip(), row
        assert row_of(row.condition) is row


def test_the_ui_lists_every_row_in_display_order_with_its_colour():
    assert tuple(row.studio_name for row in in_display_order(CONDITION_TABLE)) == data.CONDITIONS
    assert {row.studio_name: row.colour for row in CONDITION_TABLE} == data.CONDITION_COLOURS


def test_the_ui_templates_show_a_seventh_condition_they_were_never_told_about():
    seventh = dataclasses.replace(row_of(JoinCondition.DEFAULT), colour="#00ffaa", display_order=6)
    rows = [*in_display_order(CONDITION_TABLE), seventh]
    names = [*data.CONDITIONS, "SeventhCondition"]
    colours = {**data.CONDITION_COLOURS, "SeventhCondition": seventh.colour}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    env.globals.update(conditions=names, colours=colours)
    env.filters.update(dict.fromkeys(("q", "when", "seconds", "wrap_words"), str))  # other macros' filters
    legend = env.from_string('{% from "_macros.html" import legend %}{{ legend() }}').render()
    assert re.findall(r'background: (#\w+)"></span>(\w+)</li>', legend) == [
        *[(row.colour, row.studio_name) for row in rows[:-1]],
        ("#00ffaa", "SeventhCondition"),
    ]


def test_the_operator_offers_every_condition_of_the_table_for_a_branch():
    with pytest.raises(BranchConfigError) as raised:
        normalise_branches({"NoSuchCondition": "t"})
    offered = str(raised.value).split("expected: ")[1].split(", ")
    assert offered == [row.studio_name for row in CONDITION_TABLE]
    assert normalise_branches({row.studio_name: "t" for row in CONDITION_TABLE}).keys() == set(JoinCondition)


def test_the_operator_docstring_names_every_condition():
    for row in CONDITION_TABLE:
        assert f"``{row.studio_name}``" in (JoinAgentSessionOperator.__doc__ or "")


def test_the_demo_has_a_scenario_for_every_row():
    spec = importlib.util.spec_from_file_location("cxone_demo", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules["cxone_demo"] = demo  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(demo)
        assert {s.condition for s in demo.checked_scenarios()} == set(JoinCondition)
    finally:
        del sys.modules["cxone_demo"]


def test_docs_show_the_table_as_it_is():
    text = (REPO / "docs" / "conditions.md").read_text()
    shown = text.split("<!-- conditions-table: generated from CONDITION_TABLE -->\n")[1].split("\n<!-- /")[0]
    assert shown == conditions_markdown(), "docs/conditions.md: replace the table with:\n" + conditions_markdown()


def test_a_row_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONDITION_TABLE[0].colour = "#000000"  # type: ignore[misc]
    assert isinstance(CONDITION_TABLE, tuple)
    assert all(isinstance(row, ConditionRow) for row in CONDITION_TABLE)
