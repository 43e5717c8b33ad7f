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
    OBJECTIVE_REASONS,
    Attestation,
    SignedAttestation,
    sign_attestation,
)
from pogo_jax.spec.header import HEADER_DOMAIN
from pogo_jax.spec.keys import generate_key, public_bytes, sign, verify_raw


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


def make(rng: random.Random, key_bytes: bytes, verdict: str = "accept", **kw) -> Attestation:
    fields = dict(
        version=1,
        chain_id="test-chain",
        height=rng.randrange(1, 10**6),
        header_hash=rng.randbytes(32),
        verifier_key=key_bytes,
        verdict=verdict,
        tier=rng.choice(["light", "full"]),
        reason="OK" if verdict == "accept" else rng.choice(sorted(OBJECTIVE_REASONS)),
        loss_prev=rng.uniform(1, 10),
        loss_next=rng.uniform(1, 10),
        evidence=None,
    )
    fields.update(kw)
    return Attestation(**fields)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_roundtrip_sign_verify(rng) -> None:
    key = generate_key()
    for verdict in ("accept", "reject") * 5:
        a = make(rng, public_bytes(key), verdict, evidence=rng.choice([None, rng.randbytes(32)]))
        assert a.loss_prev == f32(a.loss_prev)  # rounded to float32 at construction
        obj = json.loads(a.encode())
        assert obj["loss_prev"] == struct.pack(">f", a.loss_prev).hex()
        assert a.encode() == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        assert a.hash() == hashlib.sha256(a.encode()).digest()
        assert Attestation.from_obj(obj) == a
        s = sign_attestation(a, key)
        assert s.verify()
        assert verify_raw(public_bytes(key), b"pogo/attest/v1\x00" + a.hash(), s.signature)
        back = SignedAttestation.from_bytes(s.to_bytes())
        assert back == s and back.verify()
    none = make(rng, public_bytes(key), loss_prev=None, loss_next=None)
    assert json.loads(none.encode())["loss_next"] is None
    assert Attestation.from_obj(json.loads(none.encode())) == none


def test_signature_binds_domain_and_content(rng) -> None:
    key = generate_key()
    a = make(rng, public_bytes(key))
    # a header-domain signature over the same 32 bytes is not an attestation signature
    assert not SignedAttestation(a, sign(key, HEADER_DOMAIN, a.hash())).verify()
    s = sign_attestation(a, key)
    obj = s.to_obj()
    obj["attestation"]["verdict"], obj["attestation"]["reason"] = "reject", "BAD_PROOF"
    assert not SignedAttestation.from_obj(obj).verify()
    obj = s.to_obj()
    obj["attestation"]["loss_next"] = struct.pack(">f", 0.5).hex()
    assert not SignedAttestation.from_obj(obj).verify()
    with pytest.raises(ValueError, match="verifier_key"):
        sign_attestation(a, generate_key())


def test_objective_flag(rng) -> None:
    k = rng.randbytes(32)
    assert make(rng, k, "reject", tier="light", reason="APPLY_MISMATCH").objective
    assert not make(rng, k, "reject", tier="full", reason="APPLY_MISMATCH").objective
    assert not make(rng, k, "reject", tier="light", reason="LOSS_NOT_LOWER").objective
    assert not make(rng, k, "accept").objective


def test_objective_reasons_match_light_verifier() -> None:
    light = pytest.importorskip("pogo_jax.roles.light")
    assert OBJECTIVE_REASONS == light.OBJECTIVE


def test_reader_rejects_malformed(rng) -> None:
    key = generate_key()
    good = sign_attestation(make(rng, public_bytes(key)), key).to_obj()
    cases = [
        ("unsupported version", "version", 2),
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
        o["attestation"][key_name] = value
        with pytest.raises(MalformedInput, match=message):
            SignedAttestation.from_obj(o)
    o = copy.deepcopy(good)
    del o["attestation"]["evidence"]
    with pytest.raises(MalformedInput, match="missing field 'evidence'"):
        SignedAttestation.from_obj(o)
    with pytest.raises(MalformedInput, match="OK"):
        make(rng, public_bytes(key), "reject", reason="OK")
    with pytest.raises(MalformedInput, match="overflows float32"):
        make(rng, public_bytes(key), loss_prev=1e39)
    with pytest.raises(MalformedInput, match="finite"):
        make(rng, public_bytes(key), loss_prev=float("nan"))
    with pytest.raises(MalformedInput, match="exceeds the limit"):
        SignedAttestation.from_bytes(b" " * 5000)
