"""``Chain``: the node's core, transport-free. It owns the ledger and the blob store, runs every
incoming record through ``ChainState.apply`` under one lock, and moves rounds forward on its clock.

Writes are signed objects, each re-checked here before anything changes (the HTTP layer only
frames bytes): a candidate (signed header, then its whole update, accepted only when the streamed
bytes hash to ``root_q``), a bundle (its header checked from its first bytes, then streamed into a
temp file, parsed and its signature checked, stored immutable), an attestation, a governance record.
``tick`` closes windows that are due (signed by the node key), fetches the beacon's reveal against
the node's signed submit close, and finalizes a round after re-checking every objective claim
itself from the stored bytes. The clock and the beacon are injected, so tests drive rounds with a
fake clock and an in-process beacon; ``pogo node serve`` passes the real ones.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pogo_jax.chain.blobs import BlobStore, LeafHasher, Upload
from pogo_jax.chain.history import StateCache
from pogo_jax.chain.ledger import Ledger, summary
from pogo_jax.chain.log import Entry
from pogo_jax.chain.recheck import recheck
from pogo_jax.chain.state import BundleNote, ChainState, sealed_annotation
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import read_signed_attestation
from pogo_jax.spec.bundle import FIXED_BYTES, SIG_BYTES, Bundle
from pogo_jax.spec.dataset import read_packed, verify_against
from pogo_jax.spec.envelope import Signed, seal
from pogo_jax.spec.header import read_signed_header
from pogo_jax.spec.keys import PrivateKey, load_private_pem, public_bytes, save_private_pem
from pogo_jax.spec.receipt import Receipt
from pogo_jax.spec.records import Close, Finalize, Recheck, read_record
from pogo_jax.spec.state import is_committable, load_state, state_root, update_size

log = logging.getLogger("pogo.chain")

Clock = Callable[[], int]
MAX_HEADER_BYTES = 1 << 16
MAX_EPOCH_BLOB = 1 << 36
# Updates a miner may have uploading at once (one, and a retry whose broken first try the node has not
# noticed yet). Node policy, not a consensus rule: without it one registered miner held every connection
# slot, and a temp file of a whole update each, with uploads it never finished, so no other miner could
# submit in the window.
MAX_UPLOADS_PER_MINER = 2
# Bundle uploads of one candidate at once. Node policy too: the header check before the leaf data only says
# that the body names a candidate of the open round by its (public) header, so without a cap anyone could
# open any number of uploads, each a temp file of up to ``max_bundle_bytes``.
MAX_BUNDLE_UPLOADS = 1


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Accepted:
    """What a write did: the entry it became (or the one it duplicates) and how it was taken."""

    seq: int
    kind: str
    result: str  # "admitted", "evidence" (signer slashed), "duplicate"
    record_hash: str = ""
    receipt: bytes = b""  # the node-signed receipt (spec/receipt.py) the writer keeps

    def to_obj(self) -> dict:
        out = {"seq": self.seq, "kind": self.kind, "result": self.result, "record_hash": self.record_hash}
        if self.receipt:
            out["receipt"] = self.receipt.decode("ascii")
        return out


def _receipted(fn):  # noqa: ANN001, ANN202 - a Chain write method
    """Answer the write with a node-signed receipt of the entry it became (docs/protocol.md section 22)."""
    @functools.wraps(fn)
    def run(self, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        out = fn(self, *args, **kw)
        return self.receipt(out) if isinstance(out, Accepted) else out
    return run


@dataclass
class CandidateUpload:
    """A candidate whose header passed the checks and whose update is being received."""

    signed: Signed
    header_bytes: bytes
    upload: Upload
    hasher: LeafHasher
    release: Callable[[], None] = lambda: None  # gives back the miner's upload slot (idempotent)

    def write(self, chunk: bytes) -> None:
        self.upload.write(chunk)

    def discard(self) -> None:
        self.upload.discard()
        self.release()

    def close(self) -> None:
        """Whatever happened (recorded, refused, cut off, cancelled): the temp file is gone and the slot
        is free. Harmless after ``finish_candidate`` stored the blob (the temp file was renamed)."""
        self.discard()


@dataclass
class BundleUpload:
    """A bundle whose first bytes named a candidate that may take it, being received into a temp file; or,
    for a candidate whose bundle is stored (``stored``, its SHA-256), a retry compared byte for byte with
    the stored file (``against``) as it arrives, never written anywhere."""

    header: Signed
    upload: Upload | None
    stored: bytes | None = None
    release: Callable[[], None] = lambda: None  # gives back the candidate's upload slot (idempotent)
    against: BinaryIO | None = None
    size: int = 0
    claim: tuple[bytes, bytes] | None = None  # (body SHA-256, signature) the uploader announced and signed

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.upload is not None:
            self.upload.write(chunk)
        elif self.against.read(len(chunk)) != chunk:
            raise Rejected("BUNDLE_FIXED", "this candidate's bundle is already stored; published bundles never change")

    def close(self) -> None:
        """Whatever happened: the temp file is gone (unless stored), the file closed, the slot free."""
        if self.upload is not None:
            self.upload.discard()
        if self.against is not None:
            self.against.close()
        self.release()


class Chain:
    def __init__(self, directory: str | Path, clock: Clock = wall_ms, beacon=None) -> None:
        self.dir = Path(directory)
        self.clock = clock
        self.beacon = beacon  # has .reveal(close_bytes) -> reveal bytes (in-process or HTTP)
        self.lock = threading.RLock()
        self.ledger = Ledger.open(self.dir / "ledger.sqlite")
        self.blobs = BlobStore(self.dir / "blobs")
        self.blobs.clean_tmp()
        self.key: PrivateKey = load_private_pem(self.dir / "node.pem")
        self.state = self._replay()
        self._uploading: dict[bytes, int] = {}  # miner key -> candidate uploads in flight
        self._bundling: dict[bytes, int] = {}  # header hash -> bundle uploads in flight
        if public_bytes(self.key) != self.state.genesis.node_key:
            raise UserError(f"{self.dir}/node.pem is not the node key the genesis record names")
        self._check_tables()
        self._gc_blobs()
        self.cache = StateCache()
        self._last_reveal_error = ""
        self._datasets: dict[bytes, object] = {}
        self._ticking = threading.Lock()
        self._segment: tuple[bytes | None, list[Entry]] = (None, [])

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, directory: str | Path, genesis_bytes: bytes, blobs: Iterable[bytes], node_key: PrivateKey,
               clock: Clock = wall_ms, beacon=None) -> Chain:
        """A new chain directory from a signed genesis record and the blobs it names (state, dataset)."""

        d = Path(directory)
        if (d / "ledger.sqlite").exists():
            raise UserError(f"a chain already exists in {d}")
        store = BlobStore(d / "blobs")
        for b in blobs:
            store.put(b)
        g = read_record(genesis_bytes, "genesis").body
        _check_dataset(store, g.data, "genesis dataset")
        _check_state(store, g.state, g.layout, "genesis state")
        save_private_pem(node_key, d / "node.pem", force=True)
        ledger = Ledger.create(d / "ledger.sqlite")
        st = ChainState()
        e = Entry.make(0, clock(), "genesis", genesis_bytes, {}, st.last_hash)
        st.apply(e)
        ledger.append(e, st)
        ledger.close()
        return cls(d, clock, beacon)

    def _replay(self) -> ChainState:
        st = ChainState()
        for e in self.ledger.entries():
            try:
                st.apply(e)
            except (Rejected, MalformedInput) as err:
                raise UserError(f"ledger {self.ledger.path}: entry {e.seq} breaks the chain rules ({err}); "
                                f"run pogo audit {self.dir}") from None
        if st.genesis is None:
            raise UserError(f"ledger {self.ledger.path} holds no genesis record")
        return st

    def _check_tables(self) -> None:
        want, got = summary(self.state), self.ledger.tables()
        for t, rows in want.items():
            if [tuple(r) for r in rows] != got[t]:
                raise UserError(f"ledger {self.ledger.path}: table '{t}' differs from what its log implies "
                                f"(edited by hand?); run pogo audit {self.dir}")

    def _gc_blobs(self) -> None:
        keep = self.referenced_blobs()
        for sha in self.blobs.all():
            if sha not in keep:
                self.blobs.remove(sha)

    def close(self) -> None:
        self.ledger.close()

    # ------------------------------------------------------------------------------ reading
    def referenced_blobs(self) -> set[bytes]:
        st = self.state
        out = {st.genesis.state.blob, st.genesis.data.blob}
        for ep in st.epochs:
            out.add(ep.data.blob)
            if ep.state is not None:
                out.add(ep.state.blob)
        for r in [*st.history, st.round]:
            for c in r.candidates.values():
                out.add(c.update_sha256)
                if c.bundle_sha256 is not None:
                    out.add(c.bundle_sha256)
        return out

    def visible(self, sha: bytes) -> bool:
        """Served to anyone? Everything the log references, except the updates of a round whose
        submission window is still open (nobody may copy a rival's work)."""
        with self.lock:
            r = self.state.round
            if r.phase == "submit" and any(c.update_sha256 == sha for c in r.candidates.values()):
                return False
            return sha in self.referenced_blobs() and self.blobs.has(sha)

    # ------------------------------------------------------------------------------ writing
    def _append(self, kind: str, record: bytes, extra: dict | None = None, at: int | None = None) -> Accepted:
        with self.lock:
            st = self.state
            at = max(self.clock() if at is None else at, st.last_at)
            e = Entry.make(st.seq, at, kind, record, extra or {}, st.last_hash)
            try:
                result = st.apply(e)
            except (Rejected, MalformedInput):
                raise
            except BaseException:
                self.state = self._replay()  # a bug mid-apply must not leave a half-changed state
                raise
            try:
                self.ledger.append(e, st)
            except BaseException:
                self.state = self._replay()
                raise
            return Accepted(e.seq, kind, result)

    def receipt(self, acc: Accepted) -> Accepted:
        """``acc`` with the node's signed receipt: the entry it names, its hash, and the log head now."""
        if acc.receipt or not acc.record_hash:
            return acc
        with self.lock:
            st = self.state
            entry = self.ledger.entries(acc.seq, 1)[0]
            body = Receipt(st.genesis.chain_id, st.genesis.node_key, acc.seq, entry.hash,
                           bytes.fromhex(acc.record_hash), st.seq - 1, st.last_hash, max(self.clock(), st.last_at))
        return dataclasses.replace(acc, receipt=seal(body, self.key).to_bytes())

    def _duplicate(self, record_hash: bytes, kind: str) -> Accepted | None:
        seq = self.state.seen.get(record_hash)
        return None if seq is None else Accepted(seq, kind, "duplicate", record_hash.hex())

    @_receipted
    def submit_candidate(self, header_bytes: bytes, chunks: Iterable[bytes]) -> Accepted:
        """A signed header and its whole update (streamed)."""
        begun = self.begin_candidate(header_bytes)
        if isinstance(begun, Accepted):
            return begun
        try:
            for chunk in chunks:
                begun.write(chunk)
            return self.finish_candidate(begun)
        finally:
            begun.close()

    @_receipted
    def begin_candidate(self, header_bytes: bytes) -> Accepted | CandidateUpload:
        """Check a candidate's signed header before any update byte is read. A duplicate returns its
        entry; a replay or an equivocation is recorded as evidence (its signer slashed) at once;
        otherwise the returned upload takes the update bytes."""
        if len(header_bytes) > MAX_HEADER_BYTES:
            raise MalformedInput("signed header too large")
        signed = read_signed_header(header_bytes)
        with self.lock:
            dup = self._duplicate(signed.hash, "candidate")
            if dup is not None:
                return dup
            verdict = self.state.check_candidate(signed, max(self.clock(), self.state.last_at))
            if verdict != "ok":
                acc = self._append("candidate", header_bytes)
                return Accepted(acc.seq, "candidate", acc.result, signed.hash.hex())
            release = self._take_upload_slot(signed.body.miner_key)
        lay = self.state.genesis.layout
        hasher = LeafHasher(mh.TAG_QUPD, upd.update_leaf_bytes(lay.leaf_size, lay.group_size))
        try:
            up = self.blobs.upload(update_size(lay), hasher)
        except BaseException:
            release()
            raise
        return CandidateUpload(signed, header_bytes, up, hasher, release)

    def _take_upload_slot(self, miner: bytes) -> Callable[[], None]:
        """One of the miner's ``MAX_UPLOADS_PER_MINER`` upload slots, and the function that frees it once."""
        return self._take_slot(self._uploading, miner, MAX_UPLOADS_PER_MINER,
                               "this miner already has {held} updates uploading to the node; finish or drop one first")

    def _take_slot(self, table: dict[bytes, int], key: bytes, limit: int, refusal: str) -> Callable[[], None]:
        """One of ``limit`` slots of ``key`` in ``table`` (429 ``UPLOADS_IN_FLIGHT`` when all are held), and the
        function that frees it once."""
        with self.lock:
            held = table.get(key, 0)
            if held >= limit:
                raise Rejected("UPLOADS_IN_FLIGHT", refusal.format(held=held))
            table[key] = held + 1
        freed = threading.Event()

        def release() -> None:
            with self.lock:
                if freed.is_set():
                    return
                freed.set()
                left = table[key] - 1
                if left:
                    table[key] = left
                else:
                    del table[key]

        return release

    @_receipted
    def finish_candidate(self, cu: CandidateUpload) -> Accepted:
        """The update is complete: check its length and root_q, store it, record the candidate. The header
        is checked again under the lock: a twin uploaded in parallel (an equivocation or a replay) may
        have been recorded meanwhile, and then this one is evidence, not a candidate."""
        want = update_size(self.state.genesis.layout)
        try:
            if cu.upload.size != want:
                raise Rejected("BAD_LENGTH", f"update is {cu.upload.size} bytes, the layout needs {want}")
            if cu.hasher.root() != cu.signed.body.root_q:
                raise Rejected("ROOT_Q_MISMATCH", "the uploaded update does not hash to the header's root_q")
            with self.lock:
                dup = self._duplicate(cu.signed.hash, "candidate")
                verdict = None if dup is not None else self.state.check_candidate(
                    cu.signed, max(self.clock(), self.state.last_at))
                if verdict != "ok":
                    cu.upload.discard()
                    if dup is not None:
                        return dup
                    acc = self._append("candidate", cu.header_bytes)  # evidence against its signer
                    return Accepted(acc.seq, "candidate", acc.result, cu.signed.hash.hex())
                sha = cu.upload.commit()
                try:
                    acc = self._append("candidate", cu.header_bytes, {"update_sha256": sha.hex()})
                except BaseException:
                    if sha not in self.referenced_blobs():
                        self.blobs.remove(sha)
                    raise
        finally:
            cu.close()
        return Accepted(acc.seq, "candidate", acc.result, cu.signed.hash.hex())

    @_receipted
    def submit_bundle(self, data: bytes) -> Accepted:
        """A miner's signed bundle for a recorded candidate, whole (in-process callers): the same steps as an
        upload over HTTP, ``begin_bundle`` on its first bytes, then the rest, then ``finish_bundle``."""
        n = Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)
        bu = self.begin_bundle(data[:n], (hashlib.sha256(data[:-SIG_BYTES]).digest(), data[-SIG_BYTES:]))
        try:
            bu.write(data[n:])
            return self.finish_bundle(bu)
        finally:
            bu.close()

    def begin_bundle(self, prefix: bytes, claim: tuple[bytes, bytes] | None = None) -> BundleUpload:
        """Check a bundle from its first bytes (``Bundle.peek_size`` of them: the fixed part and the metadata up
        to the end of its header) before a leaf byte is read or stored: only a bundle naming a candidate of
        the open round, by the recorded header's exact bytes, in its proof window, with no bundle yet, is
        received (into a temp file; one upload per candidate at a time, else 429 ``UPLOADS_IN_FLIGHT``).
        A body naming a candidate of the open round whose bundle is stored is a retry: it is compared with
        the stored bytes as it arrives, never written (``BUNDLE_FIXED`` at the first difference,
        ``duplicate`` if it is the same file). ``claim``: the body's SHA-256 and the miner's signature of it,
        announced before the body; a new upload needs one that verifies, so nobody but the miner can hold its
        candidate's one slot with a copy of the public header (the body must then match it)."""
        header = Bundle.header_from_prefix(prefix)
        with self.lock:
            cand = self.state.round.candidates.get(header.hash)
            if cand is not None and cand.bundle_sha256 is not None:
                sha = cand.bundle_sha256
                bu = BundleUpload(header, None, sha, against=open(self.blobs.path(sha), "rb"))  # noqa: SIM115
                try:
                    bu.write(prefix)
                except BaseException:
                    bu.close()
                    raise
                return bu
            self._bundle_may_be_stored(header, b"")
            if claim is None or not Bundle.claim_valid(header, *claim):
                raise Rejected("BAD_SIGNATURE", "a bundle upload starts with the miner's signature of the body's "
                                                "SHA-256 (headers x-pogo-bundle-sha256 and x-pogo-bundle-signature)")
            release = self._take_slot(self._bundling, header.hash, MAX_BUNDLE_UPLOADS, "a bundle of this candidate "
                                      "is already uploading to the node; wait for it to end")
        up = None
        try:
            up = self.blobs.upload(self.max_bundle_bytes())
            up.write(prefix)
        except BaseException:
            if up is not None:
                up.discard()
            release()
            raise
        return BundleUpload(header, up, release=release, claim=claim)

    @_receipted
    def finish_bundle(self, bu: BundleUpload) -> Accepted:
        """The body is complete: parse the file (the one bundle this upload holds in memory, once), check that
        its header is the one its first bytes named and that the miner signed it, then store it and name it
        in the log, the candidate's state checked again under the lock (another upload may have won)."""
        try:
            if bu.upload is None:
                if bu.size != self.blobs.size(bu.stored):
                    raise Rejected("BUNDLE_FIXED", "this candidate's bundle is already stored; published bundles "
                                                   "never change")
                with self.lock:
                    dup = self._bundle_duplicate(bu.header.hash, bu.stored)
                assert dup is not None  # a stored bundle stays stored
                return dup
            data = bu.upload.contents()
            sha = bu.upload.sha256
            if bu.claim is not None and (hashlib.sha256(data[:-SIG_BYTES]).digest(), data[-SIG_BYTES:]) != bu.claim:
                raise MalformedInput("the bundle body is not the one whose hash and signature the upload announced")
            b = Bundle.from_bytes(data)
            if b.signed_header.to_bytes() != bu.header.to_bytes():  # header_from_prefix read the same bytes
                raise MalformedInput("proof bundle: its header is not the one its first bytes named")
            if not (b.signed_header.verify() and b.verify_signature()):
                raise Rejected("BAD_SIGNATURE", "the bundle is not signed by the candidate's miner (it proves nothing)")
            note = BundleNote.of(b, data).to_bytes()
            del data, b
            with self.lock:
                dup = self._bundle_duplicate(bu.header.hash, sha)
                if dup is not None:
                    return dup
                self._bundle_may_be_stored(bu.header, sha)
                stored = bu.upload.commit()
                try:
                    acc = self._append("bundle", note)
                except BaseException:
                    if stored not in self.referenced_blobs():
                        self.blobs.remove(stored)
                    raise
        finally:
            bu.close()
        return Accepted(acc.seq, "bundle", acc.result, sha.hex())

    def _bundle_duplicate(self, header_hash: bytes, sha: bytes) -> Accepted | None:
        found = self.state.find(header_hash)
        if found is not None and found[1].bundle_sha256 == sha:  # a retry: the same bytes, taken once
            return Accepted(found[1].bundle_seq, "bundle", "duplicate", sha.hex())
        return None

    def _bundle_may_be_stored(self, header: Signed, sha: bytes) -> None:
        cand = self.state.check_bundle(header.hash, sha, max(self.clock(), self.state.last_at))
        if cand.header.to_bytes() != header.to_bytes():
            raise Rejected("UNKNOWN_HEADER", "the bundle's header is not the recorded one")

    def max_bundle_bytes(self) -> int:
        lay, k = self.state.genesis.layout, self.state.rules.k_leaves
        per = 8 * lay.leaf_size + upd.update_leaf_bytes(lay.leaf_size, lay.group_size) + 3 * 66 * 64 + 256
        return min(k, lay.n_leaves) * per + (4 << 20)

    def _submit_record(self, kind: str, signed: Signed, data: bytes) -> Accepted:
        """Append one small signed record (already parsed from ``data``), or return the entry it duplicates."""
        with self.lock:
            dup = self._duplicate(signed.hash, kind)
            if dup is not None:
                return dup
            acc = self._append(kind, data)
        return Accepted(acc.seq, kind, acc.result, signed.hash.hex())

    @_receipted
    def submit_attestation(self, data: bytes) -> Accepted:
        return self._submit_record("attestation", read_signed_attestation(data), data)

    @_receipted
    def submit_commit(self, data: bytes) -> Accepted:
        """A full verifier's signed commitment to the vote it will reveal (PROTOCOL 16)."""
        return self._submit_record("commit", read_record(data, "commit"), data)

    @_receipted
    def submit_register(self, data: bytes) -> Accepted:
        return self._submit_record("register", read_record(data, "register"), data)

    @_receipted
    def submit_epoch(self, data: bytes, dataset: Iterable[bytes], state: Iterable[bytes] | None) -> Accepted:
        """A governance-signed epoch with its dataset (and initial state), streamed."""
        self.check_epoch(data)
        ups = [self.blobs.upload(MAX_EPOCH_BLOB)] + ([self.blobs.upload(MAX_EPOCH_BLOB)] if state is not None else [])
        try:
            for up, chunks in zip(ups, [dataset] + ([state] if state is not None else []), strict=True):
                for c in chunks:
                    up.write(c)
        except BaseException:
            for up in ups:
                up.discard()
            raise
        return self.finish_epoch(data, ups[0], ups[1] if len(ups) > 1 else None)

    def check_epoch(self, data: bytes) -> None:
        """Before any blob byte is read: the record parses and is the governance key's."""
        signed = read_record(data, "epoch")
        if signed.body.signer != self.state.genesis.governance_key or not signed.verify():
            raise Rejected("WRONG_SIGNER", "epochs are signed by the chain's governance key")

    @_receipted
    def finish_epoch(self, data: bytes, dataset: Upload, state: Upload | None) -> Accepted:
        """Both blobs are received: they must hash to what the record names and pass the root checks
        (dataset against data_root and manifest hash, state against its root) before it is recorded."""
        signed = read_record(data, "epoch")
        ep = signed.body
        stored: list[bytes] = []
        try:
            with self.lock:
                dup = self._duplicate(signed.hash, "epoch")
            if dup is not None:
                raise _Dup(dup)
            if (state is None) != (ep.state is None):
                raise MalformedInput("the epoch record and the upload disagree on whether there is an initial state")
            for up, ref, what in ((dataset, ep.data, "dataset"), (state, ep.state, "state")):
                if up is None:
                    continue
                if up.sha256 != ref.blob:
                    raise Rejected("BLOB_MISMATCH", f"the uploaded {what} does not hash to {ref.blob.hex()[:16]}...")
                stored.append(up.commit())
            _check_dataset(self.blobs, ep.data, "epoch dataset")
            if ep.state is not None:
                _check_state(self.blobs, ep.state, self.state.genesis.layout, "epoch state")
            acc = self._append("epoch", data)
        except _Dup as d:
            for up in (dataset, state):
                if up is not None:
                    up.discard()
            return d.acc
        except BaseException:
            for up in (dataset, state):
                if up is not None:
                    up.discard()
            with self.lock:
                for sha in stored:
                    if sha not in self.referenced_blobs():
                        self.blobs.remove(sha)
            raise
        return Accepted(acc.seq, "epoch", acc.result, signed.hash.hex())

    # ------------------------------------------------------------------------------ time
    def _node_record(self, body_type, **fields) -> bytes:  # noqa: ANN001
        st = self.state
        r = st.round
        if body_type is Close:
            fields.update(data=r.data.manifest_hash, shard=r.shard)
        body = body_type(chain_id=st.genesis.chain_id, node_key=st.genesis.node_key, height=r.height,
                         round=r.round, prev=st.last_hash, **fields)
        return seal(body, self.key).to_bytes()

    def tick(self) -> list[str]:
        """Advance the open round as far as its windows allow; returns the kinds appended. Ticks run one at a
        time (the node's ticker and any caller): a tick asks the beacon and re-checks claims outside the chain
        lock, and two at once would both try to append the same reveal or finalize."""
        done: list[str] = []
        with self._ticking:
            for _ in range(8):
                step = self._tick_once()
                if step is None:
                    break
                done.append(step)
        return done

    def _tick_once(self) -> str | None:
        with self.lock:
            st, r = self.state, self.state.round
            now = max(self.clock(), st.last_at)
            if r.phase == "submit" and r.first_at is not None and now >= r.first_at + st.rules.submit_window_ms:
                rec = self._node_record(Close, window="submit", at=now, candidates=tuple(r.candidates))
                self._append("close", rec, at=now)
                return "close"
            if r.phase == "proof":
                missing = tuple(h for h, c in r.candidates.items() if c.bundle_sha256 is None)
                if not missing or now >= r.reveal_at + st.rules.prove_window_ms:
                    self._append("close", self._node_record(Close, window="proof", at=now, candidates=missing), at=now)
                    return "close"
                return None
            if r.phase == "commit":
                if st.commit_close_due(now):
                    self._append("close", self._node_record(Close, window="commit", at=now, candidates=()), at=now)
                    return "close"
                return None
            want = st.claims() if st.finalize_due(now) else None
            phase = r.phase
        if phase == "beacon" and want is None:
            return self._fetch_reveal()
        if want is None:
            return None
        rechecks = tuple(self.recheck(hh, tier) for hh, tier in want)
        with self.lock:
            st = self.state
            now = max(self.clock(), st.last_at)
            if not st.finalize_due(now) or st.claims() != want:
                return None
            self._append("finalize", self._node_record(Finalize, at=now, rechecks=rechecks), at=now)
            return "finalize"

    def _beacon_segment(self) -> list[Entry]:
        """The log from the close the beacon last revealed against (genesis at first) through the open round's
        submit close: the beacon checks that it extends the head it countersigned (docs/protocol.md section 22)."""
        want, start, found = self.state.round.submit_close, self.state.seq, None
        revealed: bytes | None = None  # the close named by the last recorded reveal before this round's close
        while start > 0:
            start = max(0, start - 1024)
            page = self.ledger.entries(start, min(1024, self.state.seq - start))
            for e in reversed(page):
                if found is None:
                    if e.kind == "close" and read_record(e.record, "close").hash == want:
                        found = e.seq
                elif revealed is None and e.kind == "reveal":
                    revealed = read_record(e.record, "reveal").body.close
                elif revealed is not None and e.kind == "close" and read_record(e.record, "close").hash == revealed:
                    return self.ledger.entries(e.seq, found - e.seq + 1)
        if found is None:
            raise RuntimeError("the open round's submit close record is not in the ledger")
        return self.ledger.entries(0, found + 1)

    def _fetch_reveal(self) -> str | None:
        if self.beacon is None:
            return None
        with self.lock:
            want = self.state.round.submit_close
            if self._segment[0] != want:  # the ticker asks again every tick while the beacon is down
                self._segment = (want, self._beacon_segment())
            segment = self._segment[1]
        close_bytes = segment[-1].record
        try:
            reveal = self.beacon.reveal(close_bytes, segment)
        except Exception as e:  # the beacon down or refusing: the round waits, the next tick retries
            msg = f"beacon: {e}"
            if msg != self._last_reveal_error:
                log.warning("%s (the round waits; retrying)", msg)
                self._last_reveal_error = msg
            return None
        self._last_reveal_error = ""
        self._append("reveal", reveal, self._sealed_annotation(reveal))
        return "reveal"

    def _sealed_annotation(self, reveal_bytes: bytes) -> dict:
        """Whether the released key opens the round's shard to the plaintext its manifest committed to: the
        reveal entry's annotation (empty when the key is missing or not the committed one, which the rules
        see for themselves). Anyone holding the dataset re-derives it (``pogo audit``, the full tier)."""
        try:
            v = read_record(reveal_bytes, "reveal").body
        except MalformedInput:
            return {}
        return sealed_annotation(self.state, v, lambda ref: self.dataset(ref))

    def dataset(self, ref):  # noqa: ANN001, ANN201 - DataRef -> spec.dataset.Dataset (memmapped)
        """A recorded dataset from the blob store, opened once."""
        ds = self._datasets.get(ref.blob)
        if ds is None:
            ds = self._datasets[ref.blob] = read_packed(self.blobs.path(ref.blob), verify=False)
        return ds

    # ------------------------------------------------------------------------------ re-checks
    def fetch(self, sha: bytes) -> bytes:
        return self.blobs.get(sha)

    def recheck(self, header_hash: bytes, tier: str) -> Recheck:
        return recheck(self.state, header_hash, tier, self.fetch, self.cache)


class _Dup(Exception):
    def __init__(self, acc: Accepted) -> None:
        self.acc = acc


def _check_dataset(store: BlobStore, ref, what: str) -> None:
    if not store.has(ref.blob):
        raise MalformedInput(f"{what}: blob {ref.blob.hex()[:16]}... is not stored")
    ds = read_packed(store.path(ref.blob), verify=False)  # memmapped: any size
    verify_against(ds, ref.data_root, ref.manifest_hash, what)


def _check_state(store: BlobStore, ref, layout, what: str) -> None:
    if not store.has(ref.blob):
        raise MalformedInput(f"{what}: blob {ref.blob.hex()[:16]}... is not stored")
    arrays = load_state(store.get(ref.blob), layout, what)
    if not is_committable(arrays):
        raise MalformedInput(f"{what} holds NaN, Inf, a subnormal or -0.0 (flush it like genesis)")
    if state_root(arrays, layout) != ref.root:
        raise MalformedInput(f"{what} does not hash to its recorded root")

