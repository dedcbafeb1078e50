"""The README shows nothing that is not checked: its commands exist, its example DAG runs as printed,
its tables are what the code and ``make demo`` really give, and its links lead somewhere."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DAGS_FOLDER, REPO, fresh_dag
from packaging.requirements import Requirement
from test_docs import docs_extension

README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
SETUP = configparser.ConfigParser()
SETUP.read(REPO / "setup.cfg")

#: The README's example DAG goes into the DAGs folder under this name: dag.test() runs DAGs from there.
FIRST_DAG_MODULE = "cxone_readme_first_dag"


def between(name: str, text: str = TEXT) -> str:
    """What the README holds between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in text, f"README.md lost its {start} marker"
    assert end in text, f"README.md lost its {end} marker"
    return text.split(start, 1)[1].split(end, 1)[0]


def fenced(block: str) -> str:
    """The code of the one fenced block in ``block``."""
    match = re.search(r"```\w*\n(.*?)```", block, re.S)
    assert match, "no fenced code block between the markers"
    return match.group(1)


def table_cells(block: str) -> list[list[str]]:
    """A console table's rows (header and dashes left out), cut at runs of two or more spaces."""
    lines = [line for line in block.strip("\n").splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


def test_the_readme_stays_short() -> None:
    assert len(TEXT.splitlines()) <= 250, "README.md is the front page: move detail into docs/"


# --------------------------------------------------------------------------------------- commands


def shown_commands() -> list[str]:
    """Every command line of the README's ``bash`` blocks, comments cut off."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def test_every_make_command_shown_is_a_target() -> None:
    named = {m.group(1) for m in re.finditer(r"`make ([a-z][\w-]*)", TEXT)}
    named |= {m.group(1) for command in shown_commands() for m in re.finditer(r"(?:^|&& )make ([a-z][\w-]*)", command)}
    assert {"demo", "test", "test-deps", "docs", "dist"} <= named
    targets = set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, re.M))
    assert named <= targets, f"README.md names make targets the Makefile lacks: {sorted(named - targets)}"
    # `make test E2E=0`, the opt-out, is a variable the test target reads.
    assert "make test E2E=0" in TEXT
    assert "E2E" in MAKEFILE.split("\ntest:", 1)[1].split("\n\n", 1)[0]


def test_every_program_and_extra_shown_exists() -> None:
    scripts = SETUP["options.entry_points"]["console_scripts"]
    for program in re.findall(r"`(cxone-[a-z]+)", TEXT):
        assert f"{program} =" in scripts, f"{program} is no console script"
    extras = set(SETUP["options.extras_require"])
    for extra in re.findall(r'"\.\[([\w,]+)\]"', TEXT):
        assert set(extra.split(",")) <= extras, f"README.md names an extra setup.cfg lacks: {extra}"
    for command in shown_commands():
        if command.startswith("cp -r "):
            for source in command.split()[2:-1]:
                assert (REPO / source).is_dir(), f"{command}: {source} is not a folder of this repository"
        if "git+" in command:
            requirement = Requirement(command.split('"')[1])
            assert requirement.name == SETUP["metadata"]["name"]
            assert requirement.extras <= extras, command
            # The repository's own clone URL stands as $REPO_URL: the README cannot know where it is hosted.
            assert requirement.url == "git+$REPO_URL", command
        if "dist/" in command:
            # make dist writes the wheel under the name the README installs.
            wheel = command.split("pip install ", 1)[1]
            assert wheel.startswith("dist/" + SETUP["metadata"]["name"].replace("-", "_") + "-")


def test_the_readme_does_not_claim_the_package_index() -> None:
    """Not published: the README must not tell a newcomer to install it from the index by name."""
    assert not re.search(r"pip install [\"']?airflow-provider-cxone[\"']?\s*(#|$)", TEXT, re.M)
    assert "not on the Python Package Index yet" in TEXT


def test_every_link_leads_to_a_file_and_heading() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", TEXT):
        if "://" not in target:
            assert (REPO / target).exists(), f"README.md links to {target}, which does not exist"
    # Each link to a heading names one that the page has (MyST's anchors: lower case, dashes).
    for page, anchor in re.findall(r"\]\((docs/[\w-]+\.md)#([\w-]+)\)", TEXT):
        headings = re.findall(r"^#{1,6} (.+)$", (REPO / page).read_text(encoding="utf-8"), re.M)
        slugs = {re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}
        assert anchor in slugs, f"README.md links to {page}#{anchor}: no such heading"


# --------------------------------------------------------------------------------------- tables


def test_the_conditions_table_is_the_codes() -> None:
    assert between("conditions-table").strip("\n") == docs_extension().conditions_table().strip("\n"), (
        "README.md's conditions table differs from CONDITION_TABLE: paste the output of "
        "docs/_ext/cxone_docs.py conditions_table()"
    )


def test_the_demo_table_is_make_demos_real_output() -> None:
    """``make demo`` (``scripts/demo.py``) prints the README's table: every cell but the run's seconds,
    which differ from run to run and are only checked to be a number."""
    assert "\ndemo: install\n\t$(PY) scripts/demo.py\n" in MAKEFILE, "make demo no longer runs scripts/demo.py"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    header = next(line for line in out.splitlines() if line.startswith("scenario "))
    printed = out[out.index(header) :].split("\n\n", 1)[0]
    shown = fenced(between("demo-table"))
    assert re.split(r"\s{2,}", shown.splitlines()[0].strip()) == re.split(r"\s{2,}", header.strip())
    real, readme = table_cells(printed), table_cells(shown)
    assert [row[:-1] for row in readme] == [row[:-1] for row in real], "README.md: paste make demo's table again"
    for row in readme + real:
        float(row[-1])


# --------------------------------------------------------------------------------------- the example DAG


@pytest.fixture
def first_dag() -> Any:
    """The README's example DAG, exactly as printed, from the DAGs folder."""
    code = fenced(between("example-dag"))
    compile(code, "README.md", "exec")
    (DAGS_FOLDER / f"{FIRST_DAG_MODULE}.py").write_text(code, encoding="utf-8")
    return lambda: fresh_dag(FIRST_DAG_MODULE, "cxone_first_dag")


# [START howto_test_a_dag]
def test_the_first_dag_joins_the_supervisors_session(airflow_db, cxone_sandbox, first_dag):
    run = first_dag().test()  # cxone_sandbox: the sandbox reset, AIRFLOW_CONN_CXONE_DEFAULT set

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["start_monitoring"] == "success"
    assert states["report_invalid_session"] == states["retry_later"] == "skipped"
    assert cxone_sandbox.state()["joins"] == [["sess-1001", 1001]]
    # [END howto_test_a_dag]


def test_the_first_dag_routes_an_ended_session_to_its_branch(airflow_db, cxone_sandbox, first_dag):
    run = first_dag().test(run_conf={"session_id": "sess-2007"})

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["report_invalid_session"] == "success"
    assert states["start_monitoring"] == states["retry_later"] == "skipped"
    assert run.state == "success"


def test_the_first_dag_is_formatted_as_the_project_formats_code(tmp_path: Path) -> None:
    example = tmp_path / "example.py"
    example.write_text(fenced(between("example-dag")), encoding="utf-8")
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check", "--no-cache", "--select", "E,F,W,I"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [str(ruff), *args, str(example)], capture_output=True, text=True, cwd=REPO, check=False, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
