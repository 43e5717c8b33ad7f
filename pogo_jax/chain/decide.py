"""Finalization rules (PROTOCOL 9): from a round's candidates, votes, re-checks and stakes to outcomes.

A pure function with exact rational arithmetic, called by the node when it finalizes and by
everyone who replays the log (``pogo audit`` included), so an outcome is whatever this says about
the signed records, never what some process claims. In order:

1. A verifier whose objective claim did not re-check signed a provably false statement: slashed
   (``slash_fraction``), its votes in this round ignored.
2. A candidate with an objective claim that did re-check is fraud: its miner is slashed.
3. Only full-tier votes decide the loss, each key once; unknown, zero-stake and slashed keys and the
   miner's own key are ignored. With A and R the accepting and rejecting full stake, *valid* needs
   ``min_full`` full accepts and ``A >= quorum (A + R)``; *rejected* (miner loses
   ``loss_slash_fraction``) needs ``min_full`` full attestations and ``R > reject_share (A + R)``;
   anything else is *undecided*. Light accepts never make a candidate valid.
4. Among valid candidates the greatest verified improvement wins (the lower median over its full
   accepts of ``L(prev) - L(next)``, each accept held by the chain to the miner's reported losses; ties
   go to the earlier candidate) and is paid ``min(block_reward, reward_per_nat * improvement)``. Other
   valid candidates get nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from pogo_jax.spec.attestation import Attestation
from pogo_jax.spec.rules import ChainRules


@dataclass(frozen=True)
class Ballot:
    """One candidate as finalization sees it."""

    header_hash: bytes
    miner: bytes
    votes: tuple[Attestation, ...]  # the first attestation of each verifier (equivocations excluded)
    withheld: bool = False


@dataclass
class Decision:
    status: dict[bytes, str] = field(default_factory=dict)  # header hash -> fraud/rejected/undecided/valid/confirmed
    reason: dict[bytes, str] = field(default_factory=dict)
    improvement: dict[bytes, Fraction] = field(default_factory=dict)
    accept_stake: dict[bytes, int] = field(default_factory=dict)
    reject_stake: dict[bytes, int] = field(default_factory=dict)
    winner: bytes | None = None
    reward: int = 0
    stake_changes: list[tuple[bytes, int, str, bytes | None]] = field(default_factory=list)  # key, delta, why, hh


def _median(xs: Sequence[Fraction]) -> Fraction:
    """The lower median: with an even count the smaller middle value, so that no single voter of two
    (``min_full`` is 2) can raise a candidate's improvement above what the other one measured."""
    s = sorted(xs)
    return s[(len(s) - 1) // 2]


def claims(ballots: Sequence[Ballot]) -> list[tuple[bytes, str]]:
    """The (candidate, tier) pairs with at least one objective claim: what the finalizer must re-check."""
    out: list[tuple[bytes, str]] = []
    for b in ballots:
        if b.withheld:
            continue
        for tier in ("light", "full"):
            if any(a.objective and a.tier == tier for a in b.votes) and (b.header_hash, tier) not in out:
                out.append((b.header_hash, tier))
    return out


def decide(ballots: Sequence[Ballot], stakes: Mapping[bytes, int], verifiers: set[bytes], rules: ChainRules,
           fails: Mapping[tuple[bytes, str], bool], barred: set[bytes] | frozenset = frozenset()) -> Decision:
    """Outcomes of one round. ``stakes`` are the participants' stakes now, ``verifiers`` the keys
    registered as verifiers, ``fails[(header_hash, tier)]`` the re-check results of ``claims``, ``barred``
    the keys slashed for a provable fault (equivocation, replay, fraud, a false claim): whatever stake
    they have left, nothing of theirs counts."""
    d = Decision()
    stake = {k: (0 if k in barred else v) for k, v in stakes.items()}

    def slash(key: bytes, frac: Fraction, why: str, hh: bytes | None) -> None:
        burn = rules.slashed(stake.get(key, 0), frac)
        if burn:
            stake[key] -= burn
            d.stake_changes.append((key, -burn, why, hh))

    liars: set[bytes] = set()
    for b in ballots:
        for a in b.votes:
            if a.objective and not fails.get((b.header_hash, a.tier), False) and a.verifier_key not in liars:
                liars.add(a.verifier_key)
    for key in sorted(liars):
        slash(key, rules.slash_fraction, "FALSE_CLAIM", None)

    valid: list[bytes] = []
    for b in ballots:
        hh = b.header_hash
        if b.withheld:
            continue
        if stake.get(b.miner, 0) <= 0:
            d.status[hh], d.reason[hh] = "void", "MINER_SLASHED"
            continue
        fraud = [t for t in ("light", "full") if fails.get((hh, t), False)]
        if fraud:
            slash(b.miner, rules.slash_fraction, "FRAUD_CONFIRMED", hh)
            d.status[hh], d.reason[hh] = "fraud", f"FRAUD_CONFIRMED_{fraud[0].upper()}"
            continue
        counted = [a for a in b.votes if a.tier == "full" and a.verifier_key in verifiers
                   and a.verifier_key != b.miner and a.verifier_key not in liars and stake.get(a.verifier_key, 0) > 0]
        acc = [a for a in counted if a.verdict == "accept"]
        rej = [a for a in counted if a.verdict == "reject"]
        A = sum(stake[a.verifier_key] for a in acc)
        R = sum(stake[a.verifier_key] for a in rej)
        d.accept_stake[hh], d.reject_stake[hh] = A, R
        total = A + R
        if len(counted) >= rules.min_full and total > 0 and rules.reject_share * total < R:
            slash(b.miner, rules.loss_slash_fraction, "FULL_REJECT", hh)
            d.status[hh], d.reason[hh] = "rejected", "FULL_REJECT"
        elif len(acc) >= rules.min_full and A > 0 and rules.quorum * total <= A:
            d.improvement[hh] = _median([Fraction(a.loss_prev) - Fraction(a.loss_next) for a in acc])
            d.status[hh], d.reason[hh] = "valid", "FULL_ACCEPT"
            valid.append(hh)
        else:
            d.status[hh] = "undecided"
            d.reason[hh] = "TOO_FEW_FULL" if len(counted) < rules.min_full else "NO_QUORUM"
    if valid:
        best = max(valid, key=lambda h: d.improvement[h])  # max keeps the first of equals: earlier wins
        d.winner = best
        d.status[best], d.reason[best] = "confirmed", "BEST_IMPROVEMENT"
        d.reward = rules.reward(d.improvement[best])
        miner = next(b.miner for b in ballots if b.header_hash == best)
        if d.reward:
            stake[miner] = stake.get(miner, 0) + d.reward
            d.stake_changes.append((miner, d.reward, "REWARD", best))
        for h in valid:
            if h != best:
                d.reason[h] = "NOT_BEST"
    return d
