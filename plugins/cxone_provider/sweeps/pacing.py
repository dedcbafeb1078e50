"""Pacing: how many joins are in flight, how fast they are sent, and how both follow CXone.

Two controls, one per kind of trouble:

- **Concurrency** (:class:`AdaptiveLimiter`, one per sweep; additive increase, multiplicative decrease):
  on a 503, or on a 429 while no rate limit is being kept to, the sweep sends fewer requests at once.
- **Rate** (:class:`~cxone_provider.sweeps.rate.RatePacer`, one per CXone connection, shared by every sweep
  on it through a :mod:`~cxone_provider.sweeps.budget`): the tenant's limit, measured from the spacing
  of its 429s, and kept to. ``docs/pacing.md`` has the rule and the figures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cxone_provider.exceptions import CxoneStopped
from cxone_provider.sweeps.rate import RatePacer

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["AdaptiveLimiter", "RatePacer"]


class AdaptiveLimiter:
    """One sweep's concurrency (at most ``limit`` requests in flight), sent no faster than ``pacer`` allows.

    :param maximum: the most requests in flight.
    :param minimum: the concurrency never halves below this.
    :param cooldown_s: throttled answers within this long of a decrease count once (they are one round).
    :param stop: set when the sweep stops: nobody waiting for a slot gets one.
    :param pacer: the connection's shared :class:`RatePacer` (:func:`~cxone_provider.sweeps.budget.pacer_for`);
        default: one of the sweep's own.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        cooldown_s: float = 0.25,
        stop: threading.Event | None = None,
        pacer: RatePacer | None = None,
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
        self.pacer = pacer if pacer is not None else RatePacer()
        self._successes_since_change = 0
        self._last_decrease = float("-inf")
        self._condition = threading.Condition()
        self._pace = threading.Lock()
        self._sent = threading.local()  # this thread's last send: its number and time, for its answer
        self.stop = stop or threading.Event()
        #: retries heard, by reason ("429", "503", "connection", "timeout", "401"…)
        self.retries: Counter[str] = Counter()

    def on_retry(self, reason: str) -> None:
        """A retry is about to happen: count it; shrink the concurrency when CXone throttles it.

        A 429 while the pacer keeps to a rate is the pacer's business: a narrower sweep would not send slower.
        """
        with self._condition:
            self.retries[reason] += 1
        if reason == "503" or (reason == "429" and not self.pacer.knows_a_limit):
            self.throttled()

    def on_answer(self, status: int | None) -> None:
        """This thread's last attempt was answered with ``status`` (``None``: no answer)."""
        number, sent_at = getattr(self._sent, "send", (0, 0.0))
        knew = self.pacer.knows_a_limit
        self.pacer.answered(status, number, sent_at, time.monotonic())
        if self.pacer.knows_a_limit and not knew:
            with self._condition:
                # The rate holds the sweep back now; the concurrency halved by the first 429s would
                # only keep it under the limit.
                self.limit = self.maximum
                self._condition.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        # One worker at a time waits for the pace, the others queue behind it: a new rate applies to
        # the next send at once.
        with self._condition:
            while self.in_flight >= self.limit and not self.stop.is_set():
                # Woken by a freed slot, or every so often to see whether the sweep is stopping.
                self._condition.wait(timeout=0.1)
            if self.stop.is_set():
                raise CxoneStopped("stopped while waiting for a slot")
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            with self._pace:
                while True:
                    if self.stop.is_set():
                        raise CxoneStopped("stopped while waiting for the send rate")
                    wait, number, sent_at = self.pacer.try_send(time.monotonic())
                    if number:
                        self._sent.send = (number, sent_at)
                        break
                    self.stop.wait(min(wait, 0.05))
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

    def figures(self) -> dict[str, float | int | str | None]:
        """The pacer's findings, for the sweep's ``stats``."""
        return self.pacer.figures()
