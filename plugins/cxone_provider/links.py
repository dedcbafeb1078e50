"""The "CXone outcome" operator extra links: from a task instance to its page of the CXone UI.

They live below both the operators, which declare them, and :mod:`cxone_provider.ui`, which serves the
pages they point to, so that neither imports the other; :data:`URL_PREFIX` is shared by both.

Airflow 3 computes an operator's extra links on the worker when the task ends and stores them as
XComs, so :meth:`get_link` only formats a URL from the task instance key: no DB, no web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

LINK_NAME = "CXone outcome"

#: Where the api-server mounts the CXone pages; the extra links and the nav entry point below it.
URL_PREFIX = "/cxone"


def page_url(page: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The path of one task instance's page (``page`` is ``sweeps`` or ``joins``).

    Relative to the api-server's root, with the path of ``[api] base_url`` in front, so that it also
    works behind a proxy that serves Airflow below a path.
    """
    from cxone_provider.compat import conf

    root = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    parts = "/".join(quote(part, safe="") for part in (dag_id, run_id, task_id))
    url = f"{root}{URL_PREFIX}/{page}/{parts}"
    return f"{url}?map_index={map_index}" if map_index >= 0 else url


class _OutcomeLink(BaseOperatorLink):
    page: ClassVar[str]

    @property
    def name(self) -> str:
        return LINK_NAME

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return page_url(self.page, ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)


class SweepOutcomeLink(_OutcomeLink):
    """On :class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator`: the sweep's run page."""

    page = "sweeps"


class JoinOutcomeLink(_OutcomeLink):
    """On :class:`~cxone_provider.operators.agent_session.JoinAgentSessionOperator`: the join's page."""

    page = "joins"
