"""A sweep's checkpoint: the sessions it has finished, recorded as it goes, so a retry joins only the rest.

The checkpoint is a folder at an :class:`~airflow.sdk.ObjectStoragePath` — local by default
(``$AIRFLOW_HOME/cxone_checkpoints``), or any fsspec URL (``s3://…``) where workers share storage —
keyed by DAG, run, task and map index. It holds the fingerprint of the input list and append-only
parts of JSON lines, one finished session's outcome each. On a local disk every line is written as
its session finishes, so a killed task loses none; an object store (which cannot append) gets a new
part every :data:`REMOTE_BATCH` outcomes, so up to that many finished sessions may be joined again.
Sessions in flight when a task dies are always joined again: a join of the same session is
idempotent in CXone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from cxone_provider.domain.outcomes import JoinOutcome
from cxone_provider.sweeps.storage import task_instance_path

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable
    from typing import IO

    from airflow.sdk import Context, ObjectStoragePath

FINGERPRINT_FILE = "input.sha256"
#: outcomes per part on an object store, which cannot append to an object
REMOTE_BATCH = 200


def fingerprint_of(session_keys: Iterable[str]) -> str:
    """The SHA-256 of the keys joined by newlines, hashed as they come: a list of 100,000 keys is never built."""
    digest = hashlib.sha256()
    for number, key in enumerate(session_keys):
        digest.update(f"\n{key}".encode() if number else key.encode())
    return digest.hexdigest()


class SweepCheckpoint:
    """The finished sessions of one sweep task (see the module's docstring).

    :param folder: this task's checkpoint folder.
    :param session_keys: what the sweep is of — the SecurityUser and connection, then the distinct
        session ids in input order; their fingerprint keys the checkpoint.
    :param log: where resumption and reuse decisions are logged.
    """

    def __init__(self, folder: ObjectStoragePath, session_keys: Iterable[str], log: logging.Logger | Any) -> None:
        self.folder = folder
        self.fingerprint = fingerprint_of(session_keys)
        self.log = log
        self._local = folder.protocol in ("", "file", "local")
        self._out: IO[str] | None = None
        self._pending: list[str] = []
        self._closed = False

    @classmethod
    def for_task(
        cls, root: str | None, context: Context, session_keys: Iterable[str], log: logging.Logger | Any
    ) -> SweepCheckpoint | None:
        """The checkpoint of the task instance in ``context``; ``None`` outside a task run."""
        folder = task_instance_path(root, "cxone_checkpoints", context)
        return None if folder is None else cls(folder, session_keys, log)

    def load(self) -> dict[str, JoinOutcome]:
        """The outcomes finished by earlier tries, by session id; opens the checkpoint for this try.

        A checkpoint made from another input list is dropped, not reused, and the log says so.
        """
        finished: dict[str, JoinOutcome] = {}
        marker = self.folder / FINGERPRINT_FILE
        if self.folder.exists():
            if marker.exists() and marker.read_text().strip() == self.fingerprint:
                finished = self._read_parts()
            else:
                self.log.warning(
                    "Checkpoint %s was made from a different list of sessions (or SecurityUser, or connection): "
                    "not reused, starting over",
                    self.folder,
                )
                self.remove()
        self.folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(self.fingerprint)
        return finished

    def _read_parts(self) -> dict[str, JoinOutcome]:
        finished: dict[str, JoinOutcome] = {}
        for part in sorted(self.folder.glob("part-*.jsonl"), key=str):
            for line in part.read_text().splitlines():
                try:
                    outcome = JoinOutcome.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn when the task was killed: that session is joined again
                finished[outcome.key] = outcome
        return finished

    def record(self, outcome: JoinOutcome) -> None:
        """Add one finished session (callers serialise the calls); nothing once closed."""
        if self._closed:
            return
        line = json.dumps(outcome.to_dict()) + "\n"
        if self._local:
            if self._out is None:
                self._out = self._new_part().open("a")
            self._out.write(line)
            self._out.flush()  # in the OS's hands: a SIGKILL of the task loses nothing
            return
        self._pending.append(line)
        if len(self._pending) >= REMOTE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._new_part().write_text("".join(self._pending))
            self._pending.clear()

    def close(self) -> None:
        self._closed = True
        self.flush()
        if self._out is not None:
            self._out.close()
            self._out = None

    def remove(self) -> None:
        self.close()
        if self.folder.exists():
            self.folder.fs.rm(self.folder.path, recursive=True)

    def _new_part(self) -> ObjectStoragePath:
        return self.folder / f"part-{uuid.uuid4().hex}.jsonl"
