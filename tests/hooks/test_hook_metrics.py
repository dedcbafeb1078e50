"""Metrics through Airflow's Stats, captured as a StatsD server would get them: UDP on loopback.

Airflow's StatsD logger is set up from the ``[metrics]`` settings, as a task process does on start
(``stats.initialize``), and every packet the provider's hook, join and sweep send is read back.
"""

from __future__ import annotations

import importlib
import re
import socket
from collections import Counter

import pytest

from cxone_provider.operators.agent_session import JoinAgentSessionOperator
from cxone_provider.operators.sweep import JoinAgentSessionsOperator

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 2}
PACKET = re.compile(r"^airflow\.(cxone\.[A-Za-z0-9_.]+):([0-9.]+)\|(c|ms)")


@pytest.fixture
def statsd(monkeypatch):
    """A StatsD listener on loopback that Airflow's Stats sends to; yields a reader of what arrived."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    _start_stats()

    def received() -> list[tuple[str, float, str]]:
        packets: list[tuple[str, float, str]] = []
        while True:
            try:
                data = listener.recv(65536).decode()
            except TimeoutError:
                return packets
            for line in data.splitlines():
                if match := PACKET.match(line):
                    packets.append((match[1], float(match[2]), match[3]))

    yield received
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "False")
    _start_stats()
    listener.close()


def _start_stats() -> None:
    """What a task process does on start: build Stats' backend from the ``[metrics]`` settings."""
    try:
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.observability.metrics.stats_utils import get_stats_factory
    except ImportError:  # Airflow before 3.2: Stats reads the settings when its module is loaded
        import airflow.stats

        importlib.reload(airflow.stats)
        return
    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)


def counters(packets):
    total: Counter[str] = Counter()
    for name, value, kind in packets:
        if kind == "c":
            total[name] += int(value)
    return total


def timers(packets):
    return [name for name, _, kind in packets if kind == "ms"]


def test_a_sweep_counts_its_conditions_and_times_its_calls_and_itself(cxone_sandbox, statsd):
    agents = [{"agent_id": a["agent_id"]} for a in cxone_sandbox.state()["agents"] if a["session_id"]][:3]
    agents.append({"agent_id": 999999})  # an unknown agent: not Success
    result = JoinAgentSessionsOperator(task_id="sweep", agents=agents, hook_params=FAST).execute(context={})

    packets = statsd()
    joined = {f"cxone.join.{c}": n for c, n in result["counts"].items() if n}
    assert {k: v for k, v in counters(packets).items() if k.startswith("cxone.join.")} == joined
    assert timers(packets).count("cxone.sweep") == 1
    assert timers(packets).count("cxone.api.join") == len(agents)  # one timer per join sent
    assert counters(packets)["cxone.api.429"] == 0


def test_throttling_is_counted_as_429s_and_retries(cxone_sandbox, statsd):
    cxone_sandbox.set_faults(rate_429_retry_after=1.0, retry_after_s=0, path_filter="agent-sessions/join")
    operator = JoinAgentSessionOperator(
        task_id="join", session_id="sess-2001", security_user={"agent_id": 1001}, hook_params=FAST
    )
    outcome = operator.join(context={})

    assert outcome.condition.value == "Default"  # still throttled after the hook's 2 attempts
    packets = statsd()
    assert counters(packets)["cxone.api.429"] == 2  # each attempt's answer
    assert counters(packets)["cxone.api.retries"] == 1  # the one retry between them
    assert counters(packets)["cxone.join.Default"] == 1
    assert timers(packets).count("cxone.api.join") == 1  # one call, its retries inside it
