"""The jnp lowering of the leaf hasher, the device tree reduction, and row fetches (PROTOCOL section 2).

Bits only: parameters enter as float32 and are *bitcast* to uint32, never converted, so no float
op can touch them and the digests are the same on every backend and mesh. ``hash_rows`` is
vectorized over the leaf axis and traceable, so it runs inside ``shard_map`` on each device's own
leaves (``sharded``); the leaf index of every row is an explicit argument, as two uint32 halves of
the uint64 (no x64 mode needed).

Per leaf the message is ``H64 || data || padding``. The 64-byte header block is built on device
from the row's index; the data words are byte-swapped to big-endian and laid out word-major
``(W, N)`` so each message word is a contiguous row; the padding words are constants for a given
row length.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from pogo_jax.commit import sha256
from pogo_jax.commit.sha256_np import HEADER_BYTES, header_prefix_words  # noqa: F401 - re-exported

DEFAULT_UNROLL = 4  # rounds per loop iteration; see docs/merkle.md for the measurements


def add_index(lo: jax.Array, hi: jax.Array, local: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(lo, hi) + local as uint64 arithmetic on uint32 halves (carry into the high word)."""
    new_lo = lo + local
    return new_lo, hi + (new_lo < lo).astype(jnp.uint32)


def hash_rows(words_le: jax.Array, idx_lo: jax.Array, idx_hi: jax.Array, prefix: tuple[int, ...],
              unroll: int = DEFAULT_UNROLL) -> jax.Array:
    """(N, W) uint32 little-endian leaf words, (N,) index halves -> (N, 8) uint32 digest words.

    hash(row) = SHA-256(H64(tag, index[row]) || little-endian bytes of the row); ``prefix`` is
    ``header_prefix_words(tag)`` as a tuple (static). Traceable: callers jit it.
    """
    n, w = words_le.shape
    header = tuple(jnp.full((n,), p, jnp.uint32) for p in prefix)
    header += (sha256.bswap32(idx_lo), sha256.bswap32(idx_hi))
    state = sha256.compress_tuple(sha256.initial_state((n,)), header, unroll)

    data = sha256.bswap32(words_le).T  # (W, N): word j of every leaf is one contiguous row
    full = w // 16
    if full:
        blocks = data[: full * 16].reshape(full, 16, n)
        state = sha256.sha256_blocks(blocks, state, unroll)
    tail = [data[i] for i in range(full * 16, w)]
    tail += [jnp.full((n,), p, jnp.uint32) for p in sha256.padding_words(HEADER_BYTES + 4 * w)]
    for b in range(0, len(tail), 16):
        state = sha256.compress_tuple(state, tuple(tail[b : b + 16]), unroll)
    return jnp.stack(state, axis=-1)


# ---------------------------------------------------------------- tree

_NODE_TAIL = np.array([0] * 14 + [0, 8 * (1 + 64)], dtype=np.uint32)  # second block: length 520 bits


def node_hashes(left: jax.Array, right: jax.Array, unroll: int = 1) -> jax.Array:
    """(M, 8), (M, 8) digest words -> (M, 8): SHA-256(0x01 || left || right), two blocks.

    The 0x01 prefix shifts the children by one byte, so each message word takes the low byte of
    one digest word and the high three bytes of the next.
    """
    m = left.shape[0]
    d = [left[:, i] for i in range(8)] + [right[:, i] for i in range(8)]
    s8, s24 = np.uint32(8), np.uint32(24)
    blk1 = [np.uint32(0x01000000) | (d[0] >> s8)] + [(d[k - 1] << s24) | (d[k] >> s8) for k in range(1, 16)]
    blk2 = [(d[15] << s24) | np.uint32(0x00800000)]
    blk2 += [jnp.full((m,), v, jnp.uint32) for v in _NODE_TAIL[1:]]
    blocks = jnp.stack([jnp.stack(blk1), jnp.stack(blk2)])  # (2, 16, M): one loop body, not two
    return jnp.stack(sha256.sha256_blocks(blocks, unroll=unroll), axis=-1)


def _tree_root_pow2(h: jax.Array, n: jax.Array, unroll: int) -> jax.Array:
    """RFC 9162 root of the first ``n`` rows of ``h`` ((P, 8), P a power of two, n traced).

    Pairwise reduction with carry: at each level pair i is hashed only if its right child exists
    (2i+1 < width), otherwise the left node is carried up unchanged; rows at or beyond the width
    are ignored. Static shapes per level, so one program serves every n in (P/2, P].
    """
    width = n
    while h.shape[0] > 1:
        left, right = h[0::2], h[1::2]
        parent = node_hashes(left, right, unroll)
        pair = lax.iota(jnp.int32, left.shape[0])
        h = jnp.where((2 * pair + 1 < width)[:, None], parent, left)
        width = (width + 1) // 2
    return h[0]


@functools.partial(jax.jit, static_argnames=("unroll",))
def _tree_root_jit(h, n, unroll):
    return _tree_root_pow2(h, n, unroll)


@functools.partial(jax.jit, static_argnames=("p",))
def _pad_rows(h, p):
    return jnp.zeros((p, 8), jnp.uint32).at[: h.shape[0]].set(h)


def _replicated_like(x: jax.Array) -> jax.Array:
    """Make a small result readable on every process (multi-host: gather; single host: no-op)."""
    if x.is_fully_addressable:
        return x
    sh = x.sharding
    if isinstance(sh, NamedSharding):
        return jax.jit(lambda y: y, out_shardings=NamedSharding(sh.mesh, PartitionSpec()))(x)

    return jnp.asarray(multihost_utils.process_allgather(x, tiled=True))


def tree_root(leaf_hashes: jax.Array, unroll: int = 1) -> jax.Array:
    """(N, 8) leaf digest words -> (8,) root digest words, RFC 9162 shape, computed on device."""
    n = leaf_hashes.shape[0]
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    p = 1 << (n - 1).bit_length()
    padded = leaf_hashes if p == n else _pad_rows(leaf_hashes, p)
    return _replicated_like(_tree_root_jit(padded, np.int32(n), unroll))


@jax.jit
def _take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    return jnp.take(x, idx, axis=0)


def take_rows(x: jax.Array, indices: np.ndarray) -> np.ndarray:
    """Fetch a few rows of a (possibly multi-process) array to host."""
    rows = _take_rows(x, np.asarray(indices, dtype=np.int32))
    return np.asarray(_replicated_like(rows))


@functools.partial(jax.jit, static_argnames=("s",))
def _tensor_leaf_rows(a: jax.Array, idx: jax.Array, s: int) -> jax.Array:
    flat = lax.bitcast_convert_type(a, jnp.uint32).reshape(-1)
    n = -(-flat.shape[0] // s)
    rows = jnp.pad(flat, (0, n * s - flat.shape[0])).reshape(n, s)
    return jnp.take(rows, idx, axis=0)


def take_tensor_leaves(a: jax.Array, s: int, leaves: np.ndarray) -> np.ndarray:
    """Leaves ``leaves`` (indices within the tensor) of a float32 device tensor -> (k, s) uint32 on host.

    Only the k rows come to the host. The index count is padded to a power of two so that a
    new challenge reuses a compiled gather instead of compiling one per count.
    """
    k = len(leaves)
    padded = np.zeros(1 << max(0, (k - 1).bit_length()), np.int32)
    padded[:k] = leaves
    rows = _tensor_leaf_rows(a, padded, s)
    return np.asarray(_replicated_like(rows))[:k]


def to_host(x: jax.Array) -> np.ndarray:
    return np.asarray(_replicated_like(x))
