"""Benchmark: the sweep's pacing beside its peers, in one run against one sandbox (issue 24).

    .venv/bin/python bench/bench_vs_peers.py [--sessions 2000] [--latency-ms 20] [--concurrency 32]
        [--rates 10 50 200 1000] [--multi-rates 50 200] [--previous-ref f36330e] [--json bench-peers.json]

For each rate limit R (the sandbox's token bucket, one second of burst), one sweep of N sessions by each of:

- ``provider``: JoinAgentSessionsOperator as it is now;
- ``previous``: the same operator from ``--previous-ref`` (the release before this pacing), exported from
  git and imported instead of this one;
- ``botocore``: botocore's adaptive retry limiter (``botocore.retries.adaptive.ClientRateLimiter``: CUBIC
  rate control over a token bucket, what AWS's SDKs ship), gating the same hook's attempts;
- ``ideal``: a fixed client-side token bucket at the true R (sends spaced 1/R apart), which no client
  that does not know R can beat without the server's burst.

The peers use the provider's hook for the requests and its retries (a 429 is retried after its
Retry-After), so only the limiter differs. Each runs in its own process. Then the multi-process
figures: N sessions split over 2 and 4 sweeps in separate processes at once, their budget shared on
Redis (the connection's ``rate_budget``), and, for contrast, each on its own (``process``).

Printed per run: wall seconds (first start to last end), joins per second, achieved / R, and the share
of join requests the sandbox answered 429 (its journal). ``--json`` writes the same rows. Figures are
printed, not asserted: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_rate_limit import export_plugins  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: the commit before this pacing: the previous release's sweep
PREVIOUS_REF = "f36330e"
JOIN_SUFFIX = "agent-sessions/join"
# One sweep in its own process, as on its own worker: CXone's published join, each agent joined as itself
# expecting its own live session (the provider's QA-sweep form).
SWEEP_SCRIPT = """
import json, sys, time
from cxone_provider.operators.sweep import JoinAgentSessionsOperator
agents = json.loads(sys.argv[1]); concurrency = int(sys.argv[2])
operator = JoinAgentSessionsOperator(
    task_id="sweep", agents=agents, max_concurrency=concurrency, progress_interval_s=3600,
)
started = time.monotonic()  # CLOCK_MONOTONIC: comparable between processes on one machine
result = operator.execute(context={})
print(json.dumps({"start": started, "end": time.monotonic(), "success": len(result["Success"])}))
"""


def peer_sweep(kind: str, agents: list[dict[str, Any]], rate: float, concurrency: int) -> dict[str, Any]:
    """A sweep of ``agents`` through the provider's hook, its attempts gated by a peer's limiter."""
    from cxone_provider.hooks.cxone import CxoneHook
    from cxone_provider.operators.common import join_agent_session

    gate, listener = botocore_limiter() if kind == "botocore" else fixed_bucket(rate)
    hook = CxoneHook(pool_size=concurrency, attempt_gate=gate, answer_listener=listener)
    hook.access_token()
    queue = iter(agents)
    lock = threading.Lock()
    success = 0

    def worker() -> None:
        nonlocal success
        while True:
            with lock:
                agent = next(queue, None)
            if agent is None:
                return
            outcome = join_agent_session(hook, agent["session_id"], agent["agent_id"])
            with lock:
                success += outcome.condition == "Success"

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"start": started, "end": time.monotonic(), "success": success}


def botocore_limiter() -> tuple[Callable[[], Any], Callable[[int | None], None]]:
    """botocore's adaptive limiter, wired as botocore wires it (``adaptive.register_retry_handler``)."""
    from botocore.retries import adaptive, bucket, throttling

    class Throttled:  # botocore reads AWS error codes; here a 429 is the throttling answer
        status: int | None = None

        def is_throttling_error(self, **_: Any) -> bool:
            return self.status == 429

    clock = bucket.Clock()
    detector = Throttled()
    limiter = adaptive.ClientRateLimiter(
        rate_adjustor=throttling.CubicCalculator(starting_max_rate=0, start_time=clock.current_time()),
        rate_clocker=adaptive.RateClocker(clock),
        token_bucket=bucket.TokenBucket(max_rate=1, clock=clock),
        throttling_detector=detector,
        clock=clock,
    )
    lock = threading.Lock()

    @contextmanager
    def gate() -> Iterator[None]:
        limiter.on_sending_request(request=None)
        yield

    def listener(status: int | None) -> None:
        with lock:
            detector.status = status
            limiter.on_receiving_response()

    return gate, listener


def fixed_bucket(rate: float) -> tuple[Callable[[], Any], Callable[[int | None], None]]:
    """Sends spaced ``1/rate`` apart: the ideal for a client told the true limit."""
    lock = threading.Lock()
    next_at = [time.monotonic()]

    @contextmanager
    def gate() -> Iterator[None]:
        with lock:
            at = max(next_at[0], time.monotonic())
            next_at[0] = at + 1.0 / rate
        time.sleep(max(0.0, at - time.monotonic()))
        yield

    return gate, lambda status: None


def run(
    sandbox: Any,
    kind: str,
    groups: list[list[dict[str, Any]]],
    rate: float,
    args: argparse.Namespace,
    env: dict[str, str],
) -> dict[str, Any]:
    """One run: a process per group at once; its row."""
    sandbox.reset()
    sandbox.set_faults(latency_ms=args.latency_ms, rate_limit_rps=rate)
    if kind in ("provider", "previous"):
        commands = [[sys.executable, "-c", SWEEP_SCRIPT, json.dumps(g), str(args.concurrency)] for g in groups]
    else:
        peer = [sys.executable, __file__, "--peer", kind, "--rate", str(rate), "--concurrency", str(args.concurrency)]
        commands = [[*peer, "--agents", json.dumps(g)] for g in groups]
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) for c in commands
    ]
    figures = [json.loads(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in processes]
    joins = [e for e in sandbox.journal() if e["path"].endswith(JOIN_SUFFIX)]
    accepted = [e for e in joins if e["status"] != 429]
    wall = max(f["end"] for f in figures) - min(f["start"] for f in figures)
    success = sum(f["success"] for f in figures)
    each = [f["success"] / (f["end"] - f["start"]) / rate for f in figures]
    return {
        "R": rate,
        "kind": kind,
        "sweeps": len(groups),
        "sessions": sum(len(g) for g in groups),
        "wall_s": round(wall, 2),
        "joins_per_s": round(success / wall, 1),
        "achieved_of_R": round(success / wall / rate, 4),
        "each_of_R": [round(e, 3) for e in each],
        "requests": len(joins),
        "share_429": round(sum(e["status"] == 429 for e in joins) / max(1, len(joins)), 4),
        "joined_twice": len(accepted) - len({e["params"].get("asAgentId") for e in accepted}),
    }


@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ["R", "pacing", "sweeps", "wall s", "joins/s", "achieved / R", "each / R", "429 share"]
    lines = [
        [
            f"{r['R']:g}",
            r["kind"],
            str(r["sweeps"]),
            f"{r['wall_s']:.1f}",
            f"{r['joins_per_s']:.0f}",
            f"{r['achieved_of_R']:.0%}",
            " ".join(f"{e:.0%}" for e in r["each_of_R"]) if r["sweeps"] > 1 else "",
            f"{r['share_429']:.1%}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="*", default=[10.0, 50.0, 200.0, 1000.0])
    parser.add_argument("--multi-rates", type=float, nargs="*", default=[50.0, 200.0])
    parser.add_argument("--kinds", nargs="+", default=["provider", "previous", "botocore", "ideal"])
    parser.add_argument("--previous-ref", default=PREVIOUS_REF)
    parser.add_argument("--json", default="bench-peers.json", help="where the rows are written")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--agents", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:  # one peer's sweep, in its own process
        print(json.dumps(peer_sweep(args.peer, json.loads(args.agents), args.rate, args.concurrency)))
        return 0

    import redis

    from cxone_provider.testing import SandboxServer

    # The sandbox's seeded live agents 5001…, each with its session sess-5001…
    agents = [{"agent_id": 5001 + n, "session_id": f"sess-{5001 + n}"} for n in range(args.sessions)]
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        SandboxServer(live_sessions=len(agents), settings={"journal_size": 40 * args.sessions}) as sandbox,
        redis_server() as redis_url,
    ):
        base = {**os.environ, "PYTHONWARNINGS": "ignore"}
        name, value = sandbox.connection_env()
        envs = {kind: {**base, name: value} for kind in ("provider", "botocore", "ideal")}
        envs["previous"] = {**envs["provider"], "PYTHONPATH": str(export_plugins(args.previous_ref, Path(scratch)))}
        print(f"{args.sessions} sessions, {args.latency_ms:g} ms, {args.concurrency} workers, {os.cpu_count()} CPUs")
        for rate in args.rates:
            for kind in args.kinds:
                rows.append(run(sandbox, kind, [agents], rate, args, envs[kind]))
                print_table(rows[-1:])
        for rate in args.multi_rates:
            for budget, sweeps in (("redis", 2), ("redis", 4), ("process", 2)):
                env = {
                    **base,
                    name: sandbox.connection_env(rate_budget=redis_url if budget == "redis" else "process")[1],
                }
                groups = [agents[n::sweeps] for n in range(sweeps)]
                # Each run is a tenant of its own: nothing learnt in the run before (at another R) is kept.
                redis.Redis.from_url(redis_url).flushdb()
                row = run(sandbox, "provider", groups, rate, args, env)
                row["kind"] = f"provider, budget {budget}"
                rows.append(row)
                print_table(rows[-1:])
    print()
    print_table(rows)
    Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nrows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
