"""Benchmark: the sweep against a tenant's rate limit (the sandbox's token bucket), one and two at a time.

    .venv/bin/python bench/bench_rate_limit.py [--sessions 2000] [--latency-ms 20] [--concurrency 32]
                                               [--baseline-ref 891967d | --no-baseline]

For each rate limit R (50 and 200 requests per second by default): one sweep of N sessions, then two
sweeps of N sessions each (other sessions) in two processes at once, against the same limit. Printed per sweep: wall
seconds, joins per second, that rate as a share of R (achieved / R), and the share of join requests
answered 429 (from the sandbox's journal). The targets of issue 12: one sweep at >= 90% of R with <= 5%
429s; two sweeps together >= 85% of R, each >= 35%.

Each figure is printed beside the same sweep with the code of ``--baseline-ref`` (by default the last
commit before the sweep paced itself to a rate limit), exported from git and run in the same way
against the same sandbox, in the same run of this script. Both sweeps use the deprecated ``session_ids=``
form (against the sandbox's ``join_mode=session`` extension), the only form the baseline knows: the pacing
measured here is the same for ``agents=`` sweeps, one join request per item either way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer

REPO = Path(__file__).resolve().parents[1]
#: the last commit whose sweep did not pace itself to a rate limit
BASELINE_REF = "891967d"
JOIN_SUFFIX = "agent-sessions/join"
# One sweep, run in its own process so that two can share the limit as two Airflow workers would.
SWEEP_SCRIPT = """
import json, sys, time
from cxone_provider.operators.sweep import JoinAgentSessionsOperator
ids = json.loads(sys.argv[1]); concurrency = int(sys.argv[2])
operator = JoinAgentSessionsOperator(
    task_id="sweep", session_ids=ids, security_user={"agent_id": 1001},
    max_concurrency=concurrency, progress_interval_s=3600,
)
started = time.monotonic()  # CLOCK_MONOTONIC: comparable between processes on one machine
result = operator.execute(context={})
print(json.dumps({"start": started, "end": time.monotonic(), "success": len(result["Success"])}))
"""


def export_plugins(ref: str, into: Path) -> Path:
    """The ``plugins/`` folder of ``ref``, exported from git into ``into``; its path."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "plugins"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "plugins"


def run_sweeps(
    sandbox: SandboxServer, groups: list[list[str]], concurrency: int, code: Path | None = None
) -> list[dict[str, Any]]:
    """Run one sweep per group, each in its own process, all at once; their figures.

    :param code: a ``plugins/`` folder whose ``cxone_provider`` the sweeps import instead of this one.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if code is not None:
        env["PYTHONPATH"] = str(code)  # ahead of the installed package's path entry
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SWEEP_SCRIPT, json.dumps(ids), str(concurrency)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for ids in groups
    ]
    figures = []
    for process, ids in zip(processes, groups, strict=True):
        out, _ = process.communicate(timeout=900)
        figure = json.loads(out.strip().splitlines()[-1])
        figure["ids"] = set(ids)
        figures.append(figure)
    journal = [e for e in sandbox.journal() if e["path"].endswith(JOIN_SUFFIX)]
    for figure in figures:
        ids = figure.pop("ids")
        mine = [e for e in journal if e["params"].get("sessionId") in ids]
        figure["requests"] = len(mine)
        figure["throttled"] = sum(1 for e in mine if e["status"] == 429)
    return figures


def figure_rows(rate: float, label: str, code: str, figures: list[dict[str, Any]]) -> list[list[str]]:
    """The printed rows of one run: the sweeps together, then each sweep when there are several."""
    # The sweeps' own time (first start to last end), not the processes' start-up.
    wall = max(f["end"] for f in figures) - min(f["start"] for f in figures)
    total = sum(f["success"] for f in figures)
    throttled = sum(f["throttled"] for f in figures) / max(1, sum(f["requests"] for f in figures))
    rows = [
        [
            f"R={rate:g}",
            label,
            code,
            "together",
            f"{wall:.1f}",
            f"{total / wall:.0f}",
            f"{total / wall / rate:.0%}",
            f"{throttled:.1%}",
        ]
    ]
    if len(figures) > 1:
        for n, figure in enumerate(figures, 1):
            seconds = figure["end"] - figure["start"]
            rate_of = figure["success"] / seconds
            share = figure["throttled"] / max(1, figure["requests"])
            rows.append(
                [
                    f"R={rate:g}",
                    label,
                    code,
                    f"sweep {n}",
                    f"{seconds:.1f}",
                    f"{rate_of:.0f}",
                    f"{rate_of / rate:.0%}",
                    f"{share:.1%}",
                ]
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000, help="sessions per sweep")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="the git commit to compare with")
    parser.add_argument("--no-baseline", action="store_true", help="run this code only")
    args = parser.parse_args()
    sessions = [f"sess-{5001 + n}" for n in range(2 * args.sessions)]
    first, second = sessions[: args.sessions], sessions[args.sessions :]
    rows: list[list[str]] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        SandboxServer(
            live_sessions=len(sessions), faults=LEGACY_EXTENSIONS, settings={"journal_size": 40 * args.sessions}
        ) as sandbox,
    ):
        codes: list[tuple[str, Path | None]] = [("now", None)]
        if not args.no_baseline:
            codes.insert(0, (args.baseline_ref, export_plugins(args.baseline_ref, Path(scratch))))
        name, value = sandbox.connection_env()
        os.environ[name] = value
        for rate in args.rates:
            for label, groups in (("one sweep", [first]), ("two sweeps", [first, second])):
                for code_name, code in codes:
                    sandbox.reset()
                    sandbox.set_faults(**LEGACY_EXTENSIONS, latency_ms=args.latency_ms, rate_limit_rps=rate)
                    rows += figure_rows(rate, label, code_name, run_sweeps(sandbox, groups, args.concurrency, code))
    header = ["limit", "run", "code", "which", "wall s", "joins/s", "achieved / R", "429 share"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print("\ntargets (issue 12): one sweep >= 90% of R with <= 5% 429s; two together >= 85%, each >= 35%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
