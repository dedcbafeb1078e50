"""The CXone UI pages, served by Airflow's own api-server app, over sweeps and joins that really ran.

The data: ``dag.test()`` runs of the QA-sweep example DAG and of the sweep and join DAGs below against
the sandbox, so every XCom the pages read was written by the operators themselves. The app: Airflow's
``create_app()``, which mounts this plugin's app at ``/cxone`` as the api-server does, with the simple
auth manager's users. The simple auth manager cannot restrict one DAG (its roles are all-or-nothing),
so a subclass of it, :class:`HidesOneDagAuthManager`, refuses :data:`HIDDEN_DAG` to the user
``restricted`` through the auth manager interface (``is_authorized_dag``) that the pages call.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from urllib.parse import quote

import pytest
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.models.xcom import XComModel
from conftest import DAGS_FOLDER, fresh_dag
from markupsafe import escape

from cxone_provider.compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_VERSION
from cxone_provider.domain.conditions import CONDITION_TABLE, in_display_order
from cxone_provider.links import LINK_NAME, JoinOutcomeLink, SweepOutcomeLink
from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer
from cxone_provider.ui.data import CONDITION_COLOURS, CONDITIONS, counts_of, sessions_of

HIDDEN_DAG = "cxone_ui_hidden_sweep"
SWEEP_DAG = "cxone_ui_sweep"
SLIM_REPORT = "/reports/cxone_ui_sweep.jsonl"
LARGE = 1500
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2}

# Sweeps with known answers from the default seed: 2001-2006 live, 2007-2008 ended, 9999 unknown,
# "bad id" refused before any request, 1002's key, which may not impersonate. MARKUP is an id the pages
# must show as text, never run.
MARKUP = "<img src=x onerror=alert(1)>"
UI_DAGS = textwrap.dedent(
    f'''
    """Sweeps for tests/ui/test_ui.py (written by the test into the session's DAGs folder)."""
    import pendulum
    from airflow.sdk import DAG

    from cxone_provider.operators.security_user import SetSecurityUserOperator
    from cxone_provider.operators.sweep import JoinAgentSessionsOperator

    START = pendulum.datetime(2026, 1, 1, tz="UTC")
    FAST = {FAST!r}
    MARKUP = {MARKUP!r}

    with DAG("{SWEEP_DAG}", schedule=None, start_date=START, catchup=False) as sweep_dag:
        qa = SetSecurityUserOperator(task_id="set_security_user", agent_id=1001)
        qa >> JoinAgentSessionsOperator(
            task_id="sweep",
            session_ids=[*[f"sess-{{n}}" for n in (2001, 2002, 2003, 2007, 2008, 9999)], "bad id", MARKUP],
            hook_params=FAST,
        )
        qa >> JoinAgentSessionsOperator.partial(task_id="mapped_sweep", hook_params=FAST).expand(
            session_ids=[["sess-2004"], ["sess-2005", "sess-2007"]]
        )

    with DAG("{HIDDEN_DAG}", schedule=None, start_date=START, catchup=False) as hidden_dag:
        JoinAgentSessionsOperator(
            task_id="sweep",
            session_ids=["sess-2001", "sess-2002"],
            security_user={{"agent_id": 1001, "conn_id": "cxone_noimp"}},  # a key that may not act as 1001
            hook_params=FAST,
        )
    '''
)

# The pages authenticate a browser by the UI's session and sit in the UI's navigation: both need Airflow 3.1
# (docs/airflow-versions.md); on 3.0 they answer a 401 that says so.
pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the CXone pages need Airflow 3.1")
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION.release >= (3, 3)


class HidesOneDagAuthManager(SimpleAuthManager):
    """The simple auth manager, except that the user ``restricted`` may not read :data:`HIDDEN_DAG`,
    and ``no_xcom`` may read every DAG but no XCom."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        if user.get_name() == "restricted" and details is not None and details.id == HIDDEN_DAG:
            return False
        if user.get_name() == "no_xcom" and access_entity is DagAccessEntity.XCOM:
            return False  # may see every DAG, but none of their XComs
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)


@pytest.fixture(scope="module")
def sandbox_for_dags():
    # The test DAGs sweep session ids as one SecurityUser: the sandbox's extensions (join by sessionId).
    with SandboxServer(faults=LEGACY_EXTENSIONS) as server, pytest.MonkeyPatch.context() as patch:
        name, value = server.connection_env("cxone_default")
        patch.setenv(name, value)
        patch.setenv(*server.connection_env("cxone_noimp", key="SANDBOX-NOIMP-KEY"))
        yield server


@pytest.fixture(scope="module")
def runs(airflow_db, sandbox_for_dags):
    """Run every DAG the pages show, once (about 30 s); return the DagRuns by name."""
    (DAGS_FOLDER / "cxone_ui_test_dags.py").write_text(UI_DAGS, encoding="utf-8")
    done = {
        "qa": fresh_dag("cxone_qa_sweep", "cxone_qa_sweep").test(run_conf={"report_dir": "test_ui"}),
        "sweep": fresh_dag("cxone_ui_test_dags", SWEEP_DAG).test(),
        "hidden": fresh_dag("cxone_ui_test_dags", HIDDEN_DAG).test(),
        "join_success": fresh_dag("cxone_test_dags", "t_rules_1_2").test(run_conf={"session_id": "sess-2001"}),
        "join_ended": fresh_dag("cxone_test_dags", "t_rules_1_2").test(run_conf={"session_id": "sess-2007"}),
        # security_user="SecurityUser" (Studio's default name), rendered from a template.
        "supervised": fresh_dag("cxone_supervised_session", "cxone_supervised_session").test(
            run_conf={"supervisor_agent_id": 1002, "session_id": "sess-2003"}
        ),
    }
    for name, dag_run in done.items():
        assert dag_run.state == "success", name
    # The slimmer XCom large sweeps keep: Success sessions as ids only, every outcome in a report file.
    done["slim"] = fresh_dag("cxone_ui_test_dags", SWEEP_DAG).test()
    full = xcom(done["slim"], "sweep")
    slim = {**full, "outcomes": [o for o in full["outcomes"] if o["condition"] != "Success"], "report": SLIM_REPORT}
    XComModel.set("return_value", slim, dag_id=SWEEP_DAG, task_id="sweep", run_id=done["slim"].run_id)
    # A sweep larger than a run page shows per condition.
    done["large"] = fresh_dag("cxone_ui_test_dags", HIDDEN_DAG).test()
    ids = [f"sess-{n:05d}" for n in range(LARGE)]
    large = {"Success": ids, "outcomes": [], "counts": {"Success": LARGE}, "stats": {"token_requests": 1}}
    XComModel.set("return_value", large, dag_id=HIDDEN_DAG, task_id="sweep", run_id=done["large"].run_id)
    return done


@pytest.fixture(scope="module")
def api(runs):
    """Airflow's api-server app (the plugin mounted at /cxone) under a test client, no cookie yet."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.HidesOneDagAuthManager")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,restricted:viewer,no_xcom:viewer")
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-test-only-secret-" * 4)
        purge_cached_app()
        app = create_app()
        try:
            yield TestClient(app)
        finally:
            purge_cached_app()


def login(api, username: str, role: str):
    """A client with the ``_token`` cookie the Airflow UI sets for ``username``."""
    from airflow.api_fastapi.app import get_auth_manager
    from fastapi.testclient import TestClient

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    client = TestClient(api.app)
    client.cookies.set("_token", token)
    return client, token


@pytest.fixture(scope="module")
def admin(api):
    return login(api, "admin", "admin")


@pytest.fixture(scope="module")
def restricted(api):
    return login(api, "restricted", "viewer")


def xcom(dag_run, task_id, map_index=-1):
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    return ti.xcom_pull(task_ids=task_id, map_indexes=map_index)


def run_url(dag_run, task_id, map_index=-1):
    path = f"/cxone/sweeps/{quote(dag_run.dag_id, safe='')}/{quote(dag_run.run_id, safe='')}/{task_id}"
    return path + (f"?map_index={map_index}" if map_index >= 0 else "")


def table_counts(html: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, int]:
    """The counts per condition in the sweeps table's row of one task instance."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.row = None
            self.cell = None
            self.found: dict[str, int] = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "tr":
                self.row = (attrs.get("data-run-id"), attrs.get("data-task-id"), attrs.get("data-map-index"))
            elif tag == "td" and self.row == (run_id, task_id, str(map_index)) and "data-condition" in attrs:
                self.cell = attrs["data-condition"]

        def handle_data(self, text):
            if self.cell and text.strip():
                self.found[self.cell] = int(text)
                self.cell = None

    parser = Rows()
    parser.feed(html[html.index('id="sweeps-table"') :])
    return parser.found


def chart_counts(html: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, int]:
    """The segments of one sweep's bar in the chart: condition → count (absent conditions have none)."""
    from html.parser import HTMLParser

    class Bars(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside = False
            self.found: dict[str, int] = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "div" and attrs.get("class") == "chart-row":
                key = (attrs.get("data-run-id"), attrs.get("data-task-id"), attrs.get("data-map-index"))
                self.inside = key == (run_id, task_id, str(map_index))
            elif tag == "rect" and self.inside and attrs.get("class") == "segment":
                self.found[attrs["data-condition"]] = int(attrs["data-count"])
                assert attrs["fill"] == CONDITION_COLOURS[attrs["data-condition"]]

    parser = Bars()
    parser.feed(html[html.index('id="sweeps-chart"') : html.index('id="sweeps-table"')])
    return parser.found


# --- authentication and authorisation -------------------------------------------------------------

ROUTES = [
    "/cxone/",
    "/cxone/sweeps",
    "/cxone/joins",
    "/cxone/static/cxone.css",
    "/cxone/static/cxone.js",
    f"/cxone/sweeps/{SWEEP_DAG}/any/sweep",
    f"/cxone/sweeps/{SWEEP_DAG}/any/sweep/sessions.csv",
    f"/cxone/sweeps/{SWEEP_DAG}/any/sweep/sessions.json",
    "/cxone/joins/t_rules_1_2/any/join",
]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_refuses_a_request_without_a_session(api, path):
    response = api.get(path, follow_redirects=False)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize("path", ROUTES)
def test_a_forged_token_is_refused(api, path):
    from fastapi.testclient import TestClient

    client = TestClient(api.app)
    client.cookies.set("_token", "not.a.jwt")
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (401, 403)
    assert "sess-" not in response.text


def test_a_browser_without_a_session_is_sent_to_the_login_page(api, runs):
    response = api.get(
        run_url(runs["sweep"], "sweep"), headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False
    )
    assert response.status_code == 303
    # Airflow's own login page; the way back to this page only where the auth manager's login URL takes
    # one (the simple auth manager's does from 3.3, its 3.1 and 3.2 login URL is the bare page).
    location = response.headers["location"]
    assert location.startswith("/auth/login?next=" if AIRFLOW_V_3_3_PLUS else "/auth/login")
    assert "sess-" not in response.text


def test_a_bearer_token_works_like_the_cookie(api, admin):
    _, token = admin
    response = api.get("/cxone/sweeps", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert SWEEP_DAG in response.text


def test_the_lists_leave_out_dags_the_user_may_not_read(admin, restricted):
    admin_client, _ = admin
    restricted_client, _ = restricted
    assert HIDDEN_DAG in admin_client.get("/cxone/sweeps").text
    page = restricted_client.get("/cxone/sweeps")
    assert page.status_code == 200
    assert SWEEP_DAG in page.text
    assert HIDDEN_DAG not in page.text
    # Asking for the hidden DAG by name shows nothing either.
    filtered = restricted_client.get("/cxone/sweeps", params={"dag_id": HIDDEN_DAG})
    assert HIDDEN_DAG not in filtered.text
    assert "No sweep matches" in filtered.text


@pytest.mark.parametrize("listing", ["/cxone/sweeps", "/cxone/joins"])
def test_a_user_who_may_not_read_xcoms_sees_no_outcome_in_the_lists(runs, api, listing):
    client, _ = login(api, "no_xcom", "viewer")
    page = client.get(listing)
    assert page.status_code == 200
    assert "sess-" not in page.text
    assert SWEEP_DAG not in page.text


def test_a_join_page_of_a_dag_the_user_may_not_read_is_refused_before_any_lookup(admin, restricted):
    url = f"/cxone/joins/{HIDDEN_DAG}/any_run/sweep"
    assert admin[0].get(url).status_code == 404  # no such join: the admin may look
    assert restricted[0].get(url).status_code == 403


@pytest.mark.parametrize("suffix", ["", "/sessions.csv", "/sessions.json"])
def test_a_run_of_a_dag_the_user_may_not_read_is_forbidden(runs, admin, restricted, suffix):
    url = f"/cxone/sweeps/{HIDDEN_DAG}/{quote(runs['hidden'].run_id, safe='')}/sweep{suffix}"
    assert admin[0].get(url).status_code == 200
    response = restricted[0].get(url)
    assert response.status_code == 403
    assert "sess-" not in response.text


def test_no_page_carries_a_token_or_a_secret(runs, admin, sandbox_for_dags):
    client, token = admin
    password = sandbox_for_dags.connection()["password"]
    sweep = run_url(runs["sweep"], "sweep")
    for url in ("/cxone/sweeps", sweep, sweep + "/sessions.json", sweep + "/sessions.csv", "/cxone/joins"):
        page = client.get(url).text
        assert token not in page
        assert password not in page
        for fragment in ("_token", "Bearer", "access_key", "password"):
            assert fragment not in page


# --- the sweeps page -------------------------------------------------------------------------------


def test_sweeps_page_counts_equal_each_sweeps_xcom(runs, admin):
    client, _ = admin
    html = client.get("/cxone/sweeps", params={"per_page": 200}).text
    cases = [
        (runs["qa"], "sweep", -1),
        (runs["sweep"], "sweep", -1),
        (runs["sweep"], "mapped_sweep", 0),
        (runs["sweep"], "mapped_sweep", 1),
        (runs["hidden"], "sweep", -1),
        (runs["slim"], "sweep", -1),
    ]
    for dag_run, task_id, map_index in cases:
        result = xcom(dag_run, task_id, map_index)
        expected = {c: len(result[c]) for c in CONDITIONS}
        assert expected == {c: result["counts"][c] for c in CONDITIONS}
        assert table_counts(html, dag_run.run_id, task_id, map_index) == expected, (dag_run.dag_id, task_id)
        assert chart_counts(html, dag_run.run_id, task_id, map_index) == {c: n for c, n in expected.items() if n}


def test_the_pages_list_every_row_of_the_conditions_table(runs, admin):
    # A condition added to the table gets its column, legend entry and colour with no UI change.
    client, _ = admin
    html = client.get("/cxone/sweeps").text
    header = html[html.index('id="sweeps-table"') : html.index("</thead>")]
    shown = re.findall(r'<th class="num cond" style="--c: ([^"]+)" data-condition="([^"]+)"', header)
    assert shown == [(row.colour, row.studio_name) for row in in_display_order(CONDITION_TABLE)]
    legend = html[html.index('class="legend"') :]
    for row in CONDITION_TABLE:
        assert f'<span class="swatch" style="background: {row.colour}"></span>{row.studio_name}</li>' in legend


def test_the_ui_sweep_has_several_conditions(runs):
    counts = xcom(runs["sweep"], "sweep")["counts"]
    assert counts["Success"] == 3
    assert counts["InvalidAgentSession"] == 5  # two ended, two unknown, one malformed
    assert xcom(runs["hidden"], "sweep")["counts"]["ImpersonateNotEnabled"] == 2


def test_sweeps_page_filters_by_dag_and_day(runs, admin):
    client, _ = admin
    only_qa = client.get("/cxone/sweeps", params={"dag_id": "cxone_qa_sweep"}).text
    assert runs["qa"].run_id in only_qa
    assert runs["sweep"].run_id not in only_qa
    assert "No sweep matches" in client.get("/cxone/sweeps", params={"until": "2000-01-01"}).text
    today = runs["qa"].get_task_instance("sweep").start_date.date().isoformat()
    assert runs["qa"].run_id in client.get("/cxone/sweeps", params={"since": today, "until": today}).text
    bad = client.get("/cxone/sweeps", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "YYYY-MM-DD" in bad.json()["detail"]


def test_sweeps_page_paginates(runs, admin):
    client, _ = admin
    # Other test modules' sweeps share the DB: count this module's own DAG, two runs of three sweeps.
    first = client.get("/cxone/sweeps", params={"dag_id": SWEEP_DAG, "per_page": 4}).text
    assert "page 1 of 2" in first
    assert first.count('class="chart-row"') == 4
    assert 'rel="next"' in first
    last = client.get("/cxone/sweeps", params={"dag_id": SWEEP_DAG, "per_page": 4, "page": 2}).text
    assert 'rel="prev"' in last
    assert last.count('class="chart-row"') == 2


# --- the run page ----------------------------------------------------------------------------------


def test_run_page_lists_every_session_under_its_condition(runs, admin):
    client, _ = admin
    result = xcom(runs["sweep"], "sweep")
    page = client.get(run_url(runs["sweep"], "sweep"))
    assert page.status_code == 200
    for outcome in result["outcomes"]:
        section = page.text[page.text.index(f'id="condition-{outcome["condition"]}"') :]
        row = section[section.index(f'data-session-id="{escape(outcome["session_id"])}"') :]
        row = row[: row.index("</tr>")]
        assert str(outcome["attempts"]) in row
        assert escape(outcome["message"] or "—") in row
    # Success sessions are in the XCom by id only: listed, with nothing more to show.
    success = page.text[page.text.index('id="condition-Success"') :]
    assert all(f'data-session-id="{escape(session_id)}"' in success for session_id in result["Success"])
    assert f'href="/dags/{SWEEP_DAG}/runs/{quote(runs["sweep"].run_id, safe="")}/tasks/sweep"' in page.text


def test_session_ids_are_shown_as_text_never_as_markup(runs, admin):
    client, _ = admin
    assert MARKUP in xcom(runs["sweep"], "sweep")["InvalidAgentSession"]
    page = client.get(run_url(runs["sweep"], "sweep")).text
    assert MARKUP not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_run_page_of_a_mapped_sweep_is_its_own(runs, admin):
    client, _ = admin
    page = client.get(run_url(runs["sweep"], "mapped_sweep", 1)).text
    assert 'data-session-id="sess-2005"' in page
    assert 'data-session-id="sess-2004"' not in page
    assert "/tasks/mapped_sweep/mapped/1" in page


def test_run_page_search_finds_a_session(runs, admin):
    client, _ = admin
    page = client.get(run_url(runs["sweep"], "sweep"), params={"q": "2007"}).text
    assert 'data-session-id="sess-2007"' in page
    assert 'data-session-id="sess-2001"' not in page
    assert "1 matching" in page
    page = client.get(run_url(runs["sweep"], "sweep"), params={"q": "nope"}).text
    assert "No session id or agent id contains" in page


def test_run_page_downloads_csv_and_json(runs, admin):
    client, _ = admin
    result = xcom(runs["sweep"], "sweep")
    base = run_url(runs["sweep"], "sweep")
    as_json = client.get(base + "/sessions.json")
    assert as_json.headers["content-disposition"].startswith("attachment;")
    body = as_json.json()
    assert body["counts"] == result["counts"]
    every_id = {str(session_id) for condition in CONDITIONS for session_id in result[condition]}
    assert {s["session_id"] for s in body["sessions"]} == every_id
    rows = list(csv.DictReader(io.StringIO(client.get(base + "/sessions.csv").text)))
    assert len(rows) == len(every_id)
    searched = client.get(base + "/sessions.csv", params={"q": "2001"}).text
    assert [r["session_id"] for r in csv.DictReader(io.StringIO(searched))] == ["sess-2001"]


def test_a_sweep_of_agents_shows_each_agent_beside_its_live_session(runs, admin):
    """The QA example sweeps agents= (CXone's published join): its page and CSV name each agent and the
    live session CXone answered for it (issue 21: the UI uses the (agent, session) form)."""
    client, _ = admin
    result = xcom(runs["qa"], "sweep")
    live = {int(agent): session for agent, session in result["live_sessions"].items()}
    assert result["Success"]
    assert sorted(live) == sorted(result["Success"])
    base = run_url(runs["qa"], "sweep")
    page = client.get(base).text
    for agent_id, session_id in live.items():
        assert f'<tr data-session-id="{session_id}" data-agent-id="{agent_id}"><td>{agent_id}</td>' in page
    rows = list(csv.DictReader(io.StringIO(client.get(base + "/sessions.csv").text)))
    assert {int(r["agent_id"]): r["session_id"] for r in rows if r["condition"] == "Success"} == live


def test_unknown_run_is_a_404_that_says_what_was_missing(admin):
    client, _ = admin
    response = client.get(f"/cxone/sweeps/{SWEEP_DAG}/no_such_run/sweep")
    assert response.status_code == 404
    assert "no_such_run" in response.json()["detail"]


def test_success_kept_as_ids_only_is_shown_with_what_is_known():
    """The sweep's slimmer XCom: ``outcomes`` holds only the sessions that did not succeed."""
    result = {
        "Success": ["sess-1", "sess-2"],
        "InvalidAgentSession": ["sess-3"],
        "outcomes": [
            {"condition": "InvalidAgentSession", "session_id": "sess-3", "status_code": 404, "message": "ended"}
        ],
        "counts": {"Success": 2, "InvalidAgentSession": 1},
        "report": "/reports/sweep.jsonl",
    }
    sessions = sessions_of(result)
    assert sessions["Success"] == [
        {"session_id": "sess-1", "condition": "Success"},
        {"session_id": "sess-2", "condition": "Success"},
    ]
    assert sessions["InvalidAgentSession"][0]["message"] == "ended"
    assert counts_of(result) == {c: {"Success": 2, "InvalidAgentSession": 1}.get(c, 0) for c in CONDITIONS}


def test_run_page_of_a_slim_xcom_shows_success_ids_and_the_report(runs, admin):
    client, _ = admin
    result = xcom(runs["slim"], "sweep")
    assert all(o["condition"] != "Success" for o in result["outcomes"])
    page = client.get(run_url(runs["slim"], "sweep")).text
    section = page[page.index('id="condition-Success"') :]  # the last section: Success comes after the rest
    for session_id in result["Success"]:
        row = section[section.index(f'data-session-id="{session_id}"') :]
        # agent (a sweep of session ids names none), status, message, attempts, elapsed: not in XCom
        assert row[: row.index("</tr>")].count("—") == 5
    assert SLIM_REPORT in page
    assert f"<b>{len(result['Success'])}</b>" in page


def test_run_page_shows_a_thousand_sessions_per_condition_and_downloads_all(runs, admin):
    from cxone_provider.ui.app import SECTION_LIMIT

    client, _ = admin
    url = f"/cxone/sweeps/{HIDDEN_DAG}/{quote(runs['large'].run_id, safe='')}/sweep"
    page = client.get(url).text
    assert page.count("<tr data-session-id=") == SECTION_LIMIT < LARGE
    assert f"Showing the first {SECTION_LIMIT} of {LARGE}" in page
    assert f"<b>{LARGE}</b>" in page
    assert len(list(csv.DictReader(io.StringIO(client.get(url + "/sessions.csv").text)))) == LARGE
    assert 'data-session-id="sess-01499"' in client.get(url, params={"q": "01499"}).text


def test_csv_cells_never_start_a_formula(runs, admin):
    from cxone_provider.ui.data import sessions_csv

    text = sessions_csv([{"session_id": "=HYPERLINK(1)", "condition": "Default", "message": "+1"}])
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["session_id"] == "'=HYPERLINK(1)"
    assert row["message"] == "'+1"


# --- the joins page --------------------------------------------------------------------------------


def test_joins_page_shows_condition_branch_session_and_security_user(runs, admin):
    client, _ = admin
    page = client.get("/cxone/joins", params={"dag_id": "t_rules_1_2", "per_page": 200}).text
    for name, branch in (("join_success", "on_success"), ("join_ended", "on_invalid_session")):
        outcome = xcom(runs[name], "join")
        row = page[page.index(f'data-run-id="{runs[name].run_id}"') :]
        row = row[: row.index("</tr>")]
        assert f'data-condition="{outcome["condition"]}"' in row
        assert f"<td>{branch}</td>" in row
        assert outcome["session_id"] in row
        assert '<td class="num">1001</td>' in row  # the agent set_security_user returned


def test_joins_page_finds_the_security_user_studio_style(runs, admin):
    """The supervised-session example renders security_user to "SecurityUser": set_security_user's agent."""
    client, _ = admin
    dag_run = runs["supervised"]
    outcome = xcom(dag_run, "join_agent_session")
    page = client.get("/cxone/joins", params={"dag_id": "cxone_supervised_session", "per_page": 200}).text
    row = page[page.index(f'data-run-id="{dag_run.run_id}"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">1002</td>' in row
    assert f'data-condition="{outcome["condition"]}"' in row
    followed = [t.task_id for t in dag_run.get_task_instances() if t.task_id != "finish" and t.state == "success"]
    assert f"<td>{', '.join(sorted(set(followed) - {'set_security_user', 'join_agent_session'}))}</td>" in row


def test_a_new_join_tasks_own_page_answers_at_once(runs, admin, sandbox_for_dags):
    """The lists learn of a task that never ran before within TASKS_TTL_S; its own page (the extra
    link's target) finds it by its key straight away."""
    client, _ = admin
    client.get("/cxone/joins")  # the lists' task list is built now, before the DAG below ever ran
    dag_run = fresh_dag("cxone_test_dags", "t_rule_3").test()
    page = client.get(f"/cxone/joins/t_rule_3/{quote(dag_run.run_id, safe='')}/join")
    assert page.status_code == 200
    assert 'data-condition="Success"' in page.text
    assert "work_a, work_b" in page.text


def test_join_page_of_one_task_instance(runs, admin, restricted):
    client, _ = admin
    dag_run = runs["join_ended"]
    page = client.get(f"/cxone/joins/t_rules_1_2/{quote(dag_run.run_id, safe='')}/join")
    assert page.status_code == 200
    assert page.text.count("<tr data-run-id=") == 1
    assert "InvalidAgentSession" in page.text
    assert client.get("/cxone/joins/t_rules_1_2/nope/join").status_code == 404


# --- the extra links -------------------------------------------------------------------------------


def test_extra_links_point_at_the_pages(runs, admin):
    from airflow.models.taskinstancekey import TaskInstanceKey

    client, _ = admin
    sweep = runs["sweep"]
    key = TaskInstanceKey(sweep.dag_id, "mapped_sweep", sweep.run_id, map_index=1)
    url = SweepOutcomeLink().get_link(None, ti_key=key)  # type: ignore[arg-type]
    assert url == run_url(sweep, "mapped_sweep", 1)
    assert client.get(url).status_code == 200
    join = runs["join_success"]
    url = JoinOutcomeLink().get_link(None, ti_key=TaskInstanceKey(join.dag_id, "join", join.run_id))  # type: ignore[arg-type]
    assert client.get(url).status_code == 200
    assert SweepOutcomeLink().name == JoinOutcomeLink().name == LINK_NAME


def test_extra_links_keep_the_path_airflow_is_served_under(monkeypatch):
    from airflow.models.taskinstancekey import TaskInstanceKey

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team-a/")
    key = TaskInstanceKey("qa", "sweep", "manual__2026-11-28T06:00:00+00:00", map_index=-1)
    url = SweepOutcomeLink().get_link(None, ti_key=key)  # type: ignore[arg-type]
    assert url == "/team-a/cxone/sweeps/qa/manual__2026-11-28T06%3A00%3A00%2B00%3A00/sweep"


def test_the_join_operator_stored_its_link(runs, admin):
    """Airflow computes extra links on the worker and keeps them as XComs; the REST API serves them."""
    client, _ = admin
    join = runs["join_success"]
    response = client.get(f"/api/v2/dags/{join.dag_id}/dagRuns/{quote(join.run_id, safe='')}/taskInstances/join/links")
    assert response.status_code == 200, response.text
    link = response.json()["extra_links"][LINK_NAME]
    assert link == f"/cxone/joins/{join.dag_id}/{quote(join.run_id, safe='')}/join"


def test_importing_the_plugin_builds_no_web_app():
    """The scheduler and the dag-processor import plugin.py too: FastAPI and the templates wait for a request."""
    import subprocess
    import sys

    # What Airflow's plugin manager imports itself (3.0's imports FastAPI) is not the plugin's doing.
    code = (
        "import sys, airflow.plugins_manager; before = set(sys.modules); import cxone_provider.plugin; "
        "print(sorted(m for m in ('cxone_provider.ui.app', 'fastapi') if m in set(sys.modules) - before))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def test_plugin_registers_the_app_the_nav_entry_and_the_links(admin):
    client, _ = admin
    plugins = client.get("/api/v2/plugins").json()["plugins"]
    (cxone,) = [p for p in plugins if p["name"] == "cxone"]
    assert [a["url_prefix"] for a in cxone["fastapi_apps"]] == ["/cxone"]
    (view,) = cxone["external_views"]
    assert (view["name"], view["href"], view["url_route"]) == ("CXone", "/cxone/sweeps", "cxone")
    assert json.dumps(cxone).count("OutcomeLink") >= 2
