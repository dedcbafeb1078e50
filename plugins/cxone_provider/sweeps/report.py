"""A sweep's report: every session's outcome, one JSON line each, beside a small XCom.

The XCom of a sweep stays small as sweeps grow — Success sessions by id only, full outcomes for the
rest — and the report holds every session's full outcome (condition, status, message, attempts,
elapsed time) in input order. It is written once, when the sweep ends, at an
:class:`~airflow.sdk.ObjectStoragePath`, ``<dag>/<run>/<task>__<map index>.jsonl`` below
``report_path`` (a folder path or any fsspec URL, ``s3://…``; by default ``$AIRFLOW_HOME/cxone_reports``); the
XCom's ``report`` names it and :func:`read_report` reads it back. Other workers can read it only where
they share the storage: give ``report_path`` an object store when tasks run on several machines.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath

from cxone_provider.sweeps.storage import task_instance_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.sdk import Context

    from cxone_provider.domain.outcomes import JoinOutcome

DEFAULT_FOLDER = "cxone_reports"

#: A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet may run as a formula.

    That is text starting with a formula character (OWASP: ``=``, ``+``, ``-``, ``@``, tab, carriage
    return), also after leading white space (space, newline, tab…) or invisible characters (zero-width
    space, joiners, byte-order mark), and also in its full-width or other compatibility form
    (full-width U+FF1D, U+FF0B, U+FF0D, U+FF20), which spreadsheets with East-Asian input read as the ASCII one.
    Every CSV this provider writes (the UI's downloads, the example QA-sweep DAG) passes its cells here.
    """
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_CHARS):
        return "'" + value
    for char in value:
        if char.isspace() or unicodedata.category(char) == "Cf":  # Cf: zero-width and other format characters
            continue
        if unicodedata.normalize("NFKC", char).startswith(FORMULA_CHARS):
            return "'" + value
        break
    return value


def report_location(report_path: str | None, context: Context, task_id: str) -> ObjectStoragePath | None:
    """Where this sweep's report goes: ``<root>/<dag>/<run>/<task>__<map index>.jsonl``.

    The root is ``report_path`` (a folder path or fsspec URL), by default ``$AIRFLOW_HOME/cxone_reports``.
    Outside a task run the report goes to ``<report_path>/<task>.jsonl`` when a root is given, else nowhere.
    """
    keyed = task_instance_path(report_path, DEFAULT_FOLDER, context)
    if keyed is not None:
        return keyed.parent / f"{keyed.name}.jsonl"
    return ObjectStoragePath(report_path) / f"{task_id}.jsonl" if report_path else None


def write_report(location: ObjectStoragePath, outcomes: Iterable[JoinOutcome]) -> None:
    """Every outcome as one JSON line, written in one go (an object store cannot append)."""
    location.parent.mkdir(parents=True, exist_ok=True)
    with location.open("w") as out:
        for outcome in outcomes:
            out.write(json.dumps(outcome.to_dict()) + "\n")


def read_report(sweep_result_or_location: Mapping[str, Any] | str) -> list[dict[str, Any]]:
    """Every session's outcome of a sweep, in input order, from its XCom value or its report's location.

    The XCom value of a mapped sweep merged by ``merge_sweep_results`` names one report per chunk:
    they are read in map-index order. Without a report (a sweep run outside Airflow without
    ``report_path``), the outcomes the XCom holds: the Success sessions first, by id only.

    :raises FileNotFoundError: a report this worker cannot read, naming it.
    """
    if isinstance(sweep_result_or_location, str):
        locations: list[str] = [sweep_result_or_location]
        result: Mapping[str, Any] = {}
    else:
        result = sweep_result_or_location
        named = result.get("report")
        locations = [named] if isinstance(named, str) else [n for n in named or () if n]
    if not locations:
        succeeded = [{"condition": "Success", "session_id": session_id} for session_id in result.get("Success", [])]
        return succeeded + list(result.get("outcomes", []))
    outcomes: list[dict[str, Any]] = []
    for location in locations:
        path = ObjectStoragePath(location)
        if not path.exists():
            raise FileNotFoundError(
                f"the sweep's report {location} cannot be read here: a task on another worker reads it only "
                "where every worker shares storage (give the sweep a report_path such as s3://bucket/cxone)"
            )
        outcomes += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return outcomes
