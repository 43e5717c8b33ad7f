"""Finalization rules (PROTOCOL 4.7): from a block's attestations and the stakes to an outcome.

Pure function, no I/O, exact rational arithmetic (no float rounding at the quorum boundary):

1. ``fraud_confirmed`` (someone re-ran the light check on the published bundle and it failed
   objectively) -> slashed at once, whatever the votes say.
2. Votes are counted per verifier key: unregistered or zero-stake keys and the miner's own key
   are ignored; a key that signed both verdicts for this header equivocated: it is slashed and
   its votes are ignored; several attestations with one verdict count once.
3. With T = accepting + rejecting stake and at least ``min_attestations`` counted verifiers:
   slash when reject > reject_share * T; confirm when accept >= quorum * T; otherwise pending.
   The slash test comes first, so if both could hold (only when quorum + reject_share < 1) the
   block is slashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from pogo_jax.spec.attestation import Attestation


@dataclass(frozen=True)
class Rules:
    quorum: float = 2 / 3
    min_attestations: int = 2
    reject_share: float = 1 / 3
    block_reward: int = 10  # added to the miner's stake when its block is confirmed
    slash_fraction: float = 1.0  # share of a slashed key's stake that is burned

    def __post_init__(self) -> None:
        if not 0 < self.quorum <= 1:
            raise ValueError("quorum must be in (0, 1]")
        if not 0 <= self.reject_share < 1:
            raise ValueError("reject_share must be in [0, 1)")
        if isinstance(self.min_attestations, bool) or self.min_attestations < 1:
            raise ValueError("min_attestations must be >= 1")
        if self.block_reward < 0:
            raise ValueError("block_reward must be >= 0")
        if not 0 <= self.slash_fraction <= 1:
            raise ValueError("slash_fraction must be in [0, 1]")


@dataclass(frozen=True)
class Outcome:
    status: str  # "confirmed" | "slashed" | "pending"
    reason: str
    accept_stake: int
    reject_stake: int
    slashed_keys: tuple[bytes, ...]  # miner and/or equivocating verifiers (empty while pending)


def _ratio(x: float) -> Fraction:
    # 2/3 as a float is 0.666...63; limit_denominator recovers the intended 2/3 exactly.
    return Fraction(x).limit_denominator(10**6)


def slashed_amount(stake: int, rules: Rules) -> int:
    """Stake burned when a key with ``stake`` is slashed (floor, so integers stay integers)."""
    return int(stake * _ratio(rules.slash_fraction))


def decide(
    attestations: Sequence[Attestation],
    stakes: Mapping[bytes, int],
    miner_key: bytes,
    rules: Rules,
    fraud_confirmed: bool,
) -> Outcome:
    """The outcome for one header given all its attestations (see the module docstring)."""
    hashes = {a.header_hash for a in attestations}
    if len(hashes) > 1:
        raise ValueError("decide() takes the attestations of one header only")
    verdicts: dict[bytes, set[str]] = {}
    for a in attestations:
        if a.verifier_key == miner_key or stakes.get(a.verifier_key, 0) <= 0:
            continue
        verdicts.setdefault(a.verifier_key, set()).add(a.verdict)
    equivocators = tuple(sorted(k for k, v in verdicts.items() if len(v) > 1))
    honest = {k: next(iter(v)) for k, v in verdicts.items() if len(v) == 1}
    accept = sum(stakes[k] for k, v in honest.items() if v == "accept")
    reject = sum(stakes[k] for k, v in honest.items() if v == "reject")

    if fraud_confirmed:
        return Outcome("slashed", "FRAUD_CONFIRMED", accept, reject, (miner_key, *equivocators))
    total = accept + reject
    if len(honest) < rules.min_attestations or total == 0:
        return Outcome("pending", "TOO_FEW_ATTESTATIONS", accept, reject, ())
    if reject > _ratio(rules.reject_share) * total:
        return Outcome("slashed", "QUORUM_REJECT", accept, reject, (miner_key, *equivocators))
    if accept >= _ratio(rules.quorum) * total:
        return Outcome("confirmed", "QUORUM_ACCEPT", accept, reject, equivocators)
    return Outcome("pending", "NO_QUORUM", accept, reject, ())
