"""Finalization rules (PROTOCOL 9, 15, 16) as a pure function: exact fractions, per-window medians, the
lower confidence bound, outliers, fees and pay. Each attack of the v2 review is performed here against
``decide`` with the numbers it used; the attacker gains nothing and the honest miner loses nothing."""

from __future__ import annotations

import os
import random
from fractions import Fraction

import numpy as np
import pytest

from pogo_jax.chain.decide import Ballot, claims, decide, measure
from pogo_jax.spec.attestation import Attestation
from pogo_jax.spec.rules import ChainRules
from pogo_jax.spec.verdict import lower_bound, mean, own_verdict, paired

M = 64
RULES = ChainRules(m_windows=M, delta=Fraction(1, 50), lcb_t=Fraction(166, 100), loss_tolerance=Fraction(1, 1000),
                   reward_per_nat=Fraction(100), epoch_budget=10**6, verifier_reward=1, verifier_fee=2,
                   candidate_fee=1)
CHAIN = os.urandom(32).hex()


def f32s(xs) -> tuple[float, ...]:  # noqa: ANN001
    return tuple(float(x) for x in np.asarray(xs, np.float32))


def full(v: bytes, hh: bytes, lp, ln, reported=None, rules: ChainRules = RULES) -> Attestation:  # noqa: ANN001
    """A full vote with its per-window losses and the reason they imply (as the chain admits it)."""
    lp, ln = f32s(lp), f32s(ln)
    reason = own_verdict(lp, ln, reported or (float(mean(lp)), float(mean(ln))), rules.delta, rules.lcb_t,
                         rules.loss_tolerance)
    return Attestation(4, CHAIN, 1, 1, hh, v, "accept" if reason == "OK" else "reject", "full", reason,
                       os.urandom(32), os.urandom(32), lp, ln, os.urandom(32))


def light(v: bytes, hh: bytes, reason: str = "OK") -> Attestation:
    return Attestation(4, CHAIN, 1, 1, hh, v, "accept" if reason == "OK" else "reject", "light", reason,
                       os.urandom(32), bundle_entry=os.urandom(32))


def keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


def block(rng: np.random.Generator, gain: float, sd: float = 0.03, m: int = M) -> tuple[np.ndarray, np.ndarray]:
    """An honest block's per-window losses: L(prev) varies a lot by window, the paired gain much less."""
    lp = rng.uniform(2.0, 3.5, size=m)
    return lp, lp - rng.normal(gain, sd, size=m)


def reported(lp, ln) -> tuple[float, float]:  # noqa: ANN001
    return float(np.float32(np.mean(f32s(lp)))), float(np.float32(np.mean(f32s(ln))))


def ballot(hh, miner, votes, lp, ln, committed=None) -> Ballot:  # noqa: ANN001
    return Ballot(hh, miner, tuple(votes), False, reported(lp, ln),
                  tuple(a.verifier_key for a in votes if a.tier == "full") if committed is None else committed)


def test_light_accepts_never_make_a_candidate_valid() -> None:
    hh, miner = os.urandom(32), os.urandom(32)
    vs = keys(5)
    stakes = {k: 100 for k in [*vs, miner]}
    d = decide([Ballot(hh, miner, tuple(light(v, hh) for v in vs), False, (2.0, 1.5))], stakes, set(vs), RULES, {})
    assert d.status[hh] == "undecided" and d.reason[hh] == "TOO_FEW_FULL" and d.winner is None
    assert not d.stake_changes


def test_an_honest_block_is_confirmed_paid_linearly_and_its_verifiers_paid() -> None:
    rng = np.random.default_rng()
    vs, miner, hh = keys(3), os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.1)
    votes = [full(v, hh, lp + rng.normal(0, 1e-6, M), ln + rng.normal(0, 1e-6, M)) for v in vs]
    stakes = {k: 100 for k in [*vs, miner]}
    d = decide([ballot(hh, miner, votes, lp, ln)], stakes, set(vs), RULES, {}, budget_left=10**6)
    assert d.status[hh] == "confirmed" and d.winner == hh
    m = d.measured[hh]
    assert m.votes == 3 and not m.outliers and m.bound.ok
    assert d.reward == int(RULES.reward_per_nat * d.improvement[hh])  # linear, floored
    assert sorted(d.paid[hh]) == sorted(vs)
    assert sorted((k, x, why) for k, x, why, _ in d.stake_changes) == sorted(
        [(v, 1, "VERIFIER_REWARD") for v in vs] + [(miner, d.reward, "REWARD")])


def test_attack_2_one_liar_among_three_full_is_an_outlier_slashed_and_ignored() -> None:
    """v2: one full reject (no numbers) halved an honest miner's stake. v3: the liar's numbers are outside the
    tolerance of the per-window median of three: it is slashed, its vote counts for nothing, the block stands."""
    rng = np.random.default_rng()
    a, b, liar = keys(3)
    miner, hh = os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.1)
    votes = [full(a, hh, lp, ln), full(b, hh, lp, ln), full(liar, hh, lp, lp)]  # the liar: "no decrease"
    assert votes[2].reason == "LOSS_NOT_DECREASED"
    stakes = {k: 1000 for k in (a, b, liar, miner)}
    d = decide([ballot(hh, miner, votes, lp, ln)], stakes, {a, b, liar}, RULES, {}, budget_left=1000)
    assert d.status[hh] == "confirmed"
    assert d.measured[hh].outliers == (liar,)
    assert (liar, -100, "OUTLIER", hh) in d.stake_changes  # outlier_slash_fraction 1/10 of 1000
    assert not any(k == miner and x < 0 for k, x, *_ in d.stake_changes)
    assert liar not in d.paid[hh]


def test_attack_2_one_liar_among_two_full_makes_the_round_undecided_and_slashes_nobody() -> None:
    rng = np.random.default_rng()
    honest, liar = keys(2)
    miner, hh = os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.1)
    votes = [full(honest, hh, lp, ln), full(liar, hh, lp, lp)]
    stakes = {k: 1000 for k in (honest, liar, miner)}
    d = decide([ballot(hh, miner, votes, lp, ln)], stakes, {honest, liar}, RULES, {}, budget_left=1000)
    assert d.status[hh] == "undecided" and d.reason[hh] == "DISPUTED"
    assert d.winner is None and not d.stake_changes  # nobody slashed, nobody paid


def test_attack_2_a_liar_cannot_pick_the_winner_for_a_partner() -> None:
    """The liar disputes the honest block and vouches for its partner's weaker one. Among three it is an
    outlier on both; among two the honest block is disputed and the whole round confirms nothing."""
    rng = np.random.default_rng()
    a, b, liar = keys(3)
    honest_m, partner = os.urandom(32), os.urandom(32)
    hh_h, hh_p = os.urandom(32), os.urandom(32)
    lp, ln_h = block(rng, 0.12)
    lp2, ln_p2 = block(rng, 0.05)
    ln_p = lp - (lp2 - ln_p2)  # the partner's weaker gain, from the same state
    inflated = ln_p - 0.2  # the liar says the partner's block gains 0.2 nats more than it does
    stakes = {k: 1000 for k in (a, b, liar, honest_m, partner)}
    for verifiers in ((a, b, liar), (a, liar)):
        ballots = [
            ballot(hh_h, honest_m, [full(v, hh_h, lp, ln_h) for v in verifiers if v != liar] + [full(liar, hh_h, lp, lp)],
                   lp, ln_h),
            ballot(hh_p, partner, [full(v, hh_p, lp, ln_p) for v in verifiers if v != liar]
                   + [full(liar, hh_p, lp, inflated)], lp, ln_p),
        ]
        d = decide(ballots, stakes, set(verifiers), RULES, {}, budget_left=1000)
        assert d.winner != hh_p and not any(k == partner and x > 0 for k, x, *_ in d.stake_changes)
        assert not any(k == honest_m and x < 0 for k, x, *_ in d.stake_changes)
        if len(verifiers) == 3:
            assert d.winner == hh_h
            assert [x for k, x, why, _ in d.stake_changes if k == liar] == [-100, -90]  # an outlier twice
        else:
            assert d.winner is None and d.status[hh_h] == "undecided" and d.status[hh_p] == "undecided"


def test_attack_3_a_weak_block_forfeits_a_fee_not_half_its_stake() -> None:
    """v2 slashed half the stake of a block under delta on four windows. v3 charges ``candidate_fee``."""
    rng = np.random.default_rng()
    vs, miner, hh = keys(2), os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.005)  # well under delta = 0.02
    d = decide([ballot(hh, miner, [full(v, hh, lp, ln) for v in vs], lp, ln)], {k: 1000 for k in [*vs, miner]},
               set(vs), RULES, {}, budget_left=1000)
    # the verifiers did the work and are paid; the weak candidate pays the fee and their pay, so a miner and
    # verifiers that submit and measure junk together gain nothing from issuance
    assert sorted(d.paid[hh]) == sorted(vs)
    assert d.status[hh] == "weak" and (miner, -(1 + 2 * RULES.verifier_reward), "WEAK_BLOCK", hh) in d.stake_changes
    assert sum(x for _, x, _, _ in d.stake_changes) == -RULES.candidate_fee


def test_reported_means_that_disagree_with_the_chain_are_slashed() -> None:
    rng = np.random.default_rng()
    vs, miner, hh = keys(3), os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.1)
    lie = (reported(lp, ln)[0] + 0.5, reported(lp, ln)[1] - 0.5)
    votes = [full(v, hh, lp, ln, reported=lie) for v in vs]
    assert {a.reason for a in votes} == {"LOSS_MISMATCH"}
    d = decide([Ballot(hh, miner, tuple(votes), False, lie, tuple(vs))], {k: 1000 for k in [*vs, miner]}, set(vs),
               RULES, {}, budget_left=1000)
    assert d.status[hh] == "false-loss" and (miner, -500, "FALSE_LOSS", hh) in d.stake_changes and d.winner is None


def test_commitments_never_revealed_forfeit_the_fee_and_count_for_nothing() -> None:
    rng = np.random.default_rng()
    a, b, silent = keys(3)
    miner, hh = os.urandom(32), os.urandom(32)
    lp, ln = block(rng, 0.1)
    votes = [full(a, hh, lp, ln), full(b, hh, lp, ln)]
    d = decide([ballot(hh, miner, votes, lp, ln, committed=(a, b, silent))], {k: 1000 for k in (a, b, silent, miner)},
               {a, b, silent}, RULES, {}, budget_left=1000)
    assert d.status[hh] == "confirmed"
    assert (silent, -RULES.verifier_fee, "UNREVEALED", hh) in d.stake_changes
    assert silent not in d.paid[hh]
    assert RULES.verifier_fee >= RULES.verifier_reward  # committing junk and revealing only what fits never pays


def test_attack_5_splitting_progress_into_smaller_blocks_never_earns_more() -> None:
    """v2: min(block_reward, per_nat * gain) paid a 2-nat block as much as a 0.1-nat one. v3: linear and floored,
    so a split earns at most the whole; the budget only lowers what later pieces get."""
    rng = random.Random(os.urandom(8))
    for _ in range(500):
        whole = Fraction(rng.randrange(1, 10**6), 10**5)
        cuts = sorted(Fraction(rng.randrange(1, 10**6), 10**6) * whole for _ in range(rng.randrange(1, 8)))
        parts = [b - a for a, b in zip([Fraction(0), *cuts], [*cuts, whole], strict=True)]
        budget = rng.choice([10**9, rng.randrange(0, 2000)])
        split, left = 0, budget
        for p in parts:
            r = RULES.reward(p, left)
            split, left = split + r, left - r
        assert split <= RULES.reward(whole, budget)
    assert RULES.reward(Fraction(2), 10**6) == 20 * RULES.reward(Fraction(1, 10), 10**6)  # 2 nats: 20x 0.1 nats
    assert RULES.reward(Fraction(5), 30) == 30 and RULES.reward(Fraction(-1), 30) == 0


def test_ties_go_to_the_earlier_candidate_and_medians_are_exact() -> None:
    vs = keys(4)
    stakes = {k: 100 for k in vs}
    lp = np.full(M, 2.0)
    b = []
    for _ in range(2):
        hh, m = os.urandom(32), os.urandom(32)
        stakes[m] = 100
        b.append(ballot(hh, m, [full(v, hh, lp, lp - g) for v, g in zip(vs, (0.5, 0.5, 0.5, 0.5), strict=True)],
                        lp, lp - 0.5))
    d = decide(b, stakes, set(vs), RULES, {}, budget_left=1000)
    assert d.winner == b[0].header_hash and d.improvement[b[0].header_hash] == Fraction(1, 2)


def test_measurement_is_the_per_window_lower_median() -> None:
    rng = np.random.default_rng()
    vs, hh = keys(4), os.urandom(32)
    lp, ln = block(rng, 0.1)
    eps = [rng.normal(0, 1e-5, M) for _ in vs]
    votes = [full(v, hh, lp + e, ln + e) for v, e in zip(vs, eps, strict=True)]
    verdict, m, out = measure(votes, RULES)
    assert verdict == "ok" and not out
    want = [sorted(Fraction(a.losses_prev[w]) - Fraction(a.losses_next[w]) for a in votes)[1] for w in range(M)]
    assert m.bound == lower_bound(want, RULES.delta, RULES.lcb_t)


def test_the_bound_is_exact_at_its_edge() -> None:
    d = [Fraction(3, 100), Fraction(1, 100)] * 32  # mean 0.02 + 0 ... the bound falls short of delta
    assert not lower_bound(d, Fraction(1, 50), Fraction(166, 100)).ok
    assert lower_bound(d, Fraction(1, 50), Fraction(0)).ok  # t = 0: the mean itself, exactly delta
    assert lower_bound([Fraction(1, 40)] * 64, Fraction(1, 50), Fraction(10**6)).ok  # no variance: the mean
    assert paired([2.0, 3.0], [1.5, 3.5]) == [Fraction(1, 2), Fraction(-1, 2)]


def test_votes_of_the_miner_unknown_and_zero_stake_keys_do_not_count() -> None:
    rng = np.random.default_rng()
    hh, miner = os.urandom(32), os.urandom(32)
    a, zero, stranger = keys(3)
    lp, ln = block(rng, 0.1)
    votes = [full(k, hh, lp, ln) for k in (a, zero, stranger, miner)]
    d = decide([ballot(hh, miner, votes, lp, ln)], {a: 100, zero: 0, miner: 100}, {a, zero, miner}, RULES, {},
               budget_left=1000)
    assert d.status[hh] == "undecided" and d.reason[hh] == "TOO_FEW_FULL"


def test_false_objective_claims_are_slashed_and_true_ones_slash_the_miner_and_pay() -> None:
    rng = np.random.default_rng()
    hh, miner = os.urandom(32), os.urandom(32)
    a, b, claimer = keys(3)
    lp, ln = block(rng, 0.1)
    votes = [full(a, hh, lp, ln), full(b, hh, lp, ln), light(claimer, hh, "BAD_PROOF")]
    bal = ballot(hh, miner, votes, lp, ln)
    stakes = {k: 100 for k in (a, b, claimer, miner)}
    assert claims([bal]) == [(hh, "light")]
    d = decide([bal], stakes, {a, b, claimer}, RULES, {(hh, "light"): False}, budget_left=1000)
    assert d.status[hh] == "confirmed" and (claimer, -100, "FALSE_CLAIM", None) in d.stake_changes
    d = decide([bal], stakes, {a, b, claimer}, RULES, {(hh, "light"): True}, budget_left=1000)
    assert d.status[hh] == "fraud" and (miner, -100, "FRAUD_CONFIRMED", hh) in d.stake_changes and d.winner is None
    assert d.paid[hh] == (claimer,)  # a true fraud proof is a vote that counts


@pytest.mark.parametrize("n_liars", [1, 2])
def test_outliers_need_an_honest_majority(n_liars: int) -> None:
    """With a strict honest majority the liars are the outliers; the docs say so (a majority can lie)."""
    rng = np.random.default_rng()
    honest = keys(5 - n_liars)
    liars = keys(n_liars)
    hh = os.urandom(32)
    lp, ln = block(rng, 0.1)
    votes = [full(v, hh, lp, ln) for v in honest] + [full(v, hh, lp, lp) for v in liars]
    verdict, m, out = measure(votes, RULES)
    assert verdict == "ok" and sorted(out) == sorted(liars) and m.bound.ok
