"""The tenant's rate limit: one token bucket shared by every client of the sandbox."""

from __future__ import annotations

import math
import time


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second.

    :param rate: requests per second the tenant allows.
    :param burst: requests the bucket holds; ``None``: one second of ``rate``, at least 1.
    """

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate
        self.capacity = float(burst if burst is not None else max(1, math.ceil(rate)))
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """Take one request's token: ``0.0`` when there was one, else the seconds until there is."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds, as gateways send it: rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
