"""Fault soak at scale: one sweep through issue 6's whole fault mix, accounted for from the sandbox's journal.

    .venv/bin/python bench/soak.py [--sessions 10000] [--concurrency 16] [--seed N]

The sandbox answers 10% of Agent API requests 429 (half with ``Retry-After: 1``, half without), 5% 503,
drops the connection of 2%, slows 1% by 200 ms, and issues 5-second tokens. The sweep runs with the
hook's production retry policy unless told otherwise (``--max-attempts``, ``--backoff-initial-s``,
``--backoff-max-s``). Printed: the faults injected by kind (journal), the retries by reason (the
sweep's stats) and whether they match, token requests and renewals against the expiries the wall time
implies, outcomes by condition, lost sessions (computed: input agents not in exactly one condition list),
wall time and joins/s. Each of the sandbox's generated agents is joined as itself, expecting its live session
(the ``agents=`` form, CXone's published join). ``tests/sweeps/test_soak.py`` asserts the same accounting
on 2,000 sessions.

Exits 1 when a session is lost or the accounting does not add up.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from itertools import pairwise

# Airflow reads its configuration on first import: a throw-away home keeps this run self-contained.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cxone-soak-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# One log line per retry belongs in a task log; here the totals say it all.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from typing import Any

from cxone_provider.domain.conditions import JoinCondition
from cxone_provider.hooks.cxone import CxoneHook
from cxone_provider.operators.sweep import DEFAULT_MAX_CONCURRENCY, JoinAgentSessionsOperator
from cxone_provider.testing import SOAK_FAULTS, SandboxServer

CONN_ID = "cxone_soak"
TOKEN_LIFETIME_S = SOAK_FAULTS["token_lifetime_s"]
RENEW_AFTER_S = TOKEN_LIFETIME_S * 0.9  # the hook renews at 90% of a token's lifetime
JOIN_SUFFIX = "/agent-sessions/join"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a credential
# The journal's name of each fault that replaces the answer -> the hook's retry reason for it.
RETRY_REASON = {"429_retry_after": "429", "429": "429", "503": "503", "drop": "connection"}
FAULT_LABELS = {
    "429_retry_after": "429 with Retry-After",
    "429": "429 without Retry-After",
    "503": "503",
    "drop": "dropped connection",
    "slow": "slowed 200 ms (only)",
}


def fault_mix(seed: int) -> dict[str, Any]:
    """Issue 6's fault mix, as sandbox knobs."""
    return {**SOAK_FAULTS, "random_seed": seed}


def _hook_default(name: str) -> Any:
    return inspect.signature(CxoneHook.__init__).parameters[name].default


def settled_journal(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """The journal once nothing is in flight (a dropped connection is journaled a moment after)."""
    deadline = time.monotonic() + 5
    while sandbox.state()["inflight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return sandbox.journal()


def row(label: str, value: object, note: str = "") -> None:
    print(f"  {label:<34} {value!s:>10}  {note}".rstrip())


def report(result: dict[str, Any], journal: list[dict[str, Any]], agent_ids: list[int], max_attempts: int) -> bool:
    """Print the figures; return whether every agent's session is accounted for and the counts agree."""
    stats = result["stats"]
    joins = [e for e in journal if e["path"].endswith(JOIN_SUFFIX)]
    tokens = sorted((e for e in journal if e["path"] == TOKEN_PATH), key=lambda e: e["seq"])
    outcomes = {o["agent_id"]: o for o in result["outcomes"]}
    ok = True

    print(f"\nfaults injected (journal, {len(joins)} join requests):")
    injected = Counter(e["fault"] for e in joins if e["fault"])
    for kind, label in FAULT_LABELS.items():
        row(label, injected[kind], f"{injected[kind] / len(joins):.2%}" if joins else "")
    # A request both slowed and failed is journaled under its failure; its duration shows the slow-down.
    hidden_slow = sum(1 for e in joins if e["fault"] in RETRY_REASON and e["t_end"] - e["t_start"] >= 0.19)
    row("  of the failures, also slowed", hidden_slow, "(took >= 200 ms)")
    other = {k: n for k, n in injected.items() if k not in FAULT_LABELS}
    if other:
        row("other", other)

    # Each faulted attempt is retried, but for the last attempt of an agent that ran out of them.
    by_agent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in sorted(joins, key=lambda e: e["seq"]):
        by_agent[int(entry["params"].get("asAgentId", 0))].append(entry)
    exhausted: Counter[str] = Counter()
    for agent_id in result["Default"]:
        sent = by_agent.get(agent_id, [])
        if sent and sent[-1]["fault"] in RETRY_REASON:
            exhausted[RETRY_REASON[sent[-1]["fault"]]] += 1
    expected = Counter(RETRY_REASON[e["fault"]] for e in joins if e["fault"] in RETRY_REASON) - exhausted
    retries = Counter(stats.get("retries", {}))
    print("\nretries by reason (sweep stats; journal faults less the last attempts of Default agents):")
    for reason in sorted(set(retries) | set(expected)):
        match = retries[reason] == expected[reason]
        ok &= match
        row(reason, retries[reason], "matches the journal" if match else f"MISMATCH: journal says {expected[reason]}")
    row("requests (sum of attempts)", stats["requests"], f"journal: {len(joins)}")
    ok &= stats["requests"] == len(joins)
    print(
        f"  concurrency: peak {stats['peak_in_flight']} in flight, limit down to "
        f"{stats['lowest_concurrency_limit']} ({stats['concurrency_decreases']} decreases)"
    )

    elapsed = float(stats["elapsed_s"])
    low, high = math.floor(elapsed / TOKEN_LIFETIME_S), math.floor(elapsed / RENEW_AFTER_S) + 1
    starts = [float(e["t_start"]) for e in tokens]
    gaps = [b - a for a, b in pairwise(starts)]
    unauthorized = sum(1 for e in joins if e["status"] == 401)
    print(f"\ntokens ({TOKEN_LIFETIME_S} s lifetime, renewed after {RENEW_AFTER_S:g} s):")
    row("token requests (journal)", len(tokens), f"sweep counted {stats['token_requests']}")
    row("renewals", max(len(tokens) - 1, 0), f"expected {low}..{high} requests for {elapsed:.1f} s")
    if gaps:
        row("shortest/longest renewal gap", f"{min(gaps):.2f}/{max(gaps):.2f}s")
    row("joins answered 401 (expired token)", unauthorized)
    ok &= low <= len(tokens) <= high and unauthorized == 0 and len(tokens) == stats["token_requests"]

    print("\noutcomes by condition:")
    for condition in JoinCondition:
        row(condition.value, len(result[condition.value]))
    defaults = [outcomes[s] for s in result["Default"]]
    honest = sum(
        1
        for o in defaults
        if o["attempts"] == max_attempts and ("gave up after" in o["message"] or "no answer from CXone" in o["message"])
    )
    if defaults:
        row("  Default after all attempts", f"{honest}/{len(defaults)}")
    ok &= honest == len(defaults)
    joined_twice = sum(
        1 for a in result["Success"] if sum(e["fault"] not in RETRY_REASON for e in by_agent.get(a, [])) != 1
    )
    row("  Success not joined exactly once", joined_twice)
    ok &= joined_twice == 0

    listed = Counter(a for condition in JoinCondition for a in result[condition.value])
    once = {a for a, n in listed.items() if n == 1}
    lost = len(set(agent_ids) - once)
    print()
    row("agents in", len(agent_ids))
    row("lost", lost, "(input agents not in exactly one condition list)")
    row("wall time", f"{elapsed:.1f}s")
    row("joins/s", f"{len(agent_ids) / elapsed:.0f}" if elapsed else "-")
    return ok and lost == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY)
    parser.add_argument("--seed", type=int, default=6006, help="seed of the sandbox's fault dice")
    parser.add_argument("--max-attempts", type=int, default=None, help=f"hook default: {_hook_default('max_attempts')}")
    parser.add_argument(
        "--backoff-initial-s", type=float, default=None, help=f"hook default: {_hook_default('backoff_initial_s')}"
    )
    parser.add_argument(
        "--backoff-max-s", type=float, default=None, help=f"hook default: {_hook_default('backoff_max_s')}"
    )
    args = parser.parse_args()
    hook_params: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_attempts", args.max_attempts),
            ("backoff_initial_s", args.backoff_initial_s),
            ("backoff_max_s", args.backoff_max_s),
        )
        if value is not None
    }
    max_attempts = int(hook_params.get("max_attempts", _hook_default("max_attempts")))
    faults = fault_mix(args.seed)
    print(
        f"fault soak: {args.sessions} live sessions, concurrency {args.concurrency}, seed {args.seed}; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    print("  faults: " + ", ".join(f"{k}={v}" for k, v in faults.items() if k != "random_seed"))
    print("  hook: " + (", ".join(f"{k}={v}" for k, v in hook_params.items()) or "production defaults"))
    # The sandbox's generated agents 5001… each have a live session sess-<agent id>; each item is joined
    # as its own agent through the connection's key, expecting that session (CXone's published join).
    agent_ids = [5001 + n for n in range(args.sessions)]
    items = [{"agent_id": agent_id, "session_id": f"sess-{agent_id}"} for agent_id in agent_ids]
    # The journal must hold every request of the soak for its accounting (retries included).
    keep_all = {"journal_size": 4 * args.sessions}
    with SandboxServer(live_sessions=args.sessions, faults=faults, settings=keep_all) as sandbox:
        name, value = sandbox.connection_env(CONN_ID)
        os.environ[name] = value
        operator = JoinAgentSessionsOperator(
            task_id="soak",
            agents=items,
            cxone_conn_id=CONN_ID,
            max_concurrency=args.concurrency,
            progress_interval_s=3600,
            hook_params=hook_params,
        )
        result = operator.execute(context={})
        journal = settled_journal(sandbox)
    ok = report(result, journal, agent_ids, max_attempts)
    print("\naccounting:", "every agent's session accounted for, counts agree" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
