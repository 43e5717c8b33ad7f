"""The chain's state as a pure function of its log: ``ChainState.apply(entry)`` is every consensus rule.

The node appends an entry only if ``apply`` accepts it, and everyone who replays the log (the
roles deriving their ``BlockContext``, ``pogo audit``) runs the same function, so an outcome is
never a number some process asserts. ``apply`` checks everything before it changes anything: a
refused entry leaves the state as it was.

A round (h, a) tries to extend the confirmed tip at h - 1 and moves through four windows on the
node's clock (entry ``at``, ms): *submit* (candidates: signed header + the whole update, admitted
only within ``submit_window_ms`` of the first one), *beacon* (after the node's signed submit
``Close``, the beacon's ``Reveal``), *proof* (bundles, until ``prove_window_ms`` after the reveal
or every candidate answered; then the proof ``Close`` names the withheld), *attest* (attestations
naming the recorded bundle hash, until ``attest_window_ms`` after the proof close or every
registered verifier attested every bundle; then ``Finalize``). Epochs recorded during a round take
effect when the next round opens.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from fractions import Fraction

from pogo_jax.chain.beacon import verify_next
from pogo_jax.chain.decide import Ballot, claims, decide
from pogo_jax.chain.log import GENESIS_PREV, Entry
from pogo_jax.errors import MalformedInput, Rejected
from pogo_jax.spec.attestation import Attestation, read_signed_attestation
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.dataset import n_windows_of
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
    read_record,
)

MAX_SKEW_MS = 5_000  # how far the beacon's clock may trail the node's signed close time
BARRING = {"EQUIVOCATION", "REPLAYED_UPDATE", "FRAUD_CONFIRMED", "FALSE_CLAIM"}  # provable faults: barred for good

PHASES = ("submit", "beacon", "proof", "attest")


@dataclass
class Candidate:
    header: Signed[Header]
    seq: int
    at: int
    update_sha256: bytes
    bundle_sha256: bytes | None = None
    bundle_at: int | None = None
    bundle_seq: int | None = None
    reported: tuple[float, float] | None = None  # the bundle's (loss_prev, loss_next), from its note
    votes: dict[bytes, Signed[Attestation]] = field(default_factory=dict)  # verifier -> first attestation
    status: str = "pending"
    reason: str = ""
    improvement: Fraction | None = None
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
    candidates: dict[bytes, Candidate] = field(default_factory=dict)  # in log order
    first_at: int | None = None
    submit_close: bytes | None = None  # hash of the node's submit Close record
    submit_close_at: int | None = None
    beacon: bytes | None = None
    beacon_index: int | None = None
    reveal_at: int | None = None
    proof_close_at: int | None = None
    finalized_at: int | None = None
    winner: bytes | None = None
    loss_prev: dict[bytes, float] = field(default_factory=dict)  # full verifier -> the L(theta_prev) it measured

    @property
    def phase(self) -> str:
        if self.finalized_at is not None:
            return "closed"
        if self.submit_close is None:
            return "submit"
        if self.beacon is None:
            return "beacon"
        if self.proof_close_at is None:
            return "proof"
        return "attest"


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
                           n_windows=n_windows_of(r.data.manifest, self.seq_len()), beacon=r.beacon)
        return ctx if c is None else ctx.for_candidate(c.header, c.update_sha256, c.bundle_sha256)

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
        if entry.seq != self.seq or entry.prev != self.last_hash:
            raise MalformedInput(f"log entry {entry.seq} does not follow entry {self.seq - 1}")
        entry.check()
        if entry.at < self.last_at:
            raise MalformedInput(f"log entry {entry.seq}: time goes backwards")
        if (self.genesis is None) != (entry.kind == "genesis"):
            raise MalformedInput("the log starts with the genesis record and has only one")
        handler = getattr(self, f"_apply_{entry.kind}")
        result = handler(entry)
        self.seq, self.last_hash, self.last_at = entry.seq + 1, entry.hash, entry.at
        return result

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
            if ep.state is not None:
                self.bases.append((height - 1, ep.state))
                root_prev = ep.state.root
        self.pending_epochs = []
        self.round = Round(height, attempt, at, self.tip_hash, root_prev, self.data)

    def _apply_genesis(self, entry: Entry) -> str:
        signed = read_record(entry.record, "genesis")
        g = signed.body
        if not signed.verify():
            raise Rejected("BAD_SIGNATURE", "genesis signature does not verify under its governance key")
        if g.model.get("seq_len") is None or n_windows_of(g.data.manifest, g.model["seq_len"]) < 1:
            raise MalformedInput("genesis: the dataset's eval split holds no window of the model's seq_len")
        self.genesis, self.genesis_hash = g, signed.hash
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
        if n_windows_of(ep.data.manifest, self.seq_len()) < 1:
            raise Rejected("BAD_DATASET", "the epoch dataset's eval split holds no window of the model's seq_len")
        self.epochs.append(ep)
        self.pending_epochs.append(ep)
        self.seen[signed.hash] = entry.seq
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
        "REPLAYED_UPDATE"); raises Rejected for anything refused (nothing is recorded then)."""
        h = signed.body
        if h.version != HEADER_VERSION:
            raise Rejected("BAD_VERSION", f"header version {h.version}, the chain reads {HEADER_VERSION}")
        self._signed(signed, h.miner_key, "header")
        self._active(h.miner_key, "miner")
        self._once(signed.hash)
        first = self.by_round.get((h.height, h.round, h.miner_key))
        if first is not None and first != signed.hash:
            return "EQUIVOCATION"  # a second header for a round it already has one in, whenever it is seen
        r = self.round
        if (h.height, h.round) != (r.height, r.round):
            raise Rejected("WRONG_ROUND", f"header is for round ({h.height}, {h.round}); the open round is "
                                          f"({r.height}, {r.round})")
        if r.phase != "submit" or (r.first_at is not None and at > r.first_at + self.rules.submit_window_ms):
            raise Rejected("WINDOW_CLOSED", f"the submission window of round ({r.height}, {r.round}) is closed")
        if h.root_q in self.root_qs:
            return "REPLAYED_UPDATE"
        if len(r.candidates) >= MAX_ROUND_CANDIDATES:
            raise Rejected("ROUND_FULL", f"round ({r.height}, {r.round}) already has {MAX_ROUND_CANDIDATES} candidates")
        if h.parent_hash != r.parent_hash or h.root_prev != r.root_prev:
            raise Rejected("WRONG_PARENT", "parent_hash / root_prev are not the round's confirmed tip")
        lay = self.genesis.layout
        if (h.layout_hash, h.leaf_size, h.group_size, h.n_leaves) != (lay.layout_hash(), lay.leaf_size,
                                                                      lay.group_size, lay.n_leaves):
            raise Rejected("LAYOUT_MISMATCH", "layout_hash / leaf_size / group_size / n_leaves differ from the chain's")
        if h.data_root != r.data.data_root:
            raise Rejected("WRONG_DATA", "data_root is not the round's dataset")
        return "ok"

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
        if c.window == "submit":
            if r.phase != "submit" or r.first_at is None:
                raise Rejected("NOT_DUE", "no submission window to close")
            if c.at < r.first_at + self.rules.submit_window_ms:
                raise Rejected("NOT_DUE", "the submission window is still open")
            if tuple(r.candidates) != c.candidates:
                raise Rejected("BAD_CLOSE", "the close record does not list the round's candidates")
            r.submit_close, r.submit_close_at = signed.hash, c.at
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
        self.beacon_index, self.beacon_value = v.index, v.value
        r.beacon, r.beacon_index, r.reveal_at = v.value, v.index, entry.at
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
        cand.bundle_sha256, cand.bundle_at, cand.bundle_seq = sha, entry.at, entry.seq
        cand.reported = (note.loss_prev, note.loss_next)
        return "admitted"

    def _active(self, key: bytes, role: str) -> None:
        """``key`` is registered as ``role`` and neither slashed to zero nor barred."""
        p = self.participants.get(key)
        if p is None or p.role != role:
            raise Rejected(f"UNREGISTERED_{role.upper()}", f"key {key.hex()[:16]}... is not a registered {role}")
        if self.stakes[key] <= 0 or key in self.barred:
            raise Rejected(f"SLASHED_{role.upper()}", f"{role} {key.hex()[:16]}... has been slashed")

    def check_attestation(self, signed: Signed[Attestation], at: int) -> tuple[Round, Candidate, str]:
        a = signed.body
        self._signed(signed, a.verifier_key, "attestation")
        self._active(a.verifier_key, "verifier")
        self._once(signed.hash)
        found = self.find(a.header_hash)
        if found is not None:  # both verdicts signed for one candidate: evidence whenever it is seen
            prior = found[1].votes.get(a.verifier_key)
            if prior is not None and prior.body.verdict != a.verdict:
                return found[0], found[1], "EQUIVOCATION"
        r = self.round
        cand = r.candidates.get(a.header_hash)
        if cand is None or (a.height, a.round) != (r.height, r.round):
            raise Rejected("UNKNOWN_HEADER", "the attestation names no candidate of the open round")
        if cand.bundle_sha256 is None:
            raise Rejected("NO_BUNDLE", "this candidate has no stored bundle to attest to")
        if a.evidence != cand.bundle_sha256:
            raise Rejected("EVIDENCE_MISMATCH", "evidence is not the SHA-256 of the bundle the chain stored")
        if r.phase not in ("proof", "attest") or (
                r.proof_close_at is not None and at > r.proof_close_at + self.rules.attest_window_ms):
            raise Rejected("WINDOW_CLOSED", "the attestation window of this round is closed")
        if a.verifier_key in cand.votes:
            raise Rejected("ALREADY_ATTESTED", "this verifier already attested this candidate")
        if a.tier == "full":
            self._check_full_losses(a, r, cand)
        return r, cand, "ok"

    def _check_full_losses(self, a: Attestation, r: Round, cand: Candidate) -> None:
        """A full vote's losses must be what a full verifier can have measured. Every candidate of a round
        starts from the same state on the same windows, so one verifier reports one L(prev) per round;
        and an accept says "the loss fell by delta and the miner's reported losses are within the
        tolerance of mine", so its numbers must show exactly that. Otherwise one verifier could set a
        candidate's verified improvement at will (it is the median of the accepts' numbers)."""
        prior = r.loss_prev.get(a.verifier_key)
        if a.loss_prev is not None and prior is not None and a.loss_prev != prior:
            raise Rejected("INCONSISTENT_LOSS", f"this verifier measured L(prev) = {prior!r} for another candidate "
                                                f"of this round, now {a.loss_prev!r}")
        if a.verdict != "accept":
            return
        if a.loss_prev is None or a.loss_next is None:
            raise Rejected("INCONSISTENT_LOSS", "a full accept carries both losses")
        if not Fraction(a.loss_next) <= Fraction(a.loss_prev) - self.rules.delta:
            raise Rejected("INCONSISTENT_LOSS", "a full accept whose own losses do not fall by delta")
        lp, ln = cand.reported
        if not (self.rules.within_tolerance(lp, a.loss_prev) and self.rules.within_tolerance(ln, a.loss_next)):
            raise Rejected("INCONSISTENT_LOSS", "a full accept whose losses are not within the tolerance of the "
                                                "miner's reported ones (an honest verifier rejects LOSS_MISMATCH)")

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
        if signed.body.tier == "full" and signed.body.loss_prev is not None:
            r.loss_prev.setdefault(signed.body.verifier_key, signed.body.loss_prev)
        return "admitted"

    def ballots(self) -> list[Ballot]:
        r = self.round
        return [Ballot(h, c.miner, tuple(v.body for v in c.votes.values()), c.status == "withheld")
                for h, c in r.candidates.items()]

    def claims(self) -> list[tuple[bytes, str]]:
        """The (candidate, tier) pairs the finalizer must re-check before it may finalize."""
        return claims(self.ballots())

    def finalize_due(self, at: int) -> bool:
        r = self.round
        if r.phase != "attest":
            return False
        if at >= r.proof_close_at + self.rules.attest_window_ms:
            return True
        need = self.eligible_verifiers()
        return all(need <= set(c.votes) for c in r.candidates.values() if c.status != "withheld")

    def _apply_finalize(self, entry: Entry) -> str:
        signed, f = self._node_record(entry, "finalize")
        r = self.round
        if not self.finalize_due(f.at):
            raise Rejected("NOT_DUE", "the attestation window is still open")
        want = self.claims()
        got = [(x.header_hash, x.tier) for x in f.rechecks]
        if got != want:
            raise Rejected("BAD_FINALIZE", "the finalize record does not re-check exactly the round's objective claims")
        fails = {(x.header_hash, x.tier): x.fails for x in f.rechecks}
        d = decide(self.ballots(), self.stakes, self.verifiers(), self.rules, fails, self.barred)
        for key, delta, why, hh in d.stake_changes:
            self._stake(entry.seq, key, delta, why, r, hh)
            if why in BARRING:
                self.barred.add(key)
        for hh, cand in r.candidates.items():
            if hh in d.status:
                cand.status, cand.reason = d.status[hh], d.reason[hh]
                cand.improvement = d.improvement.get(hh)
        r.finalized_at, r.winner = f.at, d.winner
        self.history.append(r)
        if d.winner is not None:
            cand = r.candidates[d.winner]
            cand.reward = d.reward
            self.blocks.append(Block(r.height, r.round, cand.header, cand.update_sha256, d.improvement[d.winner],
                                     d.reward))
            self._open_round(r.height + 1, 1, f.at)
        else:
            self._open_round(r.height, r.round + 1, f.at)
        return "admitted"


def replay(entries: list[Entry]) -> ChainState:
    """The state a log implies (raises on the first entry the rules refuse)."""
    st = ChainState()
    for e in entries:
        st.apply(e)
    return st
