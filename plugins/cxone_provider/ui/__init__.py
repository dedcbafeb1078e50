"""CXone in the Airflow UI: server-rendered pages of sweeps and joins, mounted at ``/cxone``.

* :mod:`.asgi` — the ASGI entry the plugin mounts; it builds the FastAPI app on the first request,
  so the scheduler and the dag-processor, which import the plugin too, never pay for it;
* :mod:`.app` — the routes, every one behind Airflow's auth manager;
* :mod:`.data` — what the pages show, read from the metadata DB (task instances and their XComs);
* :mod:`.airflow_access` — every airflow-core internal the pages read (ORM models, XCom decoding), in one place.

The "CXone outcome" operator extra links live in :mod:`cxone_provider.links`, below both the
operators and this package.

Nothing here may run at import time beyond defining names: Airflow's plugin loader imports
``plugin.py``, which imports :mod:`.asgi` and :mod:`cxone_provider.links`.
"""

from __future__ import annotations

from cxone_provider.links import URL_PREFIX

__all__ = ["URL_PREFIX"]
