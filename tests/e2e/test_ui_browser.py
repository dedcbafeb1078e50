"""The CXone pages in a real Airflow, used through headless Chromium as a person would.

One LocalExecutor deployment (api-server, scheduler, dag-processor on SQLite; the plugin loaded through
its ``airflow.plugins`` entry point, since the package is installed in the venv) runs the QA-sweep
example DAG against the sandbox twice, the second time with faults so that several result conditions
occur, and the supervised-session DAG twice (Success, InvalidAgentSession). Then Debian's ``chromium``,
driven by Playwright with ``executable_path`` (no browser download), logs in on Airflow's login page,
opens the "CXone" nav entry, checks that the chart's bars and the table's counts equal the sweeps'
XComs read through the REST API, opens a run, searches a session, and follows the "CXone outcome"
extra link from a task instance page.

It also opens Airflow's "Add Connection" form, picks the NICE CXone type and finds every field the provider
declares. Screenshots go to the test's output directory (printed at the end); with ``CXONE_UI_SCREENSHOTS=<dir>``
they are also copied there: ``CXONE_UI_SCREENSHOTS=docs make test PYTEST_ARGS="tests/e2e/test_ui_browser.py"``
refreshes the docs' pictures (docs/ui.md, docs/connection.md).

This file is not ``tests/e2e/test_ui.py``: ``tests/ui/test_ui.py`` exists, and pytest's default import mode
cannot collect two test modules of the same name from folders without ``__init__.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import airflow_stack
import pytest
from airflow_stack import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DAGS_FOLDER,
    AirflowClient,
    Processes,
    free_port,
    report,
    start_airflow,
    task_log_tails,
    unavailable,
)

from cxone_provider.client.fields import CONNECTION_FIELDS
from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.get_provider_info import get_provider_info
from cxone_provider.links import LINK_NAME
from cxone_provider.testing import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SWEEP = "cxone_qa_sweep"
SUPERVISED = "cxone_supervised_session"
RUN_TIMEOUT = 180.0
VIEWPORT = {"width": 1440, "height": 900}
# The sandbox's join answers 202 {} to this share of joins, which the sweep reports as Default (a
# 2xx that names no session proves nothing); seeded, so the split is the same every run.
FAULTY_JOINS = {"rate_no_session_id": 0.3, "path_filter": "agent-sessions/join", "random_seed": 11}
LIVE_SESSIONS = 24
#: The screenshots docs/ui.md shows, copied to ``$CXONE_UI_SCREENSHOTS`` (the others stay in the output dir).
README_SCREENSHOTS = ("cxone-sweeps", "cxone-run", "cxone-joins", "airflow-join_agent_session-extra-link")
#: The connection form's pictures docs/connection.md shows, copied with them.
CONNECTION_SCREENSHOTS = ("airflow-cxone-connection-form", "airflow-cxone-connection-extras")
#: Tall enough for the dialog with every extra field open: an element's screenshot is cut at the viewport.
FORM_VIEWPORT = {"width": 1200, "height": 1900}


@dataclass
class Stack:
    home: Path
    base_url: str
    api: AirflowClient
    sandbox: SandboxServer
    shots: Path
    runs: dict[str, str]

    def wait(self, dag_id: str, run_id: str) -> None:
        state = self.api.wait_for_run(dag_id, run_id, RUN_TIMEOUT)
        if state != "success":
            failed = [t["task_id"] for t in self.api.task_instances(dag_id, run_id) if t["state"] == "failed"]
            logs = "".join(task_log_tails(self.home, dag_id, run_id, t) for t in failed)
            raise AssertionError(f"{dag_id} run {run_id} ended {state}; failed: {failed}\n{logs}")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("the CXone UI browser test needs Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the CXone UI browser test needs playwright (pip install -e '.[test]')")
    return path


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Stack]:
    """Airflow with the plugin, the sandbox, and the runs the pages show, all ended."""
    workdir = tmp_path_factory.mktemp("e2e-ui")
    home = workdir / "airflow-home"
    home.mkdir()
    processes = Processes(workdir)
    failed_before = request.session.testsfailed
    ready = False
    sandbox: SandboxServer | None = None
    try:
        sandbox = SandboxServer(live_sessions=LIVE_SESSIONS).start()
        processes.cleanups.append(sandbox.stop)
        port = free_port()
        dags_folder = workdir / "dags"
        shutil.copytree(DAGS_FOLDER, dags_folder, ignore=shutil.ignore_patterns("__pycache__"))
        env = airflow_stack.airflow_env(
            home,
            port,
            dags_folder=dags_folder,
            database_url=f"sqlite:///{home / 'airflow.db'}",
            connections=dict([sandbox.connection_env("cxone_default")]),
        )
        api = start_airflow(processes, env, port)
        for dag_id in (SWEEP, SUPERVISED):
            api.wait_for_dag(dag_id, f"{dag_id}.py", 120)
            api.unpause(dag_id)
        built = Stack(home, api.base_url, api, sandbox, workdir / "screenshots", {})
        built.shots.mkdir()
        # A healthy sweep of one team, then the whole contact centre with faulty joins.
        built.runs["healthy"] = api.trigger(SWEEP, {"team_ids": [20]})
        built.wait(SWEEP, built.runs["healthy"])
        sandbox.set_faults(**FAULTY_JOINS)
        built.runs["faulty"] = api.trigger(SWEEP, {})
        built.wait(SWEEP, built.runs["faulty"])
        sandbox.set_faults(rate_no_session_id=0.0)
        built.runs["joined"] = api.trigger(SUPERVISED, {})
        built.runs["ended"] = api.trigger(SUPERVISED, {"session_id": "sess-2007"})
        built.wait(SUPERVISED, built.runs["joined"])
        built.wait(SUPERVISED, built.runs["ended"])
        ready = True
        yield built
    finally:
        if not ready or request.session.testsfailed > failed_before:
            report(request, f"\n===== CXone UI e2e: logs of the services (in {workdir}) =====\n{processes.log_tails()}")
        processes.stop_all()


@pytest.fixture(scope="module")
def browser(stack: Stack, chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(stack: Stack, browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A logged-in page: Airflow's own login form, as the admin."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    # Airflow's own login page; test_signed_out_browser_gets_the_login_page_not_data checks the redirect to it.
    page.goto(f"{stack.base_url}/auth/login")
    page.locator("input[name=username]").fill(ADMIN_USER)
    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/" not in url)
    assert any(cookie["name"] == "_token" for cookie in context.cookies())
    yield page
    context.close()
    copy_to = os.environ.get("CXONE_UI_SCREENSHOTS")
    if copy_to:
        target = Path(copy_to)
        target.mkdir(parents=True, exist_ok=True)
        for name in (*README_SCREENSHOTS, *CONNECTION_SCREENSHOTS):
            shot = stack.shots / f"{name}.png"
            if shot.exists():  # a failed test leaves its picture out; the old one stays
                shutil.copy(shot, target / shot.name)
    report(request, f"\nCXone UI screenshots: {stack.shots}" + (f" (copied to {copy_to})" if copy_to else ""))


def shoot(stack: Stack, page: Any, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(stack.shots / f"{name}.png"))


def sweep_counts(stack: Stack, run_id: str) -> dict[str, int]:
    result = stack.api.xcom(SWEEP, run_id, "sweep")
    counts = {c.value: len(result[c.value]) for c in JoinCondition}
    assert counts == {c.value: result["counts"][c.value] for c in JoinCondition}
    return counts


def open_cxone(stack: Stack, page: Any) -> Any:
    """From Airflow's DAG list, click the "CXone" entry of its navigation; the frame the page is shown in."""
    from playwright.sync_api import expect

    page.goto(f"{stack.base_url}/dags")
    entry = page.get_by_role("link", name="CXone").first
    entry.wait_for()
    entry.click()
    # A single-page app changes its URL without a navigation event: poll the URL instead. Once the
    # page has loaded in its frame the address bar follows it, so either URL may be seen first.
    expect(page).to_have_url(re.compile(r"/plugin/cxone(/cxone/sweeps)?$"))
    frame = page.frame_locator("iframe").first
    frame.locator("#sweeps-table").wait_for()
    return frame


def test_the_faulty_sweep_has_several_conditions(stack: Stack) -> None:
    counts = sweep_counts(stack, stack.runs["faulty"])
    assert counts["Success"] > 0
    assert counts["Default"] > 0
    assert sum(counts.values()) >= LIVE_SESSIONS


def test_sweeps_page_in_the_nav_shows_the_xcom_counts(stack: Stack, page: Any) -> None:
    frame = open_cxone(stack, page)
    for name in ("healthy", "faulty"):
        run_id = stack.runs[name]
        expected = sweep_counts(stack, run_id)
        bars = frame.locator(f'.chart-row[data-run-id="{run_id}"] rect.segment')
        shown = {
            bars.nth(i).get_attribute("data-condition"): int(bars.nth(i).get_attribute("data-count"))
            for i in range(bars.count())
        }
        assert shown == {c: n for c, n in expected.items() if n}, name
        cells = frame.locator(f'#sweeps-table tr[data-run-id="{run_id}"] td[data-condition]')
        table = {
            cells.nth(i).get_attribute("data-condition"): int(cells.nth(i).inner_text()) for i in range(cells.count())
        }
        assert table == expected, name
    shoot(stack, page, "cxone-sweeps")


def test_run_page_and_search(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    run_id = stack.runs["faulty"]
    result = stack.api.xcom(SWEEP, run_id, "sweep")
    frame = open_cxone(stack, page)
    frame.locator(f'#sweeps-table tr[data-run-id="{run_id}"] a').first.click()
    frame.locator("#counts").wait_for()
    for condition, ids in ((c.value, result[c.value]) for c in JoinCondition):
        badge = frame.locator(f'#counts [data-condition="{condition}"] b')
        assert int(badge.inner_text()) == len(ids), condition
    shoot(stack, page, "cxone-run")

    # The sweep's lists hold agent ids (each agent joined as itself): a user searches for an agent.
    wanted = str(result["Default"][0])
    frame.locator("input[name=q]").fill(wanted)
    frame.locator("form.search button[type=submit]").click()
    frame.locator("#search-result").wait_for()
    rows = frame.locator("tr[data-agent-id]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-agent-id") == wanted
    assert frame.locator(f'#condition-Default tr[data-agent-id="{wanted}"]').count() == 1
    shoot(stack, page, "cxone-run-search")

    # Back to Airflow: the link leaves the frame for the task instance's own page.
    frame.locator("#task-instance-link").click()
    expect(page).to_have_url(re.compile(rf"/dags/{SWEEP}/runs/{re.escape(quote(run_id, safe=''))}/tasks/sweep$"))
    expect(page.locator("iframe")).to_have_count(0)


def test_joins_page(stack: Stack, page: Any) -> None:
    frame = open_cxone(stack, page)
    frame.get_by_role("link", name="Joins").click()
    table = frame.locator("#joins-table")
    table.wait_for()
    for name, condition, branch in (
        ("joined", "Success", "start_monitoring"),
        ("ended", "InvalidAgentSession", "report_invalid_session"),
    ):
        row = table.locator(f'tr[data-run-id="{stack.runs[name]}"]')
        assert row.get_attribute("data-condition") == condition
        assert branch in row.inner_text()
        assert row.locator("td").nth(7).inner_text() == "1001"  # the SecurityUser set_security_user returned
    shoot(stack, page, "cxone-joins")


def follow_extra_link(stack: Stack, page: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    """Open the task instance in Airflow's UI, click its "CXone outcome" link; the page it opened."""
    page.goto(f"{stack.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
    # Airflow lists a task instance's extra links on its "Details" tab.
    page.get_by_role("link", name="Details", exact=True).click()
    link = page.get_by_role("link", name=LINK_NAME)
    link.wait_for()
    page.screenshot(path=str(stack.shots / f"airflow-{task_id}-extra-link.png"))
    # A link to the api-server's own origin opens in the same tab (the UI sets target=_self).
    link.click()
    page.wait_for_url("**/cxone/**")
    return page


def test_join_extra_link_opens_its_page(stack: Stack, page: Any) -> None:
    run_id = stack.runs["ended"]
    target = follow_extra_link(stack, page, SUPERVISED, run_id, "join_agent_session")
    assert f"/cxone/joins/{SUPERVISED}/" in target.url
    row = target.locator("#joins-table tr[data-run-id]")
    assert row.count() == 1
    assert row.get_attribute("data-condition") == "InvalidAgentSession"
    shoot(stack, target, "cxone-join")


def test_sweep_extra_link_opens_its_run_page(stack: Stack, page: Any) -> None:
    run_id = stack.runs["faulty"]
    target = follow_extra_link(stack, page, SWEEP, run_id, "sweep")
    assert f"/cxone/sweeps/{SWEEP}/" in target.url
    target.locator("#counts").wait_for()


def test_signed_out_browser_gets_the_login_page_not_data(stack: Stack, browser: Any) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        anonymous = context.new_page()
        anonymous.goto(f"{stack.base_url}/cxone/sweeps/{SWEEP}/{quote(stack.runs['faulty'], safe='')}/sweep")
        anonymous.wait_for_url("**/auth/login**")
        assert "sess-" not in anonymous.content()
        response = context.request.get(f"{stack.base_url}/cxone/sweeps")
        assert response.status == 401
        assert "sess-" not in response.text()
    finally:
        context.close()


def test_connection_form_shows_every_cxone_field(stack: Stack, page: Any) -> None:
    """Airflow's own "Add Connection" form with the NICE CXone type: each field the provider declares
    (``cxone_provider/client/fields.py``), with its label and help, Airflow's own fields relabelled."""
    from playwright.sync_api import expect

    (kind,) = get_provider_info()["connection-types"]
    form = page.context.new_page()  # the admin's session, a taller window
    form.set_viewport_size(FORM_VIEWPORT)
    try:
        form.goto(f"{stack.base_url}/connections")
        form.get_by_role("button", name="Add Connection").click()
        dialog = form.get_by_role("dialog")
        dialog.locator("input[name=connection_id]").fill("cxone_default")
        chooser = dialog.get_by_role("combobox")
        chooser.click()
        chooser.fill(kind["hook-name"])
        form.get_by_role("option", name=kind["hook-name"], exact=True).click()
        for field in (f for f in CONNECTION_FIELDS if not f.extra):
            expect(dialog.get_by_text(field.label, exact=True)).to_be_visible()
        expect(dialog.get_by_text("Port", exact=True)).to_have_count(0)  # hidden: CXone has none
        shoot_element(stack, form, dialog, "airflow-cxone-connection-form")
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        for field in (f for f in CONNECTION_FIELDS if f.extra):
            expect(dialog.get_by_text(field.label, exact=True)).to_be_visible()
            expect(dialog.get_by_text(field.help, exact=True)).to_be_visible()
        shoot_element(stack, form, dialog, "airflow-cxone-connection-extras")
    finally:
        form.close()


def shoot_element(stack: Stack, page: Any, element: Any, name: str) -> None:
    page.wait_for_load_state("networkidle")
    element.screenshot(path=str(stack.shots / f"{name}.png"))
