"""The docs build without a warning, their generated tables say what the code does, the messages the
troubleshooting page quotes are still the code's, and nothing points into the README by heading."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import cxone_provider.exceptions as exceptions
from cxone_provider.client.fields import CONNECTION_FIELDS, docs_table
from cxone_provider.client.policy import RETRY_POLICY

DOCS = REPO / "docs"


def docs_extension() -> Any:
    spec = importlib.util.spec_from_file_location("cxone_docs", DOCS / "_ext" / "cxone_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_rows(table: str) -> list[list[str]]:
    """A Markdown table's body rows, cell by cell."""
    rows = [line.strip().strip("|").split(" | ") for line in table.strip().splitlines()]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    """``make docs``'s build (``-W``: a warning is an error), into a folder of the test's own."""
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    built = (tmp_path / "operators.html").read_text(encoding="utf-8")
    # autodoc found the classes, and the generated tables are in the pages.
    assert 'id="cxone_provider.operators.agent_session.JoinAgentSessionOperator"' in built
    assert "agent-sessions/join" in (tmp_path / "retries.html").read_text(encoding="utf-8")
    assert "allowed_api_domains" in (tmp_path / "connection.html").read_text(encoding="utf-8")


def test_the_make_target_builds_them_the_same_way() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "sphinx-build -W --keep-going -q -b html docs docs/_build/html" in makefile
    assert "/docs/_build/" in (REPO / ".gitignore").read_text(encoding="utf-8")


def test_the_retry_table_has_one_row_per_call_of_the_policy() -> None:
    rows = markdown_rows(docs_extension().retry_policy_table())
    assert [row[1] for row in rows] == [f"`{key}`" for key in RETRY_POLICY]
    assert [row[2] for row in rows] == [when.value for when in RETRY_POLICY.values()]


def test_a_call_the_docs_do_not_describe_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from sphinx.errors import ExtensionError

    extension = docs_extension()
    monkeypatch.delitem(extension.RETRY_CALLS, "join")
    with pytest.raises(ExtensionError, match="join"):
        extension.retry_policy_table()


def test_the_connection_table_has_one_row_per_field() -> None:
    table = docs_extension().connection_fields_table()
    assert table == docs_table()
    rows = markdown_rows(table)
    assert len(rows) == len(CONNECTION_FIELDS)
    for row, field in zip(rows, CONNECTION_FIELDS, strict=True):
        assert f"`{field.name}`" in row[0]
        assert row[3] == field.help


def test_the_conditions_page_keeps_the_generated_table() -> None:
    page = (DOCS / "conditions.md").read_text(encoding="utf-8")
    shown = page.split("<!-- conditions-table: generated from CONDITION_TABLE -->\n")[1].split("\n<!-- /")[0]
    assert shown.strip() == docs_extension().conditions_table().strip()


# --------------------------------------------------------------------------------------- troubleshooting


def provider_source() -> str:
    """The provider's code with adjacent string literals joined, as Python joins them."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "plugins").rglob("*.py")))
    return re.sub(r"\"\s*\n\s*f?\"", "", text)


def quoted_messages() -> list[str]:
    """The first cell of every row of the troubleshooting page's ``message`` tables, in backticks."""
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    messages = []
    for table in re.findall(r"^\| message \|.*?(?=\n\n|\Z)", page, re.M | re.S):
        for row in table.splitlines()[2:]:
            messages += re.findall(r"`([^`]+)`", row.split(" | ")[0])
    return messages


def test_every_message_quoted_is_still_the_codes() -> None:
    source = provider_source()
    messages = quoted_messages()
    assert len(messages) > 40
    for message in messages:
        for part in message.split("…"):
            part = part.strip(" '(")
            if len(part) >= 12:
                assert part in source, f"docs/troubleshooting.md quotes {part!r}, which no code writes any more"


def test_every_exception_class_has_its_place() -> None:
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    classes = [
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == exceptions.__name__
    ]
    assert "CxoneConfigError" in classes
    missing = [name for name in classes if f"`{name}`" not in page]
    assert not missing, f"docs/troubleshooting.md does not explain {missing}"


# --------------------------------------------------------------------------------------- pointers


#: A pointer into the README by heading ("README.md, section …"), or to a table the README no longer holds.
POINTER = re.compile(
    r"README(\.md)?[`'\"]*,? (section|sections|heading)"
    r"|README's (retry|conditions|demo|settings|connection) table"
)


def test_nothing_points_into_the_readme_by_heading() -> None:
    """Comments and docstrings point into the docs by page: the README is a front page, its headings go."""
    pointers = []
    for path in [*(REPO / "plugins").rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "dags").rglob("*.py")]:
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if POINTER.search(line):
                pointers.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not pointers, "point into docs/ instead:\n" + "\n".join(pointers)
