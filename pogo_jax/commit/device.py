"""Merkle leaf hashing and tree reduction on the accelerator (PROTOCOL section 2), under ``jax.jit``.

Bits only: parameters enter as float32 and are *bitcast* to uint32, never converted, so no float
op can touch them and the root is the same on every backend and mesh. Everything is vectorized
over the leaf axis, which keeps the input's sharding: each device hashes its own leaves.

Per leaf the message is ``H64 || data || padding``. The 64-byte header block is built on device
from the leaf index (uint64 split into two uint32 halves, so it needs no x64 mode); the data
words are byte-swapped to big-endian and laid out word-major ``(W, N)`` so each message word is a
contiguous row; the padding words are constants for a given row length.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from pogo_jax.commit import sha256
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.merkle import HEADER_BYTES

DEFAULT_UNROLL = 4  # rounds per loop iteration; see docs/merkle.md for the measurements


def header_prefix_words(tag: bytes) -> np.ndarray:
    """The first 14 big-endian words of H64 (0x00, tag, zero fill): constant per tree."""
    if len(tag) > HEADER_BYTES - 9:
        raise ValueError("tag too long")
    head = (b"\x00" + tag).ljust(56, b"\x00")
    return np.frombuffer(head, dtype=">u4").astype(np.uint32)


def _split_index(first_index: int) -> tuple[np.uint32, np.uint32]:
    if not 0 <= first_index < 2**64:
        raise ValueError("leaf index out of range")
    return np.uint32(first_index & 0xFFFFFFFF), np.uint32(first_index >> 32)


def _leaf_state(
    words_le: jax.Array, lo: jax.Array, hi: jax.Array, prefix: tuple[int, ...], unroll: int, variant: str
) -> jax.Array:
    n, w = words_le.shape
    comp = sha256.VARIANTS[variant]
    row = lax.iota(jnp.uint32, n)
    idx_lo = lo + row
    idx_hi = hi + (idx_lo < lo).astype(jnp.uint32)  # carry into the high word
    header = tuple(jnp.full((n,), p, jnp.uint32) for p in prefix)
    header += (sha256.bswap32(idx_lo), sha256.bswap32(idx_hi))
    state = comp(sha256.initial_state((n,)), header, unroll)

    data = sha256.bswap32(words_le).T  # (W, N): word j of every leaf is one contiguous row
    full = w // 16
    if full:
        blocks = data[: full * 16].reshape(full, 16, n)
        state = sha256.sha256_blocks(blocks, state, unroll, variant)
    tail = [data[i] for i in range(full * 16, w)]
    tail += [jnp.full((n,), p, jnp.uint32) for p in sha256.padding_words(HEADER_BYTES + 4 * w)]
    for b in range(0, len(tail), 16):
        state = comp(state, tuple(tail[b : b + 16]), unroll)
    return jnp.stack(state, axis=-1)


@functools.partial(jax.jit, static_argnames=("prefix", "unroll", "variant"))
def _leaf_hashes_jit(words_le, lo, hi, prefix, unroll, variant):
    return _leaf_state(words_le, lo, hi, prefix, unroll, variant)


def leaf_hashes(
    words_le: jax.Array,
    tag: bytes,
    first_index: int = 0,
    unroll: int = DEFAULT_UNROLL,
    variant: str = "window",
) -> jax.Array:
    """(N, W) uint32 little-endian leaf words -> (N, 8) uint32 digest words.

    hash(row) = SHA-256(H64(tag, first_index + row) || little-endian bytes of the row). One
    compiled program per (N, W, tag, unroll); ``first_index`` is a traced argument.
    """
    if words_le.ndim != 2 or words_le.dtype != jnp.uint32:
        raise ValueError(f"leaf words must be (N, W) uint32, got {words_le.dtype}{tuple(words_le.shape)}")
    if first_index + words_le.shape[0] > 2**64:
        raise ValueError("leaf index out of range")
    lo, hi = _split_index(first_index)
    prefix = tuple(int(x) for x in header_prefix_words(tag))
    return _leaf_hashes_jit(words_le, lo, hi, prefix, unroll, variant)


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
    from jax.experimental import multihost_utils

    return jnp.asarray(multihost_utils.process_allgather(x, tiled=True))


def tree_root(leaf_hashes: jax.Array, unroll: int = 1) -> jax.Array:
    """(N, 8) leaf digest words -> (8,) root digest words, RFC 9162 shape, computed on device."""
    n = leaf_hashes.shape[0]
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    p = 1 << (n - 1).bit_length()
    padded = leaf_hashes if p == n else _pad_rows(leaf_hashes, p)
    return _replicated_like(_tree_root_jit(padded, np.int32(n), unroll))


# ---------------------------------------------------------------- parameters -> leaf words


def params_mesh(arrays: Mapping[str, jax.Array]):
    """The mesh of the first NamedSharding-sharded array (None for single-device/host arrays)."""
    for a in arrays.values():
        sh = getattr(a, "sharding", None)
        if isinstance(sh, NamedSharding) and sh.mesh.size > 1:
            return sh.mesh
    return None


def leaf_sharding(mesh) -> NamedSharding | None:
    """Spread the leaf axis over every device of ``mesh`` (all axes flattened)."""
    if mesh is None:
        return None
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))


def _leaf_words(arrays: tuple[jax.Array, ...], layout: Layout) -> jax.Array:
    s = layout.leaf_size
    parts = []
    for a, t in zip(arrays, layout.tensors, strict=True):
        if t.n_leaves == 0:
            continue
        flat = lax.bitcast_convert_type(a, jnp.uint32).reshape(-1)
        pad = t.n_leaves * s - t.size
        if pad:
            flat = jnp.concatenate([flat, jnp.zeros((pad,), jnp.uint32)])
        parts.append(flat)
    return jnp.concatenate(parts).reshape(layout.n_leaves, s)


def _constrained_words(arrays, layout: Layout, sharding: NamedSharding | None) -> jax.Array:
    words = _leaf_words(arrays, layout)
    # A constraint (not out_shardings) so leaf counts that do not divide the device count still
    # spread over every device (XLA pads the last shard internally).
    return words if sharding is None else lax.with_sharding_constraint(words, sharding)


@functools.lru_cache(maxsize=64)
def _leaf_words_fn(layout: Layout, sharding: NamedSharding | None):
    return jax.jit(lambda arrays: _constrained_words(arrays, layout, sharding))


@functools.lru_cache(maxsize=64)
def _param_hashes_fn(
    layout: Layout, sharding: NamedSharding | None, prefix: tuple[int, ...], unroll: int, variant: str
):
    def fn(arrays, lo, hi):
        return _leaf_state(_constrained_words(arrays, layout, sharding), lo, hi, prefix, unroll, variant)

    return jax.jit(fn)


def param_leaf_hashes(
    params: Mapping[str, jax.Array],
    layout: Layout,
    tag: bytes,
    unroll: int = DEFAULT_UNROLL,
    variant: str = "window",
) -> jax.Array:
    """``leaf_hashes(param_leaf_words(params, layout), tag)`` as one jitted program, so the
    leaf-axis sharding constraint drives the hashing itself and the words are never returned."""
    arrays = check_params(params, layout)
    if layout.n_leaves == 0:
        raise ValueError("nothing to commit: every tensor is empty")
    lo, hi = _split_index(0)
    prefix = tuple(int(x) for x in header_prefix_words(tag))
    fn = _param_hashes_fn(layout, leaf_sharding(params_mesh(params)), prefix, unroll, variant)
    return fn(arrays, lo, hi)


def check_params(params: Mapping[str, jax.Array], layout: Layout) -> tuple[jax.Array, ...]:
    """Arrays in canonical order, checked against the layout (float32, exact shapes, no extras)."""
    if set(params) != {t.path for t in layout.tensors}:
        missing = sorted({t.path for t in layout.tensors} - set(params))
        extra = sorted(set(params) - {t.path for t in layout.tensors})
        raise ValueError(f"parameters do not match the layout (missing {missing[:3]}, extra {extra[:3]})")
    out = []
    for t in layout.tensors:
        a = params[t.path]
        if jnp.dtype(a.dtype) != jnp.float32 or tuple(a.shape) != t.shape:
            raise ValueError(f"{t.path}: expected float32{t.shape}, got {a.dtype}{tuple(a.shape)}")
        out.append(a)
    return tuple(out)


def param_leaf_words(params: Mapping[str, jax.Array], layout: Layout) -> jax.Array:
    """{path: float32 array} -> (N, S) uint32 leaf words in canonical order (bitcast, zero padded).

    Jitted; the output's leaf axis is sharded over all devices of the parameters' mesh, so the
    hashing that follows runs on every device whatever partitioning the parameters had.
    """
    arrays = check_params(params, layout)
    if layout.n_leaves == 0:
        raise ValueError("nothing to commit: every tensor is empty")
    return _leaf_words_fn(layout, leaf_sharding(params_mesh(params)))(arrays)


@jax.jit
def _take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    return jnp.take(x, idx, axis=0)


def take_rows(x: jax.Array, indices: np.ndarray) -> np.ndarray:
    """Fetch a few rows of a (possibly multi-process) array to host."""
    rows = _take_rows(x, np.asarray(indices, dtype=np.int32))
    return np.asarray(_replicated_like(rows))


def to_host(x: jax.Array) -> np.ndarray:
    return np.asarray(_replicated_like(x))
