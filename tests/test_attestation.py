"""Attestations: canonical bytes, f32 losses, domain-separated signature, strict reader."""

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
    OBJECTIVE_FULL,
    OBJECTIVE_LIGHT,
    Attestation,
    read_signed_attestation,
    sign_attestation,
)
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.envelope import Signed, body_hash
from pogo_jax.spec.header import HEADER_DOMAIN
from pogo_jax.spec.keys import generate_key, public_bytes, sign, verify_raw


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


def make(rng: random.Random, key_bytes: bytes, verdict: str = "accept", **kw) -> Attestation:
    fields = dict(
        version=2,
        chain_id="test-chain",
        height=rng.randrange(1, 10**6),
        round=rng.randrange(1, 50),
        header_hash=rng.randbytes(32),
        verifier_key=key_bytes,
        verdict=verdict,
        tier=rng.choice(["light", "full"]),
        reason="OK" if verdict == "accept" else rng.choice(sorted(OBJECTIVE_LIGHT)),
        loss_prev=rng.uniform(1, 10),
        loss_next=rng.uniform(1, 10),
        evidence=rng.randbytes(32),
    )
    fields.update(kw)
    return Attestation(**fields)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_roundtrip_sign_verify(rng) -> None:
    key = generate_key()
    for verdict in ("accept", "reject") * 5:
        a = make(rng, public_bytes(key), verdict)
        assert a.loss_prev == f32(a.loss_prev)  # rounded to float32 at construction
        obj = json.loads(canonical(a.to_obj()))
        assert obj["loss_prev"] == struct.pack(">f", a.loss_prev).hex()
        assert canonical(a.to_obj()) == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        assert body_hash(a) == hashlib.sha256(canonical(a.to_obj())).digest()
        assert Attestation.from_obj(obj) == a
        s = sign_attestation(a, key)
        assert s.verify()
        assert verify_raw(public_bytes(key), b"pogo/attest/v1\x00" + body_hash(a), s.signature)
        back = read_signed_attestation(s.to_bytes())
        assert back == s and back.verify()
    none = make(rng, public_bytes(key), "reject", loss_prev=None, loss_next=None)
    assert json.loads(canonical(none.to_obj()))["loss_next"] is None
    assert Attestation.from_obj(json.loads(canonical(none.to_obj()))) == none
    with pytest.raises(MalformedInput, match="full-tier accept carries both"):
        make(rng, public_bytes(key), "accept", tier="full", loss_prev=None)


def test_signature_binds_domain_and_content(rng) -> None:
    key = generate_key()
    a = make(rng, public_bytes(key))
    # a header-domain signature over the same 32 bytes is not an attestation signature
    assert not Signed(a, sign(key, HEADER_DOMAIN, body_hash(a))).verify()
    s = sign_attestation(a, key)
    obj = s.to_obj()
    obj["body"]["verdict"], obj["body"]["reason"] = "reject", "BAD_PROOF"
    assert not Signed.from_obj(obj, Attestation).verify()
    obj = s.to_obj()
    obj["body"]["loss_next"] = struct.pack(">f", 0.5).hex()
    assert not Signed.from_obj(obj, Attestation).verify()
    with pytest.raises(ValueError, match="signer"):
        sign_attestation(a, generate_key())


def test_objective_flag(rng) -> None:
    k = rng.randbytes(32)
    assert make(rng, k, "reject", tier="light", reason="APPLY_MISMATCH").objective
    assert not make(rng, k, "reject", tier="full", reason="APPLY_MISMATCH").objective
    assert make(rng, k, "reject", tier="full", reason="ROOT_NEXT_MISMATCH").objective
    assert not make(rng, k, "reject", tier="full", reason="LOSS_NOT_DECREASED").objective
    assert not make(rng, k, "reject", tier="light", reason="LOSS_NOT_LOWER").objective
    assert not make(rng, k, "accept").objective
    assert "LOSS_NOT_DECREASED" not in OBJECTIVE_FULL | OBJECTIVE_LIGHT  # a loss is never an objective claim


def test_reader_rejects_malformed(rng) -> None:
    key = generate_key()
    good = sign_attestation(make(rng, public_bytes(key)), key).to_obj()
    cases = [
        ("unsupported version", "version", 1),
        ("outside", "round", 0),
        ("wrong type", "height", "1"),
        ("outside", "height", 0),
        ("expected 32 bytes", "header_hash", "00" * 31),
        ("not hex", "verifier_key", "gg" * 32),
        ("'accept' or 'reject'", "verdict", "maybe"),
        ("'light' or 'full'", "tier", "medium"),
        ("reason code", "reason", "lower case"),
        ("only with accept", "reason", "BAD_PROOF"),
        ("8 hex digits", "loss_prev", "3f80"),
        ("non-finite", "loss_next", "7f800000"),
        ("non-finite", "loss_next", "7fc00000"),
        ("expected 32 bytes", "evidence", "ab"),
        ("unknown field", "extra", 0),
        ("chain_id", "chain_id", "a b"),
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
        make(rng, public_bytes(key), loss_prev=1e39)
    with pytest.raises(MalformedInput, match="finite"):
        make(rng, public_bytes(key), loss_prev=float("nan"))
    with pytest.raises(MalformedInput, match="exceeds the limit"):
        read_signed_attestation(b" " * 5000)
