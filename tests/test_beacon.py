"""Beacons: the local hash chain (commit then reveal) and the block-hash beacon."""

from __future__ import annotations

import hashlib
import os
import stat
import struct

import pytest

from pogo_jax.beacon import BlockHashBeacon, LocalHashChainBeacon
from pogo_jax.errors import UserError


def H(x: bytes) -> bytes:
    return hashlib.sha256(b"pogo/beacon/v1" + x).digest()


def test_hash_chain_values(tmp_path) -> None:
    secret = os.urandom(32)
    length = 40
    b = LocalHashChainBeacon.create(tmp_path / "beacon", length=length, secret=secret)
    # independent: the chain written forward from the secret, anchor = H^L(s), value(i) = H^(L-i)(s)
    chain = [secret]
    for _ in range(length):
        chain.append(H(chain[-1]))
    assert b.anchor() == chain[length]
    prev = b.anchor()
    for i in range(1, length + 1):
        v = b.reveal(i)
        assert v == chain[length - i]
        assert LocalHashChainBeacon.verify(b.anchor(), i, v)
        assert LocalHashChainBeacon.verify_next(prev, v)
        assert not LocalHashChainBeacon.verify(b.anchor(), i + 1, v)
        assert not LocalHashChainBeacon.verify(b.anchor(), i - 1, v)
        prev = v
    with pytest.raises(UserError, match="exhausted"):
        b.reveal(length + 1)
    with pytest.raises(ValueError):
        b.reveal(0)
    # a later value cannot be guessed from earlier ones: anything else fails verification
    assert not LocalHashChainBeacon.verify(b.anchor(), 3, os.urandom(32))
    assert not LocalHashChainBeacon.verify(b.anchor(), 3, b.reveal(3)[:31])
    assert not LocalHashChainBeacon.verify(b.anchor(), True, b.reveal(1))
    assert not LocalHashChainBeacon.verify_next(b.reveal(1), b.reveal(3))


def test_state_on_disk(tmp_path) -> None:
    d = tmp_path / "beacon"
    b = LocalHashChainBeacon.create(d, length=16)
    assert stat.S_IMODE((d / "secret.key").stat().st_mode) == 0o600
    again = LocalHashChainBeacon(d)
    assert again.anchor() == b.anchor() and again.reveal(5) == b.reveal(5)
    with pytest.raises(UserError, match="already exists"):
        LocalHashChainBeacon.create(d, length=16)
    assert LocalHashChainBeacon(d).anchor() == b.anchor()  # refused create changed nothing
    with pytest.raises(UserError, match="no beacon"):
        LocalHashChainBeacon(tmp_path / "missing")
    (d / "secret.key").write_text(os.urandom(32).hex())
    with pytest.raises(UserError, match="does not hash to its anchor"):
        LocalHashChainBeacon(d)
    (d / "secret.key").write_text("not hex")
    with pytest.raises(UserError, match="unreadable"):
        LocalHashChainBeacon(d)
    with pytest.raises(UserError, match="length"):
        LocalHashChainBeacon.create(tmp_path / "b2", length=0)


def test_block_hash_beacon() -> None:
    blocks = {i: hashlib.sha256(str(i).encode()).digest() for i in range(1, 6)}
    b = BlockHashBeacon(blocks.get, delay=2)
    v = b.reveal(3)
    assert v == hashlib.sha256(b"pogo/beacon/block/v1" + struct.pack("<Q", 3) + blocks[5]).digest()
    assert BlockHashBeacon.verify(blocks[5], 3, v)
    assert not BlockHashBeacon.verify(blocks[4], 3, v)
    assert not BlockHashBeacon.verify(blocks[5], 2, v)
    with pytest.raises(UserError, match="does not exist yet"):
        b.reveal(4)
    with pytest.raises(ValueError):
        BlockHashBeacon(blocks.get, delay=0)


def test_golden_chain_and_challenge(tmp_path) -> None:
    """The worked example of docs/protocol.md: beacon value 1 of a length-8 chain, and the challenge it
    gives for the golden header of tests/test_header.py."""
    from pogo_jax.spec.challenge import make_challenge

    b = LocalHashChainBeacon.create(
        tmp_path / "b", length=8, secret=hashlib.sha256(b"pogo golden beacon secret").digest()
    )
    assert b.anchor().hex() == "d60049ea785258d6789d4aad7e5213f0c39034d227ce2aa6a49381b8e37aa559"
    assert b.reveal(1).hex() == "d4368c055ad62cccb5b8fea384d3e51437319f77abfdb0bf4cc04048edbd2d38"
    header_hash = bytes.fromhex("cf9bb19d3e035fe88bcacbae5131da8d0dd75eed69f1d4019a4f98406d55b13f")
    ch = make_challenge(header_hash, b.reveal(1), 1000, 8, 50, 4)
    assert ch.seed.hex() == "e528e7162ef6e1bd302cad417c905e4de987273d96ba040ec6ec7da1c2a3d97c"
    assert ch.leaf_indices == (303, 466, 90, 13, 799, 124, 375, 362)
    assert ch.window_indices == (32, 27, 38, 26)
