"""Finalization rules (PROTOCOL 9) as a pure function: exact fractions, full tier only, best improvement."""

from __future__ import annotations

import os
import random
from fractions import Fraction

import numpy as np

from pogo_jax.chain.decide import Ballot, claims, decide
from pogo_jax.spec.attestation import Attestation
from pogo_jax.spec.rules import ChainRules

RULES = ChainRules(chain_id="t", block_reward=10, reward_per_nat=Fraction(100))


def att(v: bytes, hh: bytes, verdict: str = "accept", tier: str = "full", reason: str | None = None,
        lp: float = 2.0, ln: float = 1.5) -> Attestation:
    return Attestation(2, "t", 1, 1, hh, v, verdict, tier, reason or ("OK" if verdict == "accept" else "LOSS_NOT_DECREASED"),
                       os.urandom(32), lp, ln)


def keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


def test_light_accepts_never_make_a_candidate_valid() -> None:
    hh, miner = os.urandom(32), os.urandom(32)
    vs = keys(5)
    stakes = {k: 100 for k in [*vs, miner]}
    votes = tuple(att(v, hh, tier="light", lp=None, ln=None) for v in vs[:4]) + (att(vs[4], hh, "reject"),)
    d = decide([Ballot(hh, miner, votes)], stakes, set(vs), RULES, {})
    assert d.status[hh] == "undecided" and d.winner is None and not d.stake_changes


def test_quorum_min_full_and_reject_share_at_the_boundary() -> None:
    hh, miner = os.urandom(32), os.urandom(32)
    a, b, c = keys(3)
    vs = {a, b, c}
    # 2/3 accepting stake exactly: valid (>= quorum), and the 1/3 reject is not > reject_share
    stakes = {a: 100, b: 100, c: 100, miner: 100}
    d = decide([Ballot(hh, miner, (att(a, hh), att(b, hh), att(c, hh, "reject")))], stakes, vs, RULES, {})
    assert d.status[hh] == "confirmed"
    # one stake unit more on the reject side: R > 1/3 (A + R) -> rejected, the miner loses half its stake
    stakes = {a: 100, b: 100, c: 101, miner: 100}
    d = decide([Ballot(hh, miner, (att(a, hh), att(b, hh), att(c, hh, "reject")))], stakes, vs, RULES, {})
    assert d.status[hh] == "rejected" and (miner, -50, "FULL_REJECT", hh) in d.stake_changes
    # a single full accept is too few, whatever its stake
    d = decide([Ballot(hh, miner, (att(a, hh),))], {a: 10**6, miner: 1}, vs, RULES, {})
    assert d.status[hh] == "undecided" and d.reason[hh] == "TOO_FEW_FULL"


def test_votes_of_the_miner_unknown_and_zero_stake_keys_do_not_count() -> None:
    hh, miner = os.urandom(32), os.urandom(32)
    a, zero, stranger = keys(3)
    stakes = {a: 100, zero: 0, miner: 100}
    votes = (att(a, hh), att(zero, hh), att(stranger, hh), att(miner, hh))
    d = decide([Ballot(hh, miner, votes)], stakes, {a, zero, miner}, RULES, {})
    assert d.status[hh] == "undecided"


def test_best_verified_improvement_wins_and_reward_is_capped() -> None:
    rng = random.Random(os.urandom(8))
    vs = keys(3)
    stakes = {k: 100 for k in vs}
    ballots = []
    gains = [rng.uniform(0.001, 0.3) for _ in range(4)]
    for g in gains:
        hh, m = os.urandom(32), os.urandom(32)
        stakes[m] = 100
        ballots.append(Ballot(hh, m, tuple(att(v, hh, lp=3.0, ln=3.0 - g) for v in vs)))
    d = decide(ballots, stakes, set(vs), RULES, {})
    best = max(range(4), key=lambda i: gains[i])
    assert d.winner == ballots[best].header_hash
    imp = d.improvement[d.winner]
    assert d.reward == int(min(Fraction(10), 100 * imp))  # exact fractions of the float32 losses
    assert [b.header_hash for b in ballots if d.status[b.header_hash] == "valid"] == \
           [b.header_hash for i, b in enumerate(ballots) if i != best]
    assert sum(ch[1] for ch in d.stake_changes) == d.reward  # nobody else is paid or slashed


def test_ties_go_to_the_earlier_candidate_and_median_is_exact() -> None:
    vs = keys(4)
    stakes = {k: 100 for k in vs}
    b = []
    for _ in range(2):
        hh, m = os.urandom(32), os.urandom(32)
        stakes[m] = 100
        b.append(Ballot(hh, m, tuple(att(v, hh, lp=2.0, ln=ln) for v, ln in zip(vs, (1.5, 1.25, 1.75, 1.0), strict=True))))
    d = decide(b, stakes, set(vs), RULES, {})
    assert d.winner == b[0].header_hash
    assert d.improvement[b[0].header_hash] == Fraction(1, 2)  # lower median of (0.25, 0.5, 0.75, 1.0)


def test_one_of_two_accepts_cannot_raise_an_improvement() -> None:
    """With the mean of two accepts (v2 before the review), one verifier reporting L(next) = -1e38 made its
    favourite win by any margin. The lower median holds each candidate to the smaller of the two numbers."""
    honest, liar = keys(2)
    stakes = {honest: 100, liar: 100}
    rng = np.random.default_rng()
    good_gain, weak_gain = rng.uniform(0.2, 0.5), rng.uniform(0.02, 0.1)
    good, weak = os.urandom(32), os.urandom(32)
    stakes.update({good: 100, weak: 100})
    ballots = [Ballot(good, good, (att(honest, good, lp=2.0, ln=2.0 - good_gain), att(liar, good, lp=2.0, ln=2.0 - good_gain))),
               Ballot(weak, weak, (att(honest, weak, lp=2.0, ln=2.0 - weak_gain), att(liar, weak, lp=2.0, ln=-1e38)))]
    d = decide(ballots, stakes, {honest, liar}, RULES, {})
    assert d.winner == good, "the liar's favourite must not win on its inflated number"
    assert d.improvement[weak] == Fraction(2.0) - Fraction(np.float32(2.0 - weak_gain).item())


def test_false_objective_claims_are_slashed_and_true_ones_slash_the_miner() -> None:
    hh, miner = os.urandom(32), os.urandom(32)
    a, b, liar = keys(3)
    stakes = {a: 100, b: 100, liar: 100, miner: 100}
    votes = (att(a, hh), att(b, hh), att(liar, hh, "reject", "light", "BAD_PROOF", None, None))
    ballot = Ballot(hh, miner, votes)
    assert claims([ballot]) == [(hh, "light")]
    d = decide([ballot], stakes, {a, b, liar}, RULES, {(hh, "light"): False})
    assert d.status[hh] == "confirmed" and (liar, -100, "FALSE_CLAIM", None) in d.stake_changes
    d = decide([ballot], stakes, {a, b, liar}, RULES, {(hh, "light"): True})
    assert d.status[hh] == "fraud" and (miner, -100, "FRAUD_CONFIRMED", hh) in d.stake_changes and d.winner is None
