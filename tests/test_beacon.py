"""The beacon service: its hash chain, and the rules that let no other role learn a value early or choose one."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from chainkit import FakeClock, key

from pogo_jax.chain.beacon import BeaconService, verify_index, verify_next
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Close


def H(x: bytes) -> bytes:
    return hashlib.sha256(b"pogo/beacon/v1" + x).digest()


CHAIN = hashlib.sha256(b"beacon test genesis").hexdigest()


def close(node, h: int = 1, a: int = 1, at: int = 1_000, window: str = "submit", chain_id: str = CHAIN,
          data: bytes | None = None, shard: int = 0) -> bytes:
    """A signed close; by default for a dataset of its own (so its shard 0 is the next one to release)."""
    body = Close(chain_id, public_bytes(node), h, a, window, at, os.urandom(32), (os.urandom(32),),
                 os.urandom(32) if data is None else data, shard)
    return seal(body, node).to_bytes()


def test_hash_chain_values(tmp_path) -> None:
    secret = os.urandom(32)
    b = BeaconService.create(tmp_path / "b", length=40, secret=secret, clock=FakeClock(10_000))
    chain = [secret]
    for _ in range(40):
        chain.append(H(chain[-1]))
    assert b.anchor == chain[40]  # independent: H^L(s), value(i) = H^(L-i)(s)
    node = key("node")
    b.bind(CHAIN, public_bytes(node))
    prev = b.anchor
    from pogo_jax.spec.records import read_record

    for i in range(1, 6):
        v = read_record(b.reveal(close(node, h=i, at=5_000)), "reveal").body
        assert v.index == i and v.value == chain[40 - i]
        assert verify_next(prev, v.value) and verify_index(b.anchor, i, v.value)
        assert not verify_index(b.anchor, i + 1, v.value)
        prev = v.value
    assert not verify_next(prev, os.urandom(32))


def test_only_the_nodes_signed_close_after_its_time_releases_a_value(tmp_path) -> None:
    """A miner that asks the beacon directly, or a node that asks early or twice, learns nothing new."""
    clock = FakeClock(10_000)
    b = BeaconService.create(tmp_path / "b", length=16, clock=clock)
    node, miner = key("node"), key("miner")
    with pytest.raises(Rejected, match="NOT_BOUND|bound"):
        b.reveal(close(node))
    b.bind(CHAIN, public_bytes(node))
    with pytest.raises(Rejected, match="WRONG_NODE"):
        b.bind(CHAIN, public_bytes(miner))  # the first binding sticks
    with pytest.raises(Rejected, match="WRONG_NODE"):
        b.reveal(close(miner))  # a miner signing its own "close" record
    forged = bytearray(close(node))
    with pytest.raises((Rejected, MalformedInput)):
        b.reveal(bytes(forged).replace(b'"window":"submit"', b'"window":"proof"'))  # signature breaks
    with pytest.raises(MalformedInput, match="submit close"):
        b.reveal(close(node, window="proof"))
    with pytest.raises(Rejected, match="TOO_EARLY"):
        b.reveal(close(node, at=clock() + 60_000))  # the node dating its close in the future
    first = b.reveal(close(node, h=1, at=clock()))
    c2 = close(node, h=1, at=clock())  # another close record for the same round
    with pytest.raises(Rejected, match="ALREADY_REVEALED"):
        b.reveal(c2)
    b.reveal(close(node, h=3, at=clock()))
    with pytest.raises(Rejected, match="STALE_ROUND"):
        b.reveal(close(node, h=2, at=clock()))
    assert len(b.reveals) == 2 and first.startswith(b"{")


def test_state_on_disk(tmp_path) -> None:
    d = tmp_path / "b"
    clock = FakeClock(10_000)
    b = BeaconService.create(d, length=16, clock=clock)
    assert stat.S_IMODE((d / "secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    node = key("node")
    b.bind(CHAIN, public_bytes(node))
    c = close(node, at=clock())
    r1 = b.reveal(c)
    again = BeaconService(d, clock)
    assert again.anchor == b.anchor and again.binding == b.binding
    assert again.reveal(c) == r1  # asked again after a restart: the same signed reveal, never a new value
    with pytest.raises(UserError, match="already exists"):
        BeaconService.create(d)
    (d / "secret.key").write_text(os.urandom(32).hex())
    with pytest.raises(UserError, match="anchor"):
        BeaconService(d)


def test_shard_keys_are_released_in_order_once_each_with_their_round(tmp_path) -> None:
    """The beacon releases a dataset's sealed shard keys one per round, in order, each with its round's value:
    a node that names a later shard (to learn its contents early and pass them to a miner) is refused, and a
    shard it holds no key for is released as null (the round closes empty)."""
    from pogo_jax.spec.records import read_record
    from pogo_jax.spec.sealed import key_hash, write_keys

    clock = FakeClock(10_000)
    b = BeaconService.create(tmp_path / "b", length=16, clock=clock)
    node = key("node")
    b.bind(CHAIN, public_bytes(node))
    data, keys = os.urandom(32), [os.urandom(32) for _ in range(2)]
    write_keys(tmp_path / "k.json", data, keys)
    assert b.add_keys(tmp_path / "k.json") == data
    assert stat.S_IMODE((tmp_path / "b" / "keys" / f"{data.hex()}.json").stat().st_mode) == 0o600
    with pytest.raises(Rejected, match="WRONG_SHARD"):
        b.reveal(close(node, h=1, at=clock(), data=data, shard=1))  # the next round's shard, asked early
    got = []
    for h in (1, 2, 3):
        v = read_record(b.reveal(close(node, h=h, at=clock(), data=data, shard=h - 1)), "reveal").body
        got.append(v.shard_key)
        assert (v.data, v.shard) == (data, h - 1)
    assert got[:2] == keys and got[2] is None  # the third shard has no key here: released as null
    assert key_hash(got[0]) == key_hash(keys[0])
    with pytest.raises(Rejected, match="WRONG_SHARD"):
        b.reveal(close(node, h=4, at=clock(), data=data, shard=1))  # a shard already released: never again
    other = os.urandom(32)
    write_keys(tmp_path / "other.json", data, [os.urandom(32)])
    with pytest.raises(UserError, match="other keys"):
        b.add_keys(tmp_path / "other.json")
    again = BeaconService(tmp_path / "b", clock)  # a restart keeps the keys and the count
    assert again.eval_keys[data] == tuple(keys) and other not in again.eval_keys
    with pytest.raises(Rejected, match="WRONG_SHARD"):
        again.reveal(close(node, h=5, at=clock(), data=data, shard=0))
