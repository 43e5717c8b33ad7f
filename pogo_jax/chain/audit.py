"""``pogo audit``: re-derive every decision of a chain from its signed log and stored bytes.

It trusts nothing the node says about outcomes. It re-checks the log's hash chain and every
signature, replays every record through the same rules the node runs (``ChainState.apply``), re-runs
each objective re-check the node claims in a ``Finalize`` record from the stored bundle, update and
rebuilt state, checks every stored blob against the hash and root the log names, checks that every
candidate was recorded before its round's beacon value existed, and finally compares the stakes,
rounds and outcomes it derived with the tables the node serves. Any difference is reported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pogo_jax.chain.blobs import LeafHasher
from pogo_jax.chain.history import StateCache
from pogo_jax.chain.ledger import summary
from pogo_jax.chain.log import Entry, check_chain
from pogo_jax.chain.recheck import recheck
from pogo_jax.chain.state import MAX_SKEW_MS, BundleNote, ChainState, sealed_annotation
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.dataset import read_packed, verify_against
from pogo_jax.spec.header import read_signed_header
from pogo_jax.spec.records import read_record
from pogo_jax.spec.state import is_committable, load_state, state_root

log = logging.getLogger(__name__)


@dataclass
class AuditReport:
    entries: int = 0
    rounds: int = 0
    blocks: int = 0
    blobs_checked: int = 0
    rechecks: int = 0
    unpublished: int = 0  # updates of the open round's submission window: not public yet, not checked
    differences: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_obj(self) -> dict:
        return {"entries": self.entries, "rounds": self.rounds, "blocks": self.blocks,
                "blobs_checked": self.blobs_checked, "rechecks": self.rechecks, "unpublished": self.unpublished,
                "clean": self.clean,
                "differences": self.differences}


def audit(entries: list[Entry], tables: dict[str, list[tuple]] | None, fetch: Callable[[bytes], bytes],
          progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Replay ``entries`` and compare with ``tables`` (None: the node's tables could not be read; the caller
    reports that). Whatever the node serves, the outcome is a report: an entry that breaks the rules, or
    whose replay fails in any other way, is a difference naming it (a failure of a type the rules never raise
    names its type, so a bug here stays distinguishable; its traceback is logged at debug level)."""
    rep = AuditReport(entries=len(entries))
    if not entries:
        rep.differences.append("the log is empty: no genesis record")
        return rep
    try:
        check_chain(entries)
    except MalformedInput as e:
        rep.differences.append(str(e))
        return rep
    except Exception as e:  # noqa: BLE001 - not a list of entries at all
        return _failed(rep, "the log", e)
    st = ChainState()
    cache = StateCache()
    datasets: dict[bytes, object] = {}

    def dataset(ref):  # noqa: ANN001, ANN202 - a recorded dataset, fetched once
        if ref.blob not in datasets:
            datasets[ref.blob] = read_packed(fetch(ref.blob), verify=False)
        return datasets[ref.blob]

    def get(sha: bytes, what: str) -> bytes | None:
        try:
            data = fetch(sha)
        except Exception as e:  # a missing blob is a finding, not a crash
            rep.differences.append(f"{what}: blob {sha.hex()[:16]}... cannot be fetched ({str(e)[:80]})")
            return None
        rep.blobs_checked += 1
        if not isinstance(data, bytes) or hashlib.sha256(data).digest() != sha:
            rep.differences.append(f"{what}: blob {sha.hex()[:16]}... does not hash to its name")
            return None
        return data

    updates: list[Entry] = []  # candidates whose update is checked after the replay (once it is public)
    for i, e in enumerate(entries):
        if progress:
            progress(i + 1, len(entries))
        try:
            if e.kind == "finalize" and st.genesis is not None:
                rec = st.check_finalize(e)  # exactly the round's claims, before any is re-done
                for x in rec.rechecks:
                    try:
                        mine = recheck(st, x.header_hash, x.tier, fetch, cache)
                    except (Rejected, MalformedInput, UserError, OSError) as err:
                        rep.differences.append(f"entry {e.seq}: cannot re-check {x.tier} claim on "
                                               f"{x.header_hash.hex()[:16]}... ({err})")
                        continue
                    except Exception as err:  # noqa: BLE001 - named with its type
                        _failed(rep, f"entry {e.seq}: the {x.tier} re-check of {x.header_hash.hex()[:16]}...", err)
                        continue
                    rep.rechecks += 1
                    if (mine.fails, mine.reason) != (x.fails, x.reason):
                        rep.differences.append(f"entry {e.seq}: the node's {x.tier} re-check of "
                                               f"{x.header_hash.hex()[:16]}... says fails={x.fails} ({x.reason}), "
                                               f"audit finds fails={mine.fails} ({mine.reason})")
            if e.kind == "reveal" and st.genesis is not None:
                try:
                    want = sealed_annotation(st, read_record(e.record, "reveal").body, dataset)
                except Exception as err:  # noqa: BLE001 - a finding; the rules then judge the entry
                    want = None
                    why = str(err)[:80] if isinstance(err, MalformedInput | UserError | OSError | Rejected) else \
                        f"{type(err).__name__}: {str(err)[:80]}"
                    rep.differences.append(f"entry {e.seq}: cannot open the round's sealed shard to check the "
                                           f"node's annotation ({why})")
                if want is not None and want != e.extra:
                    rep.differences.append(f"entry {e.seq}: the node annotated the reveal {e.extra}, the stored "
                                           f"dataset and the released key give {want}")
            st.apply(e)
        except (Rejected, MalformedInput) as err:
            rep.differences.append(f"entry {e.seq} ({e.kind}) breaks the chain rules: {err}")
            return rep
        except Exception as err:  # noqa: BLE001 - the replay cannot go on past this entry
            return _failed(rep, f"entry {e.seq} ({e.kind}): replay", err)
        if e.kind == "candidate" and e.extra:  # its update is public only once its submission window closed
            updates.append(e)
            continue
        try:
            _check_blobs(st, e, get, rep)
        except Exception as err:  # noqa: BLE001 - a finding about this entry's blobs; the replay goes on
            _failed(rep, f"entry {e.seq} ({e.kind}): checking its blobs", err)
    for e in updates:
        found = st.find(read_signed_header(e.record).hash)
        if found is not None and found[0].submit_close is None:
            rep.unpublished += 1  # the open round's submission window: nobody may read it yet
            continue
        try:
            _check_update(st, e, get, rep)
        except Exception as err:  # noqa: BLE001
            _failed(rep, f"entry {e.seq} (candidate): checking its update", err)
    try:
        for r in st.history:
            for c in r.candidates.values():
                if r.beacon is not None and c.at > r.reveal_at:
                    rep.differences.append(f"round ({r.height}, {r.round}): candidate recorded after the beacon "
                                           "reveal")
        _check_reveal_times(entries, st, rep)
        rep.rounds, rep.blocks = len(st.history), len(st.blocks)
        if tables is not None:
            _compare_tables(summary(st), tables, rep)
    except Exception as err:  # noqa: BLE001
        _failed(rep, "comparing the replayed chain with the node's tables", err)
    return rep


def _failed(rep: AuditReport, what: str, err: Exception) -> AuditReport:
    """A failure of a type the rules never raise, as one difference with its type (traceback at debug level)."""
    if isinstance(err, Rejected | MalformedInput | UserError):
        rep.differences.append(f"{what} failed: {str(err)[:200]}")
    else:
        log.debug("%s failed", what, exc_info=err)
        rep.differences.append(f"{what} failed ({type(err).__name__}: {str(err)[:200]})")
    return rep


def _freeze(v):  # noqa: ANN001, ANN202 - a JSON value as something hashable and orderable by repr
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    return v


def _compare_tables(want: dict[str, list[tuple]], tables, rep: AuditReport) -> None:  # noqa: ANN001
    if not isinstance(tables, dict):
        rep.differences.append(f"the node's tables are a {type(tables).__name__}, not an object of tables")
        return
    for t, rows in want.items():
        got = tables.get(t, [])
        if not isinstance(got, list | tuple) or not all(isinstance(r, list | tuple) for r in got):
            rep.differences.append(f"table {t}: the node serves something other than a list of rows")
            continue
        mine = [tuple(r) for r in rows]
        theirs = [_freeze(r) for r in got]
        if mine != theirs:
            a, b = set(mine), set(theirs)
            for row in sorted(b - a, key=repr)[:5]:
                rep.differences.append(f"table {t}: the node holds {str(row)[:300]}, the log implies otherwise")
            for row in sorted(a - b, key=repr)[:5]:
                rep.differences.append(f"table {t}: the log implies {row}, the node does not hold it")
            if a == b:
                rep.differences.append(f"table {t}: rows differ in order or multiplicity")


def _check_reveal_times(entries: list[Entry], st: ChainState, rep: AuditReport) -> None:
    """Every candidate of a round was recorded (node clock) before its beacon was revealed (beacon clock)."""
    by_round: dict[tuple[int, int], list[int]] = {}
    for e in entries:
        if e.kind == "candidate" and e.extra:
            h = read_signed_header(e.record).body
            by_round.setdefault((h.height, h.round), []).append(e.at)
        if e.kind == "reveal":
            v = read_record(e.record, "reveal").body
            late = [t for t in by_round.get((v.height, v.round), []) if t > v.at + MAX_SKEW_MS]
            if late:
                rep.differences.append(f"round ({v.height}, {v.round}): a candidate was recorded after the beacon "
                                       "revealed its value")


def _check_update(st: ChainState, e: Entry, get, rep: AuditReport) -> None:  # noqa: ANN001
    """A candidate's stored update hashes to its header's root_q."""
    lay = st.genesis.layout
    signed = read_signed_header(e.record)
    data = get(bytes.fromhex(e.extra["update_sha256"]), f"entry {e.seq} update")
    if data is not None:
        hasher = LeafHasher(mh.TAG_QUPD, upd.update_leaf_bytes(lay.leaf_size, lay.group_size))
        hasher.update(data)
        if hasher.root() != signed.body.root_q:
            rep.differences.append(f"entry {e.seq}: the stored update does not hash to the header's root_q")


def _check_blobs(st: ChainState, e: Entry, get, rep: AuditReport) -> None:
    lay = st.genesis.layout
    if e.kind == "genesis":
        _check_data(st.genesis.data, get, rep, "genesis dataset")
        _check_state(st.genesis.state, lay, get, rep, "genesis state")
    elif e.kind == "epoch":
        ep = st.epochs[-1]
        _check_data(ep.data, get, rep, f"epoch {ep.epoch} dataset")
        if ep.state is not None:
            _check_state(ep.state, lay, get, rep, f"epoch {ep.epoch} state")
    elif e.kind == "bundle":
        note = BundleNote.from_bytes(e.record)
        data = get(note.sha256, f"entry {e.seq} bundle")
        if data is None:
            return
        try:
            b = Bundle.from_bytes(data)
        except MalformedInput as err:
            rep.differences.append(f"entry {e.seq}: the stored bundle does not parse ({err})")
            return
        if BundleNote.of(b, data) != note or not (b.signed_header.verify() and b.verify_signature()):
            rep.differences.append(f"entry {e.seq}: the stored bundle is not the candidate's signed answer, or "
                                   "the note does not carry its size and reported losses")


def _check_data(ref, get, rep: AuditReport, what: str) -> None:
    data = get(ref.blob, what)
    if data is None:
        return
    try:
        verify_against(read_packed(data, verify=False), ref.data_root, ref.manifest_hash, what)
    except (MalformedInput, UserError) as err:
        rep.differences.append(str(err))


def _check_state(ref, layout, get, rep: AuditReport, what: str) -> None:
    data = get(ref.blob, what)
    if data is None:
        return
    try:
        arrays = load_state(data, layout, what)
        if not is_committable(arrays) or state_root(arrays, layout) != ref.root:
            rep.differences.append(f"{what} does not hash to its recorded root (or is not committable)")
    except (MalformedInput, UserError) as err:
        rep.differences.append(str(err))
