"""Pacing a sweep: how many joins are in flight, how fast they are sent, and how both follow CXone.

:class:`AdaptiveLimiter` is the one place that decides it. It is handed to the sweep's hook as three
collaborators: its :meth:`~AdaptiveLimiter.slot` is entered around every HTTP attempt (not around the
backoff sleeps), :meth:`~AdaptiveLimiter.on_answer` hears the status of every attempt, and
:meth:`~AdaptiveLimiter.on_retry` hears the reason of every retry.

Two controls, one per kind of trouble:

- **Concurrency** (additive increase, multiplicative decrease, as TCP does): on a 503, or on a 429
  while no rate limit is known, the whole sweep sends fewer requests at once instead of every worker
  only sleeping and retrying at full width.
- **Rate** (:class:`RatePacer`): a tenant's rate limit is a budget of requests per second shared by
  every client. The pacer measures, per window of about a second, how many answers CXone accepted
  (anything but 429). When more than 3 % come back 429 it cuts its send rate to 95 % of the accepted
  rate, and keeps the cut only if the next window shows that this ended most 429s: sending under
  what a budget accepts stays within it. Random 429s (a sick node, a proxy) do not stop when the client
  slows down, so the cut is undone and that share of 429s is learnt as background noise instead of
  collapsing the rate. Once a limit is known, the rate probes back up (:meth:`RatePacer._probe`), so
  the sweep sits just under the limit and finds budget that frees up (another sweep ended).
  ``docs/sweeps.md`` has the whole rule in one paragraph.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxone_provider.exceptions import CxoneStopped

if TYPE_CHECKING:
    from collections.abc import Iterator

TOO_MANY_REQUESTS = 429
#: the slowest the pacer ever sends, requests per second: a window of nothing but 429s is no reason to stop
MIN_RATE = 1.0


@dataclass
class _Window:
    """What one measuring window saw: answers, 429s among them, and whether the pacer held anyone back."""

    started: float
    answered: int = 0
    throttled: int = 0
    paced: int = 0

    def accepted_rate(self, now: float) -> float:
        """Answers other than 429 per second."""
        return (self.answered - self.throttled) / max(now - self.started, 1e-6)

    @property
    def share(self) -> float:
        return self.throttled / self.answered if self.answered else 0.0


@dataclass
class RatePacer:
    """Finds a rate limit from the accepted rate and sends just under it (see the module docstring).

    Not thread-safe on its own: :class:`AdaptiveLimiter` calls it under its lock.
    """

    #: shortest measuring window, seconds
    window_s: float = 1.0
    #: a window is judged only once it holds this many answers (fewer make the share too noisy)
    min_answers: int = 10
    #: share of 429s in a window, above the learnt noise, that counts as over the limit
    over_limit_share: float = 0.03
    #: the pacer sends at this share of the limit: a bucket kept a little short of empty answers
    #: requests that arrive a few milliseconds early instead of throttling them
    headroom: float = 0.95
    #: once a limit is known, while the pacer holds requests back, the rate grows by at least this many
    #: requests per second every second (see :meth:`_probe`)
    probe_step: float = 0.5
    #: seconds without a 429 after which a pacer under its limit starts looking for more budget
    quiet_s: float = 3.0
    #: requests per second; ``None`` while no limit is known
    rate: float | None = None
    #: the accepted rate at the last confirmed limit
    limit_found: float | None = None
    cuts_undone: int = 0
    #: the share of 429s that sending slower did not reduce: background, not budget
    noise_share: float = 0.0
    _clean_s: float = 0.0
    _accepted_before: float = 0.0  # the accepted rate of the window before
    _cuts_in_vain: int = 0
    _verifying: tuple[float | None, float, float] | None = None  # before the cut: rate, accepted, share
    _next_send: float = 0.0
    _window: _Window | None = None

    def wait_s(self, now: float) -> float:
        """Seconds until the next send may go (0 while no limit is known)."""
        return 0.0 if self.rate is None else max(0.0, self._next_send - now)

    def sent(self, now: float, *, held: bool) -> None:
        """A send goes now; ``held``: the pace made it wait."""
        if self.rate is not None:
            self._next_send = max(self._next_send, now) + 1.0 / self.rate
        if held and self._window is not None:
            self._window.paced += 1

    def answered(self, status: int | None, now: float) -> None:
        """Count one attempt's answer; judge the window when it is complete."""
        if status is None:
            return  # no answer says nothing about the budget
        if self._window is None or (self.rate is None and not self._window.throttled):
            # Without a limit there is nothing to judge until the first 429; measuring from it leaves
            # out a full bucket's burst, which would pass for the budget.
            self._window = _Window(now)
        window = self._window
        window.answered += 1
        if status == TOO_MANY_REQUESTS:
            window.throttled += 1
        if now - window.started >= self.window_s and window.answered >= self.min_answers:
            self._judge(window, now)
            self._window = _Window(now)

    def _judge(self, window: _Window, now: float) -> None:
        accepted, share = window.accepted_rate(now), window.share
        if self._verifying is not None and self.rate is not None:
            self._verify(self._verifying, self.rate, window, accepted, share)
        elif window.throttled >= 3 and share > self.noise_share + self.over_limit_share:
            self._cut(self.rate, accepted, share)
        elif self.limit_found is not None and self.rate is not None and window.paced:
            # Never far over what went through: each step is checked before the next, and an overshoot
            # into the limit costs at most a window of 429s on a sixth of the sends.
            probed = min(self._probe(self.rate, self.limit_found, window, now), 1.2 * accepted)
            self.rate = max(probed, MIN_RATE)
        self.noise_share *= 0.9  # forget old noise, so that a limit appearing later is still found
        self._accepted_before = accepted

    def _cut(self, rate_before: float | None, accepted: float, share: float) -> None:
        """Send under what CXone accepts, and check at the next window whether that was a limit.

        Not under half of what the window before accepted: after a burst of 429s every throttled
        worker sits out its Retry-After, and the window's accepted rate says more about that than
        about the budget.
        """
        self._verifying = (rate_before, accepted, share)
        self.rate = max(self.headroom * accepted, 0.5 * self._accepted_before, MIN_RATE)
        self._clean_s = 0.0

    def _verify(
        self, before: tuple[float | None, float, float], rate: float, window: _Window, accepted: float, share: float
    ) -> None:
        """The window after a cut to ``rate``: was it a limit? ``before``: rate, accepted and share before."""
        rate_before, accepted_before, share_before = before
        self._verifying = None
        if window.throttled >= 3 and accepted < 0.9 * rate * (1.0 - share_before):
            # Still over: the accepted rate did not even follow the cut sends (random 429s would have
            # let through their usual share). The first measure was a full bucket's burst, or another
            # client sped up. Cut again, to what is accepted now.
            self._cut(rate_before, accepted, share_before)
            return
        if share < share_before / 2:
            # Sending under the accepted rate ended most 429s: they were a budget's. Keep under it.
            # With 429s still coming, what was accepted now is the better measure of it.
            self.limit_found = accepted if window.throttled else accepted_before
            self.rate = max(self.headroom * self.limit_found, MIN_RATE)
            self._cuts_in_vain = 0
            return
        # Sending slower did not help. Back to the rate before, but not above a limit found earlier.
        if rate_before is not None and self.limit_found is not None:
            rate_before = min(rate_before, self.headroom * self.limit_found)
        self.rate = rate_before
        self.cuts_undone += 1
        self._cuts_in_vain += 1
        if self._cuts_in_vain >= 2:
            # Twice in a row: those 429s are noise, not a budget (once may be another sweep speeding
            # up just as this one slowed down).
            self.noise_share = min(share, share_before)

    def _probe(self, rate: float, limit: float, window: _Window, now: float) -> float:
        """The next rate, a little faster: the limit may have risen, or another sweep ended.

        Per second, not per window: a slow sweep's windows are longer, and it must not grow slower
        than a fast one. Up to just over the limit found, by 1 % of it (at least ``probe_step``) per
        second; beyond it, doubling that every quarter second that nothing is throttled, so that
        freed budget is found in a few seconds.
        """
        seconds = now - window.started
        step = max(self.probe_step, 0.01 * limit)
        self._clean_s = 0.0 if window.throttled else self._clean_s + seconds
        # How long the budget has looked bigger than the limit found: at once past that limit with
        # nothing throttled; under it, after a few quiet seconds (another sweep may have ended).
        bigger_for = self._clean_s - (0.0 if rate >= 1.02 * limit else self.quiet_s)
        if bigger_for <= 0:
            return rate + step * seconds
        return rate + step * 2 ** min(4 * bigger_for, 12.0) * seconds

    @property
    def knows_a_limit(self) -> bool:
        return self.limit_found is not None and self._verifying is None


class AdaptiveLimiter:
    """At most ``limit`` requests in flight, sent no faster than the :class:`RatePacer` allows.

    :param maximum: the most requests in flight.
    :param minimum: the concurrency never halves below this.
    :param cooldown_s: throttled answers within this long of a decrease count once (they are one round).
    :param stop: set when the sweep stops: nobody waiting for a slot gets one.
    """

    def __init__(
        self, maximum: int, *, minimum: int = 1, cooldown_s: float = 0.25, stop: threading.Event | None = None
    ) -> None:
        if maximum < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {maximum}")
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self.cooldown_s = cooldown_s
        self.limit = maximum
        self.in_flight = 0
        self.peak_in_flight = 0
        self.lowest_limit = maximum
        self.decreases = 0
        self.pacer = RatePacer()
        self._successes_since_change = 0
        self._last_decrease = float("-inf")
        self._condition = threading.Condition()
        self._pace = threading.Lock()
        self.stop = stop or threading.Event()
        #: retries heard, by reason ("429", "503", "connection", "timeout", "401"…)
        self.retries: Counter[str] = Counter()

    def on_retry(self, reason: str) -> None:
        """A retry is about to happen: count it; shrink the concurrency when CXone throttles it.

        A 429 under a known rate limit is the pacer's business: a narrower sweep would not send slower.
        """
        with self._condition:
            self.retries[reason] += 1
            limit_known = self.pacer.knows_a_limit
        if reason == "503" or (reason == "429" and not limit_known):
            self.throttled()

    def on_answer(self, status: int | None) -> None:
        """An attempt was answered with ``status`` (``None``: no answer)."""
        with self._condition:
            limit_known = self.pacer.knows_a_limit
            self.pacer.answered(status, time.monotonic())
            if self.pacer.knows_a_limit and not limit_known:
                # The rate holds the sweep back now; the concurrency halved by the first 429s would
                # only keep it under the limit.
                self.limit = self.maximum
                self._condition.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        # One worker at a time waits for the pace, the others queue behind it: a new rate applies to
        # the next send at once.
        with self._pace:
            if self.stop.is_set():
                raise CxoneStopped("stopped while waiting for the send rate")
            held = False
            while True:
                with self._condition:
                    wait = self.pacer.wait_s(time.monotonic())
                    if wait <= 0:
                        self.pacer.sent(time.monotonic(), held=held)
                        break
                held = True
                if self.stop.wait(min(wait, 0.1)):
                    raise CxoneStopped("stopped while waiting for the send rate")
        with self._condition:
            while self.in_flight >= self.limit and not self.stop.is_set():
                # Woken by a freed slot, or every so often to see whether the sweep is stopping.
                self._condition.wait(timeout=0.1)
            if self.stop.is_set():
                raise CxoneStopped("stopped while waiting for a slot")
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._condition:
                self.in_flight -= 1
                self._condition.notify()

    def throttled(self) -> None:
        with self._condition:
            now = time.monotonic()
            if now - self._last_decrease < self.cooldown_s:
                return
            self._last_decrease = now
            self.limit = max(self.minimum, self.limit // 2)
            self.lowest_limit = min(self.lowest_limit, self.limit)
            self.decreases += 1
            self._successes_since_change = 0

    def succeeded(self) -> None:
        with self._condition:
            self._successes_since_change += 1
            if self._successes_since_change >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._successes_since_change = 0
                self._condition.notify()

    def figures(self) -> dict[str, float | int | None]:
        """The pacer's findings, for the sweep's ``stats``."""
        with self._condition:
            pacer = self.pacer
            return {
                "rate_limit_found": round(pacer.limit_found, 1) if pacer.limit_found is not None else None,
                "send_rate": round(pacer.rate, 1) if pacer.rate is not None else None,
                "rate_cuts_undone": pacer.cuts_undone,
            }
