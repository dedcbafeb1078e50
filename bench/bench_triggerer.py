"""Benchmark: many AgentStateTriggers in one event loop, as one triggerer runs them.

    .venv/bin/python bench/bench_triggerer.py [--triggers 200] [--poll-interval 1] [--seconds 20] [--gc-freeze]

Starts the sandbox in its own process, then runs N triggers in one asyncio event loop (the way Airflow's
triggerer runs its triggers), each waiting for agent 2009 — logged out — to reach ``Dialer`` and polling
``agents/states`` every ``--poll-interval`` seconds. Beside them a probe wakes every 10 ms and records
how late it woke: the event loop's lag while the triggers start, wait and fire (Airflow's triggerer
warns above 200 ms: "Triggerer's async thread was blocked"). After ``--seconds`` the agent goes
``Dialer`` and every trigger must fire.

Printed: event-loop lag per phase (p50, p99, max), the polls made and their rate per trigger, CPython's
full garbage collections and their longest pause (they stop the loop too, and scan all of Airflow's
imported heap; ``--gc-freeze`` freezes that heap first, as Airflow's dag-processor does), token
requests from the sandbox's journal (one per connection is the target, not one per trigger), and how
long after the change the last trigger fired. No assertions: a benchmark prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import time
from typing import Any

import requests

from cxone_provider.testing import LEGACY_EXTENSIONS, SandboxServer

PROBE_INTERVAL_S = 0.01
AGENT = 2009  # logged out in the sandbox's seed


async def probe(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Wake every PROBE_INTERVAL_S and record how late the loop let it wake."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        planned = loop.time() + PROBE_INTERVAL_S
        await asyncio.sleep(PROBE_INTERVAL_S)
        lags.append((loop.time(), max(loop.time() - planned, 0.0)))


class FullCollections:
    """The pauses of CPython's full (generation 2) garbage collections: they stop the event loop too."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)


async def run(
    sandbox: SandboxServer, triggers: int, poll_interval: float, seconds: float, *, freeze: bool
) -> dict[str, Any]:
    from cxone_provider.triggers.agent_state import AgentStateTrigger

    if freeze:
        gc.freeze()  # what Airflow's dag-processor does after start-up: the imported heap is never scanned again
    collections = FullCollections()
    gc.callbacks.append(collections)

    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(lags, stop))
    fired: list[float] = []

    async def one() -> str:
        trigger = AgentStateTrigger(
            agent_id=AGENT, states=["Dialer"], poll_interval=poll_interval, timeout=seconds + 60
        )
        async for event in trigger.run():
            fired.append(time.monotonic())
            return str(event.payload["status"])
        return "none"

    loop = asyncio.get_running_loop()
    started, loop_started = time.monotonic(), loop.time()
    tasks = [asyncio.create_task(one()) for _ in range(triggers)]
    await asyncio.sleep(seconds)
    changed, loop_changed = time.monotonic(), loop.time()
    # The bench's own blocking calls run off the loop, like everything else that blocks.
    journal = await asyncio.to_thread(sandbox.journal)
    polls_before_change = sum(1 for e in journal if e["path"].endswith("/agents/states"))
    await asyncio.to_thread(
        lambda: requests.put(
            f"{sandbox.url}/_sandbox/agents/{AGENT}/state",
            json={"state": "Dialer"},
            headers=sandbox.admin_headers(),
            timeout=30,
        ).raise_for_status()
    )
    statuses = await asyncio.gather(*tasks)
    stop.set()
    await prober
    # Phases: the triggers starting (first poll_interval + 1 s), waiting, and firing after the change.
    steady = loop_started + poll_interval + 1
    phases = {
        "start": [lag for at, lag in lags if at < steady],
        "waiting": [lag for at, lag in lags if steady <= at < loop_changed],
        "firing": [lag for at, lag in lags if at >= loop_changed],
        "all": [lag for _, lag in lags],
    }
    return {
        "success": statuses.count("success"),
        "lags": {name: _summary(values) for name, values in phases.items()},
        "polls": polls_before_change,
        "polls_per_trigger_per_s": polls_before_change / triggers / (changed - started),
        "last_fired_after_change_s": max(fired) - changed,
        "full_collections": collections.pauses,
    }


def _summary(lags: list[float]) -> str:
    if not lags:
        return "no samples"
    ordered = sorted(lags)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return (
        f"p50 {1000 * statistics.median(ordered):.1f} ms, p99 {1000 * p99:.1f} ms, "
        f"max {1000 * ordered[-1]:.1f} ms ({len(ordered)} samples)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long they wait before the change")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the imports are done")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # 200 triggers' "waiting" lines are not the figure
    with SandboxServer(faults=LEGACY_EXTENSIONS, settings={"journal_size": 100_000}) as sandbox:
        name, value = sandbox.connection_env()
        os.environ[name] = value
        figures = asyncio.run(run(sandbox, args.triggers, args.poll_interval, args.seconds, freeze=args.gc_freeze))
        journal = sandbox.journal()
        tokens = sum(1 for e in journal if e["path"] == "/auth/token")
        discoveries = sum(1 for e in journal if e["path"].startswith("/.well-known/"))
    print(f"{args.triggers} triggers in one event loop, poll interval {args.poll_interval:g}s, {args.seconds:g}s wait")
    print(f"  fired with success:        {figures['success']} of {args.triggers}")
    for phase, summary in figures["lags"].items():
        print(f"  event-loop lag, {phase + ':':9}{summary}")
    print(
        f"  agents/states polls:       {figures['polls']} "
        f"({figures['polls_per_trigger_per_s']:.2f} per trigger per second)"
    )
    pauses = figures["full_collections"]
    longest = f", longest {1000 * max(pauses):.1f} ms" if pauses else ""
    frozen = " (gc.freeze() after start-up)" if args.gc_freeze else ""
    print(f"  full GC collections:       {len(pauses)}{longest}{frozen}")
    print(f"  token requests (journal):  {tokens}   discovery requests: {discoveries}")
    print(f"  last trigger fired:        {figures['last_fired_after_change_s']:.2f}s after the agent's change")


if __name__ == "__main__":
    main()
