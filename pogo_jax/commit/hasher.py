"""One leaf hasher, several lowerings that give identical bits (the shape of JAX's PRNG lowerings).

``leaf_hashes`` hashes rows of leaf words, ``param_leaf_hashes`` a ``{path: float32 array}`` state
under its ``Layout``; both return the (N, 32) uint8 digests on the host, in leaf order, where the
tree, openings and storage need them (32 bytes per leaf, 1/128 of a 4 KiB leaf). Lowerings:

- ``jnp``: the pure-lax reference (``device.hash_rows``, rolled rounds), run under ``shard_map`` so
  each device hashes the leaves it holds (``sharded``);
- ``pallas``: the Pallas kernel in the same ``shard_map`` (Triton on GPU; interpret mode on CPU);
- ``hashlib``: OpenSSL SHA-256 over the leaves on every CPU (forked processes where that is safe,
  else a thread pool: ``host_hash``), reading numpy arrays and each CPU shard in place;
- ``numpy``: a vectorized numpy SHA-256 (far slower; kept as an independent host implementation).

``impl="auto"`` picks by where the data live: numpy arrays (the host) and CPU jax arrays use
``hashlib`` (no compilation, and importing jax is not needed for numpy data); GPU arrays use
``pallas``, falling back to ``jnp`` if the kernel fails to lower; TPU and anything else use ``jnp``.
Callers never choose; the ``impl`` keyword is for benchmarks and tests. docs/merkle.md has the
measurements behind these choices.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from pogo_jax.commit import host_hash
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.merkle import TAG_PARAM

IMPLS = ("jnp", "pallas", "hashlib", "numpy")
HOST_IMPLS = ("hashlib", "numpy")
AUTO = {"host": "hashlib", "cpu": "hashlib", "gpu": "pallas", "cuda": "pallas", "rocm": "pallas", "tpu": "jnp"}


def _is_jax(x: Any) -> bool:
    return hasattr(x, "addressable_shards")


def platform_of(arrays: Any) -> str:
    """Where the data live: "host" for numpy, else the platform of the first jax array ("cpu", "gpu", ...)."""
    for a in arrays:
        if _is_jax(a):
            return next(iter(a.devices())).platform
    return "host"


def resolve_impl(arrays: Any, impl: str = "auto") -> str:
    """The lowering ``impl="auto"`` would use for these arrays (or ``impl`` itself, checked)."""
    if impl == "auto":
        return AUTO.get(platform_of(arrays), "jnp")
    if impl not in IMPLS:
        raise ValueError(f"impl must be 'auto' or one of {IMPLS}, not {impl!r}")
    return impl


def available_impls() -> tuple[str, ...]:
    """Every lowering that can run here (Pallas in interpret mode when the backend is CPU)."""
    out = list(HOST_IMPLS)
    try:
        import jax  # noqa: F401
    except ImportError:
        return tuple(out)
    out.append("jnp")
    try:
        from pogo_jax.commit import pallas_sha256  # noqa: F401
    except ImportError:
        return tuple(out)
    return tuple(out + ["pallas"])


# ---------------------------------------------------------------- entries


def _as_words(words: Any) -> Any:
    """(N, W) uint32 words or (N, B) uint8 bytes (numpy or jax) -> a 2-D array of either dtype, checked."""
    if not _is_jax(words):
        words = np.asarray(words)
    if words.ndim != 2 or np.dtype(words.dtype) not in (np.uint8, np.uint32):
        raise ValueError(f"leaves must be (N, W) uint32 or (N, B) uint8, got {words.dtype}{tuple(words.shape)}")
    if np.dtype(words.dtype) == np.uint8 and words.shape[1] % 4:
        raise ValueError("leaf length must be a multiple of 4 bytes")
    if words.shape[0] == 0:
        raise ValueError("no leaves to hash")
    return words


def _device_words(words: Any) -> Any:
    """uint8 leaf bytes -> uint32 little-endian words on the same devices (the device lowerings' input)."""
    import jax
    import jax.numpy as jnp

    if np.dtype(words.dtype) == np.uint32:
        return words
    if not _is_jax(words):
        return np.ascontiguousarray(words).view("<u4")
    n, b = words.shape
    return jax.jit(lambda x: jax.lax.bitcast_convert_type(x.reshape(n, b // 4, 4), jnp.uint32))(words)


def leaf_hashes(words: Any, tag: bytes, first_index: int = 0, impl: str = "auto") -> np.ndarray:
    """Row i of ``words`` -> SHA-256(H64(tag, first_index + i) || its little-endian bytes), as (N, 32) uint8.

    ``words`` is (N, W) uint32 or (N, B) uint8, numpy or jax (sharded on any mesh).
    """
    words = _as_words(words)
    n = words.shape[0]
    first_index = operator.index(first_index)
    if not (first_index >= 0 and first_index + n <= 2**64):
        raise ValueError("leaf index out of range")
    fallback, impl = impl == "auto", resolve_impl([words], impl)
    if impl in HOST_IMPLS:
        return _host([(words, words.shape[1], first_index)], tag, impl, first_index, n)
    return _on_devices([(_device_words(words), None, first_index, n)], tag, impl, fallback, first_index, n)


def check_params(params: Mapping[str, Any], layout: Layout) -> tuple[Any, ...]:
    """Arrays in canonical order, checked against the layout (float32, exact shapes, no extras)."""
    paths = {t.path for t in layout.tensors}
    if set(params) != paths:
        missing, extra = sorted(paths - set(params)), sorted(set(params) - paths)
        raise ValueError(f"parameters do not match the layout (missing {missing[:3]}, extra {extra[:3]})")
    out = []
    for t in layout.tensors:
        a = params[t.path]
        if not hasattr(a, "dtype"):
            a = np.asarray(a)
        if np.dtype(a.dtype) != np.float32 or tuple(a.shape) != t.shape:
            raise ValueError(f"{t.path}: expected float32{t.shape}, got {a.dtype}{tuple(a.shape)}")
        out.append(a)
    return tuple(out)


def param_leaf_hashes(params: Mapping[str, Any], layout: Layout, tag: bytes = TAG_PARAM,
                      impl: str = "auto") -> np.ndarray:
    """Every leaf of a ``{path: float32 array}`` state -> (layout.n_leaves, 32) uint8 digests.

    Each tensor is hashed where it lives, with its own ``first_leaf`` offset: shards that hold
    whole leaves are read in place (host) or hashed on their own device (jnp, pallas).
    """
    arrays = check_params(params, layout)
    if layout.n_leaves == 0:
        raise ValueError("nothing to commit: every tensor is empty")
    fallback, impl = impl == "auto", resolve_impl(arrays, impl)
    s = layout.leaf_size
    parts = [(a, s, t.first_leaf, t.n_leaves) for a, t in zip(arrays, layout.tensors, strict=True) if t.n_leaves]
    if impl in HOST_IMPLS:
        return _host([(a, s, first) for a, s, first, _ in parts], tag, impl, 0, layout.n_leaves)
    return _on_devices(parts, tag, impl, fallback, 0, layout.n_leaves)


# ---------------------------------------------------------------- lowerings -> digests in leaf order


def _place(index: np.ndarray, digests: np.ndarray, base: int, n: int) -> np.ndarray:
    """Digests in leaf order; every leaf must have been hashed exactly once."""
    pos = index - np.uint64(base)
    if pos.size != n or (n and int(pos.max()) >= n) or np.bincount(pos.astype(np.int64), minlength=n).max() != 1:
        raise RuntimeError(f"leaf hasher covered {pos.size} rows for {n} leaves (a lowering bug)")
    out = np.empty((n, 32), np.uint8)
    out[pos.astype(np.int64)] = digests
    return out


def _host(parts: list[tuple[Any, int, int]], tag: bytes, impl: str, base: int, n: int) -> np.ndarray:
    jobs: list[host_hash.Job] = []
    for a, s, first in parts:
        got = host_hash.array_jobs(a, s, first)
        if got is None:  # split across leaves and not all here: make leaf rows on the devices first
            from pogo_jax.commit import sharded

            got = host_hash.array_jobs(sharded.leaf_rows(a, s), s, first)
        jobs += got
    index, digests = host_hash.hash_jobs(jobs, tag, impl)
    if any(_is_jax(a) and not a.is_fully_addressable for a, _, _ in parts):
        index, digests = _gather_processes(index, digests)
    return _place(index, digests, base, n)


def _gather_processes(index: np.ndarray, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every process's (index, digests) to every process (multi-host CPU; 40 bytes per leaf)."""
    from jax.experimental import multihost_utils

    counts = multihost_utils.process_allgather(np.array([index.size], np.int64))
    m = int(counts.max())
    pad_i = np.zeros(m, np.uint64)
    pad_d = np.zeros((m, 32), np.uint8)
    pad_i[: index.size], pad_d[: index.size] = index, digests
    all_i = multihost_utils.process_allgather(pad_i.view(np.uint32).reshape(m, 2))
    all_d = multihost_utils.process_allgather(pad_d)
    keep = [slice(0, int(c)) for c in counts.reshape(-1)]
    idx = np.concatenate([np.ascontiguousarray(all_i[p][k]).view(np.uint64).reshape(-1) for p, k in enumerate(keep)])
    return idx, np.concatenate([all_d[p][k] for p, k in enumerate(keep)])


def _on_devices(parts: list[tuple[Any, int | None, int, int]], tag: bytes, impl: str, fallback: bool, base: int,
                n: int) -> np.ndarray:
    from pogo_jax.commit import sharded

    segs = [sharded.Segment(a, a.shape[1] if s is None else s, first, k) for a, s, first, k in parts]
    index, digests = sharded.digests(segs, tag, impl, fallback=fallback)
    return _place(index, digests, base, n)
