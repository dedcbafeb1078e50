"""A ramp: the rate a pacer sends at while it looks for the limit, doubling on a timer until a 429 comes.

A start ramp that doubles past what CXone serves reaches the limit's empty bucket with every request still
queued in front of it (in CXone's gateway, or in a client whose CPU is spent) refused at once, and the
further past, the longer that queue. The queue shows first in the answer times (HyStart's delay test, as in
TCP CUBIC): when even the fastest of the ramp's last eight accepted answers is slower than the fastest of
its first eight (heard while the rate was low) by more than their jitter (twice their median's lead over
their fastest), an eighth, and 4 ms, the ramp goes on from half the rate those answers were served at (the
queue drains), doubling every half second. Only the start ramp watches: a measuring ramp that slowed below
the limit would let the bucket fill, and the limit measured across it would come out low.
"""

from __future__ import annotations

import statistics
from collections import deque

#: above this a ramp stops pacing: the client's own speed is the limit
RAMP_CEILING = 4000.0


class Ramp:
    """A rate doubling every ``doubling_s`` from ``base`` at ``started`` (monotonic seconds); one that ``watches``
    its answers slows once they do. Not thread-safe: its pacer's lock guards it."""

    #: the answers whose fastest is compared: the least of several is what the network and CXone take
    recent = 8
    #: slower than the first answers' fastest by at least this long (s), an eighth of it, and their jitter
    least_rise_s = 0.004
    #: once a queue shows: on from this share of the rate the answers were served at, doubling this slowly
    queued_share = 0.5
    queued_doubling_s = 0.5
    #: sends whose answers are awaited; past this the oldest are forgotten (a call that failed has none)
    most_awaited = 1024

    def __init__(self, started: float, base: float, doubling_s: float, *, watches: bool = False) -> None:
        self.started, self.base, self.doubling_s = started, base, doubling_s
        self.watches = watches
        self.slowed = False
        self._sent: dict[int, float] = {}  # sends awaiting their answer: number -> when
        self._first: list[float] = []  # the first answer times, heard while the rate was low
        self._calm = self._rise = 0.0  # their fastest, and how much slower a queue is: set once they are in
        self._recent: deque[tuple[float, int, float]] = deque(maxlen=self.recent)  # answer time, number, heard

    def rate(self, now: float) -> float | None:
        """Requests per second now; ``None`` above the ceiling (unpaced)."""
        rate = self.base * 2 ** min((now - self.started) / self.doubling_s, 20.0)
        return None if rate >= RAMP_CEILING else rate

    def sent(self, number: int, now: float) -> None:
        if self.watches and not self.slowed:
            if len(self._sent) >= self.most_awaited:
                del self._sent[next(iter(self._sent))]
            self._sent[number] = now

    def answered(self, number: int, accepted: bool, now: float) -> None:
        """The answer to send ``number`` came at ``now``; only ``accepted`` ones (2xx) are timed: an error
        page can come back faster than any join."""
        sent = self._sent.pop(number, None)
        if sent is None or not accepted or self.slowed:
            return
        if len(self._first) < self.recent:
            self._first.append(now - sent)
            if len(self._first) == self.recent:
                self._calm = min(self._first)
                self._rise = max(self.least_rise_s, self._calm / 8, 2 * (statistics.median(self._first) - self._calm))
            return
        self._recent.append((now - sent, number, now))
        # Like with like: the fastest of the last few against the fastest of the first few.
        if len(self._recent) < self.recent or min(seconds for seconds, _, _ in self._recent) <= self._calm + self._rise:
            return
        # Served: every process's sends (numbered by the budget) between the first and last of these
        # answers, over the time between them; answers heard together (a clump) tell no rate.
        _, first, since = min(self._recent, key=lambda answer: answer[1])
        _, last, until = max(self._recent, key=lambda answer: answer[1])
        if until - since < self._rise or last <= first:
            return
        rate = min(self.rate(now) or RAMP_CEILING, self.queued_share * (last - first) / (until - since))
        self.started, self.base, self.doubling_s = now, max(self.base, rate), self.queued_doubling_s
        self.slowed = True
