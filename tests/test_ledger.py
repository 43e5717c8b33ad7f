"""The ledger's derived tables are written incrementally (only the rows an entry changed) and stay exactly
what a full rewrite from ``summary(state)`` would hold: checked after every entry of a chain that goes
through every kind of outcome (confirmed, not best, fraud, withheld, undecided, equivocation evidence,
a registration, a governance epoch), and an append writes a few rows whatever the chain's length."""

from __future__ import annotations

import hashlib

import pytest
from chainkit import Kit, keys_of, make_dataset

from pogo_jax.chain.genesis import data_ref
from pogo_jax.chain.ledger import TABLES, Ledger, summary
from pogo_jax.chain.state import ChainState
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Epoch


def checked(kit: Kit) -> list[int]:
    """Wrap the chain's ledger so every append is followed by a whole-table comparison with ``summary``;
    returns the list the wrapper appends each entry's number of written rows to."""
    led = kit.chain.ledger
    real = led.append
    writes: list[int] = []

    def append(entry, st) -> None:  # noqa: ANN001
        before = led._conn.total_changes
        real(entry, st)
        writes.append(led._conn.total_changes - before)
        got, want = led.tables(), summary(st)
        for t in TABLES:
            assert got[t] == [tuple(r) for r in want[t]], (entry.seq, entry.kind, t)

    led.append = append
    return writes


def varied_chain(kit: Kit, tmp_path) -> None:  # noqa: ANN001
    """Rounds with every outcome the derived tables record."""
    kit.run_round([kit.make(0), kit.make(1)])  # one confirmed, one NOT_BEST
    kit.run_round([kit.make(2, tamper_rows=range(kit.layout.n_leaves))],  # fraud (miner 2 is barred)
                  {(2, v): ("reject", "light", "APPLY_MISMATCH", None) for v in range(3)})
    kit.register("late-verifier", "verifier")
    a, b = kit.make(0), kit.make(1)  # b withheld: no bundle
    kit.submit(a)
    kit.submit(b)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(a))
    kit.clock.advance(kit.rules.prove_window_ms)
    kit.chain.tick()
    kit.vote_all(a, verifiers=[0, 1, 2])
    m = kit.make(0)  # undecided: one full vote of min_full = 2
    kit.run_round([m], {(0, 0): ("accept", "full", None, (2.0, 1.5)), (0, 1): None, (0, 2): None})
    assert kit.st.history[-1].candidates[m.hash].status == "undecided"
    first = kit.make(3)  # a miner signs two headers for one round: evidence, slashed at once
    kit.submit(first)
    assert kit.submit(kit.make(3, header_changes={"train": {"steps": 2}})).result == "evidence"
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(first))
    kit.vote_all(first, verifiers=[0, 1, 2])
    ref = epoch(kit, tmp_path, 1, sealed=1)
    kit.run_round([kit.make(1)])  # still the genesis dataset: the epoch takes effect at the next round
    kit.run_round([kit.make(0)])  # on the epoch's only sealed shard: then the round waits
    assert kit.st.round.phase == "waiting" and kit.st.history[-1].data.blob == ref.blob
    epoch(kit, tmp_path, 2, sealed=2)  # recorded while the round waits: it reopens under the same (height, round)
    kit.run_round([kit.make(1)])


def epoch(kit: Kit, tmp_path, n: int, sealed: int):  # noqa: ANN001, ANN201 - the epoch's DataRef
    new = make_dataset(tmp_path / f"epoch{n}.pogodata", seed=3 + n, sealed=sealed)
    kit.beacon.add_keys(keys_of(new))
    ref = data_ref(new, hashlib.sha256(new.read_bytes()).digest())
    kit.chain.submit_epoch(seal(Epoch(kit.chain_id, public_bytes(kit.gov), n, ref, None), kit.gov).to_bytes(),
                           [new.read_bytes()], None)
    return ref


def test_tables_equal_summary_after_every_append(tmp_path) -> None:
    kit = Kit(tmp_path, n_miners=4)
    writes = checked(kit)
    varied_chain(kit, tmp_path)
    st = kit.st
    assert len(writes) == st.seq - 1 and st.tip_height >= 3
    statuses = {c.status for r in st.history for c in r.candidates.values()}
    assert {"confirmed", "valid", "fraud", "withheld", "undecided"} <= statuses, statuses
    reasons = {e.reason for e in st.events}
    assert {"REWARD", "EQUIVOCATION", "WITHHELD", "FRAUD_CONFIRMED"} <= reasons, reasons
    # the node restarts on the file (it compares every table with its own replay) and audit agrees
    kit.chain.close()
    from pogo_jax.chain.chain import Chain

    again = Chain(kit.tmp / "node", kit.clock, kit.beacon)
    assert again.ledger.tables() == {t: [tuple(r) for r in rows] for t, rows in summary(again.state).items()}
    again.close()


def test_an_append_writes_the_same_few_rows_at_any_chain_length(tmp_path) -> None:
    """The cost of an append does not grow with the chain: a light vote writes its log row and its
    candidate's vote count, a finalize the two rounds, their candidates and its stake events."""
    kit = Kit(tmp_path)
    writes = checked(kit)

    def one_round() -> dict[str, int]:
        start = len(writes)
        seq0 = kit.st.seq
        kit.run_round([kit.make(0)], {(0, v): ("accept", "light" if v == 0 else "full", "OK" if v == 0 else None,
                                               None if v == 0 else (2.0, 1.5)) for v in range(3)})
        kinds = [e.kind for e in kit.chain.ledger.entries(seq0)]
        return {k: w for k, w in zip(kinds, writes[start:], strict=True)}

    early = one_round()
    for _ in range(6):
        one_round()
    late = one_round()
    rows = sum(len(v) for v in kit.chain.ledger.tables().values())
    assert early == late, (early, late)
    assert late["attestation"] == 2  # the log row and the candidate's vote count
    assert max(late.values()) < 16 < rows  # a whole rewrite would write every row, every time


def test_a_skipped_entry_or_foreign_rows_fall_back_to_a_whole_rewrite(tmp_path) -> None:
    kit = Kit(tmp_path)
    kit.run_round([kit.make(0)])
    kit.run_round([kit.make(1)])
    entries = kit.chain.ledger.entries()
    led = Ledger.create(tmp_path / "other.sqlite")
    st = ChainState()
    st.apply(entries[0])
    led.append(entries[0], st)
    for e in entries[1:]:
        st.apply(e)  # the ledger misses entries 1..n-2: the next append cannot know what they changed
    led.append(entries[-1], st)
    assert led.tables() == {t: [tuple(r) for r in rows] for t, rows in summary(st).items()}


def test_a_failed_append_leaves_the_tables_and_the_chain_where_they_were(tmp_path) -> None:
    kit = Kit(tmp_path)
    checked(kit)
    kit.run_round([kit.make(0)])
    led = kit.chain.ledger
    before, n = led.tables(), len(led.entries())
    real = led._update

    def broken(rows) -> None:  # noqa: ANN001
        real(rows)
        raise OSError("disk full")

    led._update = broken
    with pytest.raises(OSError):
        kit.submit(kit.make(1))
    assert led.tables() == before and len(led.entries()) == n and kit.st.round.candidates == {}
    del led._update
    kit.run_round([kit.make(1)])  # and the next appends carry on from the stored rows
    assert kit.st.tip_height == 2
