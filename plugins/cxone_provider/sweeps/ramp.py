"""A ramp: the rate a pacer sends at while it looks for the limit, doubling on a timer until a 429 comes,
or slowly once its answers slow down (HyStart's delay rule, as in TCP CUBIC).

A ramp that doubles on a timer past what CXone serves reaches the limit's empty bucket with every request
still queued in front of it (in CXone's gateway, or in a client whose CPU is spent) refused at once, and the
further past, the longer that queue. The queue shows first in the answer times: when even the fastest of
a ramp's last few answers is slower than the fastest it heard by more than the jitter of its first answers
(twice their median's lead over their fastest, heard while the rate was low: one slow first connection does
not count), an eighth, and 4 ms, the ramp goes on from half the rate those answers were served at (the
queue drains), doubling every half second.
"""

from __future__ import annotations

import statistics
from collections import deque

#: above this a ramp stops pacing: the client's own speed is the limit
RAMP_CEILING = 4000.0


class Ramp:
    """A rate doubling every ``doubling_s`` from ``base`` at ``started`` (monotonic seconds); not thread-safe
    (its pacer's lock guards it)."""

    #: the answers whose fastest is compared: the least of several is what the network and CXone take
    recent = 8
    #: slower than the fastest by at least this long (s), an eighth of it, and the first answers' jitter
    least_rise_s = 0.004
    #: once a queue shows: on from this share of the rate the answers were served at, doubling this slowly
    queued_share = 0.5
    queued_doubling_s = 0.5

    def __init__(self, started: float, base: float, doubling_s: float) -> None:
        self.started, self.base, self.doubling_s = started, base, doubling_s
        self.floor = base
        self.fastest = float("inf")
        self.slowed = False
        self._sent: dict[int, float] = {}  # sends not answered yet: number -> when
        self._recent: deque[tuple[float, int, float]] = deque(maxlen=self.recent)  # answer time, number, heard
        self._first: list[float] = []  # the first answer times, heard while the rate was low
        self._jitter = 0.0

    def rate(self, now: float) -> float | None:
        """Requests per second now; ``None`` above the ceiling (unpaced)."""
        rate = self.base * 2 ** min((now - self.started) / self.doubling_s, 20.0)
        return None if rate >= RAMP_CEILING else rate

    def sent(self, number: int, now: float) -> None:
        self._sent[number] = now

    def answered(self, number: int, accepted: bool, now: float) -> None:
        """The answer to send ``number`` came at ``now``: ``accepted`` (not a 429, not none)."""
        sent = self._sent.pop(number, None)
        if sent is None or not accepted or self.slowed:
            return
        self.fastest = min(self.fastest, now - sent)
        self._recent.append((now - sent, number, now))
        if len(self._first) < self.recent:
            self._first.append(now - sent)
            self._jitter = 2 * (statistics.median(self._first) - min(self._first))
        rise = max(self.least_rise_s, self.fastest / 8, self._jitter)
        if len(self._recent) < self.recent or min(seconds for seconds, _, _ in self._recent) <= self.fastest + rise:
            return
        # Served: every process's sends (numbered by the budget) between the first and last of these
        # answers, over the time between them.
        _, first, since = min(self._recent, key=lambda answer: answer[1])
        _, last, until = max(self._recent, key=lambda answer: answer[1])
        if until > since and last > first:
            served = (last - first) / (until - since)
            rate = min(self.rate(now) or RAMP_CEILING, self.queued_share * served)
            self.started, self.base, self.doubling_s = now, max(self.floor, rate), self.queued_doubling_s
            self.slowed = True
