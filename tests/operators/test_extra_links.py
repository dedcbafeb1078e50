"""Both operators that have a page in the CXone UI declare the extra link that opens it: a lost link
would otherwise only show as a missing button in a browser."""

from __future__ import annotations

from cxone_provider.links import LINK_NAME, JoinOutcomeLink, SweepOutcomeLink
from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator
from cxone_provider.plugin import CxonePlugin


def test_the_sweep_operator_declares_its_extra_link() -> None:
    links = JoinAgentSessionsOperator.operator_extra_links
    assert [type(link) for link in links] == [SweepOutcomeLink]
    assert links[0].name == LINK_NAME


def test_the_join_operator_declares_its_extra_link() -> None:
    links = JoinAgentSessionOperator.operator_extra_links
    assert [type(link) for link in links] == [JoinOutcomeLink]
    assert links[0].name == LINK_NAME


def test_the_plugin_registers_both_links() -> None:
    assert {type(link) for link in CxonePlugin.operator_extra_links} == {SweepOutcomeLink, JoinOutcomeLink}
