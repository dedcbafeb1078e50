"""Where a sweep keeps its files: below a root folder, keyed by DAG, run, task and map index.

The root is a path or any fsspec URL (an :class:`~airflow.sdk.ObjectStoragePath`); by default a folder
of ``$AIRFLOW_HOME``. Keyed this way, the chunks of a mapped sweep and the runs of a DAG never share a
file, and a retried task instance finds what its earlier try left.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from airflow.sdk import Context


def airflow_home_folder(name: str) -> str:
    return os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), name)


def task_instance_path(root: str | None, default_folder: str, context: Context) -> ObjectStoragePath | None:
    """``<root>/<dag>/<run>/<task>__<map index>``; ``None`` outside a task run (no task instance)."""
    ti = context.get("ti")
    if ti is None or not getattr(ti, "run_id", None):
        return None
    base = ObjectStoragePath(root or airflow_home_folder(default_folder))
    return base / ti.dag_id / ti.run_id / f"{ti.task_id}__{ti.map_index}"
