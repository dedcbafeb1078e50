"""The Airflow plugin of this provider: what Airflow's plugin manager registers.

Found two ways, so that ``airflow plugins`` lists it in both installs: through the ``airflow.plugins``
entry point when the package is installed with pip, and by Airflow's loader when the
``cxone_provider`` folder is copied into ``$AIRFLOW_HOME/plugins/`` (the loader imports every module
of that folder and registers each ``AirflowPlugin`` subclass it finds).

It looks for them in the globals of every module, and keeps a second plugin of the same name as an
import error ("Plugin 'cxone' already registered"): no other module of the package may import
``CxonePlugin``, and a deployment uses one install, pip or the copied folder, not both.

Operators and hooks are not registered here: DAG files import them (``plugins/`` is on ``sys.path``).

What it registers: the CXone pages (a FastAPI app at ``/cxone``, see :mod:`cxone_provider.ui`), their
"CXone" entry in the UI's navigation, and the "CXone outcome" operator extra links. Every Airflow
process imports this module, the scheduler and the dag-processor included: the app is built by the
api-server on its first request, so importing the plugin costs no FastAPI or template loading.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cxone_provider.links import JoinOutcomeLink, SweepOutcomeLink
from cxone_provider.ui import URL_PREFIX
from cxone_provider.ui.asgi import LazyApp


class CxonePlugin(AirflowPlugin):
    """NICE CXone for Airflow: Studio's *Join Agent Session*, result-branch routing and QA sweeps."""

    name = "cxone"
    # AirflowPlugin declares these as plain list attributes: RUF012's ClassVar would not match it.
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "CXone"}]  # noqa: RUF012
    # The nav entry: the UI shows the page in a frame at /plugin/cxone, same origin, so the
    # session cookie that authenticates the UI authenticates the page too.
    external_views = [  # noqa: RUF012
        {
            "name": "CXone",
            "href": f"{URL_PREFIX}/sweeps",
            "url_route": "cxone",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
    operator_extra_links = [SweepOutcomeLink(), JoinOutcomeLink()]  # noqa: RUF012
