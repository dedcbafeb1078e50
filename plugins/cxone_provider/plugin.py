"""The Airflow plugin of this provider: what Airflow's plugin manager registers.

Found two ways, so that ``airflow plugins`` lists it in both installs: through the ``airflow.plugins``
entry point when the package is installed with pip, and by Airflow's loader when the
``cxone_provider`` folder is copied into ``$AIRFLOW_HOME/plugins/`` (the loader imports every module
of that folder and registers each ``AirflowPlugin`` subclass it finds).

It looks for them in the globals of every module, and keeps a second plugin of the same name as an
import error ("Plugin 'cxone' already registered"): no other module of the package may import
``CxonePlugin``, and a deployment uses one install, pip or the copied folder, not both.

Operators and hooks are not registered here: DAG files import them (``plugins/`` is on ``sys.path``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class CxonePlugin(AirflowPlugin):
    """NICE CXone for Airflow: Studio's *Join Agent Session*, result-branch routing and QA sweeps."""

    name = "cxone"
