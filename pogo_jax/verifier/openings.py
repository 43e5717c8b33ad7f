"""Leaf openings (inclusion proofs) and their batched verification: numpy + hashlib only.

An ``Opening`` names the tree size ``n``, the global leaf index, the leaf's raw bytes and its
RFC 9162 audit path (siblings bottom-up). ``verify_openings`` checks many at once against one
root and answers a reason code instead of raising, because its input comes from the network.

Batching: every path is still checked on its own (same result as ``merkle_host.verify_path``
per opening), but in the top levels, where random openings share ancestors, node hashes are
memoized on their (left, right) children and hashed once. The loop is kept tight (directions precomputed per
index) because on the host the per-call overhead of hashlib dominates the 2-block node hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pogo_jax.verifier.merkle_host import HASH_BYTES, MAX_DEPTH, TAG_PARAM, audit_path, leaf_header, tree_levels

OK = "OK"
INDEX_OUT_OF_RANGE = "INDEX_OUT_OF_RANGE"
BAD_LEAF_LENGTH = "BAD_LEAF_LENGTH"
BAD_PATH_LENGTH = "BAD_PATH_LENGTH"
BAD_PROOF = "BAD_PROOF"
N_MISMATCH = "N_MISMATCH"
DUPLICATE_INDEX = "DUPLICATE_INDEX"


@dataclass(frozen=True)
class Opening:
    index: int
    n: int
    leaf: bytes
    path: tuple[bytes, ...]

    def to_obj(self) -> dict:
        """Canonical-encoding form (bytes as lowercase hex)."""
        return {
            "index": self.index,
            "n": self.n,
            "leaf": self.leaf.hex(),
            "path": [p.hex() for p in self.path],
        }


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


def verify_param_openings(root: bytes, layout, openings: Sequence[Opening]) -> tuple[bool, str]:
    """``verify_openings`` for a parameter tree described by its ``Layout`` (n and leaf length
    from the layout, tag POGO-PARAM-v1): the issue's ``verify_openings(root, layout, openings)``."""
    return verify_openings(root, TAG_PARAM, openings, layout.n_leaves, 4 * layout.leaf_size)


def verify_openings(root: bytes, tag: bytes, openings: Sequence[Opening], n: int, leaf_len: int) -> tuple[bool, str]:
    """Check every opening against ``root`` for a tree of ``n`` leaves of ``leaf_len`` bytes.

    Returns (True, "OK") or (False, reason) with the first failing reason among
    INDEX_OUT_OF_RANGE, BAD_LEAF_LENGTH, BAD_PATH_LENGTH, BAD_PROOF, N_MISMATCH, DUPLICATE_INDEX.
    Never raises on malformed content. An empty list is vacuously OK: the caller decides which
    indices must be opened.
    """
    if not isinstance(root, bytes) or len(root) != HASH_BYTES:
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

    items = [(hashlib.sha256(leaf_header(tag, op.index) + bytes(op.leaf)).digest(), op.index, op.path) for op in ops]
    return (True, OK) if _check_paths(root, items, n) else (False, BAD_PROOF)


def _check_paths(root: bytes, items: Sequence[tuple[bytes, int, Sequence[bytes]]], n: int) -> bool:
    """All (leaf digest, index, path) reach ``root``; shapes already checked. Siblings below
    ``cut`` are hashed directly; above it (where random paths start to share nodes) memoized."""
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
        if h != root:
            return False
    return True


def verify_paths(root: bytes, items: Sequence[tuple[bytes, int, Sequence[bytes]]], n: int) -> bool:
    """Batched check of (leaf_digest, index, path) triples (no leaf bytes): True iff all verify."""
    for h, index, path in items:
        if not (0 <= index < n) or len(path) != len(directions(index, n)) or len(h) != HASH_BYTES:
            return False
        if not all(len(s) == HASH_BYTES for s in path):
            return False
    return _check_paths(root, items, n)


def make_openings(
    leaf_digests: Sequence[bytes], leaves: dict[int, bytes], levels: list[list[bytes]] | None = None
) -> list[Opening]:
    """Host: build openings for ``{index: leaf bytes}`` from all leaf digests of the tree."""
    lv = levels if levels is not None else tree_levels(leaf_digests)
    n = len(lv[0])
    return [Opening(i, n, bytes(leaf), tuple(audit_path(lv, i))) for i, leaf in leaves.items()]
