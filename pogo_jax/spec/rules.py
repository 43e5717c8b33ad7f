"""Consensus rules: the chain parameters every role must agree on, fixed in the genesis record.

These are the chain's, not any miner's: a miner's own choices (optimizer, bits, block length) live
in its own config. Ratios are exact fractions (PROTOCOL 9: exact rational arithmetic for every
threshold) and travel as strings such as ``"2/3"`` or ``"0.01"``; windows are integer milliseconds
on the chain node's clock. ``ChainRules.to_obj`` / ``from_obj`` are the writer and strict reader.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.encoding import exact_keys, get_field, get_int

MAX_WINDOW_MS = 7 * 24 * 3600 * 1000
MAX_WINDOWS = 4096  # evaluation windows per round: a full vote carries two float32 values per window
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MalformedInput(f"{what}: names are 1-64 characters from A-Z a-z 0-9 . _ -")
    return name


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
    name: str = "pogo-local"  # a human name; the chain's id is its genesis hash (PROTOCOL 13)
    leaf_size: int = 1024  # S: float32 values per Merkle leaf
    group_size: int = 64  # G: values per exponent group
    k_leaves: int = 1375  # challenged leaves: miss <= 1e-6 when 1% of leaves are bad
    # Evaluation windows per round, all from the round's sealed shard. With lcb_t this sets how often an
    # honest block is judged weak: benchmarks/results/loss_spread.json measures it (docs/protocol.md).
    m_windows: int = 256
    delta: Fraction = Fraction(1, 50)  # the lower confidence bound of the mean paired improvement must reach it
    lcb_t: Fraction = Fraction(166, 100)  # one-sided Student-t critical value (95%, m - 1 = 255: 1.651)
    # |vote - median| <= tol * |median| per window, and |reported mean - chain mean| <= tol * |chain mean|.
    # Measured (benchmarks/results/loss_spread.json): honest float32 per-window losses differ by at most 2.3e-7
    # relative across 1-8 CPU devices, meshes and XLA's CPU instruction sets; 1e-4 leaves x430 for that and
    # x10 over 1e-5 for backends not measured yet (GPU, TPU); bfloat16 compute (1.8e-3) is outside, as meant.
    loss_tolerance: Fraction = Fraction(1, 10000)
    min_full: int = 2  # revealed full votes needed to decide a candidate
    epoch_budget: int = 1000  # block rewards the chain issues per epoch at most (PROTOCOL 15)
    reward_per_nat: Fraction = Fraction(100)  # a winner's reward: floor(reward_per_nat * improvement)
    verifier_reward: int = 1  # per counted, non-outlier full vote on a decided candidate
    verifier_fee: int = 2  # forfeited by a full vote committed and never revealed (>= verifier_reward)
    candidate_fee: int = 1  # forfeited by a candidate judged weak (its bound under delta), with its votes' pay
    slash_fraction: Fraction = Fraction(1)  # fraud, equivocation, replay, false objective claims
    withhold_fraction: Fraction = Fraction(1, 10)  # a candidate with no bundle by the deadline
    loss_slash_fraction: Fraction = Fraction(1, 2)  # reported mean losses beyond tolerance of the chain's
    outlier_slash_fraction: Fraction = Fraction(1, 10)  # a full vote outside tolerance of the median of >= 3
    submit_window_ms: int = 60_000  # after the first accepted candidate of a round
    prove_window_ms: int = 120_000  # after the beacon reveal (and, without a reveal, after the submit close)
    attest_window_ms: int = 300_000  # after the proof close: light votes and full-vote commitments
    reveal_window_ms: int = 120_000  # after the commit close: full votes revealed

    _RATIOS = ("delta", "lcb_t", "loss_tolerance", "reward_per_nat", "slash_fraction", "withhold_fraction",
               "loss_slash_fraction", "outlier_slash_fraction")
    _INTS = ("leaf_size", "group_size", "k_leaves", "m_windows", "min_full", "epoch_budget", "verifier_reward",
             "verifier_fee", "candidate_fee", "submit_window_ms", "prove_window_ms", "attest_window_ms",
             "reveal_window_ms")
    _FRACTIONS = ("slash_fraction", "withhold_fraction", "loss_slash_fraction", "outlier_slash_fraction")
    _WINDOWS = ("submit_window_ms", "prove_window_ms", "attest_window_ms", "reveal_window_ms")

    def __post_init__(self) -> None:
        for name in self._RATIOS:
            object.__setattr__(self, name, ratio(getattr(self, name), f"chain.{name}"))
        try:
            check_name(self.name, "chain.name")
        except MalformedInput as e:
            raise UserError(str(e)) from None
        checks = [
            (all(isinstance(getattr(self, n), int) and not isinstance(getattr(self, n), bool) for n in self._INTS),
             "chain integer parameters must be integers"),
            (self.leaf_size > 0 and self.group_size > 0 and self.leaf_size % self.group_size == 0
             and self.group_size % 2 == 0, "chain.leaf_size must be a positive multiple of an even chain.group_size"),
            (self.k_leaves > 0, "chain.k_leaves must be positive"),
            (2 <= self.m_windows <= MAX_WINDOWS, f"chain.m_windows must be in [2, {MAX_WINDOWS}] (the bound needs a "
                                                 "sample variance)"),
            (self.delta >= 0 and self.loss_tolerance >= 0 and self.lcb_t >= 0,
             "chain.delta, chain.lcb_t and chain.loss_tolerance must be >= 0"),
            (self.min_full >= 1, "chain.min_full must be >= 1"),
            (min(self.epoch_budget, self.verifier_reward, self.verifier_fee, self.candidate_fee) >= 0
             and self.reward_per_nat >= 0, "chain rewards and fees must be >= 0"),
            (self.verifier_fee >= self.verifier_reward,
             "chain.verifier_fee must be >= chain.verifier_reward (else committing junk and revealing only what "
             "fits pays)"),
            (all(0 <= getattr(self, n) <= 1 for n in self._FRACTIONS), "chain slash fractions must be in [0, 1]"),
            (all(0 < getattr(self, n) <= MAX_WINDOW_MS for n in self._WINDOWS),
             f"chain windows must be in (0, {MAX_WINDOW_MS}] ms"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)

    def to_obj(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        out.update({n: getattr(self, n) for n in self._INTS})
        out.update({n: str(getattr(self, n)) for n in self._RATIOS})
        return out

    @classmethod
    def from_obj(cls, obj: Any, what: str = "rules") -> ChainRules:
        names = {f.name for f in dataclasses.fields(cls)}
        exact_keys(obj, names, what)
        kwargs: dict[str, Any] = {"name": get_field(obj, "name", str, what)}
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

    def reward(self, improvement: Fraction, budget_left: int) -> int:
        """``floor(reward_per_nat * improvement)``, at most what the epoch's budget has left; nothing for no
        progress. Linear, so a block's progress released as several blocks earns no more than whole (the
        floors only lose), and the budget bounds what an epoch issues (PROTOCOL 15)."""
        if improvement <= 0 or budget_left <= 0:
            return 0
        return min(budget_left, math.floor(self.reward_per_nat * improvement))
