"""The chain's state as a pure function of its log: ``ChainState.apply(entry)`` is every consensus rule.

The node appends an entry only if ``apply`` accepts it, and everyone who replays the log (the
roles deriving their ``BlockContext``, ``pogo audit``) runs the same function, so an outcome is
never a number some process asserts. ``apply`` checks everything before it changes anything: a
refused entry leaves the state as it was.

A round (h, a) tries to extend the confirmed tip at h - 1, is judged on the next unused sealed shard
of its dataset (PROTOCOL 14; with none left it *waits* for an epoch that adds some), and moves through
five windows on the node's clock (entry ``at``, ms): *submit* (candidates: signed header + the whole
update, admitted only within ``submit_window_ms`` of the first one), *beacon* (after the node's signed
submit ``Close``, which names the shard, the beacon's ``Reveal`` with the round's value and the shard's
key; a wrong or missing key, a shard that does not open, or no reveal within ``prove_window_ms``
closes the round empty), *proof* (bundles, until ``prove_window_ms`` after the reveal or every
candidate answered; then the proof ``Close`` names the withheld), *commit* (light votes, and full votes
committed by hash, until ``attest_window_ms`` after the proof close or every eligible verifier voted on
every bundle; then the commit ``Close``), *reveal* (full votes revealed, each matching its commitment,
until ``reveal_window_ms`` or every commitment is revealed; then ``Finalize``). Epochs recorded during
a round take effect when the next round opens.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from fractions import Fraction

from pogo_jax.chain.beacon import verify_next
from pogo_jax.chain.decide import Ballot, Measurement, claims, decide
from pogo_jax.chain.log import GENESIS_PREV, Entry
from pogo_jax.errors import MalformedInput, Rejected
from pogo_jax.spec.attestation import Attestation, read_signed_attestation
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.dataset import check_chain_dataset
from pogo_jax.spec.encoding import (
    canonical,
    exact_keys,
    f32hex,
    from_f32hex,
    get_field,
    get_int,
    hexbytes,
    parse_canonical,
)
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import HEADER_VERSION, Header, read_signed_header
from pogo_jax.spec.records import (
    MAX_ROUND_CANDIDATES,
    DataRef,
    Epoch,
    Genesis,
    Participant,
    Register,
    StateRef,
    VoteCommit,
    read_record,
)
from pogo_jax.spec.sealed import key_hash
from pogo_jax.spec.verdict import own_verdict

MAX_SKEW_MS = 5_000  # how far the beacon's clock may trail the node's signed close time
BARRING = {"EQUIVOCATION", "REPLAYED_UPDATE", "FRAUD_CONFIRMED", "FALSE_CLAIM"}  # provable faults: barred for good

PHASES = ("waiting", "submit", "beacon", "proof", "commit", "reveal", "void", "closed")
SEALED_OK = "OK"  # the node's annotation of a reveal whose shard opened to the committed plaintext
SEALED_FAILURES = ("NO_KEY", "WRONG_KEY", "BAD_SHARD", "NO_BEACON")  # the round closes empty, nobody slashed


@dataclass
class Candidate:
    header: Signed[Header]
    seq: int
    at: int
    update_sha256: bytes
    bundle_sha256: bytes | None = None
    bundle_at: int | None = None
    bundle_seq: int | None = None
    bundle_entry: bytes | None = None  # hash of the log entry that recorded the bundle: every vote names it
    reported: tuple[float, float] | None = None  # the bundle's (loss_prev, loss_next), from its note
    votes: dict[bytes, Signed[Attestation]] = field(default_factory=dict)  # verifier -> light or revealed full vote
    commits: dict[bytes, Signed[VoteCommit]] = field(default_factory=dict)  # verifier -> its full-vote commitment
    status: str = "pending"
    reason: str = ""
    improvement: Fraction | None = None  # mean of the median paired differences
    measurement: Measurement | None = None
    paid: tuple[bytes, ...] = ()  # verifiers paid for their votes on it
    reward: int = 0

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def miner(self) -> bytes:
        return self.header.body.miner_key


@dataclass
class Round:
    height: int
    round: int
    opened_at: int
    parent_hash: bytes
    root_prev: bytes
    data: DataRef
    shard: int | None  # the sealed shard it is judged on; None: the dataset has none left (the round waits)
    candidates: dict[bytes, Candidate] = field(default_factory=dict)  # in log order
    first_at: int | None = None
    submit_close: bytes | None = None  # hash of the node's submit Close record
    submit_close_at: int | None = None
    beacon: bytes | None = None
    beacon_index: int | None = None
    reveal_at: int | None = None
    shard_key: bytes | None = None  # released with the beacon value
    sealed: str | None = None  # SEALED_OK, or why the round's evaluation data is unavailable
    proof_close_at: int | None = None
    commit_close_at: int | None = None
    finalized_at: int | None = None
    winner: bytes | None = None
    loss_prev: dict[bytes, tuple[float, ...]] = field(default_factory=dict)  # full verifier -> its L(prev) per window

    @property
    def phase(self) -> str:
        if self.finalized_at is not None:
            return "closed"
        if self.shard is None:
            return "waiting"
        if self.submit_close is None:
            return "submit"
        if self.beacon is None:
            return "beacon"
        if self.sealed != SEALED_OK:
            return "void"  # the shard did not open: only the empty Finalize remains
        if self.proof_close_at is None:
            return "proof"
        if self.commit_close_at is None:
            return "commit"
        return "reveal"


@dataclass
class Block:
    height: int
    round: int
    header: Signed[Header]
    update_sha256: bytes
    improvement: Fraction
    reward: int

    @property
    def hash(self) -> bytes:
        return self.header.hash


@dataclass
class StakeEvent:
    seq: int
    key: bytes
    delta: int
    reason: str
    height: int | None
    round: int | None
    header_hash: bytes | None


@dataclass(frozen=True)
class BundleNote:
    """The log record of a stored bundle (the bundle itself is in the blob store under ``sha256``), with
    the losses the miner reported in it: what every full accept is held to. Anyone holding the bundle
    re-derives the note from it (``of``), so a node that wrote another one is caught."""

    header_hash: bytes
    sha256: bytes
    size: int
    loss_prev: float
    loss_next: float

    @classmethod
    def of(cls, bundle, data: bytes) -> BundleNote:  # noqa: ANN001 - spec.bundle.Bundle
        return cls(bundle.header_hash, hashlib.sha256(data).digest(), len(data), float(bundle.loss_prev),
                   float(bundle.loss_next))

    def to_bytes(self) -> bytes:
        return canonical({"header_hash": self.header_hash.hex(), "sha256": self.sha256.hex(), "size": self.size,
                          "loss_prev": f32hex(self.loss_prev), "loss_next": f32hex(self.loss_next)})

    @classmethod
    def from_bytes(cls, record: bytes) -> BundleNote:
        what = "bundle note"
        obj = parse_canonical(record, what, 1 << 12)
        exact_keys(obj, {"header_hash", "sha256", "size", "loss_prev", "loss_next"}, what)
        return cls(hexbytes(obj["header_hash"], f"{what}.header_hash", 32),
                   hexbytes(obj["sha256"], f"{what}.sha256", 32), get_int(obj, "size", what, 1, 1 << 40),
                   from_f32hex(obj["loss_prev"], f"{what}.loss_prev"),
                   from_f32hex(obj["loss_next"], f"{what}.loss_next"))


class ChainState:
    """Replay of the log. Build with ``ChainState()`` and ``apply`` every entry in order."""

    def __init__(self) -> None:
        self.genesis: Genesis | None = None
        self.genesis_hash = b""
        self.participants: dict[bytes, Participant] = {}
        self.stakes: dict[bytes, int] = {}
        self.epochs: list[Epoch] = []
        self.pending_epochs: list[Epoch] = []
        self.data: DataRef | None = None  # the dataset of the current round
        self.bases: list[tuple[int, StateRef]] = []  # (height, state) a rebuild restarts from
        self.blocks: list[Block] = []
        self.round: Round | None = None
        self.history: list[Round] = []
        self.root_qs: set[bytes] = set()
        self.shards_used: dict[bytes, int] = {}  # dataset manifest hash -> sealed shards revealed so far
        self.budget_left = 0  # block rewards the current epoch can still issue
        self.seen: dict[bytes, int] = {}  # record hash -> seq (idempotent retries)
        self.beacon_value = b""
        self.beacon_index = 0
        self.events: list[StakeEvent] = []
        self.evidence: list[tuple[int, str, bytes]] = []  # (seq, what, signer)
        self.barred: set[bytes] = set()  # slashed for a provable fault: no further record of theirs counts
        self.by_round: dict[tuple[int, int, bytes], bytes] = {}  # (height, round, miner) -> its candidate
        self.seq = 0
        self.last_hash = GENESIS_PREV
        self.last_at = 0

    # ------------------------------------------------------------------------------- reading
    @property
    def rules(self):  # noqa: ANN201 - ChainRules
        return self.genesis.rules

    @property
    def tip_height(self) -> int:
        return self.blocks[-1].height if self.blocks else 0

    @property
    def tip_hash(self) -> bytes:
        return self.blocks[-1].hash if self.blocks else bytes(32)

    def seq_len(self) -> int:
        v = self.genesis.model.get("seq_len")
        if not isinstance(v, int) or v <= 0:
            raise MalformedInput("genesis model has no positive seq_len")
        return v

    def verifiers(self) -> set[bytes]:
        return {k for k, p in self.participants.items() if p.role == "verifier"}

    def eligible_verifiers(self) -> set[bytes]:
        """Verifiers whose votes can still count (a barred one cannot attest: waiting for it stalls)."""
        return {k for k in self.verifiers() if self.stakes[k] > 0 and k not in self.barred}

    def find(self, header_hash: bytes) -> tuple[Round, Candidate] | None:
        for r in [*self.history, self.round]:
            if r is not None and header_hash in r.candidates:
                return r, r.candidates[header_hash]
        return None

    def context(self, header_hash: bytes | None = None) -> BlockContext:
        """The ``BlockContext`` of the current round, or of the candidate ``header_hash`` (any round)."""
        if header_hash is None:
            r, c = self.round, None
        else:
            found = self.find(header_hash)
            if found is None:
                raise Rejected("UNKNOWN_HEADER", "no such candidate on this chain")
            r, c = found
        ctx = BlockContext(rules=self.rules, layout=self.genesis.layout, seq_len=self.seq_len(), height=r.height,
                           round=r.round, parent_hash=r.parent_hash, root_prev=r.root_prev, data=r.data,
                           n_windows=r.data.sealed.n_windows(self.seq_len()), beacon=r.beacon,
                           chain_id=self.genesis.chain_id, shard=r.shard, shard_key=r.shard_key)
        return ctx if c is None else ctx.for_candidate(c.header, c.update_sha256, c.bundle_sha256, c.bundle_entry)

    def base_for(self, height: int) -> tuple[int, StateRef]:
        """The state a rebuild of the confirmed state at ``height`` starts from, and its height."""
        best = self.bases[0]
        for h, ref in self.bases:
            if h <= height:
                best = (h, ref)
        return best

    def root_at(self, height: int) -> bytes:
        """Root of the state a block at ``height + 1`` builds on."""
        h0, ref = self.base_for(height)
        roots = [ref.root] + [b.header.body.root_next for b in self.blocks if h0 < b.height <= height]
        return roots[-1]

    # ------------------------------------------------------------------------------ applying
    def apply(self, entry: Entry) -> str:
        """Check and apply one entry; returns what it was ("admitted", "evidence", ...). Raises
        Rejected / MalformedInput, with the state unchanged, for an entry the rules refuse."""
        self._follows(entry)
        handler = getattr(self, f"_apply_{entry.kind}")
        result = handler(entry)
        self.seq, self.last_hash, self.last_at = entry.seq + 1, entry.hash, entry.at
        return result

    def _follows(self, entry: Entry) -> None:
        """The checks every entry passes before its record is read: its place in the log, its hash, its time."""
        if entry.seq != self.seq or entry.prev != self.last_hash:
            raise MalformedInput(f"log entry {entry.seq} does not follow entry {self.seq - 1}")
        entry.check()
        if entry.at < self.last_at:
            raise MalformedInput(f"log entry {entry.seq}: time goes backwards")
        if (self.genesis is None) != (entry.kind == "genesis"):
            raise MalformedInput("the log starts with the genesis record and has only one")
        if entry.extra and entry.kind not in ("candidate", "reveal"):
            raise MalformedInput(f"log entry {entry.seq}: a {entry.kind} entry carries no node annotation")

    def copy(self) -> ChainState:
        return copy.deepcopy(self)

    def _stake(self, seq: int, key: bytes, delta: int, reason: str, rnd: Round | None, hh: bytes | None) -> None:
        if delta == 0:
            return
        self.stakes[key] += delta
        self.events.append(StakeEvent(seq, key, delta, reason, rnd.height if rnd else None,
                                      rnd.round if rnd else None, hh))

    def _slash(self, seq: int, key: bytes, frac: Fraction, reason: str, rnd: Round | None, hh: bytes | None) -> None:
        self._stake(seq, key, -self.rules.slashed(self.stakes[key], frac), reason, rnd, hh)
        if reason in BARRING:
            self.barred.add(key)

    def _once(self, record_hash: bytes) -> None:
        if record_hash in self.seen:
            raise Rejected("DUPLICATE", f"this record is already entry {self.seen[record_hash]}")

    def _signed(self, signed: Signed, signer: bytes, what: str) -> None:
        if signed.body.signer != signer:
            raise Rejected("WRONG_SIGNER", f"{what} is not signed by the key the chain names for it")
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", f"{what} signature does not verify")
        if signed.body.chain_id != self.genesis.chain_id:
            raise Rejected("WRONG_CHAIN", f"{what} is for chain {signed.body.chain_id!r}")

    def _open_round(self, height: int, attempt: int, at: int) -> None:
        root_prev = self.root_at(height - 1)
        for ep in self.pending_epochs:  # epochs recorded during the last round take effect now
            self.data = ep.data
            self.budget_left = self.rules.epoch_budget
            if ep.state is not None:
                self.bases.append((height - 1, ep.state))
                root_prev = ep.state.root
        self.pending_epochs = []
        used = self.shards_used.get(self.data.manifest_hash, 0)
        shard = used if used < self.data.sealed.n else None
        self.round = Round(height, attempt, at, self.tip_hash, root_prev, self.data, shard)

    def _apply_genesis(self, entry: Entry) -> str:
        signed = read_record(entry.record, "genesis")
        g = signed.body
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", "genesis signature does not verify under its governance key")
        seq_len = g.model.get("seq_len")
        if not isinstance(seq_len, int) or seq_len <= 0:
            raise MalformedInput("genesis model has no positive seq_len")
        check_chain_dataset(g.data.manifest, seq_len, g.rules.m_windows, "genesis dataset",
                            g.model.get("vocab_size", 256))
        self.genesis, self.genesis_hash = g, signed.hash
        self.budget_left = g.rules.epoch_budget
        for p in g.participants:
            self.participants[p.key] = p
            self.stakes[p.key] = p.stake
        self.data = g.data
        self.bases = [(0, g.state)]
        self.seen[signed.hash] = entry.seq
        self._open_round(1, 1, entry.at)
        return "admitted"

    def _apply_register(self, entry: Entry) -> str:
        signed = read_record(entry.record, "register")
        self._once(signed.hash)
        self._signed(signed, self.genesis.governance_key, "registration")
        p: Register = signed.body
        if p.participant.key in self.participants or p.participant.key in (
                self.genesis.node_key, self.genesis.beacon_key, self.genesis.governance_key):
            raise Rejected("ALREADY_REGISTERED", "this key already has a role on this chain")
        self.participants[p.participant.key] = p.participant
        self.stakes[p.participant.key] = p.participant.stake
        self.seen[signed.hash] = entry.seq
        return "admitted"

    def _apply_epoch(self, entry: Entry) -> str:
        signed = read_record(entry.record, "epoch")
        self._once(signed.hash)
        self._signed(signed, self.genesis.governance_key, "epoch record")
        ep: Epoch = signed.body
        if ep.epoch != len(self.epochs) + 1:
            raise Rejected("WRONG_EPOCH", f"epoch {ep.epoch} is not the next one ({len(self.epochs) + 1})")
        try:
            check_chain_dataset(ep.data.manifest, self.seq_len(), self.rules.m_windows, "the epoch dataset",
                                self.genesis.model.get("vocab_size", 256))
        except MalformedInput as e:
            raise Rejected("BAD_DATASET", str(e)) from None
        self.epochs.append(ep)
        self.pending_epochs.append(ep)
        self.seen[signed.hash] = entry.seq
        r = self.round
        if r.phase == "waiting":  # no round could open for want of shards: it opens now, on the epoch's data
            self._open_round(r.height, r.round, entry.at)
        return "admitted"

    def _apply_candidate(self, entry: Entry) -> str:
        signed = read_signed_header(entry.record)
        verdict = self.check_candidate(signed, entry.at)
        r = self.round
        if verdict in ("EQUIVOCATION", "REPLAYED_UPDATE"):
            if entry.extra:
                raise MalformedInput("evidence entries carry no node annotation")
            self.seen[signed.hash] = entry.seq
            self.evidence.append((entry.seq, verdict, signed.body.miner_key))
            self._slash(entry.seq, signed.body.miner_key, self.rules.slash_fraction, verdict, r, signed.hash)
            return "evidence"
        exact_keys(entry.extra, {"update_sha256"}, "candidate annotation")
        sha = hexbytes(get_field(entry.extra, "update_sha256", str, "candidate annotation"), "update_sha256", 32)
        r.candidates[signed.hash] = Candidate(signed, entry.seq, entry.at, sha)
        self.by_round[(r.height, r.round, signed.body.miner_key)] = signed.hash
        if r.first_at is None:
            r.first_at = entry.at
        self.root_qs.add(signed.body.root_q)
        self.seen[signed.hash] = entry.seq
        return "admitted"

    def check_candidate(self, signed: Signed[Header], at: int) -> str:
        """What a signed header would be if recorded now: "ok", or slashable evidence ("EQUIVOCATION",
        "REPLAYED_UPDATE"); raises Rejected for anything refused (nothing is recorded then).

        Evidence counts only for a header that could have been a candidate here (PROTOCOL 13): this
        chain, a round that is open or past, that round's parent, the chain's layout and the round's
        dataset. Those checks come first, so a header copied from another chain, or made up for a round
        that never was, proves nothing against its signer."""
        h = signed.body
        if h.version != HEADER_VERSION:
            raise Rejected("BAD_VERSION", f"header version {h.version}, the chain reads {HEADER_VERSION}")
        self._signed(signed, h.miner_key, "header")
        self._active(h.miner_key, "miner")
        self._once(signed.hash)
        rnd = self.round_of(h.height, h.round)
        if rnd is None:
            r = self.round
            raise Rejected("WRONG_ROUND", f"header is for round ({h.height}, {h.round}); the open round is "
                                          f"({r.height}, {r.round})")
        if h.parent_hash != rnd.parent_hash or h.root_prev != rnd.root_prev:
            raise Rejected("WRONG_PARENT", "parent_hash / root_prev are not the round's confirmed tip")
        lay = self.genesis.layout
        if (h.layout_hash, h.leaf_size, h.group_size, h.n_leaves) != (lay.layout_hash(), lay.leaf_size,
                                                                      lay.group_size, lay.n_leaves):
            raise Rejected("LAYOUT_MISMATCH", "layout_hash / leaf_size / group_size / n_leaves differ from the chain's")
        if h.data_root != rnd.data.data_root:
            raise Rejected("WRONG_DATA", "data_root is not the round's dataset")
        first = self.by_round.get((h.height, h.round, h.miner_key))
        if first is not None and first != signed.hash:
            return "EQUIVOCATION"  # a second header for a round it already has one in, whenever it is seen
        r = self.round
        if rnd is not r:
            raise Rejected("WRONG_ROUND", f"header is for round ({h.height}, {h.round}); the open round is "
                                          f"({r.height}, {r.round})")
        if r.phase == "waiting":
            raise Rejected("NO_EVAL_DATA", "the round's dataset has no unused sealed evaluation shard: no round is "
                                           "judged until a governance epoch adds some")
        if r.phase != "submit" or (r.first_at is not None and at > r.first_at + self.rules.submit_window_ms):
            raise Rejected("WINDOW_CLOSED", f"the submission window of round ({r.height}, {r.round}) is closed")
        if h.root_q in self.root_qs:
            return "REPLAYED_UPDATE"
        if len(r.candidates) >= MAX_ROUND_CANDIDATES:
            raise Rejected("ROUND_FULL", f"round ({r.height}, {r.round}) already has {MAX_ROUND_CANDIDATES} candidates")
        return "ok"

    def round_of(self, height: int, attempt: int) -> Round | None:
        """The open round or a finished one with this (height, attempt); None for a round that never was."""
        for r in [self.round, *reversed(self.history)]:
            if r is not None and (r.height, r.round) == (height, attempt):
                return r
        return None

    def _node_record(self, entry: Entry, kind: str):  # noqa: ANN202 - the body
        signed = read_record(entry.record, kind)
        self._signed(signed, self.genesis.node_key, f"node {kind} record")
        b = signed.body
        if b.at != entry.at or b.prev != entry.prev:
            raise MalformedInput(f"node {kind} record: its time or log position differs from the entry's")
        r = self.round
        if (b.height, b.round) != (r.height, r.round):
            raise Rejected("WRONG_ROUND", f"{kind} record for ({b.height}, {b.round}), the open round is "
                                          f"({r.height}, {r.round})")
        return signed, b

    def _apply_close(self, entry: Entry) -> str:
        signed, c = self._node_record(entry, "close")
        r = self.round
        if (c.data, c.shard) != (r.data.manifest_hash, r.shard):
            raise Rejected("BAD_CLOSE", "the close record does not name the round's dataset and sealed shard")
        if c.window == "submit":
            if r.phase != "submit" or r.first_at is None:
                raise Rejected("NOT_DUE", "no submission window to close")
            if c.at < r.first_at + self.rules.submit_window_ms:
                raise Rejected("NOT_DUE", "the submission window is still open")
            if tuple(r.candidates) != c.candidates:
                raise Rejected("BAD_CLOSE", "the close record does not list the round's candidates")
            r.submit_close, r.submit_close_at = signed.hash, c.at
            return "admitted"
        if c.window == "commit":
            if r.phase != "commit":
                raise Rejected("NOT_DUE", "no commit window to close")
            if c.candidates:
                raise Rejected("BAD_CLOSE", "a commit close lists no candidates")
            if not self.commit_close_due(c.at):
                raise Rejected("NOT_DUE", "the commit window is still open")
            r.commit_close_at = c.at
            return "admitted"
        if r.phase != "proof":
            raise Rejected("NOT_DUE", "no proof window to close")
        missing = tuple(h for h, cand in r.candidates.items() if cand.bundle_sha256 is None)
        if not missing == c.candidates:
            raise Rejected("BAD_CLOSE", "the close record does not list the withheld candidates")
        if missing and c.at < r.reveal_at + self.rules.prove_window_ms:
            raise Rejected("NOT_DUE", "the proof window is still open")
        r.proof_close_at = c.at
        for hh in missing:
            cand = r.candidates[hh]
            cand.status, cand.reason = "withheld", "NO_BUNDLE"
            self._slash(entry.seq, cand.miner, self.rules.withhold_fraction, "WITHHELD", r, hh)
        return "admitted"

    def _apply_reveal(self, entry: Entry) -> str:
        """The beacon's value and the round's shard key. The key is checked here against the manifest's
        key hash; whether the shard then opens to the committed plaintext is the node's annotation
        (``extra["sealed"]``), which every role that holds the dataset and ``pogo audit`` re-derive."""
        signed = read_record(entry.record, "reveal")
        self._signed(signed, self.genesis.beacon_key, "beacon reveal")
        v = signed.body
        r = self.round
        if (v.height, v.round) != (r.height, r.round) or r.phase != "beacon":
            raise Rejected("NOT_DUE", f"no beacon is due for round ({v.height}, {v.round})")
        if v.close != r.submit_close:
            raise Rejected("BAD_REVEAL", "the reveal was not released against this round's submit close record")
        if v.at + MAX_SKEW_MS < r.submit_close_at:
            raise Rejected("BAD_REVEAL", "the beacon revealed before the node's close time")
        if v.index != self.beacon_index + 1 or v.index > self.genesis.beacon_length:
            raise Rejected("BAD_REVEAL", f"beacon index {v.index}, expected {self.beacon_index + 1}")
        if not verify_next(self.beacon_value or self.genesis.beacon_anchor, v.value):
            raise Rejected("BAD_REVEAL", "value is not the next link of the beacon's hash chain")
        if (v.data, v.shard) != (r.data.manifest_hash, r.shard):
            raise Rejected("BAD_REVEAL", "the reveal releases another dataset's or another round's shard")
        entry_shard = r.data.sealed.shards[r.shard]
        if v.shard_key is None:
            sealed = "NO_KEY"
        elif key_hash(v.shard_key) != entry_shard.key_hash:
            sealed = "WRONG_KEY"
        else:
            exact_keys(entry.extra, {"sealed"}, "reveal annotation")
            sealed = get_field(entry.extra, "sealed", str, "reveal annotation")
            if sealed not in (SEALED_OK, "BAD_SHARD"):
                raise MalformedInput("reveal annotation: sealed is OK or BAD_SHARD")
        if sealed in ("NO_KEY", "WRONG_KEY") and entry.extra:
            raise MalformedInput("a reveal without a usable key carries no annotation")
        self.beacon_index, self.beacon_value = v.index, v.value
        self.shards_used[r.data.manifest_hash] = self.shards_used.get(r.data.manifest_hash, 0) + 1
        r.beacon, r.beacon_index, r.reveal_at = v.value, v.index, entry.at
        r.shard_key = v.shard_key if sealed == SEALED_OK else None
        r.sealed = sealed
        return "admitted"

    def check_bundle(self, header_hash: bytes, sha: bytes, at: int) -> Candidate:
        """The candidate a bundle with this SHA-256 would answer if stored now; Rejected otherwise. The
        node asks before it parses the whole bundle or writes a byte of it."""
        r = self.round
        cand = r.candidates.get(header_hash)
        if cand is None:
            raise Rejected("UNKNOWN_HEADER", "the bundle answers no candidate of the open round")
        if cand.bundle_sha256 is not None:
            raise Rejected("DUPLICATE" if cand.bundle_sha256 == sha else "BUNDLE_FIXED",
                           "this candidate's bundle is already stored; published bundles never change")
        if r.phase != "proof" or at > r.reveal_at + self.rules.prove_window_ms:
            raise Rejected("WINDOW_CLOSED", "the proof window of this round is not open")
        return cand

    def _apply_bundle(self, entry: Entry) -> str:
        note = BundleNote.from_bytes(entry.record)
        sha = note.sha256
        cand = self.check_bundle(note.header_hash, sha, entry.at)
        cand.bundle_sha256, cand.bundle_at, cand.bundle_seq, cand.bundle_entry = sha, entry.at, entry.seq, entry.hash
        cand.reported = (note.loss_prev, note.loss_next)
        return "admitted"

    def _active(self, key: bytes, role: str) -> None:
        """``key`` is registered as ``role`` and neither slashed to zero nor barred."""
        p = self.participants.get(key)
        if p is None or p.role != role:
            raise Rejected(f"UNREGISTERED_{role.upper()}", f"key {key.hex()[:16]}... is not a registered {role}")
        if self.stakes[key] <= 0 or key in self.barred:
            raise Rejected(f"SLASHED_{role.upper()}", f"{role} {key.hex()[:16]}... has been slashed")

    def _voter(self, signed: Signed, key: bytes, header_hash: bytes, what: str) -> tuple[Round, Candidate] | None:
        """Checks that do not depend on the voter's earlier records (PROTOCOL 13): this chain, a registered
        and unslashed verifier, a record not seen before; then the candidate it names (any round), if any."""
        self._signed(signed, key, what)
        self._active(key, "verifier")
        self._once(signed.hash)
        return self.find(header_hash)

    def _open_candidate(self, found: tuple[Round, Candidate] | None, height: int, rnd: int) -> tuple[Round, Candidate]:
        r = self.round
        if found is None or found[0] is not r or (height, rnd) != (r.height, r.round):
            raise Rejected("UNKNOWN_HEADER", "the vote names no candidate of the open round")
        cand = found[1]
        if cand.bundle_sha256 is None:
            raise Rejected("NO_BUNDLE", "this candidate has no stored bundle to vote on")
        return r, cand

    def check_commit(self, signed: Signed[VoteCommit], at: int) -> tuple[Round, Candidate, str]:
        """A full verifier's commitment: "ok", or "EQUIVOCATION" for a second, different one on a candidate."""
        c = signed.body
        found = self._voter(signed, c.verifier_key, c.header_hash, "vote commitment")
        if found is not None:
            prior = found[1].commits.get(c.verifier_key)
            if prior is not None and prior.hash != signed.hash and (c.height, c.round) == (found[0].height,
                                                                                           found[0].round):
                return found[0], found[1], "EQUIVOCATION"
        r, cand = self._open_candidate(found, c.height, c.round)
        if r.phase not in ("proof", "commit") or (
                r.proof_close_at is not None and at > r.proof_close_at + self.rules.attest_window_ms):
            raise Rejected("WINDOW_CLOSED", "the commit window of this round is closed")
        if c.verifier_key in cand.votes:
            raise Rejected("ALREADY_ATTESTED", "this verifier already voted on this candidate")
        return r, cand, "ok"

    def _apply_commit(self, entry: Entry) -> str:
        signed = read_record(entry.record, "commit")
        r, cand, verdict = self.check_commit(signed, entry.at)
        self.seen[signed.hash] = entry.seq
        key = signed.body.verifier_key
        if verdict == "EQUIVOCATION":
            self.evidence.append((entry.seq, verdict, key))
            self._slash(entry.seq, key, self.rules.slash_fraction, verdict, r, cand.hash)
            return "evidence"
        cand.commits[key] = signed
        return "admitted"

    def check_attestation(self, signed: Signed[Attestation], at: int) -> tuple[Round, Candidate, str]:
        a = signed.body
        found = self._voter(signed, a.verifier_key, a.header_hash, "attestation")
        if found is not None and (a.height, a.round) == (found[0].height, found[0].round):
            # both verdicts signed for one candidate: evidence whenever it is seen
            prior = found[1].votes.get(a.verifier_key)
            if prior is not None and prior.body.verdict != a.verdict:
                return found[0], found[1], "EQUIVOCATION"
        r, cand = self._open_candidate(found, a.height, a.round)
        if a.evidence != cand.bundle_sha256:
            raise Rejected("EVIDENCE_MISMATCH", "evidence is not the SHA-256 of the bundle the chain stored")
        if a.bundle_entry != cand.bundle_entry:
            raise Rejected("WRONG_BUNDLE_ENTRY", "the vote names another log entry for the bundle than the one "
                                                 "that recorded it")
        if a.verifier_key in cand.votes:
            raise Rejected("ALREADY_ATTESTED", "this verifier already voted on this candidate")
        if a.tier == "light":
            if a.verifier_key in cand.commits:
                raise Rejected("ALREADY_ATTESTED", "this verifier committed a full vote on this candidate")
            if r.phase not in ("proof", "commit", "reveal") or self._reveal_over(at):
                raise Rejected("WINDOW_CLOSED", "the voting windows of this round are closed")
            return r, cand, "ok"
        commit = cand.commits.get(a.verifier_key)
        if commit is None:
            raise Rejected("NOT_COMMITTED", "a full vote is revealed only against its commitment (post it first)")
        if r.phase != "reveal" or self._reveal_over(at):
            raise Rejected("WINDOW_CLOSED" if r.phase == "reveal" else "NOT_DUE",
                           "full votes are revealed in the reveal window, after the commit window closes")
        if commit.body.vote != signed.hash:
            raise Rejected("REVEAL_MISMATCH", "this vote is not the one its verifier committed to")
        if a.measured:
            self._check_full_losses(a, r, cand)
        return r, cand, "ok"

    def _reveal_over(self, at: int) -> bool:
        r = self.round
        return r.commit_close_at is not None and at > r.commit_close_at + self.rules.reveal_window_ms

    def _check_full_losses(self, a: Attestation, r: Round, cand: Candidate) -> None:
        """A measured full vote must be what a full verifier can have measured: one loss per window of the
        round; one L(prev) per window per verifier across the round's candidates (they all start from the
        same state on the same windows); and the verdict its own numbers imply (spec.verdict), so that an
        accept or a reject is never a word without data behind it."""
        m = min(self.rules.m_windows, r.data.sealed.n_windows(self.seq_len()))
        if len(a.losses_prev) != m:
            raise Rejected("INCONSISTENT_LOSS", f"a full vote carries {len(a.losses_prev)} windows, the round has {m}")
        prior = r.loss_prev.get(a.verifier_key)
        if prior is not None and a.losses_prev != prior:
            raise Rejected("INCONSISTENT_LOSS", "this verifier measured other L(prev) values for another candidate "
                                                "of this round")
        rules = self.rules
        want = own_verdict(a.losses_prev, a.losses_next, cand.reported, rules.delta, rules.lcb_t, rules.loss_tolerance)
        if a.reason != want:
            raise Rejected("INCONSISTENT_LOSS", f"this vote's own numbers say {want}, the vote says {a.reason}")

    def _apply_attestation(self, entry: Entry) -> str:
        signed = read_signed_attestation(entry.record)
        r, cand, verdict = self.check_attestation(signed, entry.at)
        self.seen[signed.hash] = entry.seq
        if verdict == "EQUIVOCATION":
            key = signed.body.verifier_key
            self.evidence.append((entry.seq, verdict, key))
            self._slash(entry.seq, key, self.rules.slash_fraction, verdict, r, cand.hash)
            return "evidence"
        cand.votes[signed.body.verifier_key] = signed
        if signed.body.measured:
            r.loss_prev.setdefault(signed.body.verifier_key, signed.body.losses_prev)
        return "admitted"

    def ballots(self) -> list[Ballot]:
        r = self.round
        return [Ballot(h, c.miner, tuple(v.body for v in c.votes.values()), c.status == "withheld", c.reported,
                       tuple(c.commits)) for h, c in r.candidates.items()]

    def claims(self) -> list[tuple[bytes, str]]:
        """The (candidate, tier) pairs the finalizer must re-check before it may finalize."""
        return claims(self.ballots()) if self.round.phase == "reveal" else []

    def _bundled(self) -> list[Candidate]:
        return [c for c in self.round.candidates.values() if c.status != "withheld"]

    def commit_close_due(self, at: int) -> bool:
        """The commit window ends ``attest_window_ms`` after the proof close, or once every eligible verifier
        voted (light) or committed (full) on every candidate with a bundle."""
        r = self.round
        if r.phase != "commit":
            return False
        if at >= r.proof_close_at + self.rules.attest_window_ms:
            return True
        need = self.eligible_verifiers()
        return all(need <= set(c.votes) | set(c.commits) for c in self._bundled())

    def finalize_due(self, at: int) -> bool:
        """Finalize after the reveal window (``reveal_window_ms``, or once every commitment is revealed); at
        once for a round whose shard did not open; and for a round whose beacon never came, once
        ``prove_window_ms`` has passed since the submit close (it closes empty, like a beacon outage)."""
        r = self.round
        if r.phase == "void":
            return True
        if r.phase == "beacon":
            return at >= r.submit_close_at + self.rules.prove_window_ms
        if r.phase != "reveal":
            return False
        if at >= r.commit_close_at + self.rules.reveal_window_ms:
            return True
        need = self.eligible_verifiers()  # a barred verifier's commitment is not waited for
        return all(set(c.commits) & need <= {k for k, v in c.votes.items() if v.body.tier == "full"}
                   for c in self._bundled())

    def check_finalize(self, entry: Entry):  # noqa: ANN201 - the Finalize body
        """The finalize ``entry`` checked against the rules without applying it: the node's signature, its place
        in the log, a round due to close, and re-checks naming exactly the round's objective claims. Everyone
        who re-does the re-checks (``ChainView``, ``pogo audit``) asks this first, so a record naming a withheld
        or unknown candidate is refused as such rather than re-checked."""
        self._follows(entry)
        if entry.kind != "finalize":
            raise MalformedInput(f"log entry {entry.seq}: a {entry.kind} entry is not a finalize record")
        _, f = self._node_record(entry, "finalize")
        if not self.finalize_due(f.at):
            raise Rejected("NOT_DUE", "the round's windows are still open")
        want = self.claims()
        got = [(x.header_hash, x.tier) for x in f.rechecks]
        if got != want:
            raise Rejected("BAD_FINALIZE", "the finalize record does not re-check exactly the round's objective claims")
        return f

    def _apply_finalize(self, entry: Entry) -> str:
        f = self.check_finalize(entry)
        r = self.round
        if r.phase in ("void", "beacon"):  # no evaluation data: the round closes empty, nobody slashed
            r.sealed = r.sealed or "NO_BEACON"
            for cand in r.candidates.values():
                if cand.status == "pending":
                    cand.status, cand.reason = "void", r.sealed
            return self._close_round(r, f.at, None)
        fails = {(x.header_hash, x.tier): x.fails for x in f.rechecks}
        d = decide(self.ballots(), self.stakes, self.verifiers(), self.rules, fails, self.barred, self.budget_left)
        for key, delta, why, hh in d.stake_changes:
            self._stake(entry.seq, key, delta, why, r, hh)
            if why in BARRING:
                self.barred.add(key)
        for hh, cand in r.candidates.items():
            if hh in d.status:
                cand.status, cand.reason = d.status[hh], d.reason[hh]
                cand.improvement = d.improvement.get(hh)
                cand.measurement = d.measured.get(hh)
                cand.paid = d.paid.get(hh, ())
        if d.winner is not None:
            cand = r.candidates[d.winner]
            cand.reward = d.reward
            self.budget_left -= d.reward
            self.blocks.append(Block(r.height, r.round, cand.header, cand.update_sha256, d.improvement[d.winner],
                                     d.reward))
        return self._close_round(r, f.at, d.winner)

    def _close_round(self, r: Round, at: int, winner: bytes | None) -> str:
        r.finalized_at, r.winner = at, winner
        self.history.append(r)
        if winner is not None:
            self._open_round(r.height + 1, 1, at)
        else:
            self._open_round(r.height, r.round + 1, at)
        return "admitted"


def sealed_annotation(st: ChainState, v, dataset) -> dict:  # noqa: ANN001 - Reveal body, DataRef -> Dataset
    """The annotation a reveal entry must carry in state ``st`` (before it is applied): ``{"sealed": "OK"}``
    when its key is the committed one and the round's shard opens under it to the committed plaintext,
    ``{"sealed": "BAD_SHARD"}`` when the key is right but the stored shard does not open, ``{}`` when the
    key is missing or wrong (the rules see that from the manifest alone). ``dataset(ref)`` opens the
    recorded dataset file; the node, ``pogo audit`` and every full verifier compute this the same way."""
    r = st.round
    if v.shard_key is None or r.shard is None or v.shard != r.shard or v.data != r.data.manifest_hash:
        return {}
    if key_hash(v.shard_key) != r.data.sealed.shards[r.shard].key_hash:
        return {}
    try:
        dataset(r.data).open_shard(r.shard, v.shard_key)
    except MalformedInput:
        return {"sealed": "BAD_SHARD"}
    return {"sealed": SEALED_OK}


def replay(entries: list[Entry]) -> ChainState:
    """The state a log implies (raises on the first entry the rules refuse)."""
    st = ChainState()
    for e in entries:
        st.apply(e)
    return st
