"""The ASGI application the plugin mounts at ``/cxone``: the real app is built on the first request.

``plugin.py`` is imported by every Airflow process (scheduler, dag-processor, workers); only the
api-server serves the pages, so FastAPI, Jinja2 and the SQL of :mod:`.app` are imported there only.
"""

from __future__ import annotations

import threading
from typing import Any


class LazyApp:
    """An ASGI app that builds :func:`cxone_provider.ui.app.create_app` once, when first called."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from cxone_provider.ui.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return "cxone_provider.ui.app:create_app (built on first request)"
