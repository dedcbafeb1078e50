"""Where a CXone connection's rate budget is kept: in this process, or on Redis for every process.

A tenant's rate limit is one budget shared by every client of the tenant, so the sweeps and joins that use
the same connection share one :class:`~cxone_provider.sweeps.rate.RatePacer`, and that pacer keeps its
send schedule and its counters in a budget:

- :class:`LocalBudget` (the default): in this process; every sweep and join on the connection shares it.
- :class:`RedisBudget`: on Redis (the Celery broker's, or any), so that sweeps on several workers and
  machines share it. The schedule is GCRA (the generic cell rate algorithm, as redis-cell and
  go-redis/redis_rate run it) in one Lua script, which Redis runs atomically on its own clock; the
  counters are ``INCR``; the limit learnt is a string with an expiry; a drain is a key set with ``NX``
  and an expiry; the 429s' send numbers are a sorted set, and a measurement under way a key set with ``NX``.
  Nothing else is coordinated.

A budget hands out send times (:meth:`try_send`), numbers each send and stamps it with the budget's clock
(so that the send times of every process compare), counts 429s by the number of the send they refused
(:meth:`note_throttled`, :meth:`refused_between`: answers come back out of the order of their sends), keeps the limit
learnt with the two empty moments it was last measured between (:meth:`store_limit`, :meth:`load_limit`),
and runs the *drain* (:meth:`begin_drain`): one at a time for everyone on the budget, ended by the first
429 to a send made during it, whoever sent it. So the pacers measure the accepted rate of every process,
a limit learnt once is not learnt again, and a drain costs one 429 however many processes share it.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from cxone_provider.sweeps.marks import REFUSED_KEPT, Mark

if TYPE_CHECKING:
    from collections.abc import Callable

#: how long a learnt limit is kept without being confirmed again (a tenant's limit can change)
LIMIT_TTL_S = 600


@dataclass(frozen=True)
class Learnt:
    """A limit learnt: requests per second, the accepted requests it was measured over, and the span's
    first and last empty moments (where the next measurement, by any pacer on the budget, starts)."""

    limit: float
    samples: int
    span: Mark | None = None
    last: Mark | None = None

    def dump(self) -> str:
        marks = (m.dump() if m else "-" for m in (self.span, self.last))
        return f"{self.limit:.6f} {self.samples} {' '.join(marks)}"

    @classmethod
    def load(cls, text: str) -> Learnt:
        limit, samples, *marks = text.split()
        span, last = (Mark.load(m) for m in marks) if len(marks) == 2 else (None, None)
        return cls(float(limit), int(samples), span, last)


class Send(NamedTuple):
    """A budget's answer to :meth:`Budget.try_send`."""

    wait: float  # seconds until a send is due; 0.0: this one may go
    number: int  # the send's number on the budget; 0: not sent
    at: float  # the budget's clock when it was taken
    draining: bool  # a drain is on: every pacer on the budget sends at its rate
    throttled: int  # the 429s counted so far, by every pacer on the budget
    limit_stored: bool = False  # a limit is stored (:meth:`Budget.load_limit` has one)


class Budget(Protocol):
    """A connection's send schedule, its counters, the limit learnt and the drain (module docstring)."""

    #: other processes use it too: a limit may appear in it that this process did not learn
    shared: bool

    def try_send(self, interval: float | None) -> Send:
        """Take the next send if it is due.

        :param interval: seconds between sends at the rate wanted; ``None``: unpaced. While a drain is
            on, the drain's (shorter) interval is used instead.
        """

    def hold(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` (the bucket was found empty): the schedule's next send moves on."""

    def note_throttled(self, number: int) -> tuple[int, bool]:
        """Count one 429, to send ``number``: the count of 429s so far, and whether it ended the drain (it
        was sent during one; the caller measures the limit and stores it)."""

    def refused_between(self, first: int, last: int) -> int:
        """The 429s to sends numbered between ``first`` and ``last`` (neither counted), in whatever order
        their answers came."""

    def begin_drain(self, interval: float, seconds: float) -> bool:
        """Start a drain at ``interval`` for at most ``seconds``, unless one is on or the next is not due
        yet; whether this call started it."""

    def store_limit(self, learnt: Learnt, *, next_drain_s: float | None = None) -> None:
        """Keep the limit learnt, for every pacer on the budget; no drain begins for ``next_drain_s``."""

    def load_limit(self) -> Learnt | None:
        """The limit learnt by anyone; ``None`` when none is known."""

    def claim_measurement(self, seconds: float) -> bool:
        """This pacer finds the limit (its first 429 was the budget's first), unless another claimed it in
        the last ``seconds`` and stored no limit since."""

    def store_span(self, mark: Mark) -> None:
        """A measurement starts at ``mark`` (the first 429): whoever gets the next one can finish it."""

    def load_span(self) -> Mark | None:
        """Where the measurement under way started; ``None``: none is."""


class LocalBudget:
    """The budget in this process (thread-safe): every sweep and join on the connection shares it."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")  # the theoretical time of the next send (GCRA's TAT)
        self._sends = 0
        self._throttled = 0
        self._refused: list[int] = []  # the send numbers of the 429s, in order
        self._limit: tuple[Learnt, float] | None = None
        self._span: Mark | None = None
        self._measuring_until = float("-inf")
        # The drain on: its interval, when it expires, the last send number before it.
        self._drain: tuple[float, float, int] | None = None
        self._next_drain = float("-inf")

    def try_send(self, interval: float | None) -> Send:
        with self._lock:
            now = self._clock()
            drain = self._draining(now)
            if self._next > now:
                return Send(self._next - now, 0, now, drain is not None, self._throttled, self._stored(now))
            if interval and drain is not None:
                interval = min(interval, drain[0])
            interval = interval or 0.0
            # A send taken late (its sender polled after its time) keeps its slot, up to one interval:
            # otherwise every poll's lateness is lost, and several processes polling send under the rate.
            self._next = max(self._next, now - interval) + interval
            self._sends += 1
            return Send(0.0, self._sends, now, drain is not None, self._throttled, self._stored(now))

    def _stored(self, now: float) -> bool:
        return self._limit is not None and now - self._limit[1] <= LIMIT_TTL_S

    def _draining(self, now: float) -> tuple[float, float, int] | None:
        if self._drain is not None and now >= self._drain[1]:
            self._drain = None
        return self._drain

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)

    def note_throttled(self, number: int) -> tuple[int, bool]:
        with self._lock:
            self._throttled += 1
            bisect.insort(self._refused, number)
            if len(self._refused) > 2 * REFUSED_KEPT:
                del self._refused[:REFUSED_KEPT]
            drain = self._draining(self._clock())
            ended = drain is not None and number > drain[2]
            if ended:
                self._drain = None
            return self._throttled, ended

    def refused_between(self, first: int, last: int) -> int:
        with self._lock:
            return bisect.bisect_left(self._refused, last) - bisect.bisect_right(self._refused, first)

    def begin_drain(self, interval: float, seconds: float) -> bool:
        with self._lock:
            now = self._clock()
            if self._draining(now) is not None or now < self._next_drain:
                return False
            self._drain = (interval, now + seconds, self._sends)
            return True

    def store_limit(self, learnt: Learnt, *, next_drain_s: float | None = None) -> None:
        with self._lock:
            now = self._clock()
            self._limit, self._measuring_until = (learnt, now), float("-inf")
            if next_drain_s is not None:
                self._next_drain = now + next_drain_s

    def load_limit(self) -> Learnt | None:
        with self._lock:
            return self._limit[0] if self._limit is not None and self._stored(self._clock()) else None

    def claim_measurement(self, seconds: float) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._measuring_until:
                return False
            self._measuring_until = now + seconds
            return True

    def store_span(self, mark: Mark) -> None:
        with self._lock:
            self._span = mark

    def load_span(self) -> Mark | None:
        with self._lock:
            return self._span


# GCRA on Redis's clock: KEYS[1] the next send time (s), KEYS[2] the send counter, KEYS[3] the drain, KEYS[4]
# the 429 counter, KEYS[5] the limit; ARGV[1] the interval (s). Returns {wait in µs, the send's number,
# Redis's time in µs, draining 0/1, the 429s, a limit stored 0/1}.
_TRY_SEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = tonumber(t[1]) * 1000000 + tonumber(t[2])
local drain = redis.call('GET', KEYS[3])
local draining = drain and 1 or 0
local throttled = tonumber(redis.call('GET', KEYS[4]) or '0')
local stored = redis.call('EXISTS', KEYS[5])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now then return {math.ceil((nxt - now) * 1000000), 0, stamp, draining, throttled, stored} end
local interval = tonumber(ARGV[1])
if drain and interval > 0 then interval = math.min(interval, tonumber(string.match(drain, '^%S+'))) end
redis.call('SET', KEYS[1], tostring(math.max(nxt, now - interval) + interval), 'EX', 3600)
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 3600)
return {0, n, stamp, draining, throttled, stored}
"""
# A hold: the next send time moves to at least now + ARGV[1] seconds, for every process.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], tostring(math.max(nxt, now + tonumber(ARGV[1]))), 'EX', 3600)
return 1
"""
# A 429 to send ARGV[1]: KEYS[1] the 429 counter, KEYS[3] the refused send numbers (a sorted set, the last
# ARGV[2] kept); it ends the drain KEYS[2] when sent during it (its number above the drain's first). Returns
# {the count, ended 0/1}.
_THROTTLED = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1 - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[3], 3600)
local drain = redis.call('GET', KEYS[2])
if drain and tonumber(ARGV[1]) > tonumber(string.match(drain, '%S+$')) then
  redis.call('DEL', KEYS[2])
  return {n, 1}
end
return {n, 0}
"""
# A drain at ARGV[1] s between sends for ARGV[2] ms, in KEYS[1], unless one is on or KEYS[3] (the next drain
# is not due yet) is set; its value ends with the last send number before it (KEYS[2], the send counter).
_BEGIN_DRAIN = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local first = redis.call('GET', KEYS[2]) or '0'
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. first, 'PX', ARGV[2])
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
        self._try_send = client.register_script(_TRY_SEND)
        self._hold = client.register_script(_HOLD)
        self._throttled = client.register_script(_THROTTLED)
        self._begin_drain = client.register_script(_BEGIN_DRAIN)

    def try_send(self, interval: float | None) -> Send:
        keys = [f"{self.key}:{name}" for name in ("next", "sends", "drain", "throttled", "limit")]
        wait_us, number, stamp_us, draining, throttled, stored = self._try_send(keys=keys, args=[interval or 0.0])
        return Send(int(wait_us) / 1e6, int(number), int(stamp_us) / 1e6, bool(draining), int(throttled), bool(stored))

    def hold(self, seconds: float) -> None:
        self._hold(keys=[f"{self.key}:next"], args=[seconds])

    def note_throttled(self, number: int) -> tuple[int, bool]:
        keys = [f"{self.key}:throttled", f"{self.key}:drain", f"{self.key}:refused"]
        count, ended = self._throttled(keys=keys, args=[number, REFUSED_KEPT])
        return int(count), bool(ended)

    def refused_between(self, first: int, last: int) -> int:
        return int(self.client.zcount(f"{self.key}:refused", f"({first}", f"({last}"))

    def begin_drain(self, interval: float, seconds: float) -> bool:
        keys = [f"{self.key}:drain", f"{self.key}:sends", f"{self.key}:drain-later"]
        return bool(self._begin_drain(keys=keys, args=[repr(interval), max(1, round(seconds * 1000))]))

    def store_limit(self, learnt: Learnt, *, next_drain_s: float | None = None) -> None:
        pipe = self.client.pipeline()
        pipe.set(f"{self.key}:limit", learnt.dump(), ex=LIMIT_TTL_S)
        pipe.delete(f"{self.key}:measuring")
        if next_drain_s is not None:
            pipe.set(f"{self.key}:drain-later", "1", px=max(1, round(next_drain_s * 1000)))
        pipe.execute()

    def load_limit(self) -> Learnt | None:
        raw = self.client.get(f"{self.key}:limit")
        if not raw:
            return None
        return Learnt.load(raw.decode() if isinstance(raw, bytes) else str(raw))

    def claim_measurement(self, seconds: float) -> bool:
        return bool(self.client.set(f"{self.key}:measuring", "1", nx=True, px=max(1, round(seconds * 1000))))

    def store_span(self, mark: Mark) -> None:
        self.client.set(f"{self.key}:span", mark.dump(), ex=60)

    def load_span(self) -> Mark | None:
        raw = self.client.get(f"{self.key}:span")
        return Mark.load(raw.decode() if isinstance(raw, bytes) else str(raw)) if raw else None


def budget_key(conn_id: str) -> str:
    """The Redis key prefix of a connection's budget. The connection id is its hash tag: a Lua script's
    keys must share one slot on a Redis that shards (Cluster, or a proxy in front of one)."""
    return f"cxone:rate-budget:{{{conn_id}}}"
