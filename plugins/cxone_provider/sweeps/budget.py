"""Where a CXone connection's rate budget is kept: in this process, or on Redis for every process.

A tenant's rate limit is one budget shared by every client of the tenant, so the sweeps and joins that use
the same connection share one :class:`~cxone_provider.sweeps.rate.RatePacer`, and that pacer keeps its
send schedule and its counters in a budget:

- :class:`LocalBudget` (the default): in this process; every sweep and join on the connection shares it.
- :class:`RedisBudget`: on Redis (the Celery broker's, or any), so that sweeps on several workers and
  machines share it. The schedule is GCRA (the generic cell rate algorithm, as redis-cell and
  go-redis/redis_rate run it) in one Lua script, which Redis runs atomically on its own clock; the
  counters are ``INCR``; the limit learnt is a hash with an expiry. Nothing else is coordinated.

A budget hands out send times (:meth:`try_send`) and numbers each send, counts 429s (:meth:`note_throttled`)
and keeps the limit learnt (:meth:`store_limit`, :meth:`load_limit`), so that the pacer measures the
accepted rate of every process, not only its own, and a limit learnt once is not learnt again.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

#: how long a learnt limit is kept without being confirmed again (a tenant's limit can change)
LIMIT_TTL_S = 600


class Budget(Protocol):
    """A connection's send schedule, its counters and the limit learnt (see the module docstring)."""

    #: other processes use it too: a limit may appear in it that this process did not learn
    shared: bool

    def try_send(self, interval: float | None) -> tuple[float, int]:
        """Take the next send if it is due: ``(0.0, its number)``; else ``(seconds to wait, 0)``.

        :param interval: seconds between sends at the rate wanted; ``None``: unpaced.
        """

    def hold(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` (the bucket was found empty): the schedule's next send moves on."""

    def note_throttled(self) -> int:
        """Count one 429; the count of 429s so far."""

    def store_limit(self, limit: float, samples: int) -> None:
        """Keep the limit learnt and how many accepted requests it was measured over."""

    def load_limit(self) -> tuple[float, int] | None:
        """The limit learnt by anyone and its samples; ``None`` when none is known."""


class LocalBudget:
    """The budget in this process (thread-safe): every sweep and join on the connection shares it."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")  # the theoretical time of the next send (GCRA's TAT)
        self._sends = 0
        self._throttled = 0
        self._limit: tuple[float, int, float] | None = None

    def try_send(self, interval: float | None) -> tuple[float, int]:
        with self._lock:
            now = self._clock()
            if self._next > now:
                return self._next - now, 0
            self._next = max(self._next, now) + (interval or 0.0)
            self._sends += 1
            return 0.0, self._sends

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)

    def note_throttled(self) -> int:
        with self._lock:
            self._throttled += 1
            return self._throttled

    def store_limit(self, limit: float, samples: int) -> None:
        with self._lock:
            self._limit = (limit, samples, self._clock())

    def load_limit(self) -> tuple[float, int] | None:
        with self._lock:
            if self._limit is None or self._clock() - self._limit[2] > LIMIT_TTL_S:
                return None
            return self._limit[0], self._limit[1]


# GCRA on Redis's clock: KEYS[1] the next send time (s), KEYS[2] the send counter; ARGV[1] the interval (s).
# Returns {wait in microseconds, the send's number}.
_TRY_SEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now then return {math.ceil((nxt - now) * 1000000), 0} end
redis.call('SET', KEYS[1], tostring(math.max(nxt, now) + tonumber(ARGV[1])), 'EX', 3600)
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 3600)
return {0, n}
"""
# A hold: the next send time moves to at least now + ARGV[1] seconds, for every process.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], tostring(math.max(nxt, now + tonumber(ARGV[1]))), 'EX', 3600)
return 1
"""


class RedisBudget:
    """The budget on Redis, shared by every process that uses the same connection and Redis.

    :param client: a ``redis.Redis`` client.
    :param key: the connection's key prefix (:func:`budget_key`).
    """

    shared = True

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self._script = client.register_script(_TRY_SEND)
        self._hold = client.register_script(_HOLD)

    def try_send(self, interval: float | None) -> tuple[float, int]:
        wait_us, number = self._script(keys=[f"{self.key}:next", f"{self.key}:sends"], args=[interval or 0.0])
        return int(wait_us) / 1e6, int(number)

    def hold(self, seconds: float) -> None:
        self._hold(keys=[f"{self.key}:next"], args=[seconds])

    def note_throttled(self) -> int:
        pipe = self.client.pipeline()
        pipe.incr(f"{self.key}:throttled")
        pipe.expire(f"{self.key}:throttled", 3600)
        return int(pipe.execute()[0])

    def store_limit(self, limit: float, samples: int) -> None:
        self.client.set(f"{self.key}:limit", f"{limit:.6f} {samples}", ex=LIMIT_TTL_S)

    def load_limit(self) -> tuple[float, int] | None:
        raw = self.client.get(f"{self.key}:limit")
        if not raw:
            return None
        limit, samples = (raw.decode() if isinstance(raw, bytes) else str(raw)).split()
        return float(limit), int(samples)


def budget_key(conn_id: str) -> str:
    """The Redis key prefix of a connection's budget."""
    return f"cxone:rate-budget:{conn_id}"
