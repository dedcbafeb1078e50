"""Where a sweep keeps its files: below a root folder, keyed by DAG, run, task and map index.

The root is a path or any fsspec URL (an :class:`~airflow.sdk.ObjectStoragePath`); by default a folder
of ``$AIRFLOW_HOME``. Keyed this way, the chunks of a mapped sweep and the runs of a DAG never share a
file, and a retried task instance finds what its earlier try left.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from airflow.sdk import ObjectStoragePath

from cxone_provider.compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


def airflow_home_folder(name: str) -> str:
    return os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), name)


def task_instance_path(root: str | None, default_folder: str, context: Context) -> ObjectStoragePath | None:
    """``<root>/<dag>/<run>/<task>__<map index>``; ``None`` outside a task run (no task instance)."""
    ti = context.get("ti")
    if ti is None or not getattr(ti, "run_id", None):
        return None
    if root and ".." in root.replace("\\", "/").split("/"):
        # A templated root may come from whoever triggers the run: it must not climb out of itself.
        raise AirflowFailException(f"the folder {root!r} has a '..' part: give the folder itself")
    base = ObjectStoragePath(root or airflow_home_folder(default_folder))
    parts = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
    for name, part in parts.items():
        check_path_part(name, part, base)
    return base / ti.dag_id / ti.run_id / f"{ti.task_id}__{ti.map_index}"


def check_path_part(name: str, part: object, base: object) -> None:
    """Refuse a key that would not be one folder of its own below ``base``.

    A run id of ``..`` would put ``<dag>/../<task>`` at ``<base>/<task>``, shared by every DAG with a
    task of that name; a ``/`` would nest one run inside another's folder.

    :raises AirflowFailException: naming the field and its value (retrying cannot change them).
    """
    text = str(part)
    if text.strip() in ("", ".", "..") or any(sep in text for sep in ("/", "\\", "\x00")):
        raise AirflowFailException(
            f"{name} {part!r} cannot name a folder of its own below {base}: an empty part, '.', '..', '/' or "
            "'\\' would make two task instances share a report or checkpoint"
        )
