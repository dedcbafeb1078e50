"""Benchmark: checking N agents' live sessions four ways against the sandbox, side by side in one run.

Each agent is joined as itself (CXone's published join: the agent's own live session), as a QA sweep
does.

    .venv/bin/python bench/bench_sweep.py [--sessions 1000] [--latency-ms 20]

(a) naive: sequential joins, a new hook (new token, new connection, new discovery) per session —
    what wiring HttpOperator by hand per session amounts to. Timed on the first ``--naive-sample``
    sessions and scaled to N: every new token is registered with Airflow's secret masker, whose cost
    grows with each secret, so one process minting a thousand tokens would measure the masker, not
    the approach (a real per-session task runs in a fresh process);
(b) sequential joins through one hook;
(c) JoinAgentSessionsOperator at its default concurrency, and at 32;
(d) for reference, the floor of the HTTP client: bare ``requests`` posts from 32 threads, with no
    retries, classification or accounting — what any Python client on this machine can reach.

For each: wall seconds, joins per second, HTTP requests per join and token requests (both counted
by the sandbox's journal), and the ratio to the ideal ``N x latency / concurrency``. Then the import
cost of each operator module on top of ``import airflow.sdk``, with sockets disabled (an import that
touches the network fails). Figures are printed, not asserted: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Airflow reads its configuration on first import: a throw-away home keeps this run self-contained.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cxone-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from typing import TYPE_CHECKING

from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.common import join_agent_session
from cxone_provider.operators.sweep import DEFAULT_MAX_CONCURRENCY, JoinAgentSessionsOperator
from cxone_provider.testing import SandboxServer

if TYPE_CHECKING:
    from collections.abc import Callable

OPERATOR_MODULES = (
    "cxone_provider.operators.security_user",
    "cxone_provider.operators.agent_session",
    "cxone_provider.operators.sweep",
)


@dataclass
class Figures:
    name: str
    concurrency: int
    seconds: float
    joined: int
    requests: int
    token_requests: int
    sampled: int  # sessions actually joined; figures are scaled from these to the full N

    def scaled(self, sessions: int) -> Figures:
        factor = sessions / self.sampled
        return Figures(
            name=self.name,
            concurrency=self.concurrency,
            seconds=self.seconds * factor,
            joined=round(self.joined * factor),
            requests=round(self.requests * factor),
            token_requests=round(self.token_requests * factor),
            sampled=self.sampled,
        )

    def row(self, sessions: int, latency_s: float, baseline: float) -> list[str]:
        ideal = sessions * latency_s / self.concurrency
        return [
            self.name,
            f"{self.seconds:.2f}",
            f"{sessions / self.seconds:.0f}",
            f"{self.requests / sessions:.2f}",
            str(self.token_requests),
            f"{self.seconds / ideal:.2f}",
            f"{baseline / self.seconds:.1f}x",
            f"{self.joined}/{sessions}" + ("" if self.sampled == sessions else f" (scaled from {self.sampled})"),
        ]


def measure(
    sandbox: SandboxServer, name: str, concurrency: int, sessions: list[int], run: Callable[[], int]
) -> Figures:
    sandbox.reset()
    started = time.perf_counter()
    joined = run()
    seconds = time.perf_counter() - started
    journal = sandbox.journal()
    figures = Figures(
        name=name,
        concurrency=concurrency,
        seconds=seconds,
        joined=joined,
        requests=len(journal),
        token_requests=sum(1 for entry in journal if entry["path"] == "/auth/token"),
        sampled=len(sessions),
    )
    print(f"  {name}: {seconds:.2f}s for {len(sessions)} sessions", flush=True)
    return figures


def naive(sessions: list[int]) -> int:
    joined = 0
    for agent_id in sessions:
        joined += join_agent_session(CxoneHook("cxone_default"), None, agent_id).condition == "Success"
    return joined


def one_hook(sessions: list[int]) -> int:
    hook = CxoneHook("cxone_default")
    return sum(join_agent_session(hook, None, agent_id).condition == "Success" for agent_id in sessions)


def sweep(sessions: list[int], concurrency: int) -> int:
    operator = JoinAgentSessionsOperator(
        task_id="sweep",
        agents=sessions,
        max_concurrency=concurrency,
        progress_interval_s=3600,
    )
    return len(operator.execute(context={})["Success"])


def bare_requests(sandbox: SandboxServer, sessions: list[int], concurrency: int) -> int:
    import requests
    from requests.adapters import HTTPAdapter

    hook = CxoneHook("cxone_default")
    token, base = hook.access_token(), hook.api_base_url
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency))

    def post(agent_id: int) -> bool:
        answer = session.post(
            base + "agent-sessions/join",
            params={"asAgentId": str(agent_id)},
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.status_code == 202

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(post, sessions))


def import_costs() -> dict[str, float]:
    """Milliseconds each operator module adds on top of ``import airflow.sdk`` (``-X importtime``)."""
    costs = {}
    for module in OPERATOR_MODULES:
        script = (
            "import socket\n"
            "def refuse(*a, **k):\n    raise RuntimeError('network access at import')\n"
            "socket.socket.connect = refuse\n"
            "import airflow.sdk\n"
            f"import {module}\n"
        )
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True, check=True
        )
        # The top-level line of our module carries the cumulative time of everything it pulled in.
        line = next(ln for ln in result.stderr.splitlines() if re.search(rf"\|\s{re.escape(module)}$", ln.rstrip()))
        costs[module] = int(line.split("|")[1]) / 1000
    return costs


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--naive-sample", type=int, default=100, help="sessions timed for (a)")
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000
    print(
        f"sandbox: {args.sessions} live sessions, {args.latency_ms:g} ms latency per request; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    with SandboxServer(live_sessions=args.sessions, faults={"latency_ms": args.latency_ms}) as sandbox:
        name, value = sandbox.connection_env()
        os.environ[name] = value
        sessions = [5001 + n for n in range(args.sessions)]  # the generated agents, each logged in
        results = [
            measure(
                sandbox,
                "(a) naive: new hook per join",
                1,
                sessions[: args.naive_sample],
                lambda: naive(sessions[: args.naive_sample]),
            ).scaled(args.sessions),
            measure(sandbox, "(b) sequential, one hook", 1, sessions, lambda: one_hook(sessions)),
            measure(
                sandbox,
                f"(c) sweep, default concurrency {DEFAULT_MAX_CONCURRENCY}",
                DEFAULT_MAX_CONCURRENCY,
                sessions,
                lambda: sweep(sessions, DEFAULT_MAX_CONCURRENCY),
            ),
            measure(sandbox, "(c) sweep, concurrency 32", 32, sessions, lambda: sweep(sessions, 32)),
            measure(
                sandbox, "(d) floor: bare requests, 32", 32, sessions, lambda: bare_requests(sandbox, sessions, 32)
            ),
        ]
    baseline = results[0].seconds
    print()
    print_table(
        ["variant", "wall s", "joins/s", "HTTP req/join", "token req", "x ideal", "vs (a)", "joined"],
        [r.row(args.sessions, latency_s, baseline) for r in results],
    )
    print("\nideal = sessions x latency / concurrency; targets for (c): >= 10x (a), 1 token, <= 1.5x ideal")
    print("\nimport cost above `import airflow.sdk` (python -X importtime, sockets disabled; target < 50 ms):")
    for module, ms in import_costs().items():
        print(f"  {module:<42} {ms:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
