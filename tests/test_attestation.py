"""Attestations (v3): canonical bytes, per-window f32 losses, salt, chain-bound signature, strict reader;
vote commitments."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import struct

import pytest

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.attestation import (
    MAX_ATTESTATION_BYTES,
    OBJECTIVE_FULL,
    OBJECTIVE_LIGHT,
    Attestation,
    read_signed_attestation,
    sign_attestation,
)
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.envelope import Signed, body_hash, seal
from pogo_jax.spec.header import HEADER_DOMAIN
from pogo_jax.spec.keys import generate_key, public_bytes, sign, verify_raw
from pogo_jax.spec.records import VoteCommit, read_record


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


def make(rng: random.Random, key_bytes: bytes, verdict: str = "accept", tier: str | None = None, **kw) -> Attestation:
    tier = tier or rng.choice(["light", "full"])
    m = rng.randrange(2, 40)
    full = tier == "full"
    reason = "OK" if verdict == "accept" else ("LOSS_NOT_DECREASED" if full else rng.choice(sorted(OBJECTIVE_LIGHT)))
    fields = dict(
        version=4,
        bundle_entry=rng.randbytes(32),
        chain_id=rng.randbytes(32).hex(),
        height=rng.randrange(1, 10**6),
        round=rng.randrange(1, 50),
        header_hash=rng.randbytes(32),
        verifier_key=key_bytes,
        verdict=verdict,
        tier=tier,
        reason=reason,
        evidence=rng.randbytes(32),
        salt=rng.randbytes(32) if full else None,
        losses_prev=tuple(rng.uniform(1, 10) for _ in range(m)) if full else None,
        losses_next=tuple(rng.uniform(1, 10) for _ in range(m)) if full else None,
    )
    fields.update(kw)
    return Attestation(**fields)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_roundtrip_sign_verify(rng) -> None:
    key = generate_key()
    for verdict, tier in [("accept", "full"), ("reject", "full"), ("accept", "light"), ("reject", "light")] * 3:
        a = make(rng, public_bytes(key), verdict, tier)
        obj = json.loads(canonical(a.to_obj()))
        if tier == "full":
            assert a.losses_prev == tuple(f32(x) for x in a.losses_prev)  # rounded to float32 at construction
            assert obj["losses_prev"] == [struct.pack(">f", x).hex() for x in a.losses_prev]
            assert obj["salt"] == a.salt.hex() and a.measured
        else:
            assert obj["losses_prev"] is None and obj["salt"] is None and not a.measured
        assert canonical(a.to_obj()) == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        assert body_hash(a) == hashlib.sha256(canonical(a.to_obj())).digest()
        assert Attestation.from_obj(obj) == a
        s = sign_attestation(a, key)
        assert s.verify()
        # signed for one chain: domain, 0x00, the chain id's 32 bytes, the record hash
        assert verify_raw(public_bytes(key), b"pogo/attest/v1\x00" + bytes.fromhex(a.chain_id) + body_hash(a),
                          s.signature)
        back = read_signed_attestation(s.to_bytes())
        assert back == s and back.verify()
    objective = make(rng, public_bytes(key), "reject", "full", reason="ROOT_NEXT_MISMATCH", losses_prev=None,
                     losses_next=None)
    assert objective.objective and not objective.measured
    assert Attestation.from_obj(json.loads(canonical(objective.to_obj()))) == objective


def test_full_votes_carry_their_numbers_and_salt(rng) -> None:
    k = rng.randbytes(32)
    with pytest.raises(MalformedInput, match="per-window losses"):
        make(rng, k, "accept", "full", losses_prev=None)
    with pytest.raises(MalformedInput, match="per-window losses"):
        make(rng, k, "accept", "full", losses_next=(1.0,))
    with pytest.raises(MalformedInput, match="salt"):
        make(rng, k, "accept", "full", salt=None)
    with pytest.raises(MalformedInput, match="no losses"):
        make(rng, k, "reject", "full", reason="ROOT_NEXT_MISMATCH")  # an objective reject measured nothing
    with pytest.raises(MalformedInput, match="no losses and no salt"):
        make(rng, k, "accept", "light", losses_prev=(1.0,), losses_next=(1.0,))
    with pytest.raises(MalformedInput, match="measured full vote says one of"):
        make(rng, k, "reject", "full", reason="BAD_PROOF")


def test_signature_binds_domain_chain_and_content(rng) -> None:
    key = generate_key()
    a = make(rng, public_bytes(key), tier="full")
    # a header-domain signature over the same bytes is not an attestation signature
    assert not Signed(a, sign(key, HEADER_DOMAIN, bytes.fromhex(a.chain_id) + body_hash(a))).verify()
    # nor is a signature that leaves the chain id out (v2's message)
    assert not Signed(a, sign(key, b"pogo/attest/v1", body_hash(a))).verify()
    s = sign_attestation(a, key)
    obj = s.to_obj()
    obj["body"]["verdict"], obj["body"]["reason"] = "reject", "LOSS_NOT_DECREASED"
    assert not Signed.from_obj(obj, Attestation).verify()
    obj = s.to_obj()
    obj["body"]["losses_next"][0] = struct.pack(">f", 0.5).hex()
    assert not Signed.from_obj(obj, Attestation).verify()
    obj = s.to_obj()
    obj["body"]["chain_id"] = rng.randbytes(32).hex()  # the same vote for another chain
    assert not Signed.from_obj(obj, Attestation).verify()
    with pytest.raises(ValueError, match="signer"):
        sign_attestation(a, generate_key())


def test_objective_flag(rng) -> None:
    k = rng.randbytes(32)
    assert make(rng, k, "reject", tier="light", reason="APPLY_MISMATCH").objective
    assert make(rng, k, "reject", tier="full", reason="ROOT_NEXT_MISMATCH", losses_prev=None, losses_next=None).objective
    assert not make(rng, k, "reject", tier="full", reason="LOSS_NOT_DECREASED").objective
    assert not make(rng, k, "reject", tier="light", reason="LOSS_NOT_LOWER").objective
    assert not make(rng, k, "accept").objective
    assert "LOSS_NOT_DECREASED" not in OBJECTIVE_FULL | OBJECTIVE_LIGHT  # a loss is never an objective claim


def test_reader_rejects_malformed(rng) -> None:
    key = generate_key()
    good = sign_attestation(make(rng, public_bytes(key), tier="full"), key).to_obj()
    cases = [
        ("unsupported version", "version", 2),
        ("outside", "round", 0),
        ("wrong type", "height", "1"),
        ("outside", "height", 0),
        ("expected 32 bytes", "header_hash", "00" * 31),
        ("not hex", "verifier_key", "gg" * 32),
        ("'accept' or 'reject'", "verdict", "maybe"),
        ("'light' or 'full'", "tier", "medium"),
        ("reason code", "reason", "lower case"),
        ("only with accept", "reason", "BAD_PROOF"),
        ("8 hex digits", "losses_prev", ["3f80"] * 3),
        ("non-finite", "losses_next", ["7f800000"] * 3),
        ("non-finite", "losses_next", ["7fc00000"] * 3),
        ("f32hex values", "losses_next", "3f800000"),
        ("expected 32 bytes", "evidence", "ab"),
        ("expected 32 bytes", "salt", "ab"),
        ("unknown field", "extra", 0),
        ("chain_id", "chain_id", "a b"),
        ("chain_id", "chain_id", "pogo-local"),  # a name is not a chain id
    ]
    for message, key_name, value in cases:
        o = copy.deepcopy(good)
        o["body"][key_name] = value
        with pytest.raises(MalformedInput, match=message):
            Signed.from_obj(o, Attestation)
    o = copy.deepcopy(good)
    del o["body"]["evidence"]
    with pytest.raises(MalformedInput, match="missing field 'evidence'"):
        Signed.from_obj(o, Attestation)
    with pytest.raises(MalformedInput, match="OK"):
        make(rng, public_bytes(key), "reject", reason="OK")
    with pytest.raises(MalformedInput, match="evidence"):
        make(rng, public_bytes(key), evidence=None)
    with pytest.raises(MalformedInput, match="overflows float32"):
        make(rng, public_bytes(key), tier="full", losses_prev=(1e39, 1.0), losses_next=(1.0, 1.0))
    with pytest.raises(MalformedInput, match="finite"):
        make(rng, public_bytes(key), tier="full", losses_prev=(float("nan"), 1.0), losses_next=(1.0, 1.0))
    with pytest.raises(MalformedInput, match="exceeds the limit"):
        read_signed_attestation(b" " * (MAX_ATTESTATION_BYTES + 1))


def test_a_vote_commitment_names_the_vote_it_will_reveal(rng) -> None:
    key = generate_key()
    a = make(rng, public_bytes(key), tier="full")
    vote = sign_attestation(a, key)
    c = seal(VoteCommit(a.chain_id, a.height, a.round, a.header_hash, a.verifier_key, vote.hash), key)
    back = read_record(c.to_bytes(), "commit")
    assert back == c and back.verify() and back.body.vote == body_hash(a)
    # the salt hides the numbers: the same numbers with other salt are another commitment
    other = sign_attestation(make(rng, public_bytes(key), tier="full", **{f: getattr(a, f) for f in (
        "chain_id", "height", "round", "header_hash", "verdict", "reason", "evidence", "losses_prev", "losses_next")},
        salt=rng.randbytes(32)), key)
    assert other.hash != vote.hash
    with pytest.raises(ValueError, match="signer"):
        seal(c.body, generate_key())
