"""Block header: canonical bytes, hash, signature, and a strict reader."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random

import pytest

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import Header, read_signed_header, sign_header
from pogo_jax.spec.keys import generate_key, key_from_seed, public_bytes, verify_raw

HASHES = ("parent_hash", "miner_key", "layout_hash", "data_root", "root_prev", "root_next", "root_q")


def random_header(rng: random.Random, miner_key: bytes) -> Header:
    b = lambda: rng.randbytes(32)
    return Header(
        version=3,
        chain_id=rng.randbytes(32).hex(),
        height=rng.randrange(1, 2**40),
        round=rng.randrange(1, 1000),
        parent_hash=b(),
        miner_key=miner_key,
        layout_hash=b(),
        data_root=b(),
        root_prev=b(),
        root_next=b(),
        root_q=b(),
        leaf_size=1024,
        group_size=64,
        n_leaves=rng.randrange(1, 10**6),
        train={
            "steps": rng.randrange(10**6),
            "tokens": rng.randrange(10**9),
            "optimizer": "adamw",
            "config_hash": b().hex(),
            "epoch": 0,
            "seed": rng.randrange(2**32),
            "lr": "3a83126f",
            "bf16": True,
        },
    )


def independent_encoding(h: Header) -> bytes:
    """The canonical JSON written out by hand: sorted keys, no spaces, lowercase hex."""
    obj = {
        "version": h.version,
        "chain_id": h.chain_id,
        "height": h.height,
        "round": h.round,
        "leaf_size": h.leaf_size,
        "group_size": h.group_size,
        "n_leaves": h.n_leaves,
        "train": h.train,
    }
    obj.update({k: getattr(h, k).hex() for k in HASHES})
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed={seed}")
    return random.Random(seed)


def test_roundtrip_and_hash(rng) -> None:
    key = generate_key()
    for _ in range(20):
        h = random_header(rng, public_bytes(key))
        assert h.encode() == independent_encoding(h)
        assert h.hash() == hashlib.sha256(independent_encoding(h)).digest()
        assert Header.from_obj(json.loads(h.encode())) == h
        s = sign_header(h, key)
        assert s.verify()
        # the signature is Ed25519 over b"pogo/header/v1" || 0x00 || header hash
        assert verify_raw(h.miner_key, b"pogo/header/v1\x00" + bytes.fromhex(h.chain_id) + h.hash(), s.signature)
        again = read_signed_header(s.to_bytes())
        assert again == s and again.verify() and again.hash == h.hash()
        assert Signed.from_obj(s.to_obj(), Header) == s
        assert s.to_obj()["kind"] == "header"


def test_golden_vector() -> None:
    key = key_from_seed(hashlib.sha256(b"pogo golden miner").digest())
    h = Header(
        version=3,
        chain_id=hashlib.sha256(b"pogo golden genesis").hexdigest(),
        height=1,
        round=1,
        parent_hash=bytes(32),
        miner_key=public_bytes(key),
        layout_hash=hashlib.sha256(b"layout").digest(),
        data_root=hashlib.sha256(b"data").digest(),
        root_prev=hashlib.sha256(b"prev").digest(),
        root_next=hashlib.sha256(b"next").digest(),
        root_q=hashlib.sha256(b"q").digest(),
        leaf_size=1024,
        group_size=64,
        n_leaves=1000,
        train={"steps": 100, "tokens": 51200, "optimizer": "adamw", "lr": "3a83126f"},
    )
    assert h.encode() == independent_encoding(h)
    assert h.hash().hex() == "3667073e8b310ee8181389bec18b6eb8d18f43bbef64f189a7a6afa43111b74c"
    # Ed25519 is deterministic, so the signature is a golden value too.
    sig = sign_header(h, key).signature
    assert sig.hex() == (
        "a303efb01b5d5e2f429ff99c40c7c70d57a240a7150876ffc3fbb439bfe45e64"
        "e4f8825cd0d7ecbfbf4e4997f658b1780b85271de4f61ed8b35b8bdf731b1a0b"
    )
    # signed for one chain: domain, 0x00, the chain id's 32 bytes, the header hash
    assert verify_raw(public_bytes(key), b"pogo/header/v1\x00" + bytes.fromhex(h.chain_id) + h.hash(), sig)


def test_tampering_breaks_signature(rng) -> None:
    key = generate_key()
    h = random_header(rng, public_bytes(key))
    s = sign_header(h, key)
    obj = s.to_obj()
    for field in ("height", "root_next", "n_leaves", "train"):
        o = copy.deepcopy(obj)
        if field == "train":
            o["body"]["train"]["steps"] += 1
        elif field in HASHES:
            o["body"][field] = rng.randbytes(32).hex()
        else:
            o["body"][field] += 1
        assert not Signed.from_obj(o, Header).verify(), field
    other = generate_key()
    forged = Signed(h, sign_header(random_header(rng, public_bytes(other)), other).signature)
    assert not forged.verify()
    with pytest.raises(ValueError, match="signer"):
        sign_header(h, other)


def _mutations(rng: random.Random):
    def setf(k, v):
        def f(o):
            o[k] = v

        return f

    def delf(k):
        def f(o):
            del o[k]

        return f

    return [
        ("unsupported version", setf("version", 1)),
        ("outside", setf("round", 0)),
        ("missing field", delf("root_q")),
        ("unknown field", setf("extra", 1)),
        ("wrong type", setf("height", "5")),
        ("wrong type bool", setf("n_leaves", True)),
        ("expected 32 bytes", setf("root_prev", "ab" * 31)),
        ("not hex", setf("data_root", "zz" * 32)),
        ("lowercase", setf("root_next", "AB" * 32)),
        ("outside", setf("height", 0)),
        ("outside", setf("n_leaves", 0)),
        ("outside", setf("leaf_size", 2**25)),
        ("outside", setf("height", 2**63)),
        ("multiple of an even group_size", setf("group_size", 48)),
        ("multiple of an even group_size", setf("group_size", 3)),
        ("chain_id", setf("chain_id", "has space")),
        ("chain_id", setf("chain_id", "")),
        ("chain_id", setf("chain_id", "pogo-local")),  # a name is not a chain id (PROTOCOL 13)
        ("chain_id", setf("chain_id", "AB" * 32)),  # upper case is not canonical
        ("train", setf("train", [])),
        ("train.nested", setf("train", {"nested": {"a": 1}})),
        ("lower_snake_case", setf("train", {"BadKey": 1})),
        ("train.note", setf("train", {"note": "\u00e9"})),
        ("train.big", setf("train", {"big": 2**63})),
        ("more than 64", setf("train", {f"k{i}": i for i in range(65)})),
    ]


def test_reader_rejects_malformed(rng) -> None:
    key = generate_key()
    good = sign_header(random_header(rng, public_bytes(key)), key).to_obj()
    for message, mutate in _mutations(rng):
        o = copy.deepcopy(good)
        mutate(o["body"])
        with pytest.raises(MalformedInput, match=message):
            Signed.from_obj(o, Header)
        with pytest.raises(MalformedInput):
            read_signed_header(json.dumps(o).encode())
    for data, message in [
        (b"\xff\xfe", "not ASCII"),
        (b"{", "not valid JSON"),
        (b'{"body":{},"kind":"header"}', "missing field"),
        (b'{"body":{},"kind":"attestation","signature":"00"}', "expected 'header'"),
        (b"[]", "expected an object"),
        (canonical({**good, "signature": "00" * 63}), "64 bytes"),
        (canonical({**good, "x": 1}), "unknown field"),
        (b'{"body":1.5}', "raw float"),
        (json.dumps(good, sort_keys=True).encode(), "not canonical"),
        (b" " * (1 << 17), "exceeds the limit"),
    ]:
        with pytest.raises(MalformedInput, match=message):
            read_signed_header(data)


def test_constructor_validates(rng) -> None:
    h = random_header(rng, rng.randbytes(32))
    import dataclasses

    fields = {f.name: getattr(h, f.name) for f in dataclasses.fields(h)}
    with pytest.raises(MalformedInput, match="root_q"):
        Header(**{**fields, "root_q": b"short"})
    with pytest.raises(MalformedInput, match="version"):
        Header(**{**fields, "version": True})
    with pytest.raises(MalformedInput, match="train.loss"):
        Header(**{**fields, "train": {"loss": 0.5}})  # floats travel as f32hex strings
