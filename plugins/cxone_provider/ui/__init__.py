"""CXone in the Airflow UI: server-rendered pages of sweeps and joins, mounted at ``/cxone``.

* :mod:`.asgi` — the ASGI entry the plugin mounts; it builds the FastAPI app on the first request,
  so the scheduler and the dag-processor, which import the plugin too, never pay for it;
* :mod:`.app` — the routes, every one behind Airflow's auth manager;
* :mod:`.data` — what the pages show, read from the metadata DB (task instances and their XComs);
* :mod:`.links` — the "CXone outcome" operator extra links, computed on the worker.

Nothing here may run at import time beyond defining names: Airflow's plugin loader imports
``plugin.py``, which imports :mod:`.asgi` and :mod:`.links`.
"""

from __future__ import annotations

#: Where the api-server mounts the app; the extra links and the nav entry point below it.
URL_PREFIX = "/cxone"
