"""Pacing a sweep: how many joins are in flight, and how that number follows CXone's throttling.

:class:`AdaptiveLimiter` is the one place that decides it. It is handed to the sweep's hook as two
collaborators: its :meth:`~AdaptiveLimiter.slot` is entered around every HTTP attempt (not around the
backoff sleeps), and :meth:`~AdaptiveLimiter.on_retry` hears the reason of every retry.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cxone_provider.exceptions import CxoneStopped

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Retry reasons that mean CXone is throttling (the others are our side's or the network's).
THROTTLE_REASONS = frozenset({"429", "503"})


class AdaptiveLimiter:
    """At most ``limit`` requests in flight; the limit halves when CXone throttles and creeps back.

    Additive increase, multiplicative decrease (as TCP does): on a 429/503 the whole sweep sends
    fewer requests at once instead of every worker only sleeping and retrying at full width. A burst
    of throttled answers from one round counts once (``cooldown_s``).
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
        self._successes_since_change = 0
        self._last_decrease = float("-inf")
        self._condition = threading.Condition()
        #: set when the sweep stops: nobody waiting for a slot gets one
        self.stop = stop or threading.Event()
        #: retries heard, by reason ("429", "503", "connection", "timeout", "401"…)
        self.retries: Counter[str] = Counter()

    def on_retry(self, reason: str) -> None:
        """A retry is about to happen: count it, and halve the limit when CXone throttles."""
        self.retries[reason] += 1
        if reason in THROTTLE_REASONS:
            self.throttled()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._condition:
            while self.in_flight >= self.limit:
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
