"""The node hashes an update as it streams in: leaf hashes of every whole leaf, folded into the root at
once, so an upload costs the node O(log n) memory whatever its size (a node that kept every digest held
~80 bytes of Python objects per leaf: 256 concurrent candidates of the default layout were gigabytes)."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from pogo_jax.chain.blobs import LeafHasher, StreamingRoot
from pogo_jax.spec import merkle as mh


def _rng() -> tuple[np.random.Generator, int]:
    seed = int.from_bytes(os.urandom(4), "little")
    return np.random.default_rng(seed), seed


@pytest.mark.parametrize("block", [1, 2, 8, 4096])
def test_streaming_root_is_the_spec_root_for_every_size_and_cut(block: int) -> None:
    rng, seed = _rng()
    sizes = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 33, 100, int(rng.integers(1, 3000))] + ([4096, 4097, 8193] if block == 4096 else [])
    for n in sizes:
        digests = [rng.bytes(32) for _ in range(n)]
        t, i = StreamingRoot(block), 0
        while i < n:  # arbitrary cuts: a chunk boundary never lands on a subtree boundary on purpose
            k = int(rng.integers(1, 2 * block + 3))
            t.add(b"".join(digests[i : i + k]))
            i += k
        assert t.n == n and t.root() == mh.root(digests), f"seed={seed} n={n} block={block}"


def test_leaf_hasher_over_arbitrary_chunks_is_the_spec_root_and_refuses_a_partial_leaf() -> None:
    rng, seed = _rng()
    for leaf_len in (132, 528):
        data = rng.bytes(leaf_len * int(rng.integers(1, 5000)))
        h, i = LeafHasher(mh.TAG_QUPD, leaf_len), 0
        reused = bytearray(3 * leaf_len)  # a caller's receive buffer, overwritten after each update
        while i < len(data):
            k = int(rng.integers(1, 3 * leaf_len))
            piece = data[i : i + k]
            kind = int(rng.integers(3))
            if kind == 2:
                reused[: len(piece)] = piece
                h.update(memoryview(reused)[: len(piece)])
                reused[:] = rng.bytes(len(reused))
            else:
                h.update(piece if kind == 0 else bytearray(piece))
            i += k
        rows = np.frombuffer(data, np.uint8).reshape(-1, leaf_len)
        assert h.root() == mh.root(mh.leaf_hashes(mh.TAG_QUPD, rows)), f"seed={seed}"
        h.update(b"\x00")  # one byte past the last leaf: no root, whatever the leaves before hash to
        assert h.root() is None
    assert LeafHasher(mh.TAG_QUPD, 528).root() is None  # an empty stream has no root either


def test_an_upload_is_hashed_in_bounded_memory() -> None:
    """127,100 leaves of 132 bytes (16.8 MB, the tests' layout) streamed in 256 KiB chunks: the hasher's
    Python allocations stay under 2 MB above the chunk itself (the digest list alone was 10 MB)."""
    rng, _ = _rng()
    leaf_len, n = 132, 127_100
    chunk = rng.bytes(1 << 18)
    stream = (chunk * (n * leaf_len // len(chunk) + 1))[: n * leaf_len]
    h = LeafHasher(mh.TAG_QUPD, leaf_len)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(0, len(stream), 1 << 18):
            h.update(stream[i : i + (1 << 18)])
        root = h.root()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert root is not None and h.n_leaves == n
    assert peak < (1 << 18) * 2 + (2 << 20), f"{peak / 1e6:.1f} MB for one upload"
