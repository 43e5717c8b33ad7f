"""The SQLite ledger: honest flow, every rejection leaves the file unchanged, slashing, crashes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

from pogo_jax.beacon import LocalHashChainBeacon
from pogo_jax.errors import Rejected, UserError
from pogo_jax.ledger import Ledger
from pogo_jax.protocol.finalize import Rules
from pogo_jax.spec.attestation import Attestation, SignedAttestation, sign_attestation
from pogo_jax.spec.header import Header, SignedHeader, sign_header
from pogo_jax.spec.keys import generate_key, public_bytes

RULES = Rules(block_reward=10)


def dump(path) -> str:
    c = sqlite3.connect(path)
    try:
        return "\n".join(c.iterdump())
    finally:
        c.close()


@dataclass
class World:
    path: object
    ledger: Ledger
    beacon: LocalHashChainBeacon
    meta: dict
    miners: list = field(default_factory=list)
    verifiers: list = field(default_factory=list)

    def header(self, miner=None, height=None, parent=None, root_prev=None, **kw) -> SignedHeader:
        miner = miner or self.miners[0]
        tip = self.ledger.tip()
        h = Header(
            version=1,
            chain_id=self.meta["chain_id"],
            height=height or tip["height"] + 1,
            parent_hash=parent or bytes.fromhex(tip["header_hash"]),
            miner_key=public_bytes(miner),
            layout_hash=bytes.fromhex(self.meta["layout_hash"]),
            data_root=bytes.fromhex(self.meta["data_root"]),
            root_prev=root_prev or bytes.fromhex(tip["root"]),
            root_next=os.urandom(32),
            root_q=os.urandom(32),
            leaf_size=1024,
            group_size=64,
            n_leaves=self.meta["n_leaves"],
            train={"steps": 10, "nonce": os.urandom(8).hex()},
        )
        for k, v in kw.items():
            h = Header(**{**{f: getattr(h, f) for f in h.__dataclass_fields__}, k: v})
        return sign_header(h, miner)

    def record(self, signed: SignedHeader) -> bytes:
        return self.ledger.record_header(signed, os.urandom(32), f"blocks/{signed.header.height}/update.qupd")

    def reveal(self, hh: bytes) -> bytes:
        v = self.beacon.reveal(self.ledger.next_beacon_index())
        self.ledger.record_beacon(hh, v)
        return v

    def attestation(
        self, key, hh: bytes, verdict: str = "accept", height: int | None = None
    ) -> SignedAttestation:
        blk = self.ledger.block(header_hash=hh)
        a = Attestation(
            version=1,
            chain_id=self.meta["chain_id"],
            height=height or blk["height"],
            header_hash=hh,
            verifier_key=public_bytes(key),
            verdict=verdict,
            tier="full",
            reason="OK" if verdict == "accept" else "LOSS_NOT_LOWER",
            loss_prev=3.0,
            loss_next=2.5,
        )
        return sign_attestation(a, key)


@pytest.fixture
def world(tmp_path) -> World:
    beacon = LocalHashChainBeacon.create(tmp_path / "beacon", length=32)
    meta = {
        "chain_id": "test-chain",
        "genesis_root": os.urandom(32).hex(),
        "layout_hash": os.urandom(32).hex(),
        "data_root": os.urandom(32).hex(),
        "leaf_size": 1024,
        "group_size": 64,
        "n_leaves": 100,
        "beacon_anchor": beacon.anchor().hex(),
        "layout": {"tensors": []},
        "config": {"pogo": {"k_leaves": 4, "delta": 0.01}},
        "rules": {"quorum": 666667, "min_attestations": 2, "reject_share": 333333},
    }
    path = tmp_path / "ledger.sqlite"
    led = Ledger.create(path, meta)
    w = World(path, led, beacon, meta)
    for i in range(2):
        k = generate_key()
        led.add_participant(public_bytes(k), "miner", f"miner{i}", 100)
        w.miners.append(k)
    for i in range(4):
        k = generate_key()
        led.add_participant(public_bytes(k), "verifier", f"verifier{i}", 10)
        w.verifiers.append(k)
    yield w
    w.ledger.close()


def stake(w: World, key) -> tuple[int, bool]:
    p = w.ledger.participant(public_bytes(key))
    return p["stake"], p["slashed"]


def confirm_block(w: World, miner=None) -> bytes:
    hh = w.record(w.header(miner))
    w.reveal(hh)
    for v in w.verifiers[:3]:
        w.ledger.add_attestation(w.attestation(v, hh))
    assert w.ledger.finalize(hh, RULES).status == "confirmed"
    return hh


def test_honest_flow(world: World) -> None:
    w, led = world, world.ledger
    assert led.meta() == w.meta
    assert led.tip() == {
        "height": 0,
        "header_hash": "00" * 32,
        "root_next": w.meta["genesis_root"],
        "root": w.meta["genesis_root"],
    }
    signed = w.header()
    hh = w.record(signed)
    assert hh == signed.header.hash()
    blk = led.block(height=1)
    assert blk["status"] == "pending" and blk["header_hash"] == hh.hex() and led.pending() == blk
    assert SignedHeader.from_bytes(blk["header_bytes"]) == signed  # raw signed bytes are kept
    value = w.reveal(hh)
    assert led.beacon(hh) == value == led.beacon(hh.hex())
    assert LocalHashChainBeacon.verify(w.beacon.anchor(), 1, value)
    assert led.finalize(hh, RULES).status == "pending"  # no votes yet: nothing changes
    for v in w.verifiers[:3]:
        led.add_attestation(w.attestation(v, hh))
    led.add_attestation(w.attestation(w.verifiers[0], hh))  # re-sent identical bytes: a no-op...
    atts = led.attestations(hh)
    assert len(atts) == 3 and all(SignedAttestation.from_bytes(a["signed_bytes"]).verify() for a in atts)
    out = led.finalize(hh, RULES)
    assert (out.status, out.reason, out.accept_stake, out.reject_stake) == (
        "confirmed",
        "QUORUM_ACCEPT",
        30,
        0,
    )
    tip = led.tip()
    assert (tip["height"], tip["header_hash"], tip["root_next"]) == (
        1,
        hh.hex(),
        signed.header.root_next.hex(),
    )
    assert stake(w, w.miners[0]) == (110, False)
    kinds = [e["kind"] for e in led.events()]
    assert kinds[-3:] == ["attest", "confirmed", "reward"]
    assert led.block(height=1)["status"] == "confirmed" and led.pending() is None
    # the next block chains from block 1
    hh2 = confirm_block(w, w.miners[1])
    assert led.tip()["height"] == 2 and led.block(height=2)["parent_hash"] == hh.hex()
    assert [b["height"] for b in led.blocks()] == [1, 2]
    assert led.block(header_hash=hh2)["beacon_index"] == 2
    with pytest.raises(UserError, match="already finalized"):
        led.finalize(hh2, RULES)


def test_rejections_leave_database_unchanged(world: World) -> None:
    w, led = world, world.ledger
    stranger = generate_key()
    other_hdr = w.header()
    cases = [
        ("WRONG_PARENT", lambda: w.record(w.header(parent=os.urandom(32)))),
        ("WRONG_PARENT", lambda: w.record(w.header(root_prev=os.urandom(32)))),
        ("WRONG_HEIGHT", lambda: w.record(w.header(height=2))),
        ("UNREGISTERED_MINER", lambda: w.record(w.header(stranger))),
        ("UNREGISTERED_MINER", lambda: w.record(w.header(w.verifiers[0]))),  # a verifier is not a miner
        ("BAD_SIGNATURE", lambda: w.record(SignedHeader(w.header().header, other_hdr.signature))),
        ("WRONG_CHAIN", lambda: w.record(w.header(chain_id="other"))),
        ("LAYOUT_MISMATCH", lambda: w.record(w.header(layout_hash=os.urandom(32)))),
        ("LAYOUT_MISMATCH", lambda: w.record(w.header(n_leaves=101))),
        ("WRONG_DATA", lambda: w.record(w.header(data_root=os.urandom(32)))),
        ("unknown header", lambda: led.record_beacon(other_hdr.header.hash(), w.beacon.reveal(1))),
        ("unknown header", lambda: led.add_attestation(_att_unknown(w))),
        ("unknown header", lambda: led.finalize(os.urandom(32), RULES)),
        ("unknown header", lambda: led.set_fraud_confirmed(os.urandom(32), "x")),
        ("already registered", lambda: led.add_participant(public_bytes(w.miners[0]), "miner", "again", 1)),
        ("role", lambda: led.add_participant(public_bytes(stranger), "king", "x", 1)),
        ("stake", lambda: led.add_participant(public_bytes(stranger), "miner", "x", -1)),
    ]
    _expect_all_fail_unchanged(w, cases)

    hh = w.record(w.header())
    cases = [
        ("HEIGHT_PENDING", lambda: w.record(w.header(w.miners[1]))),
        ("already recorded", lambda: w.record(SignedHeader.from_bytes(led.block(height=1)["header_bytes"]))),
        ("no beacon revealed yet", lambda: led.add_attestation(w.attestation(w.verifiers[0], hh))),
        ("BAD_BEACON", lambda: led.record_beacon(hh, w.beacon.reveal(2))),
        ("BAD_BEACON", lambda: led.record_beacon(hh, os.urandom(32))),
    ]
    _expect_all_fail_unchanged(w, cases)

    w.reveal(hh)
    led.add_attestation(w.attestation(w.verifiers[0], hh))
    unregistered = w.attestation(w.verifiers[1], hh)
    forged = SignedAttestation(w.attestation(w.verifiers[1], hh).attestation, unregistered.signature[::-1])
    cases = [
        ("already recorded", lambda: led.record_beacon(hh, w.beacon.reveal(2))),
        ("UNREGISTERED_VERIFIER", lambda: led.add_attestation(w.attestation(stranger, hh))),
        ("UNREGISTERED_VERIFIER", lambda: led.add_attestation(w.attestation(w.miners[1], hh))),
        ("BAD_SIGNATURE", lambda: led.add_attestation(forged)),
        ("WRONG_HEIGHT", lambda: led.add_attestation(w.attestation(w.verifiers[1], hh, height=5))),
        (
            "already attested",
            lambda: led.add_attestation(
                sign_attestation(
                    Attestation(
                        **{**w.attestation(w.verifiers[0], hh).attestation.__dict__, "loss_next": 1.0}
                    ),
                    w.verifiers[0],
                )
            ),
        ),
    ]
    _expect_all_fail_unchanged(w, cases)

    for v in w.verifiers[1:3]:
        led.add_attestation(w.attestation(v, hh))
    assert led.finalize(hh, RULES).status == "confirmed"
    cases = [
        ("already finalized", lambda: led.add_attestation(w.attestation(w.verifiers[3], hh))),
        ("already finalized", lambda: led.set_fraud_confirmed(hh, "late")),
        ("already finalized", lambda: led.finalize(hh, RULES)),
        ("WRONG_HEIGHT", lambda: w.record(w.header(height=1))),
    ]
    _expect_all_fail_unchanged(w, cases)


def _att_unknown(w: World) -> SignedAttestation:
    key = w.verifiers[0]
    a = Attestation(
        version=1,
        chain_id="test-chain",
        height=1,
        header_hash=os.urandom(32),
        verifier_key=public_bytes(key),
        verdict="accept",
        tier="light",
        reason="OK",
    )
    return sign_attestation(a, key)


def _expect_all_fail_unchanged(w: World, cases) -> None:
    for expected, call in cases:
        before = dump(w.path)
        with pytest.raises((Rejected, UserError)) as ei:
            call()
        got = ei.value.code if isinstance(ei.value, Rejected) else str(ei.value)
        assert expected in got, (expected, got)
        assert dump(w.path) == before, expected


def test_equivocation_slashes_verifier(world: World) -> None:
    w, led = world, world.ledger
    hh = w.record(w.header())
    w.reveal(hh)
    cheat = w.verifiers[3]
    led.add_attestation(w.attestation(cheat, hh, "accept"))
    led.add_attestation(w.attestation(cheat, hh, "reject"))  # kept as evidence
    assert {a["verdict"] for a in led.attestations(hh)} == {"accept", "reject"}
    assert any(e["kind"] == "equivocation" for e in led.events())
    for v in w.verifiers[:2]:
        led.add_attestation(w.attestation(v, hh))
    out = led.finalize(hh, RULES)
    assert (out.status, out.accept_stake, out.slashed_keys) == ("confirmed", 20, (public_bytes(cheat),))
    assert stake(w, cheat) == (0, True)
    assert stake(w, w.verifiers[0]) == (10, False)
    hh2 = w.record(w.header())
    w.reveal(hh2)
    with pytest.raises(Rejected, match="SLASHED_VERIFIER"):
        led.add_attestation(w.attestation(cheat, hh2))


def test_fraud_confirmed_slashes_miner(world: World) -> None:
    w, led = world, world.ledger
    hh = w.record(w.header())
    w.reveal(hh)
    for v in w.verifiers[:3]:  # everyone accepts, yet a re-checked fraud proof wins
        led.add_attestation(w.attestation(v, hh))
    led.set_fraud_confirmed(hh, "APPLY_MISMATCH: leaf 17")
    out = led.finalize(hh, RULES)
    assert (out.status, out.reason) == ("slashed", "FRAUD_CONFIRMED")
    assert stake(w, w.miners[0]) == (0, True)
    blk = led.block(header_hash=hh)
    assert blk["status"] == "slashed" and blk["fraud_confirmed"] and "leaf 17" in blk["fraud_evidence"]
    assert led.tip()["height"] == 0
    with pytest.raises(Rejected, match="SLASHED_MINER"):
        w.record(w.header(w.miners[0]))
    # another miner may now fill height 1, with a fresh beacon index (the old value is public)
    hh2 = w.record(w.header(w.miners[1]))
    assert led.next_beacon_index() == 2
    w.reveal(hh2)
    assert led.block(height=1)["header_hash"] == hh2.hex()  # the pending one, not the slashed one
    assert led.block(height=1, status="slashed")["header_hash"] == hh.hex()


def test_reject_quorum_slashes_miner(world: World) -> None:
    w, led = world, world.ledger
    hh = w.record(w.header())
    w.reveal(hh)
    for v, verdict in zip(w.verifiers[:3], ["reject", "reject", "accept"], strict=True):
        led.add_attestation(w.attestation(v, hh, verdict))
    out = led.finalize(hh, Rules(slash_fraction=0.5))
    assert (out.status, out.reason) == ("slashed", "QUORUM_REJECT")
    assert stake(w, w.miners[0]) == (50, True)


def test_one_confirmed_block_per_height(world: World) -> None:
    w = world
    confirm_block(w)
    c = sqlite3.connect(w.path)
    with pytest.raises(sqlite3.IntegrityError):
        c.execute(
            "INSERT INTO blocks (header_hash, height, parent_hash, miner_key, root_prev, root_next, root_q,"
            " data_root, layout_hash, header_bytes, update_sha256, update_path, status)"
            " SELECT ?, height, parent_hash, miner_key, root_prev, root_next, root_q, data_root, layout_hash,"
            " header_bytes, update_sha256, update_path, 'confirmed' FROM blocks WHERE height = 1",
            (os.urandom(32),),
        )
    c.close()


def test_create_and_open_errors(world: World, tmp_path) -> None:
    with pytest.raises(UserError, match="already exists"):
        Ledger.create(world.path, world.meta)
    with pytest.raises(UserError, match="no ledger at"):
        Ledger.open(tmp_path / "nope.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="not a pogo ledger"):
        Ledger.open(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(UserError, match="not a pogo ledger"):
        Ledger.open(other)
    with pytest.raises(UserError, match="lacks 'data_root'"):
        Ledger.create(tmp_path / "x.sqlite", {k: v for k, v in world.meta.items() if k != "data_root"})
    with pytest.raises(UserError, match="beacon_anchor"):
        Ledger.create(tmp_path / "x.sqlite", {k: v for k, v in world.meta.items() if k != "beacon_anchor"})
    assert not (tmp_path / "x.sqlite").exists()
    c = sqlite3.connect(world.path)
    c.execute("PRAGMA user_version = 99")
    c.close()
    with pytest.raises(UserError, match="schema version 99"):
        Ledger.open(world.path)


def test_exception_inside_transaction_rolls_back(world: World, monkeypatch) -> None:
    w, led = world, world.ledger

    def boom(*a, **k):
        raise RuntimeError("simulated crash after the block row was written")

    before = dump(w.path)
    monkeypatch.setattr(Ledger, "_event", boom)
    with pytest.raises(RuntimeError):
        w.record(w.header())
    monkeypatch.undo()
    assert dump(w.path) == before and led.block(height=1) is None
    hh = w.record(w.header())  # the ledger still works
    assert led.block(height=1)["header_hash"] == hh.hex()


CRASH_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pogo_jax.ledger import Ledger
    from pogo_jax.protocol.finalize import Rules
    calls = []
    def die(self, c, kind, *a, **k):
        calls.append(kind)
        if kind == "reward":  # block status and miner stake already updated inside the transaction
            os.kill(os.getpid(), signal.SIGKILL)
    Ledger._event = die
    led = Ledger.open(sys.argv[1])
    led.finalize(bytes.fromhex(sys.argv[2]), Rules(block_reward=10))
    print("survived")
""")


def test_killed_process_leaves_no_half_written_block(world: World) -> None:
    w, led = world, world.ledger
    hh = w.record(w.header())
    w.reveal(hh)
    for v in w.verifiers[:3]:
        led.add_attestation(w.attestation(v, hh))
    before = dump(w.path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(w.path), hh.hex()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == -9, r.stderr
    assert "survived" not in r.stdout
    assert dump(w.path) == before
    led.close()
    again = Ledger.open(w.path)
    assert again._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert again.block(header_hash=hh)["status"] == "pending"
    assert again.participant(public_bytes(w.miners[0]))["stake"] == 100
    assert again.finalize(hh, RULES).status == "confirmed"
    w.ledger = again


def test_protocol_modules_never_import_jax() -> None:
    mods = [
        "pogo_jax.ledger",
        "pogo_jax.beacon",
        "pogo_jax.spec.keys",
        "pogo_jax.spec.header",
        "pogo_jax.spec.challenge",
        "pogo_jax.spec.attestation",
        "pogo_jax.protocol.finalize",
        "pogo_jax.cmd.keygen",
    ]
    code = f"import sys\nfor m in {mods!r}: __import__(m)\nprint('jax' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
