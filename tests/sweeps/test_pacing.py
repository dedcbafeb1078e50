"""The sweep's rate pacer: a budget is found and kept to, random 429s are not taken for one.

The pacer is fed answers on a clock of its own (no HTTP, no sleeping), so each scenario is exact:
``serve`` plays a tenant that accepts ``limit`` requests per second and answers 429 beyond it, plus
a share of random 429s.
"""

from __future__ import annotations

import random

from cxone_provider.sweeps.pacing import RatePacer


def serve(pacer: RatePacer, seconds: float, *, limit: float | None, noise: float = 0.0, demand: float = 400.0):
    """Send as fast as the pacer lets (at most ``demand`` per second) for ``seconds``; (sent, 429s)."""
    dice = random.Random(7)
    now, sent, throttled, budget = serve.clock, 0, 0, serve.budget if limit else 0.0
    step = 1.0 / demand
    end = now + seconds
    while now < end:
        wait = pacer.wait_s(now)
        now += max(wait, step)
        pacer.sent(now, held=wait > 0)
        budget = min(limit or 0.0, budget + (limit or 0.0) * max(wait, step))
        over = limit is not None and budget < 1.0
        if not over and limit is not None:
            budget -= 1.0
        status = 429 if over or dice.random() < noise else 200
        throttled += status == 429
        sent += 1
        pacer.answered(status, now)
    serve.clock, serve.budget = now, budget
    return sent, throttled


serve.clock = 1000.0  # the tenant's clock and bucket carry over from one call to the next
serve.budget = 0.0


def test_a_rate_limit_is_found_and_the_sweep_keeps_just_under_it():
    pacer = RatePacer()
    serve(pacer, 5, limit=50)
    assert pacer.limit_found is not None
    assert 45 <= pacer.limit_found <= 60
    sent, throttled = serve(pacer, 30, limit=50)
    assert throttled / sent <= 0.05  # under the limit, but for the probes
    assert 0.9 * 50 <= sent / 30 <= 1.1 * 50  # at the limit, not under it


def test_random_429s_are_noise_not_a_budget():
    pacer = RatePacer()
    sent, _ = serve(pacer, 20, limit=None, noise=0.15, demand=300)
    # Slowing down did not end them: the cuts were undone, no limit, the sweep is not slowed down.
    assert pacer.limit_found is None
    assert pacer.rate is None
    assert pacer.cuts_undone >= 2
    assert sent / 20 >= 0.9 * 300


def test_a_freed_budget_is_found_again():
    pacer = RatePacer()
    serve(pacer, 8, limit=40)  # sharing the tenant's budget with another sweep
    assert pacer.limit_found is not None
    assert pacer.limit_found < 50
    # The other sweep ended: after a few quiet seconds the rate grows by up to a fifth a second.
    serve(pacer, 14, limit=200)
    sent, _ = serve(pacer, 5, limit=200)
    assert sent / 5 >= 0.8 * 200
