"""Consensus rules: the chain parameters every role must agree on, fixed in the genesis record.

These are the chain's, not any miner's: a miner's own choices (optimizer, bits, block length) live
in its own config. Ratios are exact fractions (PROTOCOL 9: exact rational arithmetic for every
threshold) and travel as strings such as ``"2/3"`` or ``"0.01"``; windows are integer milliseconds
on the chain node's clock. ``ChainRules.to_obj`` / ``from_obj`` are the writer and strict reader.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.encoding import exact_keys, get_field, get_int
from pogo_jax.spec.header import check_chain_id

MAX_WINDOW_MS = 7 * 24 * 3600 * 1000


def ratio(value: Any, what: str) -> Fraction:
    """An exact fraction from "2/3", "0.01", an int or a float (via its shortest decimal repr)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise UserError(f"{what} must be a number or a fraction string like '2/3', got {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value))
    if isinstance(value, str) and len(value) <= 64:
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            pass
    raise UserError(f"{what} must be a number or a fraction string like '2/3', got {value!r}")


@dataclass(frozen=True)
class ChainRules:
    chain_id: str = "pogo-local"
    leaf_size: int = 1024  # S: float32 values per Merkle leaf
    group_size: int = 64  # G: values per exponent group
    k_leaves: int = 1375  # challenged leaves: miss <= 1e-6 when 1% of leaves are bad
    m_windows: int = 8  # evaluation windows per round
    delta: Fraction = Fraction(1, 100)  # required decrease: L(next) <= L(prev) - delta (nats)
    loss_tolerance: Fraction = Fraction(1, 1000)  # |reported - own| <= tol * |own|; docs/protocol.md measures it
    quorum: Fraction = Fraction(2, 3)
    reject_share: Fraction = Fraction(1, 3)
    min_full: int = 2  # full-tier attestations needed to decide a candidate
    block_reward: int = 10  # cap of the winner's reward
    reward_per_nat: Fraction = Fraction(100)  # reward = min(block_reward, reward_per_nat * improvement)
    slash_fraction: Fraction = Fraction(1)  # fraud, equivocation, replay, false objective claims
    withhold_fraction: Fraction = Fraction(1, 10)  # a candidate with no bundle by the deadline
    loss_slash_fraction: Fraction = Fraction(1, 2)  # a candidate rejected by the full tier
    submit_window_ms: int = 60_000  # after the first accepted candidate of a round
    prove_window_ms: int = 120_000  # after the beacon reveal
    attest_window_ms: int = 300_000  # after the proof window closes

    _RATIOS = ("delta", "loss_tolerance", "quorum", "reject_share", "reward_per_nat", "slash_fraction",
               "withhold_fraction", "loss_slash_fraction")
    _INTS = ("leaf_size", "group_size", "k_leaves", "m_windows", "min_full", "block_reward", "submit_window_ms",
             "prove_window_ms", "attest_window_ms")

    def __post_init__(self) -> None:
        for name in self._RATIOS:
            object.__setattr__(self, name, ratio(getattr(self, name), f"chain.{name}"))

        try:
            check_chain_id(self.chain_id, "chain")
        except MalformedInput as e:
            raise UserError(str(e)) from None
        checks = [
            (all(isinstance(getattr(self, n), int) and not isinstance(getattr(self, n), bool) for n in self._INTS),
             "chain integer parameters must be integers"),
            (self.leaf_size > 0 and self.group_size > 0 and self.leaf_size % self.group_size == 0
             and self.group_size % 2 == 0, "chain.leaf_size must be a positive multiple of an even chain.group_size"),
            (self.k_leaves > 0 and self.m_windows > 0, "chain.k_leaves and chain.m_windows must be positive"),
            (self.delta >= 0 and self.loss_tolerance >= 0, "chain.delta and chain.loss_tolerance must be >= 0"),
            (0 < self.quorum <= 1, "chain.quorum must be in (0, 1]"),
            (0 <= self.reject_share < 1, "chain.reject_share must be in [0, 1)"),
            (self.min_full >= 1, "chain.min_full must be >= 1"),
            (self.block_reward >= 0 and self.reward_per_nat >= 0, "chain rewards must be >= 0"),
            (all(0 <= getattr(self, n) <= 1 for n in ("slash_fraction", "withhold_fraction", "loss_slash_fraction")),
             "chain slash fractions must be in [0, 1]"),
            (all(0 < getattr(self, n) <= MAX_WINDOW_MS for n in ("submit_window_ms", "prove_window_ms",
                                                                  "attest_window_ms")),
             f"chain windows must be in (0, {MAX_WINDOW_MS}] ms"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)

    def to_obj(self) -> dict:
        out: dict[str, Any] = {"chain_id": self.chain_id}
        out.update({n: getattr(self, n) for n in self._INTS})
        out.update({n: str(getattr(self, n)) for n in self._RATIOS})
        return out

    @classmethod
    def from_obj(cls, obj: Any, what: str = "rules") -> ChainRules:
        names = {f.name for f in dataclasses.fields(cls)}
        exact_keys(obj, names, what)
        kwargs: dict[str, Any] = {"chain_id": get_field(obj, "chain_id", str, what)}
        for n in cls._INTS:
            kwargs[n] = get_int(obj, n, what, 0, 2**62)
        for n in cls._RATIOS:
            s = get_field(obj, n, str, what)
            try:
                kwargs[n] = Fraction(s)
            except (ValueError, ZeroDivisionError):
                raise MalformedInput(f"{what}.{n}: {s[:40]!r} is not a fraction") from None
            if str(kwargs[n]) != s:
                raise MalformedInput(f"{what}.{n}: {s[:40]!r} is not in lowest terms")
        try:
            return cls(**kwargs)
        except UserError as e:
            raise MalformedInput(f"{what}: {e}") from None

    def slashed(self, stake: int, fraction: Fraction) -> int:
        """Stake burned: ``ceil(stake * fraction)``, at most the stake. Rounding up, so that any nonzero
        penalty costs at least 1 and repeated penalties reach zero (floor made withholding free below 10)."""
        if stake <= 0 or fraction <= 0:
            return 0
        return min(stake, math.ceil(stake * fraction))

    def within_tolerance(self, reported: float, own: float) -> bool:
        """``|reported - own| <= loss_tolerance * |own|``, exactly (float32 values are exact fractions)."""
        return abs(Fraction(reported) - Fraction(own)) <= self.loss_tolerance * abs(Fraction(own))

    def reward(self, improvement: Fraction) -> int:
        """``min(block_reward, reward_per_nat * improvement)``, floored; nothing for no progress."""
        if improvement <= 0:
            return 0
        return int(min(Fraction(self.block_reward), self.reward_per_nat * improvement))
