"""Finalization rules: quorum boundaries, stake weighting, equivocation, fraud proofs."""

from __future__ import annotations

import os
import random
from fractions import Fraction

import pytest

from pogo_jax.protocol.finalize import Rules, decide, slashed_amount
from pogo_jax.spec.attestation import Attestation

HH = bytes(range(32))


def att(key: bytes, verdict: str, tier: str = "full") -> Attestation:
    return Attestation(
        version=1,
        chain_id="c",
        height=1,
        header_hash=HH,
        verifier_key=key,
        verdict=verdict,
        tier=tier,
        reason="OK" if verdict == "accept" else "LOSS_NOT_LOWER",
    )


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


@pytest.fixture
def keys(rng) -> list[bytes]:
    return [rng.randbytes(32) for _ in range(6)]


def test_basic_outcomes(keys) -> None:
    miner, v1, v2, v3, v4, _ = keys
    stakes = {v1: 10, v2: 10, v3: 10, v4: 10}
    r = Rules()
    out = decide([att(v1, "accept"), att(v2, "accept"), att(v3, "accept")], stakes, miner, r, False)
    assert (out.status, out.reason, out.accept_stake, out.reject_stake) == (
        "confirmed",
        "QUORUM_ACCEPT",
        30,
        0,
    )
    # exactly 2/3 accept and exactly 1/3 reject: the quorum is reached, the reject bar is not passed
    out = decide([att(v1, "accept"), att(v2, "accept"), att(v3, "reject")], stakes, miner, r, False)
    assert out.status == "confirmed" and out.slashed_keys == ()
    out = decide([att(v1, "accept"), att(v2, "reject"), att(v3, "reject")], stakes, miner, r, False)
    assert (out.status, out.reason, out.slashed_keys) == ("slashed", "QUORUM_REJECT", (miner,))
    out = decide([att(v1, "accept")], stakes, miner, r, False)
    assert (out.status, out.reason) == ("pending", "TOO_FEW_ATTESTATIONS")
    assert decide([], stakes, miner, r, False).status == "pending"


def test_stake_weighting(keys) -> None:
    miner, v1, v2, v3, _, _ = keys
    stakes = {v1: 100, v2: 1, v3: 1}
    out = decide([att(v1, "accept"), att(v2, "reject"), att(v3, "reject")], stakes, miner, Rules(), False)
    assert (out.status, out.accept_stake, out.reject_stake) == ("confirmed", 100, 2)
    out = decide([att(v1, "reject"), att(v2, "accept"), att(v3, "accept")], stakes, miner, Rules(), False)
    assert out.status == "slashed"


def test_ignored_votes(keys) -> None:
    miner, v1, v2, v3, stranger, zero = keys
    stakes = {miner: 50, v1: 10, v2: 10, v3: 10, zero: 0}
    votes = [
        att(v1, "accept"),
        att(v2, "accept"),
        att(miner, "accept"),
        att(stranger, "reject"),
        att(zero, "reject"),
        att(v1, "accept", "light"),
    ]  # v1 twice with one verdict counts once
    out = decide(votes, stakes, miner, Rules(), False)
    assert (out.status, out.accept_stake, out.reject_stake) == ("confirmed", 20, 0)
    # without v2, only one counted verifier remains: too few
    out = decide([a for a in votes if a.verifier_key != v2], stakes, miner, Rules(), False)
    assert out.status == "pending"


def test_equivocation(keys) -> None:
    miner, v1, v2, v3, _, _ = keys
    stakes = {v1: 10, v2: 10, v3: 10}
    votes = [att(v1, "accept"), att(v2, "accept"), att(v3, "accept"), att(v3, "reject")]
    out = decide(votes, stakes, miner, Rules(), False)
    assert (out.status, out.accept_stake, out.slashed_keys) == ("confirmed", 20, (v3,))
    votes = [att(v1, "reject"), att(v2, "reject"), att(v3, "accept"), att(v3, "reject")]
    out = decide(votes, stakes, miner, Rules(), False)
    assert out.status == "slashed" and set(out.slashed_keys) == {miner, v3} and out.reject_stake == 20


def test_fraud_confirmed_overrides_votes(keys) -> None:
    miner, v1, v2, v3, _, _ = keys
    stakes = {v1: 10, v2: 10, v3: 10}
    out = decide([att(v1, "accept"), att(v2, "accept"), att(v3, "accept")], stakes, miner, Rules(), True)
    assert (out.status, out.reason, out.slashed_keys) == ("slashed", "FRAUD_CONFIRMED", (miner,))
    assert decide([], stakes, miner, Rules(), True).status == "slashed"


def test_no_quorum_band(keys) -> None:
    miner, v1, v2, _, _, _ = keys
    rules = Rules(quorum=0.9, reject_share=0.25)
    out = decide([att(v1, "accept"), att(v2, "reject")], {v1: 80, v2: 20}, miner, rules, False)
    assert (out.status, out.reason) == ("pending", "NO_QUORUM")


def reference(votes, stakes, miner, rules, fraud):
    """Independent re-statement of PROTOCOL 4.7 as this project reads it."""
    by_key: dict[bytes, set[str]] = {}
    for a in votes:
        if a.verifier_key != miner and stakes.get(a.verifier_key, 0) > 0:
            by_key.setdefault(a.verifier_key, set()).add(a.verdict)
    eq = sorted(k for k, v in by_key.items() if len(v) == 2)
    acc = sum(stakes[k] for k, v in by_key.items() if v == {"accept"})
    rej = sum(stakes[k] for k, v in by_key.items() if v == {"reject"})
    n = sum(1 for v in by_key.values() if len(v) == 1)
    if fraud:
        return "slashed", (miner, *eq)
    if n < rules.min_attestations or acc + rej == 0:
        return "pending", ()
    q = Fraction(rules.quorum).limit_denominator(10**6)
    s = Fraction(rules.reject_share).limit_denominator(10**6)
    if Fraction(rej) > s * (acc + rej):
        return "slashed", (miner, *eq)
    if Fraction(acc) >= q * (acc + rej):
        return "confirmed", tuple(eq)
    return "pending", ()


def test_random_against_reference(rng) -> None:
    for _ in range(400):
        keys = [rng.randbytes(32) for _ in range(rng.randrange(1, 8))]
        miner = keys[0] if rng.random() < 0.3 else rng.randbytes(32)
        stakes = {k: rng.choice([0, 1, 2, 3, 5, 100]) for k in keys if rng.random() < 0.9}
        votes = [att(rng.choice(keys), rng.choice(["accept", "reject"])) for _ in range(rng.randrange(0, 10))]
        rules = Rules(
            quorum=rng.choice([2 / 3, 0.5, 0.75, 1.0]),
            min_attestations=rng.randrange(1, 4),
            reject_share=rng.choice([1 / 3, 0.25, 0.5]),
        )
        fraud = rng.random() < 0.1
        out = decide(votes, stakes, miner, rules, fraud)
        assert (out.status, out.slashed_keys) == reference(votes, stakes, miner, rules, fraud)
        assert out.accept_stake + out.reject_stake <= sum(stakes.values())


def test_rules_and_inputs() -> None:
    for bad in [
        dict(quorum=0),
        dict(quorum=1.5),
        dict(reject_share=1),
        dict(min_attestations=0),
        dict(slash_fraction=2),
        dict(block_reward=-1),
    ]:
        with pytest.raises(ValueError):
            Rules(**bad)
    assert slashed_amount(7, Rules()) == 7
    assert slashed_amount(7, Rules(slash_fraction=0.5)) == 3
    other = Attestation(
        version=1,
        chain_id="c",
        height=1,
        header_hash=bytes(32),
        verifier_key=bytes(32),
        verdict="accept",
        tier="full",
        reason="OK",
    )
    with pytest.raises(ValueError, match="one header"):
        decide([att(bytes(32), "accept"), other], {}, b"m" * 32, Rules(), False)
