"""Node-signed receipts (docs/protocol.md section 22): the node's word, kept by the writer, on where a write went.

Every write the node accepts is answered with a ``Receipt``: the chain, the entry the record became (or
already was: a retry gets the first entry's receipt), the SHA-256 of what was written (a signed record's
hash, a bundle's byte hash) and the log head at signing time. The log is hash-chained, so a receipt for
entry ``seq`` with hash ``entry`` commits the node to every entry before it too.

Whoever holds a receipt can later prove what the node admitted: a log whose entry ``seq`` has another
hash, or that ends before ``head_seq``, contradicts a statement the node signed. Two receipts (or a
receipt and a node-signed ``Close``/``Finalize``, whose ``prev`` names a log prefix) that disagree about
one sequence number are node equivocation, provable to anyone with the node's public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import exact_keys, get_int, hexbytes
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import check_chain_id

RECEIPT_VERSION = 1
MAX_SEQ = 2**63 - 1
MAX_RECEIPT_BYTES = 4096


@dataclass(frozen=True)
class Receipt:
    chain_id: str
    node_key: bytes
    seq: int  # the log entry the write became
    entry: bytes  # that entry's hash
    record: bytes  # SHA-256 of what was written: a signed record's hash, a bundle's bytes
    head_seq: int  # the log's last entry when the receipt was signed (>= seq)
    head: bytes  # its hash
    at: int  # node clock, ms
    version: int = RECEIPT_VERSION

    KIND: ClassVar[str] = "receipt"
    DOMAIN: ClassVar[bytes] = b"pogo/node/receipt/v1"

    @property
    def signer(self) -> bytes:
        return self.node_key

    def to_obj(self) -> dict:
        return {"version": self.version, "chain_id": self.chain_id, "node_key": self.node_key.hex(),
                "seq": self.seq, "entry": self.entry.hex(), "record": self.record.hex(), "head_seq": self.head_seq,
                "head": self.head.hex(), "at": self.at}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "receipt") -> Receipt:
        exact_keys(obj, {"version", "chain_id", "node_key", "seq", "entry", "record", "head_seq", "head", "at"}, what)
        v = get_int(obj, "version", what)
        if v != RECEIPT_VERSION:
            raise MalformedInput(f"{what}: unsupported version {v} (this code reads {RECEIPT_VERSION})")
        seq, head_seq = get_int(obj, "seq", what, 0, MAX_SEQ), get_int(obj, "head_seq", what, 0, MAX_SEQ)
        if head_seq < seq:
            raise MalformedInput(f"{what}: head_seq {head_seq} is before the entry {seq} it receipts")
        return cls(check_chain_id(obj["chain_id"], what), hexbytes(obj["node_key"], f"{what}.node_key", 32), seq,
                   hexbytes(obj["entry"], f"{what}.entry", 32), hexbytes(obj["record"], f"{what}.record", 32),
                   head_seq, hexbytes(obj["head"], f"{what}.head", 32), get_int(obj, "at", what))


def read_receipt(data: bytes) -> Signed[Receipt]:
    """Strict reader of a signed receipt (canonical JSON envelope); the signature is the caller's to check."""
    return Signed.read(data, Receipt, MAX_RECEIPT_BYTES)
