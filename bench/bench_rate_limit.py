"""Benchmark: the sweep against a tenant's rate limit (the sandbox's token bucket), one and two at a time.

    .venv/bin/python bench/bench_rate_limit.py [--sessions 2000] [--latency-ms 20] [--concurrency 32]

For each rate limit R (50 and 200 requests per second by default): one sweep of N sessions, then two
sweeps of N/2 sessions each in two processes at once, against the same limit. Printed per sweep: wall
seconds, joins per second, that rate as a share of R (achieved / R), and the share of join requests
answered 429 (from the sandbox's journal). The targets of issue 12: one sweep at >= 90% of R with <= 5%
429s; two sweeps together >= 85% of R, each >= 35%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from cxone_provider.testing import SandboxServer

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


def run_sweeps(sandbox: SandboxServer, groups: list[list[str]], concurrency: int) -> list[dict[str, Any]]:
    """Run one sweep per group, each in its own process, all at once; their figures."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    args = parser.parse_args()
    sessions = [f"sess-{5001 + n}" for n in range(args.sessions)]
    half = len(sessions) // 2
    rows = []
    with SandboxServer(live_sessions=args.sessions, settings={"journal_size": 20 * args.sessions}) as sandbox:
        name, value = sandbox.connection_env()
        os.environ[name] = value
        for rate in args.rates:
            for label, groups in (("one sweep", [sessions]), ("two sweeps", [sessions[:half], sessions[half:]])):
                sandbox.reset()
                sandbox.set_faults(latency_ms=args.latency_ms, rate_limit_rps=rate)
                figures = run_sweeps(sandbox, groups, args.concurrency)
                # The sweeps' own time (first start to last end), not the processes' start-up.
                wall = max(f["end"] for f in figures) - min(f["start"] for f in figures)
                total = sum(f["success"] for f in figures)
                rows.append(
                    [
                        f"R={rate:g}",
                        label,
                        "together",
                        f"{wall:.1f}",
                        f"{total / wall:.0f}",
                        f"{total / wall / rate:.0%}",
                        f"{sum(f['throttled'] for f in figures) / max(1, sum(f['requests'] for f in figures)):.1%}",
                    ]
                )
                if len(figures) > 1:
                    for n, figure in enumerate(figures, 1):
                        seconds = figure["end"] - figure["start"]
                        rate_of = figure["success"] / seconds
                        rows.append(
                            [
                                f"R={rate:g}",
                                label,
                                f"sweep {n}",
                                f"{seconds:.1f}",
                                f"{rate_of:.0f}",
                                f"{rate_of / rate:.0%}",
                                f"{figure['throttled'] / max(1, figure['requests']):.1%}",
                            ]
                        )
    header = ["limit", "run", "which", "wall s", "joins/s", "achieved / R", "429 share"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print("\ntargets (issue 12): one sweep >= 90% of R with <= 5% 429s; two together >= 85%, each >= 35%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
