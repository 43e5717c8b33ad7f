"""``Witness``: what a role keeps so that it can prove which history the node showed it (docs/protocol.md section 22).

Two things, in the role's own directory (never the node's):

- every receipt the node signed for the role's writes (``receipts/<seq>-<entry>.json``, the signed bytes as
  received), each checked on arrival: the node's key, this chain, the record the role sent;
- the last log head the role saw (``head.json``: seq and hash), written after each refresh.

On every refresh of the role's view the log must extend that head and hold each receipted entry at its
sequence number with its hash; otherwise the node has rewritten history (or dropped a write it signed
for) and the role stops with a ``NodeFault`` that names the receipt file proving it. ``pogo audit
--receipts DIR`` checks the same files against a log (see ``chain.audit.check_receipts``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pogo_jax.errors import MalformedInput, NodeFault
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.spec.encoding import canonical, parse_canonical
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.receipt import Receipt, read_receipt


def written_hash(kind: str, data: bytes) -> bytes:
    """The hash a receipt must name for ``data`` sent as ``kind``: a bundle's byte hash, else the record's."""
    if kind == "bundle":
        return hashlib.sha256(data).digest()
    obj = parse_canonical(data, kind, 1 << 20)
    if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
        raise MalformedInput(f"{kind}: not a signed envelope")
    return hashlib.sha256(canonical(obj["body"])).digest()


class Witness:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.receipts_dir = self.dir / "receipts"
        self.receipts_dir.mkdir(parents=True, exist_ok=True)
        self.chain_id: str | None = None
        self.node_key: bytes | None = None
        self._taken: list[tuple[float, Path, Receipt]] = []  # (when, file, receipt) not yet matched to a log
        self._pending: list[tuple[float, Path, bytes]] = []  # received before the genesis was known
        for f in sorted(self.receipts_dir.glob("*.json")):
            self._pending.append((0.0, f, f.read_bytes()))
        head = self.dir / "head.json"
        self.head: tuple[int, bytes] | None = None
        if head.is_file():
            try:
                obj = json.loads(head.read_text())
                self.head = (int(obj["seq"]), bytes.fromhex(obj["hash"]))
            except (ValueError, KeyError, TypeError):
                raise NodeFault(f"{head} is unreadable: move it away to trust the node afresh") from None

    # ---------------------------------------------------------------------------- receipts
    def bind(self, chain_id: str, node_key: bytes) -> None:
        """The chain and node key from the genesis record the role replayed; checks what waited for them."""
        if self.chain_id is None:
            self.chain_id, self.node_key = chain_id, node_key
            pending, self._pending = self._pending, []
            for when, f, data in pending:
                self._check(data, f, when, None)

    def take(self, kind: str, sent: bytes, answer: dict) -> None:
        """The node's answer to a write of ``sent``: its receipt must be there, the node's, for these bytes."""
        if answer.get("receipt") is None:
            raise NodeFault(f"the node accepted a {kind} without a signed receipt (a node that signs for nothing "
                            "can later deny it)")
        data = str(answer["receipt"]).encode("ascii", "replace")
        try:
            r = read_receipt(data).body
        except MalformedInput as e:
            raise NodeFault(f"the node's receipt for a {kind} is malformed ({e})") from None
        f = self.receipts_dir / f"{r.seq:012d}-{r.entry.hex()[:16]}.json"
        atomic_write_bytes(f, data)
        if self.chain_id is None:
            self._pending.append((time.monotonic(), f, data))
        else:
            self._check(data, f, time.monotonic(), written_hash(kind, sent))

    def _check(self, data: bytes, f: Path, when: float, want_record: bytes | None) -> None:
        try:
            signed: Signed[Receipt] = read_receipt(data)
        except MalformedInput as e:
            raise NodeFault(f"{f}: not a receipt ({e})") from None
        r = signed.body
        if r.chain_id != self.chain_id or r.node_key != self.node_key or not signed.verify():
            raise NodeFault(f"{f}: the receipt is not signed by this chain's node key")
        if want_record is not None and r.record != want_record:
            raise NodeFault(f"{f}: the node's receipt names record {r.record.hex()[:16]}..., not the one sent")
        self._taken.append((when, f, r))

    # ---------------------------------------------------------------------------- the log
    def check_log(self, hashes: list[bytes], fetched_at: float) -> None:
        """``hashes``: the entry hashes of the whole log as the role now holds it (index = seq), fetched from a
        request that began at ``fetched_at`` (monotonic). Raises ``NodeFault`` on a rewrite or an omission."""
        n = len(hashes)
        if self.head is not None:
            seq, h = self.head
            if seq >= n or hashes[seq] != h:
                got = "ends before it" if seq >= n else f"has {hashes[seq].hex()[:16]}... there"
                raise NodeFault(f"the node's log does not extend the head this role saw (entry {seq} = "
                                f"{h.hex()[:16]}..., {self.dir / 'head.json'}): it {got}; the node rewrote history "
                                "(keep that directory: it is the proof)")
        keep = []
        for when, f, r in self._taken:
            if r.head_seq >= n:
                if when < fetched_at:  # signed before this fetch began: the log must already reach it
                    raise NodeFault(f"the node signed {f} for entry {r.seq}, but its log ends at entry {n - 1}: "
                                    "it dropped a write it acknowledged (pogo audit --receipts shows it)")
                keep.append((when, f, r))
                continue
            if hashes[r.seq] != r.entry or hashes[r.head_seq] != r.head:
                raise NodeFault(f"node equivocation: it signed {f} saying entry {r.seq} is {r.entry.hex()[:16]}..., "
                                f"its log has {hashes[r.seq].hex()[:16]}... there (keep that file: it is the proof; "
                                "pogo audit --receipts shows it)")
        self._taken = keep
        if n and self.head != (n - 1, hashes[-1]):  # written when it moves (views refresh several times a second)
            self.head = (n - 1, hashes[-1])
            atomic_write_bytes(self.dir / "head.json", json.dumps({"seq": n - 1, "hash": hashes[-1].hex()}).encode())
