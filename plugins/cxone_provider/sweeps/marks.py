"""Empty moments of a tenant's bucket, and the rate limit measured between them.

A 429 says the bucket was empty when its request arrived; between two such moments the bucket let
through exactly what it refilled. So the requests accepted between two 429s, divided by the time between
them, are the limit, to a token at each end. Requests are counted by the number the budget gave each
send (every process's sends are numbered in one sequence), and 429s by the send they refused: a
burst's answers come back in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: the send numbers of the (highest-numbered) 429s a budget keeps, at least this many, to count them
REFUSED_KEPT = 10_000
#: the longest span measured over, in sends: a longer one could count fewer 429s than it had, as the budget
#: keeps only :data:`REFUSED_KEPT` of them (this one could, only at more than 20 % of 429s)
LONGEST_SPAN = 5 * REFUSED_KEPT


@dataclass(frozen=True)
class Mark:
    """A moment the bucket was empty: a 429's send time (the budget's clock) and its send number."""

    at: float
    number: int

    def dump(self) -> str:
        return f"{self.at:.6f}:{self.number}"

    @classmethod
    def load(cls, text: str) -> Mark | None:
        if text == "-":
            return None
        at, number, *_ = text.split(":")  # an earlier form stored a third field
        return cls(float(at), int(number))


def accepted_between(start: Mark, end: Mark, refused_between: Callable[[int, int], int]) -> tuple[int, float]:
    """Requests accepted between two empty moments (sent between them, less their 429s), and the seconds.

    :param refused_between: the 429s to sends numbered between two numbers (the budget's count).
    """
    sent = end.number - start.number - 1
    return max(0, sent - refused_between(start.number, end.number)), end.at - start.at


def limit_between(
    span: Mark, last: Mark, mark: Mark, refused_between: Callable[[int, int], int]
) -> tuple[float, int, Mark]:
    """The limit measured from ``span`` (the first empty moment kept) to ``mark``: requests per second,
    the accepted requests it rests on, and where the span starts now.

    ``last`` is the empty moment before ``mark``: when the span from it disagrees with the whole span
    beyond a few tokens, the budget changed in between, and the limit is measured from ``last`` alone, as
    it is when the whole span is longer than :data:`LONGEST_SPAN`.
    """
    if mark.number - span.number > LONGEST_SPAN:
        span = last
    short, short_s = accepted_between(last, mark, refused_between)
    long, long_s = accepted_between(span, mark, refused_between)
    limit, short_limit = per_second(long, long_s), per_second(short, short_s)
    if long <= short or abs(limit - short_limit) * short_s > 3.0 + 0.05 * short:
        return short_limit, short, last
    return limit, long, span


def per_second(count: int, seconds: float) -> float:
    """``count`` over ``seconds`` (a span of a millisecond at least: two 429s can share a clock tick)."""
    return count / max(seconds, 1e-3)
