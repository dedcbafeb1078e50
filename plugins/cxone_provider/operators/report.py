"""A sweep's report: every session's outcome, one JSON line each, beside a small XCom.

The XCom of a sweep stays small as sweeps grow — Success sessions by id only, full outcomes for the
rest — and the report holds every session's full outcome (condition, status, message, attempts,
elapsed time) in input order. It is written once, when the sweep ends, at an
:class:`~airflow.sdk.ObjectStoragePath`: by default ``$AIRFLOW_HOME/cxone_reports/<dag>/<run>/
<task>__<map index>.jsonl``, or any path or fsspec URL (``s3://…``) given as ``report_path``; the
XCom's ``report`` names it and :func:`read_report` reads it back.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.sdk import Context

    from cxone_provider.conditions import JoinOutcome


def default_report_root() -> str:
    return os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "cxone_reports")


def report_location(report_path: str | None, context: Context) -> ObjectStoragePath | None:
    """Where this sweep's report goes: ``report_path`` as given, else the default for the task instance.

    ``None`` (no report) outside a task run without a ``report_path``: nothing keys a default there.
    """
    if report_path:
        return ObjectStoragePath(report_path)
    ti = context.get("ti")
    if ti is None or not getattr(ti, "run_id", None):
        return None
    return ObjectStoragePath(default_report_root()) / ti.dag_id / ti.run_id / f"{ti.task_id}__{ti.map_index}.jsonl"


def write_report(location: ObjectStoragePath, outcomes: Iterable[JoinOutcome]) -> None:
    """Every outcome as one JSON line, written in one go (an object store cannot append)."""
    location.parent.mkdir(parents=True, exist_ok=True)
    with location.open("w") as out:
        for outcome in outcomes:
            out.write(json.dumps(outcome.to_dict()) + "\n")


def read_report(sweep_result_or_location: Mapping[str, Any] | str) -> list[dict[str, Any]]:
    """Every session's outcome of a sweep, in input order: from its XCom value or its report's path.

    Without a report (a sweep run outside Airflow without ``report_path``), the outcomes the XCom holds,
    with the Success sessions by id only.
    """
    if isinstance(sweep_result_or_location, str):
        location: str | None = sweep_result_or_location
        result: Mapping[str, Any] = {}
    else:
        result = sweep_result_or_location
        location = result.get("report")
    if location:
        text = ObjectStoragePath(location).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    succeeded = [{"condition": "Success", "session_id": session_id} for session_id in result.get("Success", [])]
    return succeeded + list(result.get("outcomes", []))
