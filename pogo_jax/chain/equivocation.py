"""Receipts against a log (``pogo audit --receipts DIR``): what participants can prove the node signed.

Each receipt file is a node-signed statement "entry ``seq`` of this chain's log has hash ``entry``, and the
log reached ``head_seq`` with hash ``head``" (spec/receipt.py). Against the log the node serves now:

- the entry (or the head) has another hash: node equivocation. The node signed two histories; the
  receipt is one, and the log's own node-signed records after that point (a ``Close`` or ``Finalize``
  names the hash of the entry before it, so it commits to the whole prefix) are the other;
- the log ends before the receipted entry: the node dropped a write it acknowledged;
- two receipts disagree about one sequence number: equivocation without looking at any log.

Files that are not receipts of this chain's node key are listed as ignored, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pogo_jax.chain.log import Entry
from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.receipt import Receipt, read_receipt
from pogo_jax.spec.records import read_record

NODE_SIGNED = ("close", "finalize")


@dataclass
class ReceiptReport:
    checked: int = 0
    differences: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def receipt_files(dirs: list[str | Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        p = Path(d).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(p.rglob("*.json"))
        else:
            raise UserError(f"--receipts {d}: no such file or directory")
    return out


def _committing_record(entries: list[Entry], after: int) -> str:
    """The first node-signed record after entry ``after``: it signs the log prefix that holds that entry."""
    for e in entries[after + 1:]:
        if e.kind in NODE_SIGNED:
            return f"; its node-signed {e.kind} at entry {e.seq} commits to that log"
    return ""


def check_receipts(entries: list[Entry], files: list[Path]) -> ReceiptReport:
    rep = ReceiptReport()
    if not entries or entries[0].kind != "genesis":
        raise UserError("the log has no genesis entry: nothing to check receipts against")
    g = read_record(entries[0].record, "genesis").body
    seen: dict[int, tuple[bytes, Path]] = {}
    n = len(entries)
    for f in files:
        try:
            signed = read_receipt(f.read_bytes())
        except (MalformedInput, OSError, UnicodeDecodeError) as e:
            rep.ignored.append(f"{f}: not a receipt ({str(e)[:80]})")
            continue
        r: Receipt = signed.body
        if r.chain_id != g.chain_id or r.node_key != g.node_key or not signed.verify():
            rep.ignored.append(f"{f}: not signed by this chain's node key")
            continue
        rep.checked += 1
        for seq, h, what in ((r.seq, r.entry, "entry"), (r.head_seq, r.head, "head")):
            other = seen.get(seq)
            if other is not None and other[0] != h:
                rep.differences.append(f"NODE_EQUIVOCATION: receipts {other[1]} and {f} (both node-signed) name "
                                       f"different hashes for entry {seq}")
            seen.setdefault(seq, (h, f))
            if seq >= n:
                rep.differences.append(f"NODE_OMISSION: the node signed receipt {f} ({what} {seq}), but its log ends "
                                       f"at entry {n - 1}: it dropped a write it acknowledged")
            elif entries[seq].hash != h:
                rep.differences.append(f"NODE_EQUIVOCATION: the node signed receipt {f} saying entry {seq} is "
                                       f"{h.hex()[:16]}..., its log has {entries[seq].hash.hex()[:16]}... there"
                                       f"{_committing_record(entries, seq)}")
    return rep
