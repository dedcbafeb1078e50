"""Each sandbox setting is declared once; the command line, the JSON checks, SandboxServer's arguments
and the docs' table (docs/sandbox.md) are derived from the declaration, so they cannot drift apart."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from cxone_provider.testing import SandboxServer
from cxone_sandbox.cli import build_parser, faults_from_args, settings_table
from cxone_sandbox.declare import Spec, specs
from cxone_sandbox.faults import FAILURES, Faults
from cxone_sandbox.settings import Settings

SANDBOX_PAGE = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
TABLE_START = "<!-- sandbox-settings:start -->"
TABLE_END = "<!-- sandbox-settings:end -->"


def test_docs_table_is_the_generated_one() -> None:
    """docs/sandbox.md holds, between its markers, exactly what ``settings_table()`` generates."""
    text = SANDBOX_PAGE.read_text(encoding="utf-8")
    assert TABLE_START in text, (
        f"docs/sandbox.md needs the sandbox settings table between {TABLE_START} and {TABLE_END}: paste the output "
        "of python -c 'from cxone_sandbox.cli import settings_table; print(settings_table(), end=\"\")'"
    )
    assert TABLE_END in text.split(TABLE_START, 1)[1], f"{TABLE_END} must follow {TABLE_START}"
    held = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert held.strip("\n") == settings_table().strip("\n"), "regenerate the table with settings_table()"


def test_the_table_has_a_row_for_every_setting() -> None:
    rows = re.findall(r"^\| `(\w+)` \|", settings_table(), re.M)
    assert rows == [f.name for cls in (Faults, Settings) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls", [Faults, Settings])
def test_every_field_is_declared_with_help(cls: type) -> None:
    for spec in specs(cls):
        assert spec.help, spec.name
        assert not spec.help.endswith("."), spec.name
        assert spec.flag.startswith("--"), spec.name


@pytest.mark.parametrize(
    ("flags", "knobs"),
    [
        (["--rate-429", "0.2"], {"rate_429_retry_after": 0.2}),
        (["--rate-429-retry-after", "0.2"], {"rate_429_retry_after": 0.2}),
        (["--no-states-session-id"], {"states_session_id": False}),
        (["--states-session-id"], {"states_session_id": True}),
        (["--no-apply-to-auth"], {"apply_to_auth": False}),
        (["--apply-to-auth"], {"apply_to_auth": True}),
        (["--random-seed", "7"], {"random_seed": 7}),
        (["--path-filter=-join"], {"path_filter": "-join"}),
        (["--latency-ms", "5", "--token-lifetime-s", "30"], {"latency_ms": 5.0, "token_lifetime_s": 30}),
        (["--join-mode", "spec"], {"join_mode": "spec"}),
    ],
)
def test_every_existing_flag_still_works(flags: list[str], knobs: dict[str, object]) -> None:
    assert faults_from_args(build_parser().parse_args(flags)) == Faults(**knobs)  # type: ignore[arg-type]


def test_server_command_round_trips_every_fault() -> None:
    """What SandboxServer puts on the command line parses back to the same faults."""

    def other_than_default(spec: Spec) -> object:
        if spec.kind == "choice":
            return next(c for c in spec.choices if c != spec.default)
        return {"float": 0.05, "int": 3, "bool": spec.default is not True, "str": "-x"}[spec.kind]

    faults = {spec.name: other_than_default(spec) for spec in specs(Faults)}
    command = SandboxServer(faults=faults).command()
    args = command[command.index("0") + 1 :]  # after --port 0
    assert faults_from_args(build_parser().parse_args(args)) == Faults.from_mapping(faults)


@pytest.mark.parametrize(
    ("knobs", "words"),
    [
        ({"slow_rate": 1.5}, "slow_rate must be between 0 and 1"),
        ({"retry_after_s": -1}, "retry_after_s must not be negative"),
        ({"token_lifetime_s": 0}, "token_lifetime_s must be positive"),
        ({"random_seed": 1.5}, "random_seed must be a number"),
        ({"apply_to_auth": "maybe"}, "apply_to_auth must be a boolean"),
        ({"rate_503": 0.5, "rate_401": 0.6}, "add up to 1.1, more than 1"),
    ],
)
def test_ranges_come_from_the_declaration(knobs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Faults.from_mapping(knobs)


def test_the_shared_die_keeps_its_order() -> None:
    """Seeded runs stay reproducible: the failures hold the places they always had on the die."""
    assert [kind for _, kind in FAILURES] == [
        "drop",
        "503",
        "429_retry_after",
        "429",
        "html",
        "non_json",
        "truncated_json",
        "no_session_id",
        "huge_body",
        "slow_drip",
        "401",
    ]


def test_the_sandbox_and_the_hook_know_the_same_supervise_actions() -> None:
    """Each keeps its own copy (the sandbox imports nothing of the hook): they must agree."""
    from cxone_provider.hooks.cxone import SUPERVISE_ACTIONS as HOOK_ACTIONS
    from cxone_sandbox.state import SUPERVISE_ACTIONS

    assert SUPERVISE_ACTIONS == HOOK_ACTIONS


def test_the_sandbox_imports_nothing_of_the_hook() -> None:
    """Nothing of the provider at all: the sandbox imitates CXone's contract, not the client's idea of it."""
    sandbox = Path(__file__).resolve().parents[2] / "plugins" / "cxone_sandbox"
    for module in sorted(sandbox.glob("*.py")):
        imports = re.findall(r"^\s*(?:from|import) (cxone_provider\b[\w.]*)", module.read_text(), re.M)
        assert not imports, f"{module.name} imports {imports}"
