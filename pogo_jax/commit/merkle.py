"""Merkle commitments to model parameters and update leaves (PROTOCOL sections 1 and 2).

Hash once per state: ``commit`` hashes every leaf with ``hasher`` (whichever lowering suits where
the state lives) and keeps the 32-byte leaf digests on the host in the ``Commitment``, with the
RFC 9162 levels built once from them. ``Commitment.save``/``load`` persist the digests as a plain
``.npy`` (no pickle; ``load`` re-derives the root and refuses a mismatch), so openings later come
from the stored digests: ``open_from_digests`` fetches only the k challenged leaf rows (a device
gather for device arrays), checks each against its digest and builds the audit paths; it never
hashes the state again. ``pogo_jax.spec.merkle.verify_openings`` checks the result on a CPU host
without jax.

Importing this module does not import jax, and neither does committing numpy arrays (the host
lowering): ``host_commit``, ``commit`` on a plain dict of numpy arrays and ``flatten_params`` on a
flat dict run on verifier hosts and in ``pogo commit`` without paying jax's import.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.commit import hasher
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.pytree import flatten_params
from pogo_jax.spec import merkle as merkle_host
from pogo_jax.spec.layout import Layout, to_leaves
from pogo_jax.spec.merkle import TAG_DATA, TAG_PARAM, TAG_QUPD, Opening, make_openings, verify_openings

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
    "open_from_digests",
    "verify_openings",
]


def _digest_list(digests: np.ndarray) -> list[bytes]:
    raw = digests.tobytes()
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


@dataclass(frozen=True, eq=False)
class Commitment:
    """A Merkle root with the leaf digests it was built from (host, (n_leaves, 32) uint8, read-only)."""

    root: bytes
    layout: Layout | None
    n_leaves: int
    digests: np.ndarray
    tag: bytes

    def __post_init__(self) -> None:
        d = self.digests
        if not (isinstance(d, np.ndarray) and d.dtype == np.uint8 and d.shape == (self.n_leaves, 32)):
            raise ValueError(f"digests must be ({self.n_leaves}, 32) uint8")
        if d.flags.writeable:
            d = d.copy()
            d.setflags(write=False)
            object.__setattr__(self, "digests", d)

    @classmethod
    def from_digests(cls, digests: np.ndarray, tag: bytes, layout: Layout | None = None) -> Commitment:
        """Build the tree over ``digests`` (n, 32) once; the root and levels come from it."""
        digests = np.asarray(digests)
        if digests.ndim != 2 or digests.shape[1:] != (32,) or digests.dtype != np.uint8 or not len(digests):
            raise ValueError("digests must be a non-empty (n, 32) uint8 array")
        if layout is not None and layout.n_leaves != digests.shape[0]:
            raise ValueError(f"{digests.shape[0]} digests for a layout of {layout.n_leaves} leaves")
        levels = merkle_host.tree_levels(_digest_list(digests))
        c = cls(levels[-1][0], layout, digests.shape[0], digests, tag)
        c.__dict__["levels"] = levels  # the cached_property below, filled by the tree just built
        return c

    @property
    def layout_hash(self) -> bytes | None:
        return None if self.layout is None else self.layout.layout_hash()

    @functools.cached_property
    def levels(self) -> list[list[bytes]]:
        """All RFC 9162 levels bottom-up (levels[0] = leaf digests), built once per commitment."""
        return merkle_host.tree_levels(_digest_list(self.digests))

    def save(self, path: str | Path) -> Path:
        """Write the leaf digests as a ``.npy`` (n, 32) uint8 array, atomically; no pickle."""

        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(self.digests), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, root: bytes, tag: bytes, layout: Layout | None = None) -> Commitment:
        """Read digests written by ``save``; the root is re-derived and must equal ``root`` (e.g. from
        the signed header), so a stale or altered file is refused rather than trusted."""
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a readable .npy of leaf digests ({e})") from e
        if not isinstance(d, np.ndarray) or d.dtype != np.uint8 or d.ndim != 2 or d.shape[1] != 32 or not len(d):
            raise ValueError(f"{path}: expected an (n, 32) uint8 array of leaf digests")
        c = cls.from_digests(d, tag, layout)
        if c.root != root:
            raise ValueError(f"{path}: the stored digests give root {c.root.hex()}, not {root.hex()}")
        return c


def commit(params: Any, leaf_size: int = 1024, group_size: int = 64, tag: bytes = TAG_PARAM, *,
           impl: str = "auto") -> Commitment:
    """Commit to a pytree of float32 arrays (numpy, or jax sharded on any mesh or across processes).

    The root is identical for every mesh, partitioning and lowering: values are only bitcast, and
    the tree follows RFC 9162. ``impl`` is for benchmarks and tests (``hasher``).
    """
    flat = flatten_params(params)
    layout = Layout.from_shapes({k: tuple(v.shape) for k, v in flat.items()}, leaf_size, group_size)
    return Commitment.from_digests(hasher.param_leaf_hashes(flat, layout, tag, impl), tag, layout)


def commit_leaves(leaf_bytes: Any, tag: bytes, layout: Layout | None = None, *, impl: str = "auto") -> Commitment:
    """Commit to generic byte leaves: (N, B) uint8 or (N, W) uint32 rows (e.g. the 528-byte update
    leaves, tag TAG_QUPD), numpy or jax."""
    n = leaf_bytes.shape[0] if hasattr(leaf_bytes, "shape") else len(leaf_bytes)
    if n == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    if layout is not None and layout.n_leaves != n:
        raise ValueError(f"{n} leaves given but the layout has {layout.n_leaves}")
    return Commitment.from_digests(hasher.leaf_hashes(leaf_bytes, tag, 0, impl), tag, layout)


def _on_host(a: Any) -> bool:
    """numpy, or a CPU jax array whose bytes this process can read in place (no device program)."""
    if not hasattr(a, "addressable_shards"):
        return True
    return a.is_fully_addressable and next(iter(a.devices())).platform == "cpu"


def _param_rows(flat: Mapping[str, Any], layout: Layout, idx: list[int]) -> dict[int, bytes]:
    """The leaf bytes of global leaves ``idx``: only those rows leave the devices."""
    arrays = dict(zip((t.path for t in layout.tensors), hasher.check_params(flat, layout), strict=True))
    s = layout.leaf_size
    wanted: dict[str, list[tuple[int, int]]] = {}
    for i in idx:
        t, j = layout.locate(i)
        wanted.setdefault(t.path, []).append((i, j))
    rows: dict[int, bytes] = {}
    for path, pairs in wanted.items():
        a = arrays[path]
        local = np.array([j for _, j in pairs], np.int64)
        if _on_host(a):
            flat_a = np.ascontiguousarray(np.asarray(a), "<f4").reshape(-1)
            got = np.zeros((len(local), s), "<f4")  # little-endian float32 bytes, zero padding
            for r, j in enumerate(local):
                part = flat_a[j * s : (j + 1) * s]
                got[r, : part.size] = part
        else:
            from pogo_jax.commit import device

            got = device.take_tensor_leaves(a, s, local).astype("<u4", copy=False)  # the bitcast bits
        rows.update((i, got[r].tobytes()) for r, (i, _) in enumerate(pairs))
    return rows


def _byte_rows(leaf_bytes: Any, idx: list[int]) -> dict[int, bytes]:
    if _on_host(leaf_bytes):
        a = np.asarray(leaf_bytes)
        got = a[np.asarray(idx, np.int64)]
    else:
        from pogo_jax.commit import device

        got = device.take_rows(leaf_bytes, np.asarray(idx))
    if got.ndim != 2 or got.dtype not in (np.uint8, np.uint32):
        raise ValueError("leaf bytes must be (N, B) uint8 or (N, W) uint32")
    got = got.astype("<u4", copy=False) if got.dtype == np.uint32 else got
    return {i: np.ascontiguousarray(got[r]).tobytes() for r, i in enumerate(idx)}


def open_from_digests(state_or_leaf_bytes: Any, commitment: Commitment, indices: Sequence[int]) -> list[Opening]:
    """Openings (leaf bytes + RFC 9162 audit path) for ``indices`` from the commitment's stored digests.

    Fetches only the k leaf rows from the state (or the (N, B) leaf bytes), checks each against its
    committed digest (hashlib on k leaves) and takes the paths from ``commitment.levels``; the state
    itself is never hashed again. Raises ValueError on an index out of range, a duplicate, or data
    that do not match the commitment.
    """
    idx = [int(i) for i in indices]
    n = commitment.n_leaves
    if any(not 0 <= i < n for i in idx):
        raise ValueError(f"leaf index outside [0, {n})")
    if len(set(idx)) != len(idx):
        raise ValueError("duplicate leaf index")
    data = state_or_leaf_bytes
    if commitment.tag == TAG_PARAM or isinstance(data, Mapping) or not hasattr(data, "ndim"):
        if commitment.layout is None:
            raise ValueError("a parameter commitment needs its layout to locate leaves")
        rows = _param_rows(flatten_params(data), commitment.layout, idx) if idx else {}
    else:
        rows = _byte_rows(data, idx) if idx else {}
    digests = commitment.levels[0]
    for i, row in rows.items():
        if merkle_host.leaf_hash(commitment.tag, i, row) != digests[i]:
            raise ValueError(f"leaf {i} of the given data does not match the commitment")
    return make_openings(digests, {i: rows[i] for i in idx}, commitment.levels)  # in the order asked


def open(params_or_leaf_bytes: Any, commitment: Commitment, indices: Sequence[int]) -> list[Opening]:  # noqa: A001
    """``open_from_digests`` (kept under its old name for callers)."""
    return open_from_digests(params_or_leaf_bytes, commitment, indices)


def host_commit(
    arrays: Mapping[str, np.ndarray], leaf_size: int = 1024, group_size: int = 64, tag: bytes = TAG_PARAM
) -> tuple[bytes, Layout]:
    """Host reference commitment (numpy + hashlib, one core, via ``spec``): same root as ``commit``."""
    layout = Layout.from_arrays(arrays, leaf_size, group_size)
    if layout.n_leaves == 0:
        raise ValueError("nothing to commit: every tensor is empty")
    leaves = to_leaves(arrays, layout)
    return merkle_host.root(merkle_host.leaf_hashes(tag, leaves)), layout
