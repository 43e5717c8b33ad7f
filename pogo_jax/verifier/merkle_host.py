"""Host reference for PoGO Merkle trees (PROTOCOL section 2): numpy + hashlib only.

Leaf hash  = SHA-256(H64 || data), H64 = 0x00 || ASCII tag || zeros up to byte 56 || uint64_le(index)
Node hash  = SHA-256(0x01 || left || right)
Tree shape = RFC 9162 section 2.1.1 (largest power of two < n splits), computed bottom-up by
pairwise reduction where an unpaired last node is carried up unchanged (never duplicated).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

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


def root_from_path(leaf_digest: bytes, index: int, n: int, path: Sequence[bytes]) -> bytes | None:
    """Recompute the root from a leaf and its audit path; None if the path has the wrong shape."""
    if not (0 <= index < n) or n > 2**MAX_DEPTH:
        return None
    h = leaf_digest
    i, width, used = index, n, 0
    while width > 1:
        sib = i ^ 1
        if sib < width:
            if used >= len(path):
                return None
            s = path[used]
            used += 1
            if len(s) != HASH_BYTES:
                return None
            h = node_hash(s, h) if i & 1 else node_hash(h, s)
        i //= 2
        width = (width + 1) // 2
    if used != len(path):
        return None
    return h


def verify_path(root_digest: bytes, leaf_digest: bytes, index: int, n: int, path: Sequence[bytes]) -> bool:
    got = root_from_path(leaf_digest, index, n, path)
    return got is not None and got == root_digest


def path_length(index: int, n: int) -> int:
    """Number of siblings in the audit path of ``index`` in a tree of ``n`` leaves."""
    i, width, k = index, n, 0
    while width > 1:
        if (i ^ 1) < width:
            k += 1
        i //= 2
        width = (width + 1) // 2
    return k
