"""Host reference for PoGO Merkle trees (PROTOCOL section 2): numpy + hashlib only.

Leaf hash  = SHA-256(H64 || data), H64 = 0x00 || ASCII tag || zeros up to byte 56 || uint64_le(index)
Node hash  = SHA-256(0x01 || left || right)
Tree shape = RFC 9162 section 2.1.1 (largest power of two < n splits), computed bottom-up by
pairwise reduction where an unpaired last node is carried up unchanged (never duplicated).

Inclusion proofs have one verifier, ``verify_inclusion`` (the shape of transparency-dev's
``VerifyInclusion``: the path's direction bits follow from (index, n) alone), and one batched form,
``verify_inclusions``, which checks every path with the same walk but hashes the shared top levels
once. ``verify_openings`` is the network-facing wrapper: shape checks with reason codes, then the
batched verifier. Every caller (light tier, openings, benchmarks) goes through these two walks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TAG_PARAM = b"POGO-PARAM-v1"
TAG_QUPD = b"POGO-QUPD-v1"
TAG_DATA = b"POGO-DATA-v1"
TAGS = (TAG_PARAM, TAG_QUPD, TAG_DATA)
HEADER_BYTES = 64
HASH_BYTES = 32
MAX_DEPTH = 64


def leaf_header(tag: bytes, index: int) -> bytes:
    """The 64-byte leaf header: 0x00, tag, zero fill to offset 56, uint64 LE global index."""
    if len(tag) > HEADER_BYTES - 9:
        raise ValueError("tag too long")
    if not 0 <= index < 2**64:
        raise ValueError("leaf index out of range")
    head = b"\x00" + tag
    return head + b"\x00" * (56 - len(head)) + struct.pack("<Q", index)


def leaf_hash(tag: bytes, index: int, data: bytes) -> bytes:
    return hashlib.sha256(leaf_header(tag, index) + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hashes(tag: bytes, leaves: np.ndarray, first_index: int = 0) -> list[bytes]:
    """Hash each row of ``leaves`` (any dtype; rows hashed as their little-endian bytes)."""
    arr = np.ascontiguousarray(leaves)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.ndim != 2:
        raise ValueError("leaves must be a 2-D array (n_leaves, leaf_len)")
    raw = arr.view(np.uint8).reshape(arr.shape[0], -1)
    sha = hashlib.sha256
    out = []
    for i in range(raw.shape[0]):
        h = sha(leaf_header(tag, first_index + i))
        h.update(raw[i].data)
        out.append(h.digest())
    return out


def tree_levels(leaf_digests: Sequence[bytes]) -> list[list[bytes]]:
    """All levels bottom-up: levels[0] = leaf hashes, levels[-1] = [root]."""
    if len(leaf_digests) == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    levels = [list(leaf_digests)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])  # carried up unchanged (RFC 9162 shape), never duplicated
        levels.append(nxt)
    return levels


def root(leaf_digests: Sequence[bytes]) -> bytes:
    return tree_levels(leaf_digests)[-1][0]


def audit_path(levels: list[list[bytes]], index: int) -> list[bytes]:
    """RFC 9162 audit path (siblings bottom-up, carried levels contribute nothing)."""
    n = len(levels[0])
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} outside [0, {n})")
    path = []
    i = index
    for level in levels[:-1]:
        sib = i ^ 1
        if sib < len(level):
            path.append(level[sib])
        i //= 2
    return path


# ------------------------------------------------------------------------------ inclusion proofs

OK = "OK"
INDEX_OUT_OF_RANGE = "INDEX_OUT_OF_RANGE"
BAD_LEAF_LENGTH = "BAD_LEAF_LENGTH"
BAD_PATH_LENGTH = "BAD_PATH_LENGTH"
BAD_PROOF = "BAD_PROOF"
N_MISMATCH = "N_MISMATCH"
DUPLICATE_INDEX = "DUPLICATE_INDEX"


def directions(index: int, n: int) -> list[bool]:
    """For each sibling of the audit path of ``index`` (bottom-up): True if the sibling is on the
    left. Levels where the node is carried up unpaired have no sibling and no entry."""
    out = []
    i, width = index, n
    while width > 1:
        if (i ^ 1) < width:
            out.append(bool(i & 1))
        i >>= 1
        width = (width + 1) >> 1
    return out


def _shape_ok(leaf_digest: object, index: object, n: object, path: object) -> bool:
    if not (_is_int(index) and _is_int(n) and 1 <= n <= 2**MAX_DEPTH and 0 <= index < n):
        return False
    if not (isinstance(leaf_digest, bytes) and len(leaf_digest) == HASH_BYTES):
        return False
    if not isinstance(path, tuple | list) or len(path) != len(directions(index, n)):
        return False
    return all(isinstance(s, bytes) and len(s) == HASH_BYTES for s in path)


def _walk(items: Sequence[tuple[bytes, int, Sequence[bytes]]], n: int, root_digest: bytes) -> bool:
    """Every (leaf digest, index, path) reaches ``root_digest``; shapes already checked. Below
    ``cut`` siblings are hashed directly; above it, where random paths share ancestors, node hashes
    are memoized on their children (hashlib's per-call cost dominates the 2-block node hash)."""
    sha = hashlib.sha256
    memo: dict[bytes, bytes] = {}
    cut = max(0, n.bit_length() - max(1, len(items)).bit_length())
    for h, index, path in items:
        for j, (s, left) in enumerate(zip(path, directions(index, n), strict=True)):
            key = s + h if left else h + s
            if j < cut:
                h = sha(b"\x01" + key).digest()
            else:
                got = memo.get(key)
                if got is None:
                    got = memo[key] = sha(b"\x01" + key).digest()
                h = got
        if h != root_digest:
            return False
    return True


def verify_inclusion(root_digest: bytes, leaf_digest: bytes, index: int, n: int, path: Sequence[bytes]) -> bool:
    """RFC 9162 inclusion of ``leaf_digest`` at ``index`` in a tree of ``n`` leaves. Never raises."""
    return verify_inclusions(root_digest, [(leaf_digest, index, path)], n)


def verify_inclusions(root_digest: bytes, items: Sequence[tuple[bytes, int, Sequence[bytes]]], n: int) -> bool:
    """Batched ``verify_inclusion``: True iff every (leaf digest, index, path) verifies."""
    if not (isinstance(root_digest, bytes) and len(root_digest) == HASH_BYTES):
        return False
    try:
        items = list(items)
    except TypeError:
        return False
    if not all(isinstance(it, tuple | list) and len(it) == 3 and _shape_ok(it[0], it[1], n, it[2]) for it in items):
        return False
    return _walk(items, n, root_digest)


@dataclass(frozen=True)
class Opening:
    """A leaf's raw bytes with its global index, the tree size and its audit path."""

    index: int
    n: int
    leaf: bytes
    path: tuple[bytes, ...]

    def to_obj(self) -> dict:
        """Canonical-encoding form (bytes as lowercase hex)."""
        return {"index": self.index, "n": self.n, "leaf": self.leaf.hex(), "path": [p.hex() for p in self.path]}


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_shape(op: object, n: int, leaf_len: int) -> str:
    """Structural checks of one opening (no hashing); returns OK or a reason code."""
    if not isinstance(op, Opening):
        return BAD_PROOF
    if not _is_int(op.n) or op.n != n:
        return N_MISMATCH
    if not _is_int(op.index) or not 0 <= op.index < n:
        return INDEX_OUT_OF_RANGE
    if not isinstance(op.leaf, bytes | bytearray) or len(op.leaf) != leaf_len:
        return BAD_LEAF_LENGTH
    if not isinstance(op.path, tuple | list):
        return BAD_PATH_LENGTH
    if len(op.path) != len(directions(op.index, n)):
        return BAD_PATH_LENGTH
    if not all(isinstance(s, bytes) and len(s) == HASH_BYTES for s in op.path):
        return BAD_PROOF
    return OK


def verify_param_openings(root_digest: bytes, layout, openings: Sequence[Opening]) -> tuple[bool, str]:
    """``verify_openings`` for a parameter tree described by its ``Layout`` (tag POGO-PARAM-v1)."""
    return verify_openings(root_digest, TAG_PARAM, openings, layout.n_leaves, 4 * layout.leaf_size)


def verify_openings(root_digest: bytes, tag: bytes, openings: Sequence[Opening], n: int,
                    leaf_len: int) -> tuple[bool, str]:
    """Check every opening against ``root_digest`` for a tree of ``n`` leaves of ``leaf_len`` bytes.

    Returns (True, "OK") or (False, reason) with the first failing reason among
    INDEX_OUT_OF_RANGE, BAD_LEAF_LENGTH, BAD_PATH_LENGTH, BAD_PROOF, N_MISMATCH, DUPLICATE_INDEX.
    Never raises on malformed content. An empty list is vacuously OK: the caller decides which
    indices must be opened.
    """
    if not isinstance(root_digest, bytes) or len(root_digest) != HASH_BYTES:
        return False, BAD_PROOF
    if not isinstance(tag, bytes) or len(tag) > 55:
        return False, BAD_PROOF
    if not _is_int(n) or not 1 <= n <= 2**MAX_DEPTH:
        return False, N_MISMATCH
    if not _is_int(leaf_len) or leaf_len < 0:
        return False, BAD_LEAF_LENGTH
    try:
        ops = list(openings)
    except TypeError:
        return False, BAD_PROOF
    seen: set[int] = set()
    for op in ops:
        reason = check_shape(op, n, leaf_len)
        if reason != OK:
            return False, reason
        if op.index in seen:
            return False, DUPLICATE_INDEX
        seen.add(op.index)
    items = [(leaf_hash(tag, op.index, op.leaf), op.index, op.path) for op in ops]
    return (True, OK) if _walk(items, n, root_digest) else (False, BAD_PROOF)


def make_openings(leaf_digests: Sequence[bytes], leaves: dict[int, bytes],
                  levels: list[list[bytes]] | None = None) -> list[Opening]:
    """Openings for ``{index: leaf bytes}`` from all leaf digests of the tree (no leaf is re-hashed)."""
    lv = levels if levels is not None else tree_levels(leaf_digests)
    n = len(lv[0])
    return [Opening(i, n, bytes(leaf), tuple(audit_path(lv, i))) for i, leaf in leaves.items()]
