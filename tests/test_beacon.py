"""The beacon service: its hash chain, and the rules that let no other role learn a value early or choose one."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from chainkit import FakeClock, key

from pogo_jax.chain.beacon import BeaconService, verify_index, verify_next
from pogo_jax.chain.log import GENESIS_PREV, Entry
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Close


def H(x: bytes) -> bytes:
    return hashlib.sha256(b"pogo/beacon/v1" + x).digest()


GENESIS = {"body": {"name": "beacon test genesis"}, "kind": "genesis", "signature": "00" * 64}
CHAIN = hashlib.sha256(canonical(GENESIS["body"])).hexdigest()


class NodeLog:
    """A node's hash-linked log, as much of it as the beacon sees: a genesis entry, then closes."""

    def __init__(self) -> None:
        self.entries = [Entry.make(0, 0, "genesis", canonical(GENESIS), {}, GENESIS_PREV)]

    def append(self, kind: str, record: bytes) -> Entry:
        last = self.entries[-1]
        e = Entry.make(last.seq + 1, last.at, kind, record, {}, last.hash)
        self.entries.append(e)
        return e


LOG = NodeLog()


@pytest.fixture(autouse=True)
def fresh_log() -> None:
    global LOG
    LOG = NodeLog()


def close(node, h: int = 1, a: int = 1, at: int = 1_000, window: str = "submit", chain_id: str = CHAIN,
          data: bytes | None = None, shard: int = 0, log: NodeLog | None = None) -> tuple[bytes, list[Entry]]:
    """A signed close appended to the node's log (by default for a dataset of its own, so its shard 0 is the
    next one to release), and the log through it: what a node sends the beacon."""
    log = log or LOG
    body = Close(chain_id, public_bytes(node), h, a, window, at, log.entries[-1].hash, (os.urandom(32),),
                 os.urandom(32) if data is None else data, shard)
    rec = seal(body, node).to_bytes()
    log.append("close", rec)
    return rec, list(log.entries)


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
        v = read_record(b.reveal(*close(node, h=i, at=5_000)), "reveal").body
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
        b.reveal(*close(node))
    b.bind(CHAIN, public_bytes(node))
    with pytest.raises(Rejected, match="WRONG_NODE"):
        b.bind(CHAIN, public_bytes(miner))  # the first binding sticks
    with pytest.raises(Rejected, match="WRONG_NODE"):
        b.reveal(*close(miner))  # a miner signing its own "close" record
    forged, log = close(node)
    with pytest.raises((Rejected, MalformedInput)):
        b.reveal(forged.replace(b'"window":"submit"', b'"window":"proof"'), log)  # signature breaks
    with pytest.raises(MalformedInput, match="submit close"):
        b.reveal(*close(node, window="proof"))
    with pytest.raises(Rejected, match="TOO_EARLY"):
        b.reveal(*close(node, at=clock() + 60_000))  # the node dating its close in the future
    first = b.reveal(*close(node, h=1, at=clock()))
    c2 = close(node, h=1, at=clock())  # another close record for the same round
    with pytest.raises(Rejected, match="ALREADY_REVEALED"):
        b.reveal(*c2)
    b.reveal(*close(node, h=3, at=clock()))
    with pytest.raises(Rejected, match="STALE_ROUND"):
        b.reveal(*close(node, h=2, at=clock()))
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
    r1 = b.reveal(*c)
    again = BeaconService(d, clock)
    assert again.anchor == b.anchor and again.binding == b.binding
    assert again.reveal(*c) == r1  # asked again after a restart: the same signed reveal, never a new value
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
        b.reveal(*close(node, h=1, at=clock(), data=data, shard=1))  # the next round's shard, asked early
    got = []
    for h in (1, 2, 3):
        v = read_record(b.reveal(*close(node, h=h, at=clock(), data=data, shard=h - 1)), "reveal").body
        got.append(v.shard_key)
        assert (v.data, v.shard) == (data, h - 1)
    assert got[:2] == keys and got[2] is None  # the third shard has no key here: released as null
    assert key_hash(got[0]) == key_hash(keys[0])
    with pytest.raises(Rejected, match="WRONG_SHARD"):
        b.reveal(*close(node, h=4, at=clock(), data=data, shard=1))  # a shard already released: never again
    other = os.urandom(32)
    write_keys(tmp_path / "other.json", data, [os.urandom(32)])
    with pytest.raises(UserError, match="other keys"):
        b.add_keys(tmp_path / "other.json")
    again = BeaconService(tmp_path / "b", clock)  # a restart keeps the keys and the count
    assert again.eval_keys[data] == tuple(keys) and other not in again.eval_keys
    with pytest.raises(Rejected, match="WRONG_SHARD"):
        again.reveal(*close(node, h=5, at=clock(), data=data, shard=0))


def test_a_node_that_rewrites_countersigned_history_gets_no_value(tmp_path) -> None:
    """docs/protocol.md section 22: each reveal request carries the node's log from the last close the beacon countersigned.
    A node that forks off that history (rewrites a finished round, then asks for the next value) is refused,
    so a rewrite of anything before the last reveal also needs the beacon's key. Without the check the beacon
    signs a value for the forked log."""
    from pogo_jax.spec.records import read_record

    clock = FakeClock(10_000)
    b = BeaconService.create(tmp_path / "b", length=16, clock=clock)
    node = key("node")
    b.bind(CHAIN, public_bytes(node))
    rec, log = close(node, h=1, at=clock())
    with pytest.raises(Rejected, match="NOT_FROM_GENESIS"):
        b.reveal(rec, log[1:])  # the first reveal must see the log from genesis
    with pytest.raises(MalformedInput, match="end with the close"):
        b.reveal(rec, log[:1])
    b.reveal(rec, log)
    assert b.head == (log[-1].seq, log[-1].hash)
    LOG.append("bundle", canonical({"note": os.urandom(8).hex()}))
    forked = NodeLog()  # the operator rebuilds the log from before the close the beacon countersigned
    forked.entries = list(log[:-1])
    forked.append("close", seal(Close(CHAIN, public_bytes(node), 1, 1, "submit", clock(), forked.entries[-1].hash,
                                      (os.urandom(32),), os.urandom(32), 0), node).to_bytes())
    with pytest.raises(Rejected, match="FORK"):
        b.reveal(*close(node, h=2, at=clock(), log=forked))
    ok = read_record(b.reveal(*close(node, h=2, at=clock())), "reveal").body  # the honest log goes on
    assert ok.round == 1 and ok.height == 2
    again = BeaconService(tmp_path / "b", clock)  # the head survives a restart
    assert again.head == b.head
