"""docs/protocol.md section 22: receipts, heads and the beacon's countersignature against an operator that rewrites history.

The attack (issue 22, 1): after an honest round was confirmed, the operator rebuilds its log from the same
signed records up to the beacon reveal, then closes the proof window itself naming the candidate withheld
and finalizes, dropping the bundle note and the votes. Every rule of the chain holds on that log, so
``pogo audit`` alone finds nothing and the miner loses stake; what catches it is what the participants
kept: the receipts the node signed, the head a role saw, and the beacon's refusal to sign a fork.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chainkit import Kit

from pogo_jax.chain.audit import audit
from pogo_jax.chain.chain import Chain
from pogo_jax.chain.client import LocalClient
from pogo_jax.chain.equivocation import check_receipts, receipt_files
from pogo_jax.chain.log import Entry
from pogo_jax.chain.view import ChainView
from pogo_jax.chain.witness import Witness
from pogo_jax.cli import main
from pogo_jax.errors import NodeFault, Rejected
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import generate_key
from pogo_jax.spec.receipt import Receipt, read_receipt
from pogo_jax.spec.records import Close, read_record


def _honest_round(k: Kit, tmp: Path):  # noqa: ANN202 - (miner's view, made)
    """Round (1, 1) confirmed, the miner writing through a witnessed client as ``pogo mine`` does."""
    view = ChainView(LocalClient(k.chain))
    view.attach(Witness(tmp / "miner" / "witness"))
    m = k.make(0)
    view.client.submit_candidate(m.header_bytes, m.update)
    k.close_submit()
    view.client.submit_bundle(k.bundle(m))
    k.chain.tick()
    k.vote_all(m)
    r = k.st.history[-1]
    assert r.winner == m.hash, r.candidates
    view.refresh()
    return view, m


def _rewrite(k: Kit, upto: int, where: Path, beacon=None) -> Chain:  # noqa: ANN001
    """The operator's other log: the honest entries ``[0, upto]`` re-appended, then the node's own ticks."""
    honest = k.chain.ledger.entries()
    g = k.chain.state.genesis
    fork = Chain.create(where, honest[0].record, [k.chain.blobs.get(g.state.blob), k.chain.blobs.get(g.data.blob)],
                        k.node_key, lambda: honest[0].at, beacon)
    fork.clock = k.clock
    for e in honest[1:upto + 1]:
        if "update_sha256" in e.extra:
            fork.blobs.put(k.chain.blobs.get(bytes.fromhex(e.extra["update_sha256"])))
        fork._append(e.kind, e.record, e.extra, at=e.at)
    assert [e.hash for e in fork.ledger.entries()] == [e.hash for e in honest[:upto + 1]]
    return fork


def _rewrite_round_1(k: Kit, where: Path) -> Chain:
    """The attack: round 1's log up to its beacon reveal, then the operator's own proof close (the bundle
    dropped: the candidate withheld), commit close and finalize, as its node ticks them."""
    fork = _rewrite(k, next(e.seq for e in k.chain.ledger.entries() if e.kind == "reveal"), where)
    k.clock.advance(k.rules.prove_window_ms + k.rules.attest_window_ms + k.rules.reveal_window_ms)
    for _ in range(4):
        fork.tick()
    return fork


def test_a_rewritten_round_is_node_equivocation_to_every_receipt_holder(tmp_path) -> None:
    k = Kit(tmp_path / "k")
    view, m = _honest_round(k, tmp_path)
    honest = k.chain.ledger.entries()
    fork = _rewrite_round_1(k, tmp_path / "fork")
    cand = fork.state.history[-1].candidates[m.hash]
    assert (cand.status, cand.reason) == ("withheld", "NO_BUNDLE")
    assert fork.state.stakes[m.signed.body.miner_key] < 1000  # the miner pays for the operator's lie
    rep = audit(fork.ledger.entries(), fork.ledger.tables(), fork.fetch)
    assert rep.clean, rep.differences  # without receipts the rewrite is invisible: every rule holds on it

    receipts = tmp_path / "miner" / "witness" / "receipts"
    rr = check_receipts(fork.ledger.entries(), receipt_files([receipts]))
    assert rr.checked == 2 and not rr.ignored
    assert any(d.startswith("NODE_EQUIVOCATION") and "commits to that log" in d for d in rr.differences), \
        rr.differences
    assert not check_receipts(honest, receipt_files([receipts])).differences  # the honest log satisfies them
    fork.close()
    assert main(["audit", str(tmp_path / "fork"), "--receipts", str(receipts)]) == 1
    assert main(["audit", str(tmp_path / "k" / "node"), "--receipts", str(receipts)]) == 0

    # the miner, restarted against the rewritten node, refuses it at once and names its proof
    with pytest.raises(NodeFault, match="does not extend the head"):
        ChainView(LocalClient(Chain(tmp_path / "fork", k.clock))).attach(Witness(tmp_path / "miner" / "witness"))


def test_a_node_that_drops_a_receipted_write_is_caught_on_the_next_refresh(tmp_path) -> None:
    """A receipt signed before a fetch began must be in the log that fetch returns: the node cannot
    acknowledge a vote and then serve a log without it (here: served from a chain that never got it)."""
    k = Kit(tmp_path / "k")
    m = k.make(0)
    k.submit(m)
    k.close_submit()
    k.chain.submit_bundle(k.bundle(m))
    k.chain.tick()
    before = _rewrite(k, k.chain.state.seq - 1, tmp_path / "before")  # the log as it was before the vote
    w = Witness(tmp_path / "v" / "witness")
    view = ChainView(LocalClient(before))
    view.attach(w)
    commit = k.commit(k.attest(0, m))
    w.take("commit", commit, k.chain.submit_commit(commit).to_obj())  # the node acknowledges it...
    with pytest.raises(NodeFault, match="dropped a write it acknowledged"):
        view.refresh()  # ...and serves a log without it


def test_receipts_are_checked_on_arrival(tmp_path) -> None:
    """A receipt from another key, for another record, or none at all: the role stops (a node that signs for
    nothing, or for something else, can later deny the write)."""
    k = Kit(tmp_path / "k")
    view = ChainView(LocalClient(k.chain))
    w = Witness(tmp_path / "w")
    view.attach(w)
    m = k.make(0)
    acc = k.submit(m)
    assert read_receipt(acc.receipt).verify()
    good = acc.to_obj()
    w.take("candidate", m.header_bytes, good)  # the real one passes
    r = read_receipt(acc.receipt).body
    forged = seal(Receipt(r.chain_id, r.node_key, r.seq, r.entry, r.record, r.head_seq, r.head, r.at), k.node_key)
    other = generate_key()
    with pytest.raises(NodeFault, match="without a signed receipt"):
        w.take("candidate", m.header_bytes, {k_: v for k_, v in good.items() if k_ != "receipt"})
    bad_sig = forged.to_obj() | {"signature": seal(Receipt(r.chain_id, r.node_key, r.seq, r.entry, r.record,
                                                           r.head_seq, r.head, r.at + 1), k.node_key).to_obj()["signature"]}
    import json

    with pytest.raises(NodeFault, match="not signed by this chain's node key"):
        w.take("candidate", m.header_bytes, good | {"receipt": json.dumps(bad_sig, separators=(",", ":"),
                                                                           sort_keys=True)})
    with pytest.raises(NodeFault, match="not the one sent"):
        w.take("candidate", os.urandom(8).hex().encode().join([b'{"body":{"x":"', b'"}}']), good)
    assert other  # a key the node does not hold cannot make a receipt that verifies
    with pytest.raises(ValueError):
        seal(r, other)


def test_the_beacon_refuses_the_next_value_to_a_log_that_rewrote_a_countersigned_round(tmp_path) -> None:
    """Once the beacon has released round 2's value against a log that holds round 1's confirmation, a
    rewrite of round 1 cannot get any further beacon value: the chain it would need stops there."""
    k = Kit(tmp_path / "k")
    _honest_round(k, tmp_path)
    m2 = k.make(1)
    k.submit(m2)
    k.close_submit()  # the beacon countersigns the log through round 2's submit close
    assert k.st.round.beacon is not None
    fork = _rewrite_round_1(k, tmp_path / "fork")
    log = fork.ledger.entries()
    st = fork.state
    rec = seal(Close(st.genesis.chain_id, st.genesis.node_key, st.round.height, st.round.round, "submit", k.clock(),
                     st.last_hash, (os.urandom(32),), st.round.data.manifest_hash, 1), k.node_key).to_bytes()
    close = Entry.make(st.seq, k.clock(), "close", rec, {}, st.last_hash)
    with pytest.raises(Rejected, match="FORK"):
        k.beacon.reveal(rec, [*log, close])
    assert read_record(rec, "close").verify()  # a valid node signature: only the beacon's check stops it


def test_votes_name_the_bundle_entry_so_a_moved_bundle_orphans_them(tmp_path) -> None:
    """An operator that drops a bundle's entry and records the same bytes again (later, elsewhere in its log)
    cannot carry the votes over: each names the entry it judged. Without the field the old votes would
    count on the new history."""
    k = Kit(tmp_path / "k")
    m = k.make(0)
    k.submit(m)
    k.close_submit()
    bundle = k.bundle(m)
    k.chain.submit_bundle(bundle)
    vote = k.attest(0, m, tier="light")
    k.chain.submit_attestation(vote)  # counts on the honest log
    bundle_at = next(e.seq for e in k.chain.ledger.entries() if e.kind == "bundle")
    fork = _rewrite(k, bundle_at - 1, tmp_path / "fork")
    k.clock.advance(1)
    fork.submit_bundle(bundle)  # the same bytes, another entry
    with pytest.raises(Rejected, match="WRONG_BUNDLE_ENTRY"):
        fork.submit_attestation(vote)
