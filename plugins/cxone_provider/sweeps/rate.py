"""The rate a CXone connection is paced at: its tenant's limit, measured from the spacing of the 429s.

A tenant's rate limit is a token bucket of requests per second shared by all its clients; one
:class:`RatePacer` per CXone connection, shared by every sweep and join that uses it through a
:mod:`~cxone_provider.sweeps.budget`, keeps to it. A 429 says the bucket was empty when that request
arrived, and between two such moments the bucket let through exactly what it refilled. So the pacer
counts the requests accepted between two 429s (by the order they were *sent*, which every process
numbers in the budget) and divides by the time between them: that is the limit, to a token at each
end. Phases:

1. *start*: the send rate ramps up from 20/s, doubling every 50 ms, so that the first 429 comes while
   few requests are in the air (a full-width first burst is what cost earlier releases their 429s);
2. *hold*: on that first 429 nothing is sent for a quarter of a second (by any process on the budget),
   then the rate ramps again (*measure*) until the second 429: the limit is measured between the two;
3. *paced*: sends are spaced at the limit less a margin of two tokens' worth of its uncertainty; what
   that margin leaves in the bucket is taken back by a *drain*, sending at 1.25x the limit until the
   next 429, which measures the limit again over a longer span (so the margin shrinks to 0.5 %). A
   drain that finds far more than the margin left means the budget grew: the limit is raised.
4. More than 3 % of 429s (above the noise learnt) in a second while paced means the budget shrank
   (another client): the limit becomes what was accepted; if slowing down did not end those 429s
   they are noise (a sick node, a proxy): unpaced again, and that share is no longer counted.

Retry-After is honoured by the call that got it (:mod:`~cxone_provider.client.policy`); CXone sends it in
whole seconds, which says little about a rate above one request a second, so the pacer does not read it.
CXone publishes no rate-limit headers (``X-RateLimit-*``, ``RateLimit-*``); none are read.
``docs/pacing.md`` has the figures.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass

from cxone_provider.sweeps.budget import Budget, LocalBudget

TOO_MANY_REQUESTS = 429
#: the slowest the pacer ever sends, requests per second: a window of nothing but 429s is no reason to stop
MIN_RATE = 1.0
#: above this the start ramp stops pacing: the client's own speed is the limit
RAMP_CEILING = 4000.0


class Phase(enum.Enum):
    START = "start"
    HOLD = "hold"
    MEASURE = "measure"
    PACED = "paced"
    DRAIN = "drain"
    NOISY = "noisy"  # random 429s, no budget: unpaced, only a clear excess is looked at


@dataclass(frozen=True)
class Mark:
    """A moment the bucket was empty: a 429's send time, its send number, and the 429s counted by then."""

    at: float
    number: int
    throttled: int


@dataclass
class _Window:
    started: float
    first_number: int  # the budget's send count when it started: sends of every process are numbered
    answered: int = 0
    throttled: int = 0

    @property
    def share(self) -> float:
        return self.throttled / self.answered if self.answered else 0.0


class RatePacer:
    """Finds a tenant's rate limit from the spacing of its 429s and sends just under it (module docstring).

    Thread-safe: one pacer serves every sweep and join of a connection.

    :param budget: where the schedule, the counters and the limit learnt live; default: this process.
    """

    start_rate = 20.0
    start_doubling_s = 0.05
    measure_doubling_s = 0.1
    hold_s = 0.25
    drain_factor = 1.25
    #: tokens the margin may leave in the bucket before a drain takes them back
    drain_tokens = 5.0
    window_s = 1.0
    over_limit_share = 0.03

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget: Budget = budget if budget is not None else LocalBudget()
        self._lock = threading.Lock()
        self.phase = Phase.START
        self.limit_found: float | None = None
        self.samples = 0  # accepted requests the limit was measured over
        self.noise_share = 0.0
        self.cuts_undone = 0
        self.drains = 0
        self._ramp: tuple[float, float, float] | None = None  # started, from rate, doubling seconds
        self._hold_until = float("-inf")
        self._first_number = 0  # 429s of sends numbered up to this are from before the phase: stale
        self._span: Mark | None = None  # where the current measuring span starts
        self._last: Mark | None = None
        self._phase_since = 0.0
        self._drain_at = float("inf")
        self._drain_deadline = float("inf")
        self._look_at = 0.0  # when to look again for a limit another process learnt
        self._window: _Window | None = None
        self._verifying: float | None = None  # the share of 429s before a cut, while it is being checked
        self._numbered = 0  # the last send number this process handed out
        shared = self.budget.load_limit()
        if shared is not None:  # learnt once, by another sweep or process: not learnt again
            self.limit_found, self.samples = shared
            self.phase, self._drain_at = Phase.PACED, 0.0  # a drain soon measures it from here too

    # ------------------------------------------------------------------------------ sending

    @property
    def margin(self) -> float:
        """The share of the limit left unused while paced: two tokens' worth of its uncertainty, plus 0.5 %."""
        return min(0.5, 2.0 / max(self.samples, 1) + 0.005)

    @property
    def rate(self) -> float | None:
        """Requests per second the pacer sends at now; ``None``: unpaced."""
        with self._lock:
            return self._rate(time.monotonic())

    def _rate(self, now: float) -> float | None:
        if self.phase in (Phase.START, Phase.MEASURE):
            started, base, doubling = self._ramp or (now, self.start_rate, self.start_doubling_s)
            if self._ramp is None:
                self._ramp = (now, base, doubling)
            rate = base * 2 ** min((now - started) / doubling, 20.0)
            return None if rate >= RAMP_CEILING else rate
        if self.phase is Phase.NOISY or self.limit_found is None:
            return None
        if self.phase is Phase.DRAIN:
            return max(MIN_RATE, self.drain_factor * self.limit_found)
        return max(MIN_RATE, (1.0 - self.margin) * self.limit_found)

    def try_send(self, now: float) -> tuple[float, int]:
        """``(0.0, the send's number)`` when a request may go now, else ``(seconds to wait, 0)``."""
        if self.budget.shared and self.phase in (Phase.START, Phase.HOLD, Phase.MEASURE) and now >= self._look_at:
            self._look_at = now + 0.25
            self._adopt(self.budget.load_limit(), now)
        with self._lock:
            self._advance(now)
            rate = self._rate(now)
        wait, number = self.budget.try_send(None if rate is None else 1.0 / rate)
        if number:
            with self._lock:
                self._numbered = max(self._numbered, number)
        return wait, number

    def _adopt(self, shared: tuple[float, int] | None, now: float) -> None:
        """Another process has learnt the limit while this one was finding it: take it, not learn it again."""
        if shared is None:
            return
        with self._lock:
            if self.phase in (Phase.START, Phase.HOLD, Phase.MEASURE):
                self.limit_found, self.samples = shared
                self._enter(Phase.PACED, now)
                self._span = self._last = None
                self._drain_at = now + 1.0

    def _advance(self, now: float) -> None:
        """The moves that time makes: a hold ends, a drain starts, a drain that lasts means more budget."""
        if self.phase is Phase.HOLD and now >= self._hold_until:
            self._enter(Phase.MEASURE, now)
            self._ramp = (now, self.start_rate, self.measure_doubling_s)
        elif self.phase is Phase.PACED and now >= self._drain_at and self.limit_found is not None:
            paced_s = now - (self._last.at if self._last else now)
            # Seconds to drain what the margin left, at the drain's excess rate; twice that and a second more
            # with no 429 means far more was left: the budget grew.
            expected = self.margin * paced_s / (self.drain_factor - 1.0)
            self._enter(Phase.DRAIN, now)
            self._drain_deadline = now + 2.0 * expected + 1.0
            self.drains += 1
        elif self.phase is Phase.DRAIN and self.limit_found is not None and now > self._drain_deadline:
            # The budget grew (another client stopped): a quarter more every half second until a 429.
            self.limit_found *= self.drain_factor
            self.samples = min(self.samples, 50)
            self._span = None
            self._drain_deadline = now + 0.5

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self._phase_since = now
        self._first_number = self._numbered

    # ------------------------------------------------------------------------------ hearing

    def answered(self, status: int | None, number: int, sent_at: float, now: float) -> None:
        """One attempt's answer: ``status`` (``None``: none came) to send ``number``, sent at ``sent_at``."""
        if status is None:
            return  # no answer says nothing about the budget
        throttled = self.budget.note_throttled() if status == TOO_MANY_REQUESTS else None
        with self._lock:
            self._count(status, now)
            if throttled is None or number <= self._first_number:
                return  # an answer, or a 429 to a send from before the phase began (stale)
            mark = Mark(sent_at, number, throttled)
            if self.phase is Phase.START:
                self._span = self._last = mark
                self._hold(now)
            elif self.phase in (Phase.MEASURE, Phase.DRAIN):
                if self._span is None:
                    self._span = self._last = mark
                    self._hold(now)
                else:
                    self._measure(mark, now)

    def _hold(self, now: float) -> None:
        self._enter(Phase.HOLD, now)
        self._hold_until = now + self.hold_s
        self.budget.hold(self.hold_s)  # on the budget: every sweep and process on it holds

    def _measure(self, mark: Mark, now: float) -> None:
        """The limit from the requests accepted between the span's start and ``mark`` (both empty moments)."""
        if self._span is None or self._last is None:
            return
        short = _accepted(self._last, mark)
        long = _accepted(self._span, mark)
        limit = long[0] / max(long[1], 1e-3)
        if long[0] <= short[0] or abs(limit - short[0] / max(short[1], 1e-3)) * short[1] > 3.0 + 0.05 * short[0]:
            # The two spans disagree beyond a few tokens: the budget changed; measure from the last mark.
            self._span, limit, accepted = self._last, short[0] / max(short[1], 1e-3), short[0]
        else:
            accepted = long[0]
        previous = self.limit_found
        if self.phase is Phase.DRAIN and previous and limit < previous * (0.98 - 2.0 / max(accepted, 1)):
            # A drain ended sooner than the margin explains: a random 429, or a smaller budget. Only the
            # windows' check (which tells the two apart) lowers a limit; keep it and drain again later.
            limit, accepted = previous, self.samples
        else:
            self._last = mark
        self.limit_found, self.samples = max(limit, MIN_RATE), max(accepted, 1)
        self.budget.store_limit(self.limit_found, self.samples)
        self._enter(Phase.PACED, now)
        # The next drain when the margin has left about drain_tokens in the bucket.
        self._drain_at = now + min(60.0, max(0.3, self.drain_tokens / (self.margin * self.limit_found)))

    def _count(self, status: int, now: float) -> None:
        """Windows of a second: while paced or noisy, a clear excess of 429s is a smaller budget or noise."""
        if self.phase not in (Phase.PACED, Phase.DRAIN, Phase.NOISY):
            self._window = None
            return
        window = self._window = self._window or _Window(now, self._numbered)
        window.answered += 1
        window.throttled += status == TOO_MANY_REQUESTS
        if now - window.started < self.window_s or window.answered < 10:
            return
        self._window = _Window(now, self._numbered)
        share = window.share
        if self._verifying is not None:
            share_before, self._verifying = self._verifying, None
            if share >= share_before / 2 and not self.budget.shared:
                # Slowing down did not end them: noise, not budget (a sick node, a proxy). Unpaced, and
                # only a share above this noise counts from now on; a real budget shows again as one.
                # Not on a shared budget: there the other processes did not slow down with this one.
                self.noise_share = share
                self.cuts_undone += 1
                self.limit_found, self.samples, self.phase = None, 0, Phase.NOISY
            return
        # Over the noise by more than chance: three standard deviations of the window's share, and 3 %.
        spread = 3.0 * math.sqrt(self.noise_share * (1.0 - self.noise_share) / window.answered)
        if window.throttled >= 3 and share > self.noise_share + self.over_limit_share + spread:
            # What the budget accepted from every process: their sends (numbered) less this window's share.
            sent = max(self._numbered - window.first_number, window.answered)
            accepted = sent * (1.0 - share) / (now - window.started)
            self._verifying = share
            self.limit_found, self.samples = max(accepted, MIN_RATE), 40
            self.phase, self._span, self._drain_at = Phase.PACED, None, now + 2 * self.window_s
        elif self.phase is Phase.NOISY:
            self.noise_share = 0.8 * self.noise_share + 0.2 * share  # follows the noise as it changes

    @property
    def knows_a_limit(self) -> bool:
        """The pacer keeps the sweep to a rate (or is finding one): a 429 is its business."""
        return self.phase not in (Phase.START, Phase.NOISY)

    def figures(self) -> dict[str, float | int | str | None]:
        with self._lock:
            rate = self._rate(time.monotonic())
            limit = self.limit_found if self.phase is not Phase.NOISY else None
            return {
                "rate_limit_found": round(limit, 1) if limit is not None else None,
                "send_rate": round(rate, 1) if rate is not None else None,
                "rate_cuts_undone": self.cuts_undone,
                "rate_drains": self.drains,
                "pacing_phase": self.phase.value,
            }


def _accepted(start: Mark, end: Mark) -> tuple[int, float]:
    """Requests accepted between two empty moments (sent between them, less their 429s), and the seconds."""
    sent = end.number - start.number - 1
    refused = end.throttled - start.throttled - 1
    return max(0, sent - refused), end.at - start.at
