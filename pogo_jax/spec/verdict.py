"""The loss verdict's arithmetic (PROTOCOL 15-16): paired per-window differences, lower medians, the
one-sided lower confidence bound and the tolerance test, in exact fractions.

Pure functions over float32 values (every float32 is an exact fraction), shared by the full verifier
that signs a verdict, the chain that admits the vote and decides the round, and ``pogo audit`` that
replays it, so all three compute the same bits. No numpy, no jax.

The bound: with ``d_w = L_prev(w) - L_next(w)`` on ``m`` windows, mean ``d`` and sample variance ``s^2``
(``m - 1`` in the denominator), a candidate shows an improvement of at least ``delta`` when
``d - t * s / sqrt(m) >= delta``, with ``t`` the chain's ``lcb_t`` (a one-sided Student-t critical
value). Without square roots: ``d - delta >= 0`` and ``(d - delta)^2 * m >= t^2 * s^2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

Num = Fraction | float | int


def lower_median(xs: Sequence[Num]) -> Fraction:
    """The lower median: with an even count the smaller middle value, so that no single voter of two can
    move the chain's measurement above what the other one measured."""
    if not xs:
        raise ValueError("median of nothing")
    s = sorted(Fraction(x) for x in xs)
    return s[(len(s) - 1) // 2]


def within(tolerance: Fraction, value: Num, reference: Num) -> bool:
    """``|value - reference| <= tolerance * |reference|``, exactly."""
    v, r = Fraction(value), Fraction(reference)
    return abs(v - r) <= tolerance * abs(r)


def mean(xs: Sequence[Num]) -> Fraction:
    return sum((Fraction(x) for x in xs), Fraction(0)) / len(xs)


@dataclass(frozen=True)
class Bound:
    """A paired sample's mean improvement and whether its lower confidence bound reaches ``delta``."""

    mean: Fraction
    variance: Fraction  # sample variance (m - 1 in the denominator; 0 for m = 1)
    m: int
    t: Fraction
    ok: bool  # mean - t * s / sqrt(m) >= delta

    @property
    def lcb(self) -> float:
        """The bound itself, for display only (decisions use ``ok``, which needs no square root)."""
        return float(self.mean) - float(self.t) * math.sqrt(float(self.variance) / self.m)


def lower_bound(d: Sequence[Num], delta: Fraction, t: Fraction) -> Bound:
    """The one-sided lower confidence bound test of the module docstring over differences ``d``."""
    m = len(d)
    if m == 0:
        raise ValueError("no windows")
    fd = [Fraction(x) for x in d]
    mu = sum(fd, Fraction(0)) / m
    var = sum(((x - mu) ** 2 for x in fd), Fraction(0)) / (m - 1) if m > 1 else Fraction(0)
    a = mu - delta
    return Bound(mu, var, m, t, a >= 0 and a * a * m >= t * t * var)


def paired(prev: Sequence[Num], nxt: Sequence[Num]) -> list[Fraction]:
    """``d_w = L_prev(w) - L_next(w)`` per window."""
    if len(prev) != len(nxt):
        raise ValueError("per-window losses of unequal length")
    return [Fraction(a) - Fraction(b) for a, b in zip(prev, nxt, strict=True)]


# Reasons a full verifier gives for a measured verdict; the chain recomputes which one its numbers imply.
MEASURED_REASONS = ("OK", "LOSS_NOT_DECREASED", "LOSS_MISMATCH")


def own_verdict(losses_prev: Sequence[Num], losses_next: Sequence[Num], reported: tuple[Num, Num],
                delta: Fraction, t: Fraction, tolerance: Fraction) -> str:
    """What a full verifier's own per-window losses say, as a reason code: ``OK`` (accept) when its own
    bound reaches ``delta`` and the miner's reported means are within ``tolerance`` of its own means;
    ``LOSS_NOT_DECREASED`` when the bound falls short; else ``LOSS_MISMATCH``. The chain admits a full vote
    only with the reason its numbers imply, so a verdict can never contradict the verifier's own data."""
    b = lower_bound(paired(losses_prev, losses_next), delta, t)
    if not b.ok:
        return "LOSS_NOT_DECREASED"
    if not (within(tolerance, reported[0], mean(losses_prev)) and within(tolerance, reported[1], mean(losses_next))):
        return "LOSS_MISMATCH"
    return "OK"
