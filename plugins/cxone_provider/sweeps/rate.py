"""The rate a CXone connection is paced at: its tenant's limit, measured from the spacing of the 429s.

A tenant's rate limit is a token bucket of requests per second shared by all its clients; one
:class:`RatePacer` per CXone connection, shared by every sweep and join on it through a
:mod:`~cxone_provider.sweeps.budget`, keeps to it. A 429 says the bucket was empty when that request
arrived, and between two such moments it let through exactly what it refilled: the requests accepted
between two 429s (by the order they were *sent*, numbered by the budget for every process), divided by
the time between them, are the limit. Phases (``docs/pacing.md`` has the rule and the figures):

1. *start*: the rate ramps up from 20/s, doubling every 50 ms (from half what was served, slower, once
   answers slow down: :mod:`~cxone_provider.sweeps.ramp`), so few requests are in the air at the first 429;
2. *hold*: on it nothing is sent for a quarter of a second (by any process on the budget), then the rate
   ramps again (*measure*) until the second 429; the limit is measured from the last 429 of the first
   burst to it. The other processes see the first 429 counted and *follow*: they hold, ramp beside the
   measuring one (one schedule), and whoever gets the second 429 measures;
3. *paced*: after a few tokens' pause (a measurement left the bucket empty), at the limit less a margin
   of two tokens' worth of its uncertainty. What the margin leaves in the bucket a *drain* takes back
   (1.25x the limit until the next 429, which measures again over a longer span); one that finds far
   more means the budget grew. A drain is the budget's: one at a time, every process at its rate, ended
   by the first 429 to a send made during it: one 429 in all.
4. More than 3 % of 429s (above the noise learnt) in a second while paced, not counting answers to
   sends made during a drain, means the budget shrank: the limit becomes what was accepted (never more
   than it was); if slowing down did not end them they are noise (a sick node, a proxy): unpaced again,
   and that share is no longer counted.

Retry-After is honoured by the call that got it (:mod:`~cxone_provider.client.policy`), not read here: CXone
sends whole seconds, too coarse above a request a second. CXone publishes no rate-limit headers
(``X-RateLimit-*``, ``RateLimit-*``): none are read.
"""

from __future__ import annotations

import enum
import threading
import time

from cxone_provider.sweeps.budget import Budget, Learnt, LocalBudget
from cxone_provider.sweeps.excess import Cut, ExcessWatch, Noise
from cxone_provider.sweeps.marks import Mark, accepted_between, limit_between, per_second
from cxone_provider.sweeps.ramp import Ramp

TOO_MANY_REQUESTS = 429
#: the slowest the pacer ever sends, requests per second: a window of nothing but 429s is no reason to stop
MIN_RATE = 1.0


class Phase(enum.Enum):
    START = "start"
    HOLD = "hold"
    MEASURE = "measure"
    PACED = "paced"
    DRAIN = "drain"
    NOISY = "noisy"  # random 429s, no budget: unpaced, only a clear excess is looked at
    FOLLOW = "follow"  # another pacer on the budget is measuring the limit: ramp beside it, then wait for it


RAMPS = frozenset({Phase.START, Phase.MEASURE, Phase.FOLLOW})  # the phases that look for the limit


class RatePacer:
    """Finds a tenant's rate limit from the spacing of its 429s and sends just under it (module docstring);
    thread-safe: one pacer serves every sweep and join of a connection.

    :param budget: where the schedule, the counters and the limit learnt live; default: this process.
    """

    start_rate = 20.0
    start_doubling_s = 0.05
    measure_doubling_s = 0.1
    hold_s = 0.25
    drain_factor = 1.25
    #: tokens the margin may leave in the bucket before a drain takes them back
    drain_tokens = 5.0
    #: a measurement ends with the bucket empty: nothing is sent for this many tokens' time (0.1 s at most),
    #: so requests that reach it bunched (a network's jitter) find some; the next drain takes them back
    cushion_tokens = 3.0
    #: a follower whose measuring pacer stored no limit by then starts again itself
    follow_s = 5.0

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget: Budget = budget if budget is not None else LocalBudget()
        self._lock = threading.Lock()
        self.phase = Phase.START
        self.limit_found: float | None = None
        self.samples = 0  # accepted requests the limit was measured over
        self.excess = ExcessWatch()
        self.cuts_undone = 0
        self.drains = 0
        self._ramp: Ramp | None = None  # while looking for the limit (start, measure, follow)
        self._hold_until = float("-inf")
        self._first_number = 0  # 429s of sends numbered up to this are from before the phase: stale
        self._span: Mark | None = None  # where the current measuring span starts
        self._last: Mark | None = None
        self._phase_since = 0.0
        self._drain_at = float("inf")
        self._drain_deadline = float("inf")
        self._drain_every = 1.0  # seconds from one drain to the next, from the last measurement
        self._recount_at = float("inf")  # when to count the last measurement's 429s again
        self._measured = 0  # the accepted requests of this pacer's last measurement
        self._look_at = 0.0  # when to look again for a limit another process learnt
        self._numbered = 0  # the last send number this process handed out
        self._limit_stored = False  # the budget had a limit stored at the last send
        self._drain_sends_to = 0  # the last send this process made while the budget drained
        self._throttled_before: int | None = None  # the budget's 429s when this pacer first sent
        self._own_429s = 0  # 429s to this pacer's sends: the budget's others are other processes'
        self._follow_from: int | None = None  # following: the first send number of its ramp
        self._follow_done = False  # following: the next 429 came (the measuring pacer has its limit)
        self._throttled_seen = 0  # following: the budget's 429 count at the last send
        shared = self.budget.load_limit()
        if shared is not None:  # learnt once, by another sweep or process: not learnt again
            self.limit_found, self.samples = shared.limit, shared.samples
            self.phase, self._drain_at = Phase.PACED, 0.0  # a drain (the budget's) measures it again
            self._phase_since = time.monotonic()

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
        if self.phase in RAMPS:
            if self._ramp is None:
                self._ramp = Ramp(now, self.start_rate, self.start_doubling_s, watches=True)
            return self._ramp.rate(now)
        if self.phase is Phase.NOISY or self.limit_found is None:
            return None
        if self.phase is Phase.DRAIN:
            return max(MIN_RATE, self.drain_factor * self.limit_found)
        return max(MIN_RATE, (1.0 - self.margin) * self.limit_found)

    def try_send(self, now: float) -> tuple[float, int, float]:
        """``(0.0, the send's number, its time on the budget's clock)`` when a request may go now, else
        ``(seconds to wait, 0, …)``."""
        # Finding the first limit: when the budget says one is stored (or a follower waits for it), take it.
        waiting = self._limit_stored or self._follow_done
        finding = self.limit_found is None and self.phase in (Phase.FOLLOW, Phase.MEASURE) and waiting
        if finding or (self.phase is not Phase.NOISY and now >= self._look_at):
            self._look_at = now + 0.25
            self._adopt(self.budget.load_limit(), now)
        with self._lock:
            self._advance(now)
            if self.phase is Phase.FOLLOW and (now < self._hold_until or self._follow_done):
                return min(0.05, max(self._look_at, self._hold_until) - now), 0, 0.0
            rate = self._rate(now)
        send = self.budget.try_send(None if rate is None else 1.0 / rate)
        with self._lock:
            self._numbered, self._limit_stored = max(self._numbered, send.number), send.limit_stored
            if send.draining:
                self._drain_sends_to = self._numbered
            if send.number and self.phase in RAMPS and self._ramp is not None:
                self._ramp.sent(send.number, now)
            if self._throttled_before is None:
                self._throttled_before = send.throttled
            if self.phase is Phase.DRAIN and not send.draining:
                self._drain_over(now)
            elif self.phase is Phase.START and send.throttled > self._throttled_before + self._own_429s:
                self._follow(now)  # another pacer on the budget found it empty and is measuring it
            elif self.phase is Phase.FOLLOW:  # ramping beside the measuring pacer (its hold is over)
                # Done when a send of the ramp is refused: 429s to sends from before it (answers that
                # come late) say nothing of this measurement.
                if self._follow_from is None:
                    self._follow_from = send.number - 1
                self._follow_done = self._follow_done or (
                    send.throttled > self._throttled_seen
                    and self.budget.refused_between(self._follow_from, send.number) > 0
                )
                self._throttled_seen = send.throttled
        return send.wait, send.number, send.at

    def _follow(self, now: float) -> None:
        """Hold, then ramp beside the measuring pacer as it ramps (one schedule: together at its rate) until
        the next 429, which finishes the measurement whoever gets it; then wait for the limit."""
        self._enter(Phase.FOLLOW, now)
        self._hold_until = now + self.hold_s
        self._ramp = Ramp(self._hold_until, self.start_rate, self.measure_doubling_s)
        self._follow_from, self._follow_done, self._throttled_seen = None, False, 0

    def _adopt(self, shared: Learnt | None, now: float) -> None:
        """Another pacer on the budget has learnt the limit, or measured it again: take it, not learn it again."""
        if shared is None:
            return
        with self._lock:
            if self.phase in RAMPS or self.phase is Phase.HOLD:
                if self.limit_found is not None:
                    return  # measuring a budget that grew: what is stored is what it grew from
                self._enter(Phase.PACED, now)
                self._drain_at = now + 1.0
            elif self.phase is not Phase.PACED:
                return
            self.limit_found, self.samples = shared.limit, shared.samples

    def _drain_over(self, now: float) -> None:
        """The drain this pacer began is over: a 429 to another's send ended it (that pacer measured), or
        it ran its time with none (the budget grew: a quarter more, and drain again)."""
        if now < self._drain_deadline:
            learnt = self.budget.load_limit()
            if learnt is not None:
                self.limit_found, self.samples = learnt.limit, learnt.samples
            self._enter(Phase.PACED, now)
            self._drain_at = now + self._drain_every
            return
        if self.limit_found is None:
            return
        # The others keep to what was measured (safe) while this pacer's drains raise it a quarter at a
        # time (every process drains at the drain's rate); the 429 that ends one starts a measurement.
        stored = self.budget.load_limit()
        self.budget.store_limit(Learnt(stored.limit if stored else self.limit_found, 50), next_drain_s=0.0)
        self.limit_found *= self.drain_factor
        self.samples = min(self.samples, 50)
        self._span = self._last = None  # measured afresh from the next 429
        if not self._begin_drain(now, 0.5):  # another process began one first: it goes on from here
            self._enter(Phase.PACED, now)
            self._drain_at = now + 0.5

    def _advance(self, now: float) -> None:
        """The moves that time makes: a hold ends, a drain starts, a drain that lasts means more budget."""
        if self.phase in (Phase.FOLLOW, Phase.MEASURE) and now >= self._phase_since + self.follow_s:
            # The measurement was not finished (a follower's), or no 429 came: this pacer alone cannot
            # empty the bucket while the others keep to a limit. Find the limit here, or drain.
            if self.limit_found is None:  # from the start, counting the 429s other processes get from here
                self._enter(Phase.START, now)
                self._throttled_before, self._own_429s = None, 0
            else:
                self._enter(Phase.PACED, now)
                self._drain_at = now
        elif self.phase is Phase.HOLD and now >= self._hold_until:
            self._enter(Phase.MEASURE, now)
            self._ramp = Ramp(now, self.start_rate, self.measure_doubling_s)
        elif self.phase is Phase.PACED and now >= self._recount_at:
            self._recount()
        elif self.phase is Phase.PACED and now >= self._drain_at and self.limit_found is not None:
            # Seconds to drain what the margin left since the last measurement, at the drain's excess rate;
            # twice that and a second more with no 429 means far more was left: the budget grew.
            expected = min(30.0, self.margin * (now - self._phase_since) / (self.drain_factor - 1.0))
            if not self._begin_drain(now, 2.0 * expected + 1.0):
                self._drain_at = now + 0.5  # another process's drain is on, or the next is not due yet

    def _begin_drain(self, now: float, seconds: float) -> bool:
        if self.limit_found is None:
            return False
        # The budget's drain outlives this deadline a little (it is set after): past it, no drain means none.
        self._drain_deadline = now + seconds
        if not self.budget.begin_drain(1.0 / (self.drain_factor * self.limit_found), seconds):
            return False
        self._enter(Phase.DRAIN, now)
        self.drains += 1
        return True

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase = phase
        self._phase_since = now
        self._first_number = self._numbered
        self._ramp = None  # a phase that ramps starts its own

    # ------------------------------------------------------------------------------ hearing

    def answered(self, status: int | None, number: int, sent_at: float, now: float) -> None:
        """One attempt's answer: ``status`` (``None``: none came) to send ``number``, sent at ``sent_at``."""
        refused = status == TOO_MANY_REQUESTS
        with self._lock:
            if self._ramp is not None:  # accepted answers that slow down slow the ramp
                self._ramp.answered(number, status is not None and 200 <= status < 300, now)
            self._own_429s += refused  # counted before the budget counts it: never taken for another process's
            first_empty = refused and self.phase is Phase.START and number > self._first_number
        if status is None:
            return  # no answer says nothing about the budget
        if first_empty:  # nearly every request sent until the hold is refused: hold before the bookkeeping
            self.budget.hold(self.hold_s)
        throttled, ended_drain = self.budget.note_throttled(number) if refused else (None, False)
        with self._lock:
            self._count(status, number, now)
            if throttled is None:
                return
            mark = Mark(sent_at, number)
            if ended_drain and self.phase is not Phase.NOISY:  # whoever began it: measure from the last marks
                learnt = self.budget.load_limit()
                if learnt is not None:
                    self.limit_found, self.samples = learnt.limit, learnt.samples
                    self._span, self._last = learnt.span, learnt.last
                if self._span is None or self._last is None:  # the budget grew: measured afresh from here
                    self._span = self._last = mark
                    self._hold(now)
                else:
                    self._measure(mark, now, drained=True)
            elif self.phase is Phase.HOLD:
                if self._span is not None and number > self._span.number:
                    # A later 429 of the burst that began the span: the bucket was empty then too, and fewer
                    # of the burst's sends come after it (a busy client sends some late, and they were
                    # accepted before the bucket emptied: counted, they made the limit 10-20 % too high).
                    self._span = self._last = mark
                    self.budget.store_span(mark)
            elif number <= self._first_number or self.phase is Phase.DRAIN:
                return  # a 429 to a send from before the phase (or the drain) began: stale
            elif self.phase is Phase.START and not self.budget.claim_measurement(self.follow_s):
                self._follow(now)  # several met the empty bucket at once: one measures, the others follow
            elif self.phase is Phase.START:
                self._span = self._last = mark
                self._hold(now)
            elif self.phase is Phase.FOLLOW:  # the next empty moment: finish the measurement another began
                span = self.budget.load_span()
                if span is not None and span.number < number:
                    self._span = self._last = span
                    self._measure(mark, now)
            elif self.phase is Phase.MEASURE:
                if self._span is None:
                    self._span = self._last = mark
                    self._hold(now)
                else:
                    self._measure(mark, now)

    def _hold(self, now: float) -> None:
        self._enter(Phase.HOLD, now)
        self._hold_until = now + self.hold_s
        self.budget.hold(self.hold_s)  # on the budget: every sweep and process on it holds
        if self._span is not None:
            self.budget.store_span(self._span)

    def _measure(self, mark: Mark, now: float, *, drained: bool = False) -> None:
        """The limit from the requests accepted between the span's start and ``mark`` (both empty moments)."""
        if self._span is None or self._last is None or mark.at - self._span.at < self.hold_s:
            return  # a 429 of the burst that began the span (sent before this process saw it): not the next
        limit, accepted, self._span = limit_between(self._span, self._last, mark, self.budget.refused_between)
        previous = self.limit_found
        if drained and previous and limit < previous * (0.98 - 2.0 / max(accepted, 1)):
            # A drain ended sooner than the margin explains: a random 429, or a smaller budget. Only the
            # windows' check (which tells the two apart) lowers a limit; keep it and drain again later.
            limit, accepted = previous, self.samples
        else:
            self._last, self._recount_at, self._measured = mark, now + self.hold_s, max(accepted, 1)
        self._paced_from(now, Learnt(max(limit, MIN_RATE), max(accepted, 1), self._span, self._last))

    def _recount(self) -> None:
        """The last measurement once the 429s to its last sends are in (answers cross: some come after the
        429 that ended it, and a measurement that missed them found a limit too high)."""
        self._recount_at = float("inf")
        if self._span is None or self._last is None or self.limit_found is None:
            return
        accepted, seconds = accepted_between(self._span, self._last, self.budget.refused_between)
        limit = max(per_second(accepted, seconds), MIN_RATE)
        if accepted < self._measured and limit < self.limit_found:  # only lower, and only its own measurement
            self.limit_found, self.samples = limit, max(accepted, 1)
            self.budget.store_limit(Learnt(self.limit_found, self.samples, self._span, self._last))

    def _paced_from(self, now: float, learnt: Learnt) -> None:
        """Keep to ``learnt`` (stored for every pacer on the budget) until the next drain."""
        self.limit_found, self.samples = learnt.limit, learnt.samples
        self.budget.hold(min(self.cushion_tokens / learnt.limit, 0.1))
        # The next drain when the margin has left about drain_tokens in the bucket.
        self._drain_every = min(60.0, max(0.3, self.drain_tokens / (self.margin * self.limit_found)))
        self.budget.store_limit(learnt, next_drain_s=self._drain_every)
        self._enter(Phase.PACED, now)
        self._drain_at = now + self._drain_every

    def _count(self, status: int, number: int, now: float) -> None:
        """While paced or noisy, the windows' check (:mod:`~cxone_provider.sweeps.excess`)."""
        if number <= self._drain_sends_to:
            return  # sent during a drain, which looks for a 429 (and ends with a few): not a smaller budget
        if self.phase not in (Phase.PACED, Phase.NOISY):
            self.excess.reset()
            return
        if number <= self._first_number:
            return  # sent before the phase began (a start's last burst): says nothing of its rate
        verdict = self.excess.hear(status == TOO_MANY_REQUESTS, now, self._numbered, noisy=self.phase is Phase.NOISY)
        if isinstance(verdict, Noise) and not self.budget.shared:
            # Unpaced, and only a share above this noise counts from now on; a real budget shows again as
            # one. Not on a shared budget: there the other processes did not slow down with this one.
            self.excess.noise_share = verdict.share
            self.cuts_undone += 1
            self.limit_found, self.samples, self.phase = None, 0, Phase.NOISY
        elif isinstance(verdict, Cut):
            accepted = min(verdict.accepted, self.limit_found or verdict.accepted)  # answers come late: no raise
            self.limit_found, self.samples = max(accepted, MIN_RATE), 40
            self.phase, self._span, self._last = Phase.PACED, None, None
            self._drain_at = now + 2 * self.excess.window_s
            self.budget.store_limit(Learnt(self.limit_found, self.samples))  # for every pacer on the budget

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
