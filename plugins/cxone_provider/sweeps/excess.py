"""The windows' check of a paced sweep: a second's share of 429s, and what a clear excess of them means.

While a pacer keeps to a limit, its answers are counted in windows of a second. More than 3 % of 429s
above the noise already learnt (and above chance: three standard deviations of the window's share) means
the budget shrank (another client of the tenant): the pacer keeps to what was accepted. If the next
window, at that lower rate, still has at least half that share, slowing down did not end them: they are
noise (a sick node, a proxy), not a budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class _Window:
    started: float
    first_number: int  # the budget's send count when it started: sends of every process are numbered
    answered: int = 0
    throttled: int = 0


@dataclass(frozen=True)
class Cut:
    """The budget shrank: every process together was accepted ``accepted`` requests a second."""

    accepted: float


@dataclass(frozen=True)
class Noise:
    """Slowing down did not end the 429s: a share of ``share`` is noise."""

    share: float


class ExcessWatch:
    """Counts a paced pacer's answers in windows of ``window_s`` and says when they show a smaller budget
    (:class:`Cut`) or noise (:class:`Noise`)."""

    window_s = 1.0
    over_limit_share = 0.03

    def __init__(self) -> None:
        self.noise_share = 0.0  # the share of 429s that is noise, learnt
        self._window: _Window | None = None
        self._verifying: float | None = None  # the share of 429s before a cut, while it is being checked

    def reset(self) -> None:
        """Not paced: the next window starts afresh."""
        self._window = None

    def hear(self, throttled: bool, now: float, numbered: int, *, noisy: bool) -> Cut | Noise | None:
        """One answer (``numbered``: the last send number handed out); ``noisy``: the pacer is unpaced by noise."""
        window = self._window = self._window or _Window(now, numbered)
        window.answered += 1
        window.throttled += throttled
        if now - window.started < self.window_s or window.answered < 10:
            return None
        self._window = _Window(now, numbered)
        share = window.throttled / window.answered
        if self._verifying is not None:
            share_before, self._verifying = self._verifying, None
            return Noise(share) if share >= share_before / 2 else None
        spread = 3.0 * math.sqrt(self.noise_share * (1.0 - self.noise_share) / window.answered)
        if window.throttled >= 3 and share > self.noise_share + self.over_limit_share + spread:
            # What the budget accepted from every process: their sends (numbered) less this window's share.
            sent = max(numbered - window.first_number, window.answered)
            self._verifying = share
            return Cut(sent * (1.0 - share) / (now - window.started))
        if noisy:
            self.noise_share = 0.8 * self.noise_share + 0.2 * share  # follows the noise as it changes
        return None
