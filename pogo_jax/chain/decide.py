"""Finalization rules (PROTOCOL 9, 15, 16; v3): from a round's candidates, votes, re-checks and stakes to outcomes.

A pure function with exact rational arithmetic, called by the node when it finalizes and by everyone
who replays the log (``pogo audit`` included), so an outcome is whatever this says about the signed
records, never what some process claims. In order:

1. A verifier whose objective claim did not re-check signed a provably false statement: slashed
   (``slash_fraction``), its votes in this round ignored. A candidate with an objective claim that did
   re-check is fraud: its miner is slashed, and each verifier whose claim proved it is paid.
2. Only *measured* full votes (revealed, with per-window losses) judge the loss; each key once;
   unknown, zero-stake, barred and lying keys and the miner's own are ignored. Fewer than ``min_full``:
   *undecided*. The chain's measurement is, per window, the lower median of the votes' losses.
3. A vote with any value outside ``loss_tolerance`` of that median is an *outlier*: among three or
   more votes it is slashed (``outlier_slash_fraction``) and dropped (the median is taken again over the
   rest); with fewer than three the candidate is *disputed* (undecided) and nobody is slashed.
4. The miner's reported means must be within ``loss_tolerance`` of the chain's (the mean of the median
   losses): otherwise it lied about its numbers (*false-loss*, ``loss_slash_fraction``).
5. With ``d_w`` the median of the votes' paired differences, the candidate is *valid* when the lower
   confidence bound of their mean reaches ``delta`` (spec/verdict.py); else *weak*: it forfeits
   ``candidate_fee`` plus the pay of the votes it took (so a miner and verifiers submitting and measuring
   junk candidates together mint nothing), never half its stake.
6. If every judged candidate of the round was decided, the valid one with the greatest mean improvement
   wins (ties: the earlier) and is paid ``floor(reward_per_nat * improvement)`` from what is left of
   the epoch's budget. An undecided candidate leaves the round without a winner, so that no verifier
   can pick the winner by disputing or not revealing its rivals' votes.
7. Each counted, non-outlier measured vote on a decided candidate earns ``verifier_reward``; a commitment
   never revealed forfeits ``verifier_fee``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from pogo_jax.spec.attestation import Attestation
from pogo_jax.spec.rules import ChainRules
from pogo_jax.spec.verdict import Bound, lower_bound, lower_median, mean, within

DECIDED = ("valid", "weak", "false-loss")


@dataclass(frozen=True)
class Ballot:
    """One candidate as finalization sees it."""

    header_hash: bytes
    miner: bytes
    votes: tuple[Attestation, ...]  # light votes and revealed full votes, one per verifier
    withheld: bool = False
    reported: tuple[float, float] | None = None  # the miner's mean losses, from its bundle
    committed: tuple[bytes, ...] = ()  # verifiers that committed a full vote (revealed or not)


@dataclass(frozen=True)
class Measurement:
    """The chain's measurement of one candidate from its counted votes."""

    votes: int  # measured votes counted (outliers excluded)
    outliers: tuple[bytes, ...]
    prev_mean: Fraction
    next_mean: Fraction
    bound: Bound


@dataclass
class Decision:
    status: dict[bytes, str] = field(default_factory=dict)  # header hash -> void/fraud/false-loss/weak/undecided/...
    reason: dict[bytes, str] = field(default_factory=dict)
    improvement: dict[bytes, Fraction] = field(default_factory=dict)  # mean of the median paired differences
    measured: dict[bytes, Measurement] = field(default_factory=dict)
    paid: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)  # header hash -> verifiers paid for it
    winner: bytes | None = None
    reward: int = 0
    stake_changes: list[tuple[bytes, int, str, bytes | None]] = field(default_factory=list)  # key, delta, why, hh


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


def _medians(votes: Sequence[Attestation]) -> tuple[list[Fraction], list[Fraction]]:
    m = len(votes[0].losses_prev)
    return ([lower_median([v.losses_prev[w] for v in votes]) for w in range(m)],
            [lower_median([v.losses_next[w] for v in votes]) for w in range(m)])


def _agrees(v: Attestation, med_prev: list[Fraction], med_next: list[Fraction], tol: Fraction) -> bool:
    return all(within(tol, a, p) for a, p in zip(v.losses_prev, med_prev, strict=True)) and \
        all(within(tol, a, p) for a, p in zip(v.losses_next, med_next, strict=True))


def measure(votes: Sequence[Attestation], rules: ChainRules) -> tuple[str, Measurement | None, tuple[bytes, ...]]:
    """("ok", measurement, outliers) or ("TOO_FEW_FULL" / "DISPUTED" / "TOO_FEW_AGREEING", None, outliers)
    for the measured votes of one candidate (steps 2-3 of the module docstring)."""
    tol = rules.loss_tolerance
    if len(votes) < rules.min_full:
        return "TOO_FEW_FULL", None, ()
    med_prev, med_next = _medians(votes)
    bad = tuple(v.verifier_key for v in votes if not _agrees(v, med_prev, med_next, tol))
    if bad and len(votes) < 3:
        return "DISPUTED", None, ()
    kept = [v for v in votes if v.verifier_key not in bad]
    if len(kept) < rules.min_full:
        return "TOO_FEW_AGREEING", None, bad
    if bad:
        med_prev, med_next = _medians(kept)
    d = [lower_median([Fraction(v.losses_prev[w]) - Fraction(v.losses_next[w]) for v in kept])
         for w in range(len(med_prev))]
    return "ok", Measurement(len(kept), bad, mean(med_prev), mean(med_next),
                             lower_bound(d, rules.delta, rules.lcb_t)), bad


def decide(ballots: Sequence[Ballot], stakes: Mapping[bytes, int], verifiers: set[bytes], rules: ChainRules,
           fails: Mapping[tuple[bytes, str], bool], barred: set[bytes] | frozenset = frozenset(),
           budget_left: int = 0) -> Decision:
    """Outcomes of one round. ``stakes`` are the participants' stakes now, ``verifiers`` the keys
    registered as verifiers, ``fails[(header_hash, tier)]`` the re-check results of ``claims``, ``barred``
    the keys slashed for a provable fault (equivocation, replay, fraud, a false claim): whatever stake
    they have left, nothing of theirs counts. ``budget_left``: block rewards the epoch can still issue."""
    d = Decision()
    stake = {k: (0 if k in barred else v) for k, v in stakes.items()}

    def change(key: bytes, delta: int, why: str, hh: bytes | None) -> None:
        if delta:
            stake[key] = stake.get(key, 0) + delta
            d.stake_changes.append((key, delta, why, hh))

    def slash(key: bytes, frac: Fraction, why: str, hh: bytes | None) -> None:
        change(key, -rules.slashed(stake.get(key, 0), frac), why, hh)

    def forfeit(key: bytes, fee: int, why: str, hh: bytes | None) -> None:
        change(key, -min(fee, max(stake.get(key, 0), 0)), why, hh)

    def pay(keys: Sequence[bytes], hh: bytes) -> None:
        d.paid[hh] = tuple(keys)
        for k in keys:
            change(k, rules.verifier_reward, "VERIFIER_REWARD", hh)

    liars: set[bytes] = set()
    for b in ballots:
        for a in b.votes:
            if a.objective and not fails.get((b.header_hash, a.tier), False) and a.verifier_key not in liars:
                liars.add(a.verifier_key)
    for key in sorted(liars):
        slash(key, rules.slash_fraction, "FALSE_CLAIM", None)

    def counts(a: Attestation, b: Ballot) -> bool:
        return (a.verifier_key in verifiers and a.verifier_key != b.miner and a.verifier_key not in liars
                and stake.get(a.verifier_key, 0) > 0)

    valid: list[bytes] = []
    undecided = False
    for b in ballots:
        hh = b.header_hash
        if b.withheld:
            continue
        for k in b.committed:  # a commitment never revealed: its fee, whatever became of the candidate
            if k in verifiers and k not in liars and not any(a.verifier_key == k and a.tier == "full" for a in b.votes):
                forfeit(k, rules.verifier_fee, "UNREVEALED", hh)
        if stake.get(b.miner, 0) <= 0:
            d.status[hh], d.reason[hh] = "void", "MINER_SLASHED"
            continue
        fraud = [t for t in ("light", "full") if fails.get((hh, t), False)]
        if fraud:
            slash(b.miner, rules.slash_fraction, "FRAUD_CONFIRMED", hh)
            d.status[hh], d.reason[hh] = "fraud", f"FRAUD_CONFIRMED_{fraud[0].upper()}"
            pay(sorted({a.verifier_key for a in b.votes if a.objective and a.tier in fraud and counts(a, b)}), hh)
            continue
        votes = [a for a in b.votes if a.tier == "full" and a.measured and counts(a, b)]
        verdict, m, outliers = measure(votes, rules)
        for k in outliers:
            slash(k, rules.outlier_slash_fraction, "OUTLIER", hh)
        if m is None:
            d.status[hh], d.reason[hh] = "undecided", verdict
            undecided = True
            continue
        d.measured[hh] = m
        d.improvement[hh] = m.bound.mean
        pay([a.verifier_key for a in votes if a.verifier_key not in outliers], hh)
        if b.reported is None or not (within(rules.loss_tolerance, b.reported[0], m.prev_mean)
                                      and within(rules.loss_tolerance, b.reported[1], m.next_mean)):
            slash(b.miner, rules.loss_slash_fraction, "FALSE_LOSS", hh)
            d.status[hh], d.reason[hh] = "false-loss", "REPORTED_LOSS_MISMATCH"
        elif not m.bound.ok:  # the fee, and the pay of the votes it took: junk candidates mint nothing
            forfeit(b.miner, rules.candidate_fee + rules.verifier_reward * len(d.paid[hh]), "WEAK_BLOCK", hh)
            d.status[hh], d.reason[hh] = "weak", "BOUND_UNDER_DELTA"
        else:
            d.status[hh], d.reason[hh] = "valid", "BOUND_REACHES_DELTA"
            valid.append(hh)
    if undecided:
        for h in valid:
            d.reason[h] = "ROUND_UNDECIDED"
            d.status[h] = "undecided"
    elif valid:
        best = max(valid, key=lambda h: d.improvement[h])  # max keeps the first of equals: earlier wins
        d.winner = best
        d.status[best], d.reason[best] = "confirmed", "BEST_IMPROVEMENT"
        d.reward = rules.reward(d.improvement[best], budget_left)
        miner = next(b.miner for b in ballots if b.header_hash == best)
        change(miner, d.reward, "REWARD", best)
        for h in valid:
            if h != best:
                d.reason[h] = "NOT_BEST"
    return d
