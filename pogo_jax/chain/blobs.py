"""The node's content-addressed blob store: updates, bundles, datasets, states, each named by SHA-256.

Uploads stream into a temp file under ``tmp/`` while they are hashed (SHA-256 of the bytes, and for
an update the Merkle leaf hashes, so ``root_q`` is known when the last byte arrives); the file is
fsynced and renamed into ``ab/cdef...`` only when the hash is the expected one. A killed node
therefore leaves at most a temp file (removed at start), never a partial blob under its name.
Blobs are immutable: a name that exists is never rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pogo_jax.commit import host_hash
from pogo_jax.errors import MalformedInput
from pogo_jax.spec import merkle as mh

_SHA = re.compile(r"[0-9a-f]{64}")
_DIGEST = type(hashlib.sha256()).digest
CHUNK = 1 << 20


def check_sha(name: str) -> bytes:
    """A blob name is 64 lowercase hex digits and nothing else (no path can hide in it)."""
    if not isinstance(name, str) or not _SHA.fullmatch(name):
        raise MalformedInput("a blob is named by 64 lowercase hex digits (its SHA-256)")
    return bytes.fromhex(name)


class _NodeRows(threading.local):
    """This thread's ``0x01 || left || right`` rows and a memoryview per row, made once: slicing a
    view per node cost as much as the node's hash (uploads run in several threads, hence one each)."""

    buf: np.ndarray | None = None
    views: list[memoryview] = []

    def get(self, n: int) -> tuple[np.ndarray, list[memoryview]]:
        if self.buf is None or len(self.buf) < n:
            self.buf = np.empty((max(n, 2048), 65), np.uint8)
            self.buf[:, 0] = 1
            flat = memoryview(self.buf.reshape(-1))
            self.views = [flat[i * 65 : (i + 1) * 65] for i in range(len(self.buf))]
        return self.buf, self.views


_node_rows = _NodeRows()


def _node_level(level: bytes) -> bytes:
    """One level up a perfect run of 32-byte digests: ``sha256(0x01 || left || right)`` per pair, every
    pair in one 65-byte row of a buffer and one hashlib call each (no Python loop per node)."""
    n = len(level) // 64
    buf, views = _node_rows.get(n)
    buf[:n, 1:] = np.frombuffer(level, np.uint8).reshape(n, 64)
    return b"".join(map(_DIGEST, map(hashlib.sha256, views[:n])))


class StreamingRoot:
    """The Merkle root of a stream of leaf digests in O(log n) memory, bit for bit ``mh.root``.

    Digests are folded into perfect subtrees of ``block`` leaves as they arrive and kept as a binary
    counter of subtree roots (sizes strictly decreasing); the root is the right fold of those and the
    tail's own root, which is the RFC 9162 split at the largest power of two that ``mh.tree_levels``
    (pair adjacent nodes, carry an odd one up) also computes. A node that kept every digest held 16
    bytes of Python object per leaf beside the 32 of the digest (37 MB for a 268 MB update)."""

    def __init__(self, block: int = 4096) -> None:
        if block < 1 or block & (block - 1):
            raise ValueError("block must be a power of two")
        self.block, self.n = block, 0
        self._stack: list[tuple[int, bytes]] = []  # (leaves, subtree root), leaves strictly decreasing
        self._tail = bytearray()

    def add(self, digests: bytes) -> None:
        """Append leaf digests (a multiple of 32 bytes)."""
        if len(digests) % 32:
            raise ValueError("leaf digests come in 32 bytes each")
        self._tail += digests
        self.n += len(digests) // 32
        width = 32 * self.block
        while len(self._tail) >= width:
            level = bytes(self._tail[:width])
            del self._tail[:width]
            while len(level) > 32:
                level = _node_level(level)
            self._push(self.block, level)

    def _push(self, size: int, node: bytes) -> None:
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            node, size = mh.node_hash(left, node), 2 * size
        self._stack.append((size, node))

    def root(self) -> bytes:
        if not self.n:
            raise ValueError("a Merkle tree needs at least one leaf")
        tail = bytes(self._tail)
        acc = mh.root([tail[i : i + 32] for i in range(0, len(tail), 32)]) if tail else None
        for _, node in reversed(self._stack):
            acc = node if acc is None else mh.node_hash(node, acc)
        return acc


class LeafHasher:
    """Merkle leaf hashes of a byte stream cut into ``leaf_len``-byte leaves (tag, global index), folded
    into the root as they come.

    Whole leaves of each chunk go through the host lowering of the leaf hasher (``H64 || leaf`` rows,
    one hashlib call per leaf from C, no Python per leaf); only the tail of a chunk that does not end
    on a leaf boundary is kept for the next one."""

    def __init__(self, tag: bytes, leaf_len: int) -> None:
        self.tag, self.leaf_len = tag, leaf_len
        self.tree = StreamingRoot()
        self._rest = b""

    @property
    def n_leaves(self) -> int:
        return self.tree.n

    def update(self, chunk: bytes) -> None:
        """Hash the whole leaves ``chunk`` completes; the chunk is read in place, never copied whole
        (a copy per 1 MiB chunk cost a quarter of the upload's hashing)."""
        mv = memoryview(chunk).cast("B")
        L = self.leaf_len
        if self._rest:
            need = L - len(self._rest)
            if len(mv) < need:
                self._rest += bytes(mv)
                return
            self._leaves(np.frombuffer(self._rest + bytes(mv[:need]), np.uint8).reshape(1, L))
            mv, self._rest = mv[need:], b""
        n = len(mv) // L
        if n:
            self._leaves(np.frombuffer(mv, np.uint8, n * L).reshape(n, L))
        self._rest = bytes(mv[n * L :])

    def _leaves(self, rows: np.ndarray) -> None:
        index = np.arange(self.tree.n, self.tree.n + len(rows), dtype=np.uint64)
        _, digests = host_hash.hash_jobs([(rows, index)], self.tag, "hashlib", mode="serial")
        self.tree.add(digests.tobytes())

    def root(self) -> bytes | None:
        """The root, or None if the stream did not end on a leaf boundary (or was empty)."""
        if self._rest or not self.tree.n:
            return None
        return self.tree.root()


class Upload:
    """One streaming upload: ``write`` chunks, then ``commit`` (or ``discard``)."""

    def __init__(self, store: BlobStore, max_bytes: int, leaf_hasher: LeafHasher | None = None) -> None:
        self.store, self.max_bytes, self.leaf_hasher = store, max_bytes, leaf_hasher
        fd, self.tmp = tempfile.mkstemp(dir=store.tmp_dir, suffix=".part")
        self._f = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self.size = 0
        self._closed = False  # committed or discarded: the temp name is no longer ours

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise MalformedInput(f"upload is larger than the {self.max_bytes} bytes allowed here")
        self._sha.update(chunk)
        if self.leaf_hasher is not None:
            self.leaf_hasher.update(chunk)
        self._f.write(chunk)

    @property
    def sha256(self) -> bytes:
        return self._sha.digest()

    def contents(self) -> bytes:
        """The bytes written so far, read back from the temp file (for a blob that is parsed whole once
        it is complete, like a bundle, whose bytes were not held in memory while they arrived)."""
        self._f.flush()
        return Path(self.tmp).read_bytes()

    def commit(self) -> bytes:
        """fsync and move into place under the hash; returns it."""
        if self._closed:
            raise RuntimeError("upload already committed or discarded")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        sha = self.sha256
        final = self.store.path(sha)
        if final.exists():
            os.unlink(self.tmp)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.tmp, 0o444)
            os.replace(self.tmp, final)
            _fsync_dir(final.parent)
        self._closed = True
        return sha

    def discard(self) -> None:
        """Drop the temp file; a no-op once committed or discarded (another upload may hold the name)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: str | Path, readonly: bool = False) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        if not readonly:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def clean_tmp(self) -> int:
        """Remove uploads a killed process left behind; returns how many."""
        n = 0
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n

    def path(self, sha: bytes) -> Path:
        h = sha.hex()
        return self.root / h[:2] / h[2:]

    def has(self, sha: bytes) -> bool:
        return self.path(sha).is_file()

    def size(self, sha: bytes) -> int:
        return self.path(sha).stat().st_size

    def upload(self, max_bytes: int, leaf_hasher: LeafHasher | None = None) -> Upload:
        return Upload(self, max_bytes, leaf_hasher)

    def put(self, data: bytes) -> bytes:
        up = self.upload(len(data))
        try:
            up.write(data)
            return up.commit()
        except BaseException:
            up.discard()
            raise

    def get(self, sha: bytes) -> bytes:
        return self.path(sha).read_bytes()

    def read(self, sha: bytes, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream ``[start, end)`` of a blob in 1 MiB chunks (bounded memory for any size)."""
        with open(self.path(sha), "rb") as f:
            f.seek(start)
            left = (end if end is not None else os.fstat(f.fileno()).st_size) - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def all(self) -> list[bytes]:
        out = []
        for d in self.root.iterdir():
            if d.is_dir() and len(d.name) == 2 and d.name != "tmp":
                out += [bytes.fromhex(d.name + f.name) for f in d.iterdir() if _SHA.fullmatch(d.name + f.name)]
        return out

    def remove(self, sha: bytes) -> None:
        self.path(sha).unlink(missing_ok=True)
