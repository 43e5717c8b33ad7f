"""The chain's signed records besides headers, attestations and bundles (PROTOCOL 4, 10, 11).

Each is a frozen body for the generic envelope (spec/envelope.py) with its own signer and domain:

- ``Genesis`` (governance key): the chain's rules, model, layout, genesis state, dataset, beacon,
  node key, governance key and first participants. Everything a role re-derives starts here.
- ``Register`` (governance key): a new participant and its stake.
- ``Epoch`` (governance key): a new dataset (and optionally a new state) for fine-tuning; it takes
  effect at the next round that opens after it is recorded. No record carries a file path: blobs
  are named by SHA-256 and checked against the roots before the record is accepted.
- ``Close`` (node key): the node's signed timestamp closing a round's submission or proof window;
  ``prev`` is the hash of the log entry before it, so the node signs the whole log prefix.
- ``Reveal`` (beacon key): the beacon value of one round, with the beacon's own time and the hash
  of the node's ``Close`` record it was released against.
- ``Finalize`` (node key): the end of a round's attestation window and the result of the node's own
  re-checks of every objective claim; the outcome itself is recomputed by everyone from the log.

Strict readers: exact keys, types, bounds and lengths before anything is trusted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.dataset import manifest_hash, parse_manifest, sealed_of
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int, hexbytes
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import MAX_HEIGHT, MAX_ROUND, check_chain_id
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.rules import ChainRules, check_name
from pogo_jax.spec.sealed import MAX_SEALED_SHARDS, Sealed

RECORD_VERSION = 2  # v3 consensus: chain ids are genesis hashes; Close and Reveal name the sealed shard
MAX_RECORD_BYTES = 1 << 20
MAX_PARTICIPANTS = 4096
# Candidates one round admits (the first ones recorded): a submit Close lists them all, and must stay well
# inside MAX_CLOSE_BYTES, the most a beacon reads of it (a Close at the cap is about 18 KB).
MAX_ROUND_CANDIDATES = 256
MAX_CLOSE_BYTES = 1 << 16
MAX_STAKE = 2**62
MAX_TIME_MS = 2**53
MAX_BEACON_LENGTH = 1 << 20  # = chain.beacon.MAX_LENGTH
ROLES = ("miner", "verifier")
WINDOWS = ("submit", "proof", "commit")
_MODEL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _version(obj: Any, what: str) -> int:
    v = get_int(obj, "version", what)
    if v != RECORD_VERSION:
        raise MalformedInput(f"{what}: unsupported version {v} (this code reads {RECORD_VERSION})")
    return v


def _key(obj: Any, name: str, what: str) -> bytes:
    return hexbytes(get_field(obj, name, str, what), f"{what}.{name}", 32)


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


# ------------------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class Participant:
    key: bytes
    role: str
    name: str
    stake: int

    def to_obj(self) -> dict:
        return {"key": self.key.hex(), "role": self.role, "name": self.name, "stake": self.stake}

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> Participant:
        exact_keys(obj, {"key", "role", "name", "stake"}, what)
        role = get_field(obj, "role", str, what)
        if role not in ROLES:
            raise MalformedInput(f"{what}.role: expected one of {', '.join(ROLES)}")
        return cls(_key(obj, "key", what), role, check_name(obj["name"], f"{what}.name"),
                   get_int(obj, "stake", what, 0, MAX_STAKE))


@dataclass(frozen=True)
class DataRef:
    """A dataset as the chain records it: its roots, its manifest and the blob holding the file."""

    data_root: bytes
    manifest_hash: bytes
    blob: bytes  # SHA-256 of the packed file's bytes
    manifest: dict

    @cached_property
    def sealed(self) -> Sealed | None:
        """The manifest's sealed evaluation shards, parsed once (None for a public-only dataset)."""
        return sealed_of(self.manifest)

    def to_obj(self) -> dict:
        return {"data_root": self.data_root.hex(), "manifest_hash": self.manifest_hash.hex(),
                "blob": self.blob.hex(), "manifest": self.manifest}

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> DataRef:
        exact_keys(obj, {"data_root", "manifest_hash", "blob", "manifest"}, what)
        man = parse_manifest(get_field(obj, "manifest", dict, what), f"{what}.manifest")
        ref = cls(_key(obj, "data_root", what), _key(obj, "manifest_hash", what), _key(obj, "blob", what), man)
        if manifest_hash(man) != ref.manifest_hash:
            raise MalformedInput(f"{what}: manifest_hash is not the hash of the manifest")
        if bytes.fromhex(man["data_root"]) != ref.data_root:
            raise MalformedInput(f"{what}: data_root differs from the manifest's")
        return ref


@dataclass(frozen=True)
class StateRef:
    root: bytes
    blob: bytes  # SHA-256 of the .npz bytes

    def to_obj(self) -> dict:
        return {"root": self.root.hex(), "blob": self.blob.hex()}

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> StateRef:
        exact_keys(obj, {"root", "blob"}, what)
        return cls(_key(obj, "root", what), _key(obj, "blob", what))


def check_model(model: Any, what: str) -> dict:
    """The model section as plain str/int/bool values (floats would not be canonical)."""
    if not isinstance(model, dict) or len(model) > 64:
        raise MalformedInput(f"{what}: expected an object of at most 64 fields")
    for k, v in model.items():
        if not isinstance(k, str) or not _MODEL_KEY.fullmatch(k):
            raise MalformedInput(f"{what}: bad key {str(k)[:40]!r}")
        if not (isinstance(v, bool | str) or (isinstance(v, int) and 0 <= v < 2**40)):
            raise MalformedInput(f"{what}.{k}: str, bool or non-negative int expected")
        if isinstance(v, str) and len(v) > 64:
            raise MalformedInput(f"{what}.{k}: string longer than 64")
    return dict(model)


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Genesis:
    governance_key: bytes
    node_key: bytes
    beacon_key: bytes
    beacon_anchor: bytes
    beacon_length: int
    rules: ChainRules
    model: dict
    layout: Layout
    state: StateRef
    data: DataRef
    participants: tuple[Participant, ...]
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "genesis"
    DOMAIN: ClassVar[bytes] = b"pogo/genesis/v1"

    def __post_init__(self) -> None:
        if (self.layout.leaf_size, self.layout.group_size) != (self.rules.leaf_size, self.rules.group_size):
            raise MalformedInput("genesis: layout leaf/group size differ from the rules")
        keys = [p.key for p in self.participants]
        if len(set(keys)) != len(keys) or len(keys) > MAX_PARTICIPANTS:
            raise MalformedInput("genesis: duplicate participant key or too many participants")
        if set(keys) & {self.governance_key, self.node_key, self.beacon_key}:
            raise MalformedInput("genesis: a participant key is also the governance, node or beacon key")
        if not 1 <= self.beacon_length <= MAX_BEACON_LENGTH:
            raise MalformedInput("genesis: beacon_length out of range")

    @property
    def signer(self) -> bytes:
        return self.governance_key

    @cached_property
    def chain_id(self) -> str:
        """The chain's id: SHA-256 of this canonical body (PROTOCOL 13), named by every other record."""
        return hashlib.sha256(canonical(self.to_obj())).hexdigest()

    @property
    def name(self) -> str:
        return self.rules.name

    def to_obj(self) -> dict:
        return {
            "version": self.version, "governance_key": self.governance_key.hex(),
            "node_key": self.node_key.hex(),
            "beacon": {"key": self.beacon_key.hex(), "anchor": self.beacon_anchor.hex(), "length": self.beacon_length},
            "rules": self.rules.to_obj(), "model": dict(self.model), "layout": self.layout.manifest(),
            "state": self.state.to_obj(), "data": self.data.to_obj(),
            "participants": [p.to_obj() for p in self.participants],
        }

    @classmethod
    def from_obj(cls, obj: Any, what: str = "genesis") -> Genesis:
        exact_keys(obj, {"version", "governance_key", "node_key", "beacon", "rules", "model", "layout",
                         "state", "data", "participants"}, what)
        _version(obj, what)
        beacon = get_field(obj, "beacon", dict, what)
        exact_keys(beacon, {"key", "anchor", "length"}, f"{what}.beacon")
        parts = get_field(obj, "participants", list, what)
        if len(parts) > MAX_PARTICIPANTS:
            raise MalformedInput(f"{what}: too many participants")
        return cls(
            governance_key=_key(obj, "governance_key", what),
            node_key=_key(obj, "node_key", what), beacon_key=_key(beacon, "key", f"{what}.beacon"),
            beacon_anchor=_key(beacon, "anchor", f"{what}.beacon"),
            beacon_length=get_int(beacon, "length", f"{what}.beacon", 1, MAX_BEACON_LENGTH),
            rules=ChainRules.from_obj(get_field(obj, "rules", dict, what), f"{what}.rules"),
            model=check_model(obj["model"], f"{what}.model"),
            layout=Layout.from_manifest(get_field(obj, "layout", dict, what)),
            state=StateRef.from_obj(obj["state"], f"{what}.state"),
            data=DataRef.from_obj(obj["data"], f"{what}.data"),
            participants=tuple(Participant.from_obj(p, f"{what}.participants[{i}]") for i, p in enumerate(parts)),
        )


@dataclass(frozen=True)
class Register:
    chain_id: str
    governance_key: bytes
    participant: Participant
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "register"
    DOMAIN: ClassVar[bytes] = b"pogo/governance/register/v1"

    @property
    def signer(self) -> bytes:
        return self.governance_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "governance_key": self.governance_key.hex(),
                "participant": self.participant.to_obj()}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "register") -> Register:
        exact_keys(obj, {"version", "chain_id", "governance_key", "participant"}, what)
        _version(obj, what)
        return cls(check_chain_id(obj["chain_id"], what), _key(obj, "governance_key", what),
                   Participant.from_obj(obj["participant"], f"{what}.participant"))


@dataclass(frozen=True)
class Epoch:
    chain_id: str
    governance_key: bytes
    epoch: int  # 1, 2, ... in order
    data: DataRef
    state: StateRef | None  # a new initial state, or None to keep training the confirmed one
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "epoch"
    DOMAIN: ClassVar[bytes] = b"pogo/governance/epoch/v1"

    @property
    def signer(self) -> bytes:
        return self.governance_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "governance_key": self.governance_key.hex(),
                "epoch": self.epoch, "data": self.data.to_obj(),
                "state": None if self.state is None else self.state.to_obj()}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "epoch") -> Epoch:
        exact_keys(obj, {"version", "chain_id", "governance_key", "epoch", "data", "state"}, what)
        _version(obj, what)
        return cls(check_chain_id(obj["chain_id"], what), _key(obj, "governance_key", what),
                   get_int(obj, "epoch", what, 1, 2**31), DataRef.from_obj(obj["data"], f"{what}.data"),
                   None if obj["state"] is None else StateRef.from_obj(obj["state"], f"{what}.state"))


def _hashes(obj: Any, name: str, what: str, limit: int = MAX_PARTICIPANTS) -> tuple[bytes, ...]:
    v = get_field(obj, name, list, what)
    if len(v) > limit:
        raise MalformedInput(f"{what}.{name}: too many entries")
    return tuple(hexbytes(h, f"{what}.{name}[{i}]", 32) for i, h in enumerate(v))


@dataclass(frozen=True)
class Close:
    chain_id: str
    node_key: bytes
    height: int
    round: int
    window: str  # "submit" | "proof" | "commit"
    at: int  # node clock, ms
    prev: bytes  # hash of the log entry this record follows
    candidates: tuple[bytes, ...]  # submit: the round's candidates; proof: those withheld; commit: none
    data: bytes  # manifest hash of the round's dataset (its sealed shards)
    shard: int  # the sealed shard the round is judged on: the beacon releases its key against a submit close
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "close"
    DOMAIN: ClassVar[bytes] = b"pogo/node/close/v1"

    @property
    def signer(self) -> bytes:
        return self.node_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "node_key": self.node_key.hex(),
                "height": self.height, "round": self.round, "window": self.window, "at": self.at,
                "prev": self.prev.hex(), "candidates": [h.hex() for h in self.candidates], "data": self.data.hex(),
                "shard": self.shard}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "close") -> Close:
        exact_keys(obj, {"version", "chain_id", "node_key", "height", "round", "window", "at", "prev",
                         "candidates", "data", "shard"}, what)
        _version(obj, what)
        window = get_field(obj, "window", str, what)
        if window not in WINDOWS:
            raise MalformedInput(f"{what}.window: expected one of {', '.join(WINDOWS)}")
        return cls(check_chain_id(obj["chain_id"], what), _key(obj, "node_key", what),
                   get_int(obj, "height", what, 1, MAX_HEIGHT), get_int(obj, "round", what, 1, MAX_ROUND), window,
                   get_int(obj, "at", what, 0, MAX_TIME_MS), _key(obj, "prev", what),
                   _hashes(obj, "candidates", what, MAX_ROUND_CANDIDATES), _key(obj, "data", what),
                   get_int(obj, "shard", what, 0, MAX_SEALED_SHARDS))


@dataclass(frozen=True)
class Reveal:
    chain_id: str
    beacon_key: bytes
    height: int
    round: int
    index: int  # position in the beacon's hash chain (1, 2, ...)
    value: bytes
    at: int  # beacon clock, ms
    close: bytes  # hash of the node's submit Close record this value was released against
    data: bytes  # manifest hash of the dataset whose shard is released
    shard: int  # the sealed shard of the round
    shard_key: bytes | None  # its AES-256 key; None when the beacon holds none (the round closes empty)
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "reveal"
    DOMAIN: ClassVar[bytes] = b"pogo/beacon/reveal/v1"

    @property
    def signer(self) -> bytes:
        return self.beacon_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "beacon_key": self.beacon_key.hex(),
                "height": self.height, "round": self.round, "index": self.index, "value": self.value.hex(),
                "at": self.at, "close": self.close.hex(), "data": self.data.hex(), "shard": self.shard,
                "shard_key": _hex(self.shard_key)}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "reveal") -> Reveal:
        exact_keys(obj, {"version", "chain_id", "beacon_key", "height", "round", "index", "value", "at", "close",
                         "data", "shard", "shard_key"}, what)
        _version(obj, what)
        return cls(check_chain_id(obj["chain_id"], what), _key(obj, "beacon_key", what),
                   get_int(obj, "height", what, 1, MAX_HEIGHT), get_int(obj, "round", what, 1, MAX_ROUND),
                   get_int(obj, "index", what, 1, MAX_BEACON_LENGTH), _key(obj, "value", what),
                   get_int(obj, "at", what, 0, MAX_TIME_MS), _key(obj, "close", what), _key(obj, "data", what),
                   get_int(obj, "shard", what, 0, MAX_SEALED_SHARDS),
                   None if obj["shard_key"] is None else _key(obj, "shard_key", what))


@dataclass(frozen=True)
class VoteCommit:
    """A full verifier's commitment to its vote on one candidate (PROTOCOL 16): ``vote`` is the record hash of
    the signed attestation it will reveal, whose body holds 32 random salt bytes, so the commitment hides
    the numbers until the reveal window and binds them from now on."""

    chain_id: str
    height: int
    round: int
    header_hash: bytes
    verifier_key: bytes
    vote: bytes
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "commit"
    DOMAIN: ClassVar[bytes] = b"pogo/vote/commit/v1"

    @property
    def signer(self) -> bytes:
        return self.verifier_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "height": self.height, "round": self.round,
                "header_hash": self.header_hash.hex(), "verifier_key": self.verifier_key.hex(),
                "vote": self.vote.hex()}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "commit") -> VoteCommit:
        exact_keys(obj, {"version", "chain_id", "height", "round", "header_hash", "verifier_key", "vote"}, what)
        _version(obj, what)
        return cls(check_chain_id(obj["chain_id"], what), get_int(obj, "height", what, 1, MAX_HEIGHT),
                   get_int(obj, "round", what, 1, MAX_ROUND), _key(obj, "header_hash", what),
                   _key(obj, "verifier_key", what), _key(obj, "vote", what))


@dataclass(frozen=True)
class Recheck:
    """The finalizer's own re-check of the objective claims against one candidate in one tier."""

    header_hash: bytes
    tier: str
    fails: bool  # True: the candidate really fails (the claim holds); False: the claim is false
    reason: str  # the reason code the re-check found ("OK" when it passed)

    def to_obj(self) -> dict:
        return {"header_hash": self.header_hash.hex(), "tier": self.tier, "fails": self.fails,
                "reason": self.reason}

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> Recheck:
        exact_keys(obj, {"header_hash", "tier", "fails", "reason"}, what)
        tier = get_field(obj, "tier", str, what)
        if tier not in ("light", "full"):
            raise MalformedInput(f"{what}.tier: expected light or full")
        reason = get_field(obj, "reason", str, what)
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,47}", reason):
            raise MalformedInput(f"{what}.reason: expected a reason code")
        return cls(_key(obj, "header_hash", what), tier, get_field(obj, "fails", bool, what), reason)


@dataclass(frozen=True)
class Finalize:
    chain_id: str
    node_key: bytes
    height: int
    round: int
    at: int
    prev: bytes
    rechecks: tuple[Recheck, ...]
    version: int = RECORD_VERSION

    KIND: ClassVar[str] = "finalize"
    DOMAIN: ClassVar[bytes] = b"pogo/node/finalize/v1"

    @property
    def signer(self) -> bytes:
        return self.node_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "node_key": self.node_key.hex(),
                "height": self.height, "round": self.round, "at": self.at, "prev": self.prev.hex(),
                "rechecks": [r.to_obj() for r in self.rechecks]}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "finalize") -> Finalize:
        exact_keys(obj, {"version", "chain_id", "node_key", "height", "round", "at", "prev", "rechecks"}, what)
        _version(obj, what)
        rc = get_field(obj, "rechecks", list, what)
        if len(rc) > 2 * MAX_PARTICIPANTS:
            raise MalformedInput(f"{what}.rechecks: too many entries")
        return cls(check_chain_id(obj["chain_id"], what), _key(obj, "node_key", what),
                   get_int(obj, "height", what, 1, MAX_HEIGHT), get_int(obj, "round", what, 1, MAX_ROUND),
                   get_int(obj, "at", what, 0, MAX_TIME_MS), _key(obj, "prev", what),
                   tuple(Recheck.from_obj(r, f"{what}.rechecks[{i}]") for i, r in enumerate(rc)))


BODY_TYPES = {t.KIND: t for t in (Genesis, Register, Epoch, Close, Reveal, Finalize, VoteCommit)}


def read_record(data: bytes, kind: str) -> Signed:
    """Strict reader for a signed record of ``kind`` (one of ``BODY_TYPES``)."""
    if kind not in BODY_TYPES:
        raise MalformedInput(f"unknown record kind {kind[:40]!r}")
    return Signed.read(data, BODY_TYPES[kind], MAX_RECORD_BYTES)
