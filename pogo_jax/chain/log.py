"""The chain's append-only log: one entry per accepted record, hash-chained.

An entry is what the node appended: its sequence number, the node's clock (``at``, ms), the kind,
the record's canonical bytes (a signed envelope, or for a bundle the node's note of its hash) and
the node's annotations (``extra``, e.g. the SHA-256 of a candidate's stored update). Its hash binds
all of that to the previous entry's hash, and the node's own signed records (``Close``,
``Finalize``) name the hash they follow, so the node signs every prefix of the log it closes a
window on; the beacon's ``Reveal`` names the submit ``Close``, so it countersigns the candidate set.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int, hexbytes, parse_canonical

LOG_DOMAIN = b"pogo/log/v1"
GENESIS_PREV = bytes(32)
KINDS = ("genesis", "register", "epoch", "candidate", "close", "reveal", "bundle", "commit", "attestation",
         "finalize")
MAX_RECORD_BYTES = 1 << 20


def entry_hash(prev: bytes, seq: int, at: int, kind: str, record: bytes, extra: dict) -> bytes:
    """MalformedInput for fields no entry can hold (a number out of range, a float in ``extra``, ...)."""
    try:
        h = hashlib.sha256(LOG_DOMAIN)
        h.update(prev)
        h.update(struct.pack("<QQ", seq, at))
        h.update(kind.encode("ascii") + b"\x00")
        h.update(hashlib.sha256(record).digest())
        h.update(hashlib.sha256(canonical(extra)).digest())
    except (ValueError, TypeError, AttributeError, UnicodeError, struct.error) as e:
        raise MalformedInput(f"log entry {seq!r:.20}: a field of the wrong type or out of range ({e})") from None
    return h.digest()


@dataclass(frozen=True)
class Entry:
    seq: int
    at: int
    kind: str
    record: bytes
    extra: dict
    prev: bytes
    hash: bytes

    @classmethod
    def make(cls, seq: int, at: int, kind: str, record: bytes, extra: dict, prev: bytes) -> Entry:
        return cls(seq, at, kind, record, extra, prev, entry_hash(prev, seq, at, kind, record, extra))

    def check(self) -> None:
        if self.kind not in KINDS:
            raise MalformedInput(f"log entry {self.seq}: unknown kind {self.kind!r}")
        if entry_hash(self.prev, self.seq, self.at, self.kind, self.record, self.extra) != self.hash:
            raise MalformedInput(f"log entry {self.seq}: hash does not match its contents")

    def to_obj(self) -> dict:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "record": self.record.decode("ascii"),
                "extra": self.extra, "prev": self.prev.hex(), "hash": self.hash.hex()}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "log entry") -> Entry:
        exact_keys(obj, {"seq", "at", "kind", "record", "extra", "prev", "hash"}, what)
        rec = get_field(obj, "record", str, what)
        if len(rec) > MAX_RECORD_BYTES or not rec.isascii():
            raise MalformedInput(f"{what}: record is not ASCII or too large")
        extra = get_field(obj, "extra", dict, what)
        try:
            canonical(extra)  # refuses floats and other non-canonical values
        except ValueError as e:
            raise MalformedInput(f"{what}.extra: {e}") from None
        e = cls(get_int(obj, "seq", what), get_int(obj, "at", what), get_field(obj, "kind", str, what),
                rec.encode("ascii"), extra, hexbytes(obj["prev"], f"{what}.prev", 32),
                hexbytes(obj["hash"], f"{what}.hash", 32))
        e.check()
        return e


def read_entries(data: bytes) -> list[Entry]:
    """Entries from the JSON the node serves (``{"entries": [...]}``), each hash re-checked."""
    obj = parse_canonical(data, "log", 1 << 30) if data[:1] == b"{" else None
    if not isinstance(obj, dict) or not isinstance(obj.get("entries"), list):
        raise MalformedInput("log: expected {\"entries\": [...]}")
    return [Entry.from_obj(e, f"log entry {i}") for i, e in enumerate(obj["entries"])]


def check_chain(entries: list[Entry], first_prev: bytes = GENESIS_PREV, first_seq: int = 0) -> None:
    """Sequence numbers consecutive and every entry linked to the one before."""
    prev, seq = first_prev, first_seq
    for e in entries:
        if e.seq != seq or e.prev != prev:
            raise MalformedInput(f"log entry {e.seq}: not linked to entry {seq - 1} (sequence or hash chain broken)")
        e.check()
        prev, seq = e.hash, seq + 1
