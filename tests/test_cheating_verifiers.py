"""Cheating verifiers: equivocation is detected and slashed; attestations with bad signatures, from
unregistered keys or for unknown headers are refused with the ledger unchanged; a verifier's false
fraud claim, or a corrupted copy of an honest bundle, never slashes the miner.

Host only (no jax): a synthetic committed block (random state and 4-bit update) is recorded in a
real ledger with its hash-chain beacon, and the miner's signed bundle is published in the chain dir.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3

import numpy as np
import pytest

from pogo_jax.adversary import synthetic_block
from pogo_jax.beacon import LocalHashChainBeacon
from pogo_jax.chain import ChainDir
from pogo_jax.errors import Rejected, UserError
from pogo_jax.ledger import Ledger
from pogo_jax.protocol.finalize import Rules
from pogo_jax.roles.chainops import Verdict, attest, finalize, light_verify, read_bundle
from pogo_jax.spec.attestation import Attestation, SignedAttestation, sign_attestation
from pogo_jax.spec.keys import generate_key, public_bytes

K, M = 8, 2


class World:
    def __init__(self, root, seed: int) -> None:
        self.chain = ChainDir(root)
        self.blk = synthetic_block(64, 64, 32, seed=seed, n_windows=16)
        h = self.blk.signed.header
        beacon = LocalHashChainBeacon.create(self.chain.beacon_dir, length=16)
        meta = {
            "chain_id": h.chain_id, "genesis_root": h.root_prev.hex(), "layout_hash": h.layout_hash.hex(),
            "data_root": h.data_root.hex(), "leaf_size": h.leaf_size, "group_size": h.group_size,
            "n_leaves": h.n_leaves, "beacon_anchor": beacon.anchor().hex(), "layout": self.blk.layout.manifest(),
            "config": {"pogo": {"k_leaves": K, "m_windows": M, "delta": 0.0}},
            "rules": dataclasses.asdict(Rules()),
        }
        self.ledger = led = Ledger.create(self.chain.ledger, meta)
        led.add_participant(h.miner_key, "miner", "miner", 100)
        self.verifiers = [generate_key() for _ in range(4)]
        for i, v in enumerate(self.verifiers):
            led.add_participant(public_bytes(v), "verifier", f"verifier-{i}", 10)
        self.hh = led.record_header(self.blk.signed, os.urandom(32), "update.qupd")
        value = beacon.reveal(led.next_beacon_index())
        led.record_beacon(self.hh, value)
        self.bundle = self.blk.bundle(value, K, M)
        self.chain.bundle_file(1).parent.mkdir(parents=True, exist_ok=True)
        self.chain.bundle_file(1).write_bytes(self.bundle.to_bytes())

    def verdict(self) -> Verdict:
        res = light_verify(read_bundle(self.chain.bundle_file(1)), self.ledger, 0, 0, 0.0)
        return Verdict(res.accept, "light", res.reason, res.detail)

    def att(self, key, verdict: str = "accept", reason: str | None = None, **kw) -> SignedAttestation:
        a = Attestation(version=1, chain_id=self.blk.signed.header.chain_id, height=1, header_hash=self.hh,
                        verifier_key=public_bytes(key), verdict=verdict, tier="light",
                        reason=reason or ("OK" if verdict == "accept" else "APPLY_MISMATCH"), **kw)
        return sign_attestation(a, key)

    def dump(self) -> list[str]:
        c = sqlite3.connect(self.chain.ledger)
        try:
            return list(c.iterdump())
        finally:
            c.close()


@pytest.fixture
def world(tmp_path) -> World:
    seed = int(np.random.default_rng().integers(2**31))
    print(f"seed {seed}")
    w = World(tmp_path, seed)
    yield w
    w.ledger.close()


def test_honest_bundle_is_accepted(world: World) -> None:
    assert world.verdict() == Verdict(True, "light", "OK", world.verdict().detail)


def test_equivocating_verifier_is_detected_and_slashed(world: World) -> None:
    w, led = world, world.ledger
    eq = w.verifiers[0]
    led.add_attestation(w.att(eq, "accept"))
    led.add_attestation(w.att(eq, "reject"))  # both verdicts for one header
    assert [e["kind"] for e in led.events()].count("equivocation") == 1
    assert {a["verdict"] for a in led.attestations(w.hh)} == {"accept", "reject"}
    for v in w.verifiers[1:3]:
        attest(led, v, w.bundle, w.verdict())
    out = finalize(w.chain, led, 1)
    assert out.status == "confirmed" and out.slashed_keys == (public_bytes(eq),)
    p = led.participant(public_bytes(eq))
    assert p["slashed"] and p["stake"] == 0
    assert led.participant(w.blk.signed.header.miner_key) == {**led.participant(w.blk.signed.header.miner_key),
                                                              "stake": 110, "slashed": False}
    assert any(e["kind"] == "slash" and e["detail"] == "EQUIVOCATION" for e in led.events())


def test_bad_or_foreign_attestations_are_refused_and_change_nothing(world: World) -> None:
    w, led = world, world.ledger
    good = w.att(w.verifiers[0])
    stranger = generate_key()
    cases = [
        # signature over other bytes: the verdict flipped after signing
        ("BAD_SIGNATURE", SignedAttestation(dataclasses.replace(good.attestation, verdict="reject",
                                                                reason="BAD_PROOF"), good.signature)),
        # another verifier's key named, signed by verifier 0 (impersonation)
        ("BAD_SIGNATURE", SignedAttestation(dataclasses.replace(good.attestation,
                                                                verifier_key=public_bytes(w.verifiers[1])),
                                            good.signature)),
        ("BAD_SIGNATURE", SignedAttestation(good.attestation, bytes(64))),
        ("unknown header", sign_attestation(dataclasses.replace(good.attestation, header_hash=os.urandom(32)),
                                            w.verifiers[0])),
        ("UNREGISTERED_VERIFIER", w.att(stranger)),
        ("UNREGISTERED_VERIFIER", w.att(w.blk.key)),  # the miner cannot vote on its own block
    ]
    for expected, signed in cases:
        before = w.dump()
        with pytest.raises((Rejected, UserError)) as ei:
            led.add_attestation(signed)
        got = ei.value.code if isinstance(ei.value, Rejected) else str(ei.value)
        assert expected in got, (expected, got)
        assert w.dump() == before, expected


def test_false_fraud_claim_does_not_slash_the_miner(world: World) -> None:
    """A verifier signs an 'objective' reject for an honest bundle: finalize re-checks the published
    bundle, finds no fraud, and the honest majority confirms."""
    w, led = world, world.ledger
    led.add_attestation(w.att(w.verifiers[0], "reject", "APPLY_MISMATCH"))
    for v in w.verifiers[1:]:
        attest(led, v, w.bundle, w.verdict())
    out = finalize(w.chain, led, 1)
    assert out.status == "confirmed" and out.reason == "QUORUM_ACCEPT", out
    assert not led.block(height=1)["fraud_confirmed"]
    assert not led.participant(w.blk.signed.header.miner_key)["slashed"]


def test_corrupted_copy_of_an_honest_bundle_cannot_frame_the_miner(world: World) -> None:
    """Someone replaces the published bundle by a copy with one leaf byte flipped (and cannot re-sign
    it): its check fails with BAD_SIGNATURE, which proves nothing; verifiers refuse to attest on it,
    and a fraud claim against the miner is not confirmed."""
    w, led = world, world.ledger
    raw = bytearray(w.chain.bundle_file(1).read_bytes())
    rng = np.random.default_rng()
    pos = int(rng.integers(len(raw) - 64 - 100, len(raw) - 64))  # inside the leaf data
    raw[pos] ^= 1 << int(rng.integers(8))
    w.chain.bundle_file(1).write_bytes(bytes(raw))
    res = light_verify(read_bundle(w.chain.bundle_file(1)), led, 0, 0, 0.0)
    assert not res.accept and res.reason in ("BAD_PROOF", "BAD_SIGNATURE") and not res.fraud_proof, res
    with pytest.raises(UserError, match="not the miner's answer"):
        attest(led, w.verifiers[1], read_bundle(w.chain.bundle_file(1)), w.verdict())
    led.add_attestation(w.att(w.verifiers[0], "reject", "BAD_PROOF"))
    for v in w.verifiers[1:]:
        attest(led, v, w.bundle, Verdict(True, "light", "OK", ""))  # they checked the miner's own copy
    out = finalize(w.chain, led, 1)
    assert out.status == "confirmed" and not led.block(height=1)["fraud_confirmed"], out


def test_fraud_proof_on_a_signed_cheating_bundle_slashes_at_once(world: World) -> None:
    """The same finalize re-check does slash when the miner itself signed a failing bundle."""
    from pogo_jax.adversary import swap_openings

    w, led = world, world.ledger
    bad = dataclasses.replace(w.bundle, openings=swap_openings(w.bundle.openings, "leaves")).signed(w.blk.key)
    w.chain.bundle_file(1).write_bytes(bad.to_bytes())
    v = w.verdict()
    assert (v.accept, v.reason) == (False, "BAD_PROOF")
    attest(led, w.verifiers[0], bad, v)  # one objective reject is enough
    out = finalize(w.chain, led, 1)
    assert (out.status, out.reason) == ("slashed", "FRAUD_CONFIRMED")
    assert led.participant(w.blk.signed.header.miner_key)["slashed"]
