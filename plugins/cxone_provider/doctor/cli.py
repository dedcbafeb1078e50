"""``cxone-doctor``'s command line: check a connection, print the table, optionally write the record."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cxone_provider.doctor.checks import diagnose
from cxone_provider.doctor.record import Recorder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxone-doctor",
        description="Check, read-only, that a CXone tenant answers what the provider relies on.",
    )
    p.add_argument("--conn-id", default="cxone_default", help="the Airflow cxone connection (default: %(default)s)")
    p.add_argument(
        "--agent-id",
        type=_agent_id,
        metavar="N",
        help="the SecurityUser's agent to read (default: the key user's own, from the id_token's icAgentId)",
    )
    p.add_argument("--record", metavar="PATH", help="write every answer, redacted, to this JSON file")
    return p


def _agent_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--agent-id must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--agent-id must be a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """Run the doctor; 0 when nothing the provider needs is missing, 1 otherwise (2: bad arguments)."""
    args = build_parser().parse_args(argv)
    recorder = Recorder()
    report = diagnose(args.conn_id, agent_id=args.agent_id, recorder=recorder)
    out(report.text())
    if args.record:
        record = recorder.record(report.api_version)
        Path(args.record).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        out(f"recorded {len(record['answers'])} answer(s), redacted, to {args.record}")
    return 1 if report.failed else 0
