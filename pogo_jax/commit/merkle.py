"""Merkle commitments to model parameters and update leaves (PROTOCOL sections 1 and 2).

``commit`` hashes the leaves on the accelerator under ``jax.jit`` (``device.leaf_hashes``), keeps
the leaf hashes on device, and reduces the tree on the host from the fetched leaf hashes (32 bytes
per leaf): the host reduction needs no compilation and costs well under a second even for
a 1B-parameter model (docs/merkle.md has the measurements); ``device.tree_root`` gives the same root
on device. ``open`` builds RFC 9162 audit paths; ``pogo_jax.spec.merkle.verify_openings``
checks them on a CPU host without jax.

Importing this package does not import jax (``host_commit`` and ``flatten_params`` on plain dicts
work on verifier hosts); the device functions import it when first called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pogo_jax.spec import merkle as merkle_host
from pogo_jax.spec.layout import Layout, to_leaves
from pogo_jax.spec.merkle import TAG_DATA, TAG_PARAM, TAG_QUPD, Opening, make_openings, verify_openings

if TYPE_CHECKING:
    import jax

__all__ = [
    "TAG_DATA",
    "TAG_PARAM",
    "TAG_QUPD",
    "Commitment",
    "Layout",
    "Opening",
    "commit",
    "commit_leaves",
    "flatten_params",
    "host_commit",
    "open",
    "verify_openings",
]


@dataclass(frozen=True)
class Commitment:
    root: bytes
    layout: Layout | None
    n_leaves: int
    leaf_hashes: jax.Array  # (n_leaves, 8) uint32 digest words, kept on device
    tag: bytes

    @property
    def layout_hash(self) -> bytes | None:
        return None if self.layout is None else self.layout.layout_hash()


def _key_str(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _is_variable(x: Any) -> bool:
    return type(x).__module__.startswith("flax") and "Variable" in {c.__name__ for c in type(x).__mro__}


def flatten_params(tree: Any) -> dict[str, Any]:
    """Any pytree (flat dict, nested dict, nnx.State, nnx.Module) -> {"a/b/c": array}.

    Flax NNX variables are unwrapped to their value, so ``nnx.state(model)`` and its pure dict
    give the same paths. A flat dict with string keys is returned as is.
    """
    if type(tree) is dict and all(
        isinstance(k, str) and hasattr(v, "shape") and not _is_variable(v) for k, v in tree.items()
    ):
        return dict(tree)
    import jax

    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_variable)
    out: dict[str, Any] = {}
    for path, leaf in leaves:
        if _is_variable(leaf):
            leaf = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        name = "/".join(_key_str(k) for k in path)
        if name in out:
            raise ValueError(f"two parameters share the path {name!r}")
        out[name] = leaf
    return out


def _device():
    from pogo_jax.commit import device

    return device


def _root_from_hashes(hashes: jax.Array) -> bytes:
    """Host RFC 9162 reduction of device leaf hashes (see module docstring for why host)."""
    words = _device().to_host(hashes)
    digests = words.astype(">u4").tobytes()
    return merkle_host.root([digests[i : i + 32] for i in range(0, len(digests), 32)])


def commit(
    params: Any, leaf_size: int = 1024, group_size: int = 64, tag: bytes = TAG_PARAM, tree: str = "host"
) -> Commitment:
    """Commit to a pytree of float32 arrays (possibly sharded on any mesh, or across processes).

    The root is identical for every mesh and partitioning: values are only bitcast, and the tree
    follows RFC 9162. ``tree="device"`` reduces the tree on the accelerator instead (same root).
    """
    dev = _device()
    flat = flatten_params(params)
    layout = Layout.from_shapes({k: tuple(v.shape) for k, v in flat.items()}, leaf_size, group_size)
    hashes = dev.param_leaf_hashes(flat, layout, tag)
    return Commitment(_finish_root(hashes, tree), layout, layout.n_leaves, hashes, tag)


def _finish_root(hashes: jax.Array, tree: str) -> bytes:
    if tree == "host":
        return _root_from_hashes(hashes)
    if tree == "device":
        from pogo_jax.commit.sha256 import digest_bytes

        return digest_bytes(_device().to_host(_device().tree_root(hashes)))
    raise ValueError(f"tree must be 'host' or 'device', not {tree!r}")


def _as_words(leaf_bytes: Any):
    """(N, B) uint8 or (N, B/4) uint32 (numpy or jax) -> (N, B/4) uint32 little-endian words."""
    import jax
    import jax.numpy as jnp

    if isinstance(leaf_bytes, np.ndarray):
        a = np.ascontiguousarray(leaf_bytes)
        if a.ndim != 2 or a.dtype not in (np.uint8, np.uint32) or (a.dtype == np.uint8 and a.shape[1] % 4):
            raise ValueError("leaf bytes must be (N, B) uint8 with B % 4 == 0, or (N, W) uint32")
        return jnp.asarray(a.view("<u4") if a.dtype == np.uint8 else a.astype("<u4"))
    if leaf_bytes.ndim != 2 or leaf_bytes.dtype not in (jnp.uint8, jnp.uint32):
        raise ValueError("leaf bytes must be (N, B) uint8 or (N, W) uint32")
    if leaf_bytes.dtype == jnp.uint32:
        return leaf_bytes
    n, b = leaf_bytes.shape
    if b % 4:
        raise ValueError("leaf length must be a multiple of 4 bytes")
    return jax.jit(lambda x: jax.lax.bitcast_convert_type(x.reshape(n, b // 4, 4), jnp.uint32))(leaf_bytes)


def commit_leaves(leaf_bytes: Any, tag: bytes, layout: Layout | None = None, tree: str = "host") -> Commitment:
    """Commit to generic byte leaves (e.g. the 528-byte 4-bit update leaves, tag TAG_QUPD)."""
    words = _as_words(leaf_bytes)
    n = words.shape[0]
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    if layout is not None and layout.n_leaves != n:
        raise ValueError(f"{n} leaves given but the layout has {layout.n_leaves}")
    hashes = _device().leaf_hashes(words, tag)
    return Commitment(_finish_root(hashes, tree), layout, n, hashes, tag)


def _leaf_rows(params_or_leaf_bytes: Any, commitment: Commitment, indices: np.ndarray) -> list[bytes]:
    dev = _device()
    if (
        commitment.tag == TAG_PARAM
        or isinstance(params_or_leaf_bytes, Mapping)
        or not hasattr(params_or_leaf_bytes, "ndim")
    ):
        flat = flatten_params(params_or_leaf_bytes)
        words = dev.param_leaf_words(flat, commitment.layout)
    else:
        words = _as_words(params_or_leaf_bytes)
    rows = dev.take_rows(words, indices).astype("<u4")
    return [r.tobytes() for r in rows]


def open(params_or_leaf_bytes: Any, commitment: Commitment, indices: Sequence[int]) -> list[Opening]:  # noqa: A001
    """Openings (leaf bytes + audit path) for ``indices``; fetches only those leaves to host.

    Raises ValueError if an index is out of range or the data does not match the commitment.
    """
    idx = [int(i) for i in indices]
    n = commitment.n_leaves
    if any(not 0 <= i < n for i in idx):
        raise ValueError(f"leaf index outside [0, {n})")
    if len(set(idx)) != len(idx):
        raise ValueError("duplicate leaf index")
    words = _device().to_host(commitment.leaf_hashes).astype(">u4").tobytes()
    digests = [words[i : i + 32] for i in range(0, len(words), 32)]
    levels = merkle_host.tree_levels(digests)
    if levels[-1][0] != commitment.root:
        raise ValueError("leaf hashes do not match the commitment root")
    rows = _leaf_rows(params_or_leaf_bytes, commitment, np.asarray(idx, dtype=np.int64)) if idx else []
    for i, row in zip(idx, rows, strict=True):
        if merkle_host.leaf_hash(commitment.tag, i, row) != digests[i]:
            raise ValueError(f"leaf {i} of the given data does not match the commitment")
    return make_openings(digests, dict(zip(idx, rows, strict=True)), levels)


def host_commit(
    arrays: Mapping[str, np.ndarray], leaf_size: int = 1024, group_size: int = 64, tag: bytes = TAG_PARAM
) -> tuple[bytes, Layout]:
    """Host reference commitment (numpy + hashlib): same root as ``commit``."""
    layout = Layout.from_arrays(arrays, leaf_size, group_size)
    if layout.n_leaves == 0:
        raise ValueError("nothing to commit: every tensor is empty")
    leaves = to_leaves(arrays, layout)
    return merkle_host.root(merkle_host.leaf_hashes(tag, leaves)), layout
