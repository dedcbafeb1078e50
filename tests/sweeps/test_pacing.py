"""The rate pacer: a tenant's budget is measured from the spacing of its 429s and kept to; noise is not a budget.

The pacer is fed answers on a clock of its own (no HTTP, no sleeping), so each scenario is exact:
:class:`Tenant` is a token bucket of ``limit`` requests per second (one second of burst, as the sandbox
and many gateways keep), plus a share of random 429s.
"""

from __future__ import annotations

import heapq
import random
import statistics
from typing import TYPE_CHECKING

import pytest

from cxone_provider.sweeps.budget import Learnt, LocalBudget
from cxone_provider.sweeps.rate import RatePacer
from cxone_provider.sweeps.shared import pacer_for

if TYPE_CHECKING:
    from collections.abc import Callable


class Tenant:
    """A token bucket and a clock; :meth:`serve` sends as fast as the pacers let it."""

    def __init__(self, limit: float | None, noise: float = 0.0) -> None:
        self.now = 1000.0
        self.limit, self.noise = limit, noise
        self.tokens = limit or 0.0
        self.dice = random.Random(7)

    def take(self) -> int:
        if self.noise and self.dice.random() < self.noise:
            return 429
        if self.limit is None:
            return 200
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 200
        return 429

    def serve(self, pacers: list[RatePacer], seconds: float, demand: float = 400.0) -> tuple[int, int, int]:
        """Each pacer's client sends at most ``demand`` per second for ``seconds``: (sent, 429s, accepted)."""
        sent = throttled = 0
        step = 1.0 / demand
        end = self.now + seconds
        next_at = [self.now] * len(pacers)
        while self.now < end:
            which = min(range(len(pacers)), key=next_at.__getitem__)
            now = max(self.now, next_at[which])
            if self.limit is not None:
                self.tokens = min(self.limit, self.tokens + self.limit * (now - self.now))
            self.now = now
            wait, number, _ = pacers[which].try_send(now)
            if not number:
                next_at[which] = now + max(wait, 1e-4)
                continue
            status = self.take()
            sent += 1
            throttled += status == 429
            pacers[which].answered(status, number, now, now)
            next_at[which] = now + step
        return sent, throttled, sent - throttled


class FarTenant(Tenant):
    """A tenant across a network: each request reaches the bucket up to ``jitter`` seconds after it was
    sent, and its answer comes back ``latency`` plus up to ``jitter`` later, so answers cross."""

    def __init__(self, limit: float, seed: int, jitter: float = 0.02, latency: float = 0.02) -> None:
        super().__init__(limit)
        self.jitter, self.latency, self.dice = jitter, latency, random.Random(seed)
        self.stalled, self.stall, self.busy = 0.0, 0.0, random.Random(seed)
        self.served, self.free = 0.0, 0.0

    def queues(self, served: float) -> None:
        """The tenant's gateway serves ``served`` requests a second, in order: more wait in a queue."""
        self.served = served

    def busy_client(self, stalled: float, stall: float) -> None:
        """A share ``stalled`` of the requests leave a busy client late: up to ``stall`` s after their send."""
        self.stalled, self.stall = stalled, stall

    def _delay(self) -> float:
        late = self.busy.uniform(0, self.stall) if self.stalled and self.busy.random() < self.stalled else 0.0
        return self.dice.uniform(0, self.jitter) + late

    def serve(self, pacers: list[RatePacer], seconds: float, demand: float = 400.0) -> tuple[int, int, int]:
        sent = throttled = 0
        end, filled, order = self.now + seconds, self.now, 0
        events: list[tuple[float, int, str, int, tuple[float, ...]]] = [
            (self.now, n, "send", n, ()) for n in range(len(pacers))
        ]
        while events:
            at, _, kind, which, data = heapq.heappop(events)
            if kind == "send" and at > end:
                continue
            self.now, order = at, order + len(pacers)
            if kind == "send":
                wait, number, sent_at = pacers[which].try_send(at)
                if number:
                    sent += 1
                    arrives, first_stop = at + self._delay(), "queue" if self.served else "arrive"
                    heapq.heappush(events, (arrives, order, first_stop, which, (number, sent_at)))
                heapq.heappush(
                    events, (at + (1.0 / demand if number else max(wait, 1e-4)), order + 1, "send", which, ())
                )
            elif kind == "queue":
                self.free = max(self.free, at) + 1.0 / self.served
                heapq.heappush(events, (self.free, order, "arrive", which, data))
            elif kind == "arrive":
                self.tokens, filled = min(self.limit, self.tokens + self.limit * (at - filled)), at
                status = self.take()
                throttled += status == 429
                answered = at + self.latency + self.dice.uniform(0, self.jitter)
                heapq.heappush(events, (answered, order, "answer", which, (status, *data)))
            else:
                status, number, sent_at = data
                pacers[which].answered(int(status), int(number), sent_at, at)
        return sent, throttled, sent - throttled


@pytest.fixture
def tenant_clock(monkeypatch):
    """The pacer and its budget read the tenant's clock."""
    holder: dict[str, Tenant] = {}

    def make(
        limit: float | None, noise: float = 0.0, pacers: int = 1, network_seed: int | None = None, latency: float = 0.02
    ) -> tuple[Tenant, list[RatePacer]]:
        if network_seed is not None and limit:
            tenant: Tenant = FarTenant(limit, seed=network_seed, latency=latency)
        else:
            tenant = Tenant(limit, noise)
        budget = LocalBudget(clock=lambda: tenant.now)
        monkeypatch.setattr("cxone_provider.sweeps.rate.time.monotonic", lambda: tenant.now)
        holder["tenant"] = tenant
        return tenant, [RatePacer(budget) for _ in range(pacers)]

    return make


@pytest.mark.parametrize("limit", [10, 50, 200])
def test_a_rate_limit_is_measured_and_kept_to_from_the_first_seconds(tenant_clock, limit):
    tenant, (pacer,) = tenant_clock(limit)
    seconds = max(2000 / limit, 20)
    sent, throttled, accepted = tenant.serve([pacer], seconds)
    assert pacer.limit_found == pytest.approx(limit, rel=0.03)
    assert throttled <= 0.01 * sent  # the first seconds included
    assert accepted >= 0.97 * limit * seconds  # at the limit, not under it


def test_random_429s_are_noise_not_a_budget(tenant_clock):
    tenant, (pacer,) = tenant_clock(None, noise=0.15)
    tenant.serve([pacer], 20, demand=300)
    sent, _, _ = tenant.serve([pacer], 10, demand=300)
    # Slowing down did not end them: no limit, the sweep is not slowed down.
    assert pacer.figures()["rate_limit_found"] is None
    assert pacer.cuts_undone >= 1
    assert sent >= 0.9 * 300 * 10


def test_a_budget_that_grows_is_found_again(tenant_clock):
    tenant, (pacer,) = tenant_clock(40)
    tenant.serve([pacer], 10)
    assert pacer.limit_found == pytest.approx(40, rel=0.05)
    tenant.limit = 200  # another client of the tenant stopped
    tenant.serve([pacer], 15)
    _, _, accepted = tenant.serve([pacer], 5)
    assert accepted >= 0.8 * 200 * 5


def test_a_budget_that_shrinks_is_kept_to(tenant_clock):
    tenant, (pacer,) = tenant_clock(200)
    tenant.serve([pacer], 5)
    tenant.limit = 50  # another client started
    tenant.serve([pacer], 5)
    sent, throttled, _ = tenant.serve([pacer], 20)
    assert pacer.limit_found == pytest.approx(50, rel=0.1)
    assert throttled <= 0.02 * sent


def test_two_sweeps_on_one_budget_share_the_limit_and_learn_it_once(tenant_clock):
    tenant, pacers = tenant_clock(100, pacers=2)
    sent, throttled, accepted = tenant.serve(pacers, 30)
    assert accepted >= 0.95 * 100 * 30
    assert throttled <= 0.01 * sent
    late = RatePacer(pacers[0].budget)  # a third sweep starting later: the limit is known
    assert late.limit_found == pytest.approx(100, rel=0.05)


@pytest.mark.parametrize("limit", [50, 200])
@pytest.mark.parametrize("processes", [2, 4])
def test_pacers_of_several_processes_learn_once_and_drain_together(tenant_clock, limit, processes):
    # One pacer per process on one budget (what RedisBudget gives them), each process able to send at
    # twice its share: they find the limit once, keep to it together, and a drain costs one 429, not one
    # per process.
    tenant, pacers = tenant_clock(limit, pacers=processes)
    seconds = 40
    sent, throttled, accepted = tenant.serve(pacers, seconds, demand=2.0 * limit / processes)
    assert accepted >= 0.95 * limit * seconds
    assert throttled <= 0.01 * sent  # the first seconds included
    assert all(p.limit_found == pytest.approx(limit, rel=0.03) for p in pacers)
    assert sum(p.drains for p in pacers) >= 3  # drains happened, and each cost about one 429
    assert throttled <= 8 + sum(p.drains for p in pacers)


def test_sweeps_on_one_connection_in_one_process_share_one_pacer():
    assert pacer_for("cxone_a") is pacer_for("cxone_a")
    assert pacer_for("cxone_a") is not pacer_for("cxone_b")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("processes", [1, 2, 4])
def test_the_limit_is_found_and_kept_to_when_answers_cross(tenant_clock, processes, seed):
    # Requests reach the bucket up to 20 ms after they were sent and their answers come back 20-40 ms
    # later, so 429s come back out of the order of their sends: counted by the send they refused, the
    # limit is still measured to a few tokens, and the other processes' drains are not taken for a
    # smaller budget (each process is one pacer on a shared budget, as on Redis).
    tenant, pacers = tenant_clock(200, pacers=processes, network_seed=seed)
    pacers[0].budget.shared = processes > 1
    sent, throttled, accepted = tenant.serve(pacers, 30, demand=2.0 * 200 / processes)
    assert all(p.limit_found == pytest.approx(200, rel=0.03) for p in pacers)
    assert throttled <= 0.01 * sent
    assert accepted >= 0.95 * 200 * 30


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_once_the_limit_is_known_a_drain_costs_a_429_or_two_on_a_jittery_network(tenant_clock, seed):
    # A drain (and a measurement) ends with the bucket empty; requests that then reach it bunched by the
    # network's jitter would be refused one by one while the pacer keeps just under the limit, unless it
    # lets a few tokens gather first. (Without that: 3.2-4 429s a drain over these 60 s; with it, about 2.)
    tenant, (pacer,) = tenant_clock(200, network_seed=seed)
    tenant.serve([pacer], 5, demand=400)
    drains_before = pacer.drains
    _, throttled, accepted = tenant.serve([pacer], 60, demand=400)
    drains = pacer.drains - drains_before
    assert drains >= 6
    assert throttled <= 2.75 * drains
    assert accepted >= 0.98 * 200 * 60  # the tokens let gather are taken back by the next drain


class FirstLimits(LocalBudget):
    """The in-process budget, remembering every limit stored on it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.stored: list[float] = []

    def store_limit(self, learnt: Learnt, *, next_drain_s: float | None = None) -> None:
        self.stored.append(learnt.limit)
        super().store_limit(learnt, next_drain_s=next_drain_s)


def test_a_busy_client_that_sends_some_requests_late_does_not_overestimate_the_first_limit(monkeypatch):
    # A fifth of the requests leave the client up to 60 ms after their send (threads waiting for a CPU):
    # some numbered after the first 429 were accepted before the bucket emptied, and counted as refill from
    # it they made the first limit 5-12 % too high in half the runs (every one of them then cost 429s).
    first = []
    for seed in range(1, 11):
        tenant = FarTenant(200, seed=seed)
        tenant.busy_client(stalled=0.2, stall=0.06)
        monkeypatch.setattr("cxone_provider.sweeps.rate.time.monotonic", lambda tenant=tenant: tenant.now)
        budget = FirstLimits(clock=lambda tenant=tenant: tenant.now)
        tenant.serve([RatePacer(budget)], 4, demand=3000)
        first.append(budget.stored[0])
    assert max(first) <= 1.06 * 200
    assert 0.9 * 200 <= statistics.median(first) <= 200
    # The other way round, requests numbered before the burst's last 429 take refilled tokens uncounted: low
    # is safe (no 429s) and the first drain finds the tokens left, but not far off.
    assert min(first) >= 0.8 * 200


def test_followers_learn_the_limit_when_answers_take_longer_than_the_hold(tenant_clock):
    # Answers 0.3 s away, longer than the hold: 429s to sends from before it still come in while the other
    # process ramps to measure, and they are not the 429 that ends the measurement (taken for it, the
    # follower stopped sending, the bucket never emptied and no limit was learnt in ten seconds).
    tenant, pacers = tenant_clock(200, pacers=2, network_seed=1, latency=0.3)
    pacers[0].budget.shared = True
    tenant.serve(pacers, 10, demand=200)
    assert all(p.limit_found == pytest.approx(200, rel=0.05) for p in pacers)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_requests_queued_in_front_of_the_bucket_are_not_refused_in_a_burst(monkeypatch, seed):
    # Four sweeps whose clients can send 1,600 requests a second together, to a tenant whose gateway serves
    # 1,000 a second in order (the sandbox on a busy machine; CXone's gateway under load): the start's ramp
    # outran it and met the empty bucket with a hundred requests queued, every one refused (103-104 429s).
    tenant = FarTenant(200, seed=seed, jitter=0.002, latency=0.002)
    tenant.queues(1000)
    monkeypatch.setattr("cxone_provider.sweeps.rate.time.monotonic", lambda: tenant.now)
    budget = LocalBudget(clock=lambda: tenant.now)
    budget.shared = True
    pacers = [RatePacer(budget) for _ in range(4)]
    started_sent, started_throttled, _ = tenant.serve(pacers, 2, demand=400)
    assert started_throttled <= 25  # the answers slowed down: the ramp went on slowly from below what was served
    sent, throttled, accepted = tenant.serve(pacers, 8, demand=400)
    assert started_throttled + throttled <= 0.01 * (started_sent + sent)
    assert all(p.limit_found == pytest.approx(200, rel=0.05) for p in pacers)
    assert accepted >= 0.97 * 200 * 8
