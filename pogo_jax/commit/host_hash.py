"""Host lowerings of the leaf hasher: hashlib over the leaves on every CPU, or numpy SHA-256.

Work comes as *jobs*: ``(rows, index)`` with ``rows`` an (L, B) uint8 view of whole leaves (no copy
of the state: a numpy tensor, or the buffer of one CPU shard of a jax array) and ``index`` their
global leaf indices. ``array_jobs`` cuts one tensor into jobs; a jax array is read shard by shard
(replica 0 of each block), so a sharded state is never gathered when its shards hold whole leaves.

hashlib releases the GIL only while it hashes a buffer of at least 2 KiB in one call, and only the
constructor does so without first allocating a lock per object (measured: ``sha256(header)`` then
``update(leaf)`` did not scale at all over two threads). So each worker copies a chunk of leaves
into its own buffer laid out ``H64 || leaf`` per row and hashes every row with one constructor call.
Even so a thread must win the GIL back after every 4 KiB leaf, and the hand-over costs more than
the hash: on the 2-CPU machine of docs/merkle.md two threads ran 0.75-1.1 times one. So where a
fork is safe (no jax and no other thread in the process: ``pogo commit FILE.npz``, verifier hosts)
the work is split over forked processes that read the leaves in place, each pinned to its own CPU
and claiming chunks as it goes; elsewhere (a process running jax on CPU) over a thread pool. Leaves
under 2 KiB (the 528-byte update leaves) never release the GIL, so threads do not help them.
Nothing here imports jax.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pogo_jax.commit import blocks, sha256_np

Job = tuple[np.ndarray, np.ndarray]  # (L, B) uint8 leaf rows, (L,) uint64 global leaf indices

HASHLIB_GIL_MINSIZE = 2048  # CPython's hashlib hashes shorter buffers with the GIL held
CHUNK_ROWS = {"hashlib": 256, "numpy": 4096}  # rows per work item: ~1 MiB of 4 KiB leaves for hashlib
_DIGEST = type(hashlib.sha256()).digest
POOL_PREFIX = "pogo-leafhash"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cpu_count(), thread_name_prefix=POOL_PREFIX)
        return _pool


# ---------------------------------------------------------------- arrays -> jobs


def _le_bytes(arr: np.ndarray) -> np.ndarray:
    """C-contiguous little-endian bytes of ``arr`` as a flat uint8 view (a copy only when needed)."""
    arr = np.ascontiguousarray(arr)
    big = arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big")
    if big and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.reshape(-1).view(np.uint8)


def whole_jobs(arr: Any, s: int, first_leaf: int) -> list[Job]:
    """Jobs for a whole tensor on the host: full leaves as a view, the padded last leaf as a copy."""
    arr = np.asarray(arr)
    flat = _le_bytes(arr)
    b = s * arr.dtype.itemsize
    n_full, rem = divmod(flat.size, b)
    jobs = []
    if n_full:
        index = np.uint64(first_leaf) + np.arange(n_full, dtype=np.uint64)
        jobs.append((flat[: n_full * b].reshape(n_full, b), index))
    if rem:
        last = np.zeros((1, b), np.uint8)
        last[0, :rem] = flat[n_full * b :]
        jobs.append((last, np.array([first_leaf + n_full], np.uint64)))
    return jobs


def _box(index: tuple, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(starts, extents) of a shard from its tuple of slices."""
    ranges = [sl.indices(n)[:2] for sl, n in zip(index, shape, strict=True)]
    return tuple(a for a, _ in ranges), tuple(b - a for a, b in ranges)


def array_jobs(a: Any, s: int, first_leaf: int) -> list[Job] | None:
    """Jobs for one tensor (leaf = ``s`` elements); None when a jax array is split across leaves and
    not fully addressable here (the caller reshards it on the devices first)."""
    if not hasattr(a, "addressable_shards"):
        return whole_jobs(a, s, first_leaf)
    shape = tuple(a.shape)
    # decided from the global device -> block map, so every process of a multi-host run agrees
    boxes = [_box(idx, shape) for idx in a.sharding.devices_indices_map(shape).values()]
    if not all(blocks.is_aligned(shape, block, s, starts) for starts, block in boxes):
        return whole_jobs(a, s, first_leaf) if a.is_fully_addressable else None
    jobs: list[Job] = []
    for sh in a.addressable_shards:
        if sh.replica_id != 0:
            continue  # every block is hashed once, by whoever holds its replica 0
        starts, block = _box(sh.index, shape)
        data = np.asarray(sh.data)
        k = blocks.split_dim(shape, block)
        if k is None:
            jobs += whole_jobs(data, s, first_leaf)
            continue
        q = math.prod(shape[k + 1 :])
        grid = blocks.leaf_grid(np, shape, block, s, starts[:k], starts[k] * q // s, np.uint64)
        rows = _le_bytes(data).reshape(grid.size, -1)
        jobs.append((rows, grid + np.uint64(first_leaf)))
    return jobs


# ---------------------------------------------------------------- jobs -> digests


class _Scratch(threading.local):
    """Per-thread ``H64 || leaf`` buffer and its row views, reused across chunks.

    The buffer is its own mapping, populated at once and left out of every fork (MADV_DONTFORK): a
    forked hashing child would otherwise share it copy-on-write, and each of its pages would fault
    and be copied again in both processes on their first write (about 500 faults per 1 MiB buffer,
    a few percent of a 50 ms commit). A child finds the buffer gone (another pid) and maps its own;
    it never touches the parent's, which is not mapped there."""

    key: tuple[int, int, bytes] | None = None  # (pid, row bytes, prefix)
    buf: np.ndarray | None = None
    views: list[memoryview] = []


_scratch = _Scratch()


def _mapping(nbytes: int, dontfork: bool = False) -> mmap.mmap:
    """An anonymous mapping with its pages in place (MAP_POPULATE where there is one)."""
    flags = getattr(mmap, "MAP_SHARED", 1) | getattr(mmap, "MAP_POPULATE", 0)
    try:
        mm = mmap.mmap(-1, nbytes, flags=flags)
    except (OSError, TypeError, ValueError):  # no flags on this platform
        mm = mmap.mmap(-1, nbytes)
    if dontfork and hasattr(mmap, "MADV_DONTFORK"):
        with contextlib.suppress(OSError):
            mm.madvise(mmap.MADV_DONTFORK)
    return mm


def _buffer(k: int, m: int, prefix: bytes) -> tuple[np.ndarray, list[memoryview]]:
    sc = _scratch
    key = (os.getpid(), m, prefix)
    if sc.key != key or sc.buf is None or sc.buf.shape[0] < k:
        # drop the old buffer before mapping a new one: in a forked child the old range is not mapped,
        # and freeing it after the new mapping took the same address would unmap the new one
        sc.key, sc.views, sc.buf = None, [], None
        rows = max(k, CHUNK_ROWS["hashlib"])
        buf = np.frombuffer(_mapping(rows * m, dontfork=True), np.uint8).reshape(rows, m)
        buf[:, :56] = np.frombuffer(prefix, np.uint8)
        flat = memoryview(buf.reshape(-1))
        sc.buf, sc.views, sc.key = buf, [flat[j * m : (j + 1) * m] for j in range(rows)], key
    return sc.buf, sc.views


def _hashlib_piece(rows: np.ndarray, index: np.ndarray, prefix: bytes) -> bytes:
    k, b = rows.shape
    buf, views = _buffer(k, sha256_np.HEADER_BYTES + b, prefix)
    buf[:k, 56:64] = index.astype("<u8").view(np.uint8).reshape(k, 8)
    buf[:k, 64:] = rows
    return b"".join(map(_DIGEST, map(hashlib.sha256, views[:k])))


def _numpy_piece(rows: np.ndarray, index: np.ndarray, tag: bytes) -> bytes:
    return sha256_np.leaf_digests(rows, index, tag).tobytes()


MODES = ("auto", "serial", "threads", "processes")
FORK_MIN_BYTES = 8 << 20  # below this a fork (a few ms) costs more than the second core saves


def fork_is_safe() -> bool:
    """True in a process where ``os.fork`` cannot deadlock the child: Linux, no jax (whose runtime
    threads may hold locks at the fork; jax also warns on every fork), and no Python thread but this
    one and the idle workers of our own pool (a caller using the pool meanwhile is another thread)."""
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")) or "jax" in sys.modules:
        return False
    me = threading.current_thread()
    return all(t is me or t.name.startswith(POOL_PREFIX) for t in threading.enumerate())


def hash_jobs(jobs: Sequence[Job], tag: bytes, impl: str = "hashlib", threads: int | None = None,
              mode: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """All jobs' leaves -> (indices (M,) uint64, digests (M, 32) uint8), in job order.

    ``mode="auto"``: forked processes where that is safe and the work is large enough (no GIL
    between them), else a thread pool for leaves of 2 KiB or more, else this thread. ``threads``
    caps the workers (default: every CPU of the affinity mask); benchmarks force a ``mode``.
    """
    if impl not in CHUNK_ROWS:
        raise ValueError(f"host impl must be one of {sorted(CHUNK_ROWS)}, not {impl!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    prefix = sha256_np.header_prefix(tag)
    step = CHUNK_ROWS[impl]
    pieces = [(rows[i : i + step], idx[i : i + step]) for rows, idx in jobs for i in range(0, len(idx), step)]
    if not pieces:
        return np.zeros((0,), np.uint64), np.zeros((0, 32), np.uint8)
    if impl == "hashlib":
        fn = lambda p: _hashlib_piece(p[0], p[1], prefix)  # noqa: E731
        short = pieces[0][0].shape[1] + sha256_np.HEADER_BYTES < HASHLIB_GIL_MINSIZE
    else:
        fn = lambda p: _numpy_piece(p[0], p[1], tag)  # noqa: E731
        short = False
    n = min(threads or cpu_count(), len(pieces))
    if mode == "auto":
        big = sum(p[0].nbytes for p in pieces) >= FORK_MIN_BYTES
        mode = ("processes" if big and fork_is_safe() else "serial" if short else "threads") if n > 1 else "serial"
    if mode == "processes" and n > 1:
        digests = _forked(fn, pieces, n)
    else:
        pool = mode == "threads" and n > 1
        out = (list(_executor().map(fn, pieces)) if threads is None else _run_threads(fn, pieces, n)) if pool \
            else [fn(p) for p in pieces]
        digests = np.frombuffer(b"".join(out), np.uint8).reshape(-1, 32)
    index = np.concatenate([p[1] for p in pieces]).astype(np.uint64)
    return index, digests


def _run_threads(fn: Any, pieces: list, n: int) -> list[bytes]:
    """An explicit thread count (benchmarks): a fresh pool of exactly ``n`` workers."""
    with ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(fn, pieces))


_unreaped: list[int] = []  # children that reported their digests but had not exited yet


def _reap() -> None:
    for pid in list(_unreaped):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


def _affinity() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def _pin(cpus: list[int]) -> None:
    """Run this process on ``cpus`` only (no-op for an empty list). Without it the scheduler starts a
    forked child on its parent's CPU and moves one of them only milliseconds later: measured on 2 CPUs,
    x1.69-1.81 of one thread unpinned against x1.77-1.85 pinned (same run, medians of 9)."""
    if cpus:
        with contextlib.suppress(OSError):  # a container may forbid it: only a little slower then
            os.sched_setaffinity(0, cpus)


def _order(k: int, n: int, m: int) -> list[int]:
    """Worker ``k`` of ``n`` walks its own ``m // n`` pieces forward, then everyone else's from the
    far end backward: a worker that finishes early takes work from where its neighbour is not."""
    lo, hi = k * m // n, (k + 1) * m // n
    return list(range(lo, hi)) + [i for i in range(m - 1, -1, -1) if not lo <= i < hi]


def _forked(fn: Any, pieces: list, n: int) -> np.ndarray:
    """``fn`` over ``pieces`` in this process and ``n - 1`` forked children, which read the leaves
    from the inherited (copy-on-write, never copied) memory and write digests to a shared mapping.

    Pieces are claimed, not dealt: one claim byte and one done byte per piece in the same mapping, so
    no process waits idle while another still has a queue (a static half each left a 3 ms tail on a
    55 ms job). A claim is only a hint: two processes that read a 0 at once both hash the piece and
    write the same 32-byte digests, and a claimed piece is only trusted once its done byte is set,
    read after the child has reported on its pipe (or died). A child that fails, or has not reported
    after a generous timeout, is killed and whatever is not done is hashed here: a stuck child can cost
    time, never a wrong or missing digest."""
    _reap()
    m = len(pieces)
    offsets = np.concatenate([[0], np.cumsum([len(p[1]) for p in pieces])]) * 32
    claim, done = int(offsets[-1]), int(offsets[-1]) + m
    shared = _mapping(done + m)  # MAP_SHARED: children's writes are seen here

    def hash_piece(i: int) -> None:
        shared[offsets[i] : offsets[i + 1]] = fn(pieces[i])
        shared[done + i] = 1

    def run(order: list[int]) -> None:
        for i in order:
            if not shared[claim + i]:
                shared[claim + i] = 1
                hash_piece(i)

    children: dict[int, int] = {}  # read end of its pipe -> pid
    mask = _affinity()
    cpus = sorted(mask) if mask and len(mask) >= n else []
    try:
        for k in range(1, n):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: hash what it can claim, say so, leave without running any cleanup
                code = 1
                try:
                    os.close(r)
                    _pin(cpus[k : k + 1])
                    run(_order(k, n, m))
                    os.write(w, b"\x00")
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            children[r] = pid
        _pin(cpus[:1])
        run(_order(0, n, m))
        deadline = time.monotonic() + 60 + 10 * sum(p[0].nbytes for p in pieces) / 1e8
        while children:
            ready, _, _ = select.select(list(children), [], [], max(0.0, deadline - time.monotonic()))
            for r in ready or list(children):
                pid = children.pop(r)
                if not (ready and os.read(r, 1) == b"\x00"):  # died (EOF) or timed out: make sure it is gone
                    os.kill(pid, signal.SIGKILL)
                os.close(r)
                _unreaped.append(pid)
        for i, ok in enumerate(shared[done:]):
            if not ok:  # claimed by a child that died or hung
                hash_piece(i)
        _reap()
        # the digests stay in the shared mapping (no copy: a 1 MiB copy is 256 fresh pages to fault)
        return np.frombuffer(shared, np.uint8, claim).reshape(-1, 32)
    finally:
        _pin(sorted(mask) if cpus else [])  # this process gets back every CPU it had
        for r, pid in children.items():  # interrupted: never leave a child running
            os.kill(pid, signal.SIGKILL)
            os.close(r)
            _unreaped.append(pid)
