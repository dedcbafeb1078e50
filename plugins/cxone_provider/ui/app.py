"""The CXone pages: a FastAPI app the api-server mounts at ``/cxone``.

Airflow does not protect a plugin's FastAPI app, so this one does it itself with Airflow's own
dependencies: every route needs the user that :func:`~airflow.api_fastapi.core_api.security.get_user`
resolves (the ``_token`` cookie the Airflow UI sets, or an ``Authorization: Bearer`` JWT), the lists
show only DAGs the auth manager lets that user read, and a page of one task instance needs read access
to that DAG's XComs, as the REST API's XCom endpoints do. A browser without a session is sent to
Airflow's login page; any other client gets the 401/403 the dependency raised.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from cxone_provider.compat import needs_airflow
from cxone_provider.ui import URL_PREFIX, data
from cxone_provider.ui.airflow_access import metadata_session

HERE = Path(__file__).resolve().parent
PER_PAGE = 25
MAX_PER_PAGE = 200
CHART_WIDTH = 560
#: Rows a run page shows per condition, so that a very large sweep's page still opens at once.
SECTION_LIMIT = 1000

User = Annotated[BaseUser, Depends(get_user)]


class ListingQuery:
    """The query of a listing page (sweeps, joins): the DAG and day filters and the page."""

    def __init__(self, dag_id: str | None, since: str | None, until: str | None, page: int, per_page: int) -> None:
        self.dag_id = dag_id or None
        self.since, self.until = _day_range(since, until)
        self.page, self.per_page = page, per_page
        #: the filters as the page's form shows them back
        self.filters = {"dag_id": dag_id or "", "since": since or "", "until": until or ""}

    def query(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~cxone_provider.ui.data.list_sweeps` and ``list_joins``."""
        return {
            "dag_id": self.dag_id,
            "since": self.since,
            "until": self.until,
            "page": self.page,
            "per_page": self.per_page,
        }


def listing_query(
    dag_id: str | None = None,
    since: Annotated[str | None, Query(description="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(description="last day, YYYY-MM-DD")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = PER_PAGE,
) -> ListingQuery:
    # A function, not the class itself, as the dependency: FastAPI 0.117 (in Airflow 3.1.8's constraints)
    # resolves the postponed annotations of a function's parameters but not those of a class's __init__.
    return ListingQuery(dag_id, since, until, page, per_page)


Listing = Annotated[ListingQuery, Depends(listing_query)]
ReadsXCom = Depends(requires_access_dag("GET", DagAccessEntity.XCOM))

# Detail strings of get_user's refusals that mean "no usable session": a browser logs in again.
_NO_SESSION = {"Not authenticated", "Token Expired", "Invalid JWT token"}
# Airflow 3.0's get_user reads an Authorization header only, never the UI's session cookie, and 3.0 ignores a
# plugin's nav entry (external_views): in a browser the pages would only bounce off the login page.
_BROWSER_FEATURE = "the CXone pages in a browser (sign-in by the UI's session, the nav entry)"
_BROWSER_WHY = "Airflow 3.0's api-server reads a plugin page's user from an Authorization header only"


def create_app() -> FastAPI:
    """The CXone UI app; every route requires an authenticated Airflow user."""
    needs_airflow(_BROWSER_FEATURE, "3.1.0", _BROWSER_WHY)  # said once, when the api-server builds the app
    app = FastAPI(
        title="CXone",
        description="NICE CXone sweeps and joins in the Airflow UI",
        dependencies=[Depends(get_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        colours=data.CONDITION_COLOURS, conditions=data.CONDITIONS, chart_width=CHART_WIDTH, section_limit=SECTION_LIMIT
    )
    templates.env.filters.update(when=_when, seconds=_seconds, q=_quote_part, wrap_words=_wrap_words)

    def render(request: Request, name: str, user: BaseUser, **context: Any) -> Response:
        base, airflow_root = _roots(request)
        context.update(base=base, airflow_root=airflow_root, user_name=user.get_name())
        return templates.TemplateResponse(request, name, context)

    @app.exception_handler(HTTPException)
    async def login_or_refuse(request: Request, exc: HTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code in (401, 403) and exc.detail in _NO_SESSION and wants_html:
            if not needs_airflow(_BROWSER_FEATURE, "3.1.0", _BROWSER_WHY):
                return PlainTextResponse(
                    f"CXone: {_BROWSER_FEATURE} needs Airflow 3.1 or newer ({_BROWSER_WHY}); "
                    "send an 'Authorization: Bearer <token>' header instead.",
                    status_code=exc.status_code,
                )
            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(_roots(request)[1] + login, status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}/sweeps", status_code=303)

    @app.get("/static/cxone.css", include_in_schema=False)
    def stylesheet() -> FileResponse:
        return FileResponse(HERE / "static" / "cxone.css", media_type="text/css")

    @app.get("/static/cxone.js", include_in_schema=False)
    def script() -> FileResponse:
        return FileResponse(HERE / "static" / "cxone.js", media_type="text/javascript")

    @app.get("/sweeps")
    def sweeps(request: Request, user: User, listing: Listing) -> Response:
        with metadata_session() as session:
            permitted = _readable_dag_ids(user)
            found = data.list_sweeps(session, permitted, **listing.query())
            dag_ids = data.sweep_dag_ids(session, permitted)
        return render(
            request,
            "sweeps.html",
            user,
            found=found,
            chart=_sweeps_chart(found.rows),
            dag_ids=dag_ids,
            filters=listing.filters,
            page_url=_page_url_maker(listing.filters, listing.per_page),
        )

    @app.get("/sweeps/{dag_id}/{run_id}/{task_id}", dependencies=[ReadsXCom])
    def sweep_run(
        request: Request,
        user: User,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        q: str = "",
    ) -> Response:
        detail = _sweep_detail(dag_id, run_id, task_id, map_index)
        sections = detail.sections(q)
        return render(
            request,
            "run.html",
            user,
            detail=detail,
            q=q,
            sections=sections,
            matching_total=sum(len(rows) for _, rows in sections),
            chart=_bar(detail.counts, detail.total),
            retries=data.retries_of(detail.stats),
            download_query=_query_string(map_index=map_index if map_index >= 0 else None, q=q or None),
        )

    @app.get("/sweeps/{dag_id}/{run_id}/{task_id}/sessions.csv", dependencies=[ReadsXCom])
    def sweep_run_csv(dag_id: str, run_id: str, task_id: str, map_index: int = -1, q: str = "") -> Response:
        detail = _sweep_detail(dag_id, run_id, task_id, map_index)
        return PlainTextResponse(
            data.sessions_csv(detail.rows(q)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_file_stem(detail.ref)}.csv"'},
        )

    @app.get("/sweeps/{dag_id}/{run_id}/{task_id}/sessions.json", dependencies=[ReadsXCom])
    def sweep_run_json(dag_id: str, run_id: str, task_id: str, map_index: int = -1, q: str = "") -> Response:
        detail = _sweep_detail(dag_id, run_id, task_id, map_index)
        body = {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
            "counts": detail.counts,
            "sessions": detail.rows(q),
        }
        return Response(
            json.dumps(body, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{_file_stem(detail.ref)}.json"'},
        )

    @app.get("/joins")
    def joins(request: Request, user: User, listing: Listing) -> Response:
        with metadata_session() as session:
            permitted = _readable_dag_ids(user)
            found = data.list_joins(session, permitted, **listing.query())
            dag_ids = data.join_dag_ids(session, permitted)
        counts = _join_counts(found.rows)
        return render(
            request,
            "joins.html",
            user,
            found=found,
            counts=counts,
            chart=_bar(counts, sum(counts.values())),
            dag_ids=dag_ids,
            filters=listing.filters,
            page_url=_page_url_maker(listing.filters, listing.per_page),
            single=None,
        )

    @app.get("/joins/{dag_id}/{run_id}/{task_id}", dependencies=[ReadsXCom])
    def join_run(request: Request, user: User, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Response:
        ref = data.TaskRef(dag_id, run_id, task_id, map_index)
        with metadata_session() as session:
            found = data.list_joins(session, {dag_id}, dag_id=dag_id, only=ref)
        if not found.rows:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No Join Agent Session task instance {_describe(ref)}")
        counts = _join_counts(found.rows)
        return render(
            request,
            "joins.html",
            user,
            found=found,
            counts=counts,
            chart=_bar(counts, sum(counts.values())),
            dag_ids=[dag_id],
            filters={"dag_id": dag_id, "since": "", "until": ""},
            page_url=_page_url_maker({}, PER_PAGE),
            single=ref,
        )

    return app


# --- helpers -----------------------------------------------------------------------------------------


def _roots(request: Request) -> tuple[str, str]:
    """Where this app is mounted (``/cxone``) and where Airflow is (``""``, or a proxy's path)."""
    base = request.scope.get("root_path", "").rstrip("/")
    return base, base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else ""


def _readable_dag_ids(user: BaseUser) -> set[str]:
    """The DAGs whose XComs ``user`` may read: every list shows what the run pages read from XCom."""
    manager = get_auth_manager()
    return {
        dag_id
        for dag_id in manager.get_authorized_dag_ids(user=user, method="GET")
        if manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag_id), user=user
        )
    }


def _sweep_detail(dag_id: str, run_id: str, task_id: str, map_index: int) -> data.SweepDetail:
    ref = data.TaskRef(dag_id, run_id, task_id, map_index)
    with metadata_session() as session:
        detail = data.sweep_detail(session, ref)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No Join Agent Sessions (sweep) task instance {_describe(ref)}")
    return detail


def _describe(ref: data.TaskRef) -> str:
    mapped = f", map_index {ref.map_index}" if ref.map_index >= 0 else ""
    return f"{ref.task_id!r} in run {ref.run_id!r} of DAG {ref.dag_id!r}{mapped}"


def _file_stem(ref: data.TaskRef) -> str:
    raw = f"{ref.dag_id}_{ref.run_id}_{ref.task_id}" + (f"_{ref.map_index}" if ref.map_index >= 0 else "")
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in raw)


def _day_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``since`` 00:00 UTC to the end of ``until`` (both days included); a malformed day is a 400."""

    def day(name: str, value: str | None) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            message = f"{name} must be a day, YYYY-MM-DD, got {value!r}"
            raise HTTPException(status.HTTP_400_BAD_REQUEST, message) from None

    first, last = day("since", since), day("until", until)
    start = datetime.combine(first, time(), tzinfo=UTC) if first else None
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC) if last else None
    return start, end


def _page_url_maker(filters: dict[str, str], per_page: int) -> Any:
    def page_url(page: int) -> str:
        query = {k: v for k, v in filters.items() if v}
        if per_page != PER_PAGE:
            query["per_page"] = str(per_page)
        query["page"] = str(page)
        return "?" + urlencode(query)

    return page_url


def _query_string(**params: Any) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""


def _join_counts(rows: list[data.JoinRow]) -> dict[str, int]:
    counts = dict.fromkeys(data.CONDITIONS, 0)
    for row in rows:
        if row.condition in counts:
            counts[row.condition] += 1
    return counts


def _bar(counts: dict[str, int], scale: int, width: int = CHART_WIDTH) -> list[dict[str, Any]]:
    """The segments of one stacked bar: condition, count, x and width, in the page's condition order."""
    segments = []
    x = 0.0
    for condition in data.CONDITIONS:
        count = counts.get(condition, 0)
        if not count or not scale:
            continue
        length = width * count / scale
        segments.append({"condition": condition, "count": count, "x": round(x, 2), "width": round(length, 2)})
        x += length
    return segments


def _sweeps_chart(rows: list[data.SweepRow]) -> list[dict[str, Any]]:
    """One bar per sweep, all to one scale (the largest sweep of the page fills the width)."""
    scale = max((row.total for row in rows), default=0)
    return [{"row": row, "segments": _bar(row.counts, scale)} for row in rows]


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs:02d} s"


def _wrap_words(name: str) -> Markup:
    """A condition's name that may break between its words (``Invalid<wbr>Agent<wbr>Session``)."""
    return Markup("<wbr>").join(re.split(r"(?<=[a-z])(?=[A-Z])", name))


def _quote_part(value: Any) -> str:
    return quote(str(value), safe="")
