"""Leaf hashing on the devices, each device hashing the leaves it already holds (``shard_map``).

The state is a list of *segments* (a tensor, or an (N, W) array of leaf words) with their global
first leaf. For a segment on the common mesh whose shards hold whole leaves (``blocks.is_aligned``),
each device reshapes its own block to leaf rows and computes their global indices from its mesh
coordinates: nothing moves. A segment whose leaves straddle shard boundaries (or that is unevenly
sharded, or on another mesh) is first reshaped to leaf rows spread over every device; only that
segment moves, and XLA picks the collective. A segment replicated along some mesh axes is split
along them, so no leaf is hashed twice. Every device then hashes all its rows, of every segment,
with one call of the lowering (one compiled hash loop per program, whatever the number of tensors),
and returns (digests, indices, valid); the host puts the 32-byte digests in leaf order.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pogo_jax.commit import blocks, device, pallas_sha256, sha256_np

DEVICE_IMPLS = ("jnp", "pallas")


class Segment(NamedTuple):
    array: Any  # jax.Array or numpy array of a 4-byte dtype (float32 parameters, uint32 leaf words)
    s: int  # leaf length in elements
    first: int  # global index of the segment's first leaf
    n: int  # leaves in the segment


@dataclass(frozen=True)
class _Plan:
    shape: tuple[int, ...]
    spec: tuple[tuple[str, ...], ...]  # mesh axes splitting each dimension
    s: int
    n: int
    reshard: bool  # reshaped to (n_pad, s) leaf rows over every device before hashing


def _dim_axes(entry: Any) -> tuple[str, ...]:
    if entry is None:
        return ()
    return (entry,) if isinstance(entry, str) else tuple(entry)


def common_mesh(arrays: Sequence[Any]) -> Mesh | None:
    """The mesh of the first array sharded over more than one device (None: single device)."""
    for a in arrays:
        sh = getattr(a, "sharding", None)
        if isinstance(sh, NamedSharding) and sh.mesh.size > 1:
            return sh.mesh
    return None


def _plan(seg: Segment, mesh: Mesh | None) -> tuple[_Plan, Any]:
    """The segment's plan and the array to pass (placed on the mesh when it was not)."""
    a, shape = seg.array, tuple(seg.array.shape)
    if mesh is None:
        return _Plan(shape, ((),) * len(shape), seg.s, seg.n, False), a
    sh = getattr(a, "sharding", None)
    if not (isinstance(sh, NamedSharding) and sh.mesh == mesh):
        a = jax.device_put(a, NamedSharding(mesh, PartitionSpec()))  # off-mesh: replicate it (rare)
        spec: tuple[tuple[str, ...], ...] = ((),) * len(shape)
    else:
        spec = tuple(_dim_axes(e) for e in sh.spec) + ((),) * (len(shape) - len(sh.spec))
    sizes = [math.prod(mesh.shape[x] for x in axes) for axes in spec]
    even = all(n % m == 0 for n, m in zip(shape, sizes, strict=True))
    block = tuple(n // m for n, m in zip(shape, sizes, strict=True)) if even else shape
    if even and blocks.is_aligned(shape, block, seg.s):
        return _Plan(shape, spec, seg.s, seg.n, False), a
    n_pad = -(-seg.n // mesh.size) * mesh.size
    return _Plan((n_pad, seg.s), (tuple(mesh.axis_names), ()), seg.s, seg.n, True), a


def _coord(axes: Sequence[str], mesh_shape: dict[str, int]) -> jax.Array:
    """This device's position along the mesh axes ``axes`` (major to minor, as PartitionSpec orders)."""
    c = jnp.uint32(0)
    for name in axes:
        c = c * jnp.uint32(mesh_shape[name]) + lax.axis_index(name).astype(jnp.uint32)
    return c


def _local_rows(p: _Plan, x: jax.Array, mesh_shape: dict[str, int]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One device's block of one segment -> (rows (L, s) uint32, index in the segment (L,), valid (L,))."""
    words = x if x.dtype == jnp.uint32 else lax.bitcast_convert_type(x, jnp.uint32)
    block = tuple(words.shape)
    k = blocks.split_dim(p.shape, block)
    if k is None:  # the whole segment is here: pad its last leaf locally
        flat = words.reshape(-1)
        rows = jnp.pad(flat, (0, p.n * p.s - flat.shape[0])).reshape(p.n, p.s)
        local = lax.iota(jnp.uint32, p.n)
    else:
        q = math.prod(p.shape[k + 1 :])
        outer = [_coord(p.spec[j], mesh_shape) * jnp.uint32(block[j]) for j in range(k)]
        run_start = _coord(p.spec[k], mesh_shape) * jnp.uint32(block[k] * q // p.s)
        local = blocks.leaf_grid(jnp, p.shape, block, p.s, outer, run_start, jnp.uint32)
        rows = words.reshape(local.shape[0], p.s)
    used = {x for axes in p.spec for x in axes}
    unused = [x for x in mesh_shape if x not in used]
    r = math.prod(mesh_shape[x] for x in unused)
    valid = local < jnp.uint32(p.n)
    if r > 1:  # replicated along ``unused``: each replica takes its own slice of the rows
        per = -(-rows.shape[0] // r)
        pad = per * r - rows.shape[0]
        rows = jnp.pad(rows, ((0, pad), (0, 0)))
        local, valid = jnp.pad(local, (0, pad)), jnp.pad(valid, (0, pad))
        start = _coord(unused, mesh_shape) * jnp.uint32(per)
        rows = lax.dynamic_slice_in_dim(rows, start, per)
        local, valid = lax.dynamic_slice_in_dim(local, start, per), lax.dynamic_slice_in_dim(valid, start, per)
    return rows, local, valid


def _hash(impl: str, rows: jax.Array, lo: jax.Array, hi: jax.Array, prefix: tuple[int, ...], unroll: int,
          interpret: bool) -> jax.Array:
    if impl == "jnp":
        return device.hash_rows(rows, lo, hi, prefix, unroll)

    return pallas_sha256.hash_rows(rows, lo, hi, prefix, interpret=interpret)


def _to_leaf_rows(a: jax.Array, p: _Plan, mesh: Mesh) -> jax.Array:
    words = a if a.dtype == jnp.uint32 else lax.bitcast_convert_type(a, jnp.uint32)
    flat = words.reshape(-1)
    rows = jnp.pad(flat, (0, p.shape[0] * p.s - flat.shape[0])).reshape(p.shape)
    return lax.with_sharding_constraint(rows, NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names))))


def leaf_rows(a: jax.Array, s: int) -> jax.Array:
    """A tensor as (n_leaves, s) uint32 leaf rows spread over every device of its mesh (the host
    hasher's way to read a multi-process tensor whose shards split leaves)."""
    n = -(-math.prod(a.shape) // s)
    mesh = a.sharding.mesh
    return _leaf_rows_fn(n, s, mesh)(a)


@functools.lru_cache(maxsize=64)
def _leaf_rows_fn(n: int, s: int, mesh: Mesh):
    return jax.jit(lambda a: _to_leaf_rows(a, _Plan((n, s), (), s, n, True), mesh))


@functools.lru_cache(maxsize=64)
def _program(plans: tuple[_Plan, ...], mesh: Mesh | None, prefix: tuple[int, ...], impl: str, unroll: int,
             interpret: bool):
    mesh_shape = dict(mesh.shape) if mesh is not None else {}

    def local(arrays, firsts):
        parts = [_local_rows(p, x, mesh_shape) for p, x in zip(plans, arrays, strict=True)]
        rows = jnp.concatenate([r for r, _, _ in parts])
        lo, hi = zip(*(device.add_index(firsts[i, 0], firsts[i, 1], loc) for i, (_, loc, _) in enumerate(parts)),
                     strict=True)
        lo, hi = jnp.concatenate(lo), jnp.concatenate(hi)
        valid = jnp.concatenate([v for _, _, v in parts])
        return _hash(impl, rows, lo, hi, prefix, unroll, interpret), lo, hi, valid

    if mesh is None:
        return jax.jit(local)
    axes = tuple(mesh.axis_names)
    specs = tuple(PartitionSpec(*p.spec) for p in plans)
    # check_vma off: the loop carries start replicated (constants) and become per-device values
    mapped = jax.shard_map(local, mesh=mesh, in_specs=(specs, PartitionSpec()), out_specs=PartitionSpec(axes),
                           check_vma=False)

    def program(arrays, firsts):
        arrays = tuple(_to_leaf_rows(a, p, mesh) if p.reshard else a for p, a in zip(plans, arrays, strict=True))
        return mapped(arrays, firsts)

    return jax.jit(program)


def _prepare(segments: Sequence[Segment], tag: bytes, impl: str, unroll: int):
    mesh = common_mesh([s.array for s in segments])
    planned = [_plan(s, mesh) for s in segments]
    plans = tuple(p for p, _ in planned)
    arrays = tuple(a for _, a in planned)
    firsts = np.array([[f & 0xFFFFFFFF, f >> 32] for f in (s.first for s in segments)], np.uint32)
    platform = _platform([s.array for s in segments])
    prefix = tuple(int(x) for x in sha256_np.header_prefix_words(tag))
    return _program(plans, mesh, prefix, impl, unroll, platform == "cpu"), arrays, firsts


def _platform(arrays: Sequence[Any]) -> str:
    for a in arrays:
        devs = getattr(a, "devices", None)
        if devs is not None:
            return next(iter(devs())).platform
    return jax.default_backend()


def lower(segments: Sequence[Segment], tag: bytes, impl: str = "jnp", unroll: int = device.DEFAULT_UNROLL):
    """The hashing program, lowered (tests inspect its compiled HLO for collectives)."""
    fn, arrays, firsts = _prepare(segments, tag, impl, unroll)
    return fn.lower(arrays, firsts)


def run(segments: Sequence[Segment], tag: bytes, impl: str = "jnp", unroll: int = device.DEFAULT_UNROLL):
    """Device outputs (digest words (M, 8), index lo, hi, valid), left on the devices (benchmarks)."""
    fn, arrays, firsts = _prepare(segments, tag, impl, unroll)
    return fn(arrays, firsts)


_pallas_failed: set[tuple] = set()


def digests(segments: Sequence[Segment], tag: bytes, impl: str, fallback: bool = False,
            unroll: int = device.DEFAULT_UNROLL) -> tuple[np.ndarray, np.ndarray]:
    """Hash every segment's leaves on the devices -> (indices (M,) uint64, digests (M, 32) uint8).

    ``fallback``: if the Pallas program fails to lower or compile, warn once per leaf width and
    use the jnp lowering (``auto`` on GPU); an explicit ``impl="pallas"`` raises instead.
    """
    if impl not in DEVICE_IMPLS:
        raise ValueError(f"device impl must be one of {DEVICE_IMPLS}, not {impl!r}")
    key = (_platform([s.array for s in segments]), segments[0].s)
    if impl == "pallas" and fallback and key in _pallas_failed:
        impl = "jnp"
    try:
        out = run(segments, tag, impl, unroll)
    except Exception as e:  # a Pallas lowering failure surfaces as many exception types
        if not (impl == "pallas" and fallback):
            raise
        _pallas_failed.add(key)
        warnings.warn(f"Pallas leaf hasher failed on {key} ({type(e).__name__}: {e}); using the jnp lowering",
                      RuntimeWarning, stacklevel=2)
        out = run(segments, tag, "jnp", unroll)
    words, lo, hi, valid = (device.to_host(x) for x in out)
    keep = valid.astype(bool)
    index = (hi[keep].astype(np.uint64) << np.uint64(32)) | lo[keep].astype(np.uint64)
    return index, sha256_np.words_to_digests(words[keep])
