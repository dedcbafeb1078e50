"""The docs' tables that come from the code, generated when the docs are built.

``{cxone-table} NAME`` writes one Markdown table in place, read from the code that the provider runs:
the connection's fields (``cxone_provider.client.fields``), the conditions (``CONDITION_TABLE``), the
retry policy (``RETRY_POLICY``) and the sandbox's settings (``cxone_sandbox.cli.settings_table``). So a
page cannot show a field, a condition or a retry rule that the code does not have, nor miss one.
``tests/system/test_docs.py`` checks these generators against the code and builds the docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.application import Sphinx

#: What each key of ``RETRY_POLICY`` sends, and why it may (or may not) be sent again. A key without a
#: row here fails the build: a new call needs a line in the docs.
RETRY_CALLS: dict[str, tuple[str, str]] = {
    "token": ("token: `POST /auth/token`", "a second token is harmless"),
    "discovery": ("discovery: `GET /.well-known/cxone-configuration`", "a read"),
    "get_agent": ("`GET agents/{id}`", "a read"),
    "agent_states": ("`GET agents/states` (every page)", "a read"),
    "join": ("join: `POST agent-sessions/join`", "joining the same session again answers the same"),
    "start_session": ("start: `POST agent-sessions`", "a second start would end the first session"),
    "end_session": ("end: `DELETE agent-sessions/{id}`", "never after the request may have reached CXone"),
    "supervise": (
        "monitor, coach, barge, take-over: `POST agent-sessions/{id}/…`",
        "never after the request may have reached CXone",
    ),
    "get_next_event": (
        "`GET agent-sessions/{id}/get-next-event`",
        "an answered poll moved the session to a new id: a repeat would use a spent one",
    ),
}


def retry_policy_table() -> str:
    """``RETRY_POLICY`` as a Markdown table, one row per call, in the table's order."""
    from cxone_provider.client.policy import RETRY_POLICY

    missing = sorted(set(RETRY_POLICY) - set(RETRY_CALLS))
    if missing:
        raise ExtensionError(f"RETRY_POLICY has call(s) the docs do not describe: {missing}; add them to RETRY_CALLS")
    lines = ["| call | `RETRY_POLICY` key | retried on | why |", "|---|---|---|---|"]
    for key, when in RETRY_POLICY.items():
        call, why = RETRY_CALLS[key]
        lines.append(f"| {call} | `{key}` | {when.value} | {why} |")
    return "\n".join(lines) + "\n"


def conditions_table() -> str:
    """``CONDITION_TABLE`` as a Markdown table, in the order the UI shows the conditions."""
    from cxone_provider.domain.conditions import CONDITION_TABLE, in_display_order

    lines = ["| condition | what it means | UI colour |", "|---|---|---|"]
    lines += [f"| `{r.studio_name}` | {r.description} | `{r.colour}` |" for r in in_display_order(CONDITION_TABLE)]
    return "\n".join(lines) + "\n"


def connection_fields_table() -> str:
    """The ``cxone`` connection's fields, as the form and the settings read them."""
    from cxone_provider.client.fields import docs_table

    return docs_table()


def sandbox_settings_table() -> str:
    """Every sandbox setting: its flag, type, default, range and help."""
    from cxone_sandbox.cli import settings_table

    return settings_table()


TABLES: dict[str, Callable[[], str]] = {
    "connection-fields": connection_fields_table,
    "conditions": conditions_table,
    "retry-policy": retry_policy_table,
    "sandbox-settings": sandbox_settings_table,
}


class CxoneTable(SphinxDirective):
    """``{cxone-table} NAME``: the generated table NAME, parsed as the page's own Markdown."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in TABLES:
            raise self.error(f"unknown cxone-table {name!r}; expected one of: {', '.join(TABLES)}")
        container = nodes.container(classes=["cxone-table"])
        self.state.nested_parse(StringList(TABLES[name]().splitlines(), source=f"cxone-table {name}"), 0, container)
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cxone-table", CxoneTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
