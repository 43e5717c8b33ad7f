"""Canonical parameter layout (PROTOCOL section 1): numpy only.

Tensors are sorted by path (UTF-8 bytes), flattened in C order and cut into leaves of ``S``
float32 values; the last leaf of each tensor is zero-padded. Global leaf index = tensors in
canonical order, leaves in order within a tensor. The manifest lists every tensor plus S, G,
hash name and version; ``layout_hash`` is SHA-256 of its canonical encoding.

Worked example (``docs/merkle.md`` recomputes it with hashlib): tensors ``b`` (shape (3,)) and
``a/w`` (shape (2, 1500)) with S=1024 sort as ``a/w`` (3000 values -> leaves 0..2, 72 padding
zeros in leaf 2) then ``b`` (leaf 3, 1021 padding zeros): 4 leaves.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int

LAYOUT_VERSION = 1
HASH_NAME = "sha256"
MAX_LEAVES = 2**40  # far above any model; bounds what a reader will accept


@dataclass(frozen=True)
class TensorEntry:
    path: str
    shape: tuple[int, ...]
    dtype: str
    first_leaf: int
    n_leaves: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def to_obj(self) -> dict:
        return {"path": self.path, "shape": list(self.shape), "dtype": self.dtype,
                "first_leaf": self.first_leaf, "n_leaves": self.n_leaves}


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8")


@dataclass(frozen=True)
class Layout:
    tensors: tuple[TensorEntry, ...]
    leaf_size: int = 1024
    group_size: int = 64
    hash_name: str = HASH_NAME
    version: int = LAYOUT_VERSION

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple[int, ...]], leaf_size: int = 1024,
                    group_size: int = 64) -> Layout:
        """Build the canonical layout for ``{path: shape}`` (all float32)."""
        if leaf_size <= 0 or group_size <= 0 or leaf_size % group_size or group_size % 2:
            raise ValueError("leaf_size must be a positive multiple of an even group_size")
        entries = []
        first = 0
        for path in sorted(shapes, key=_sort_key):
            shape = tuple(int(d) for d in shapes[path])
            if any(d < 0 for d in shape):
                raise ValueError(f"negative dimension in {path}")
            n = math.ceil(math.prod(shape) / leaf_size)
            entries.append(TensorEntry(path, shape, "float32", first, n))
            first += n
        return cls(tuple(entries), leaf_size, group_size)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], leaf_size: int = 1024,
                    group_size: int = 64) -> Layout:
        return cls.from_shapes({k: tuple(v.shape) for k, v in arrays.items()}, leaf_size, group_size)

    @property
    def n_leaves(self) -> int:
        return sum(t.n_leaves for t in self.tensors)

    @property
    def n_values(self) -> int:
        return sum(t.size for t in self.tensors)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.path: t.shape for t in self.tensors}

    def manifest(self) -> dict:
        return {
            "version": self.version,
            "hash": self.hash_name,
            "leaf_size": self.leaf_size,
            "group_size": self.group_size,
            "n_leaves": self.n_leaves,
            "tensors": [t.to_obj() for t in self.tensors],
        }

    def layout_hash(self) -> bytes:
        return hashlib.sha256(canonical(self.manifest())).digest()

    @classmethod
    def from_manifest(cls, obj: object) -> Layout:
        """Parse and fully re-derive a manifest; refuse any inconsistency (never trust offsets)."""
        what = "layout manifest"
        exact_keys(obj, {"version", "hash", "leaf_size", "group_size", "n_leaves", "tensors"}, what)
        if get_int(obj, "version", what) != LAYOUT_VERSION:
            raise MalformedInput(f"{what}: unsupported version {obj['version']} (expected {LAYOUT_VERSION})")
        if get_field(obj, "hash", str, what) != HASH_NAME:
            raise MalformedInput(f"{what}: unsupported hash {obj['hash']!r}")
        s = get_int(obj, "leaf_size", what, 2, 1 << 24)
        g = get_int(obj, "group_size", what, 2, 1 << 24)
        if s % g or g % 2:
            raise MalformedInput(f"{what}: leaf_size must be a multiple of an even group_size")
        tensors = get_field(obj, "tensors", list, what)
        if len(tensors) > 1_000_000:
            raise MalformedInput(f"{what}: too many tensors")
        shapes: dict[str, tuple[int, ...]] = {}
        for i, t in enumerate(tensors):
            tw = f"{what}.tensors[{i}]"
            exact_keys(t, {"path", "shape", "dtype", "first_leaf", "n_leaves"}, tw)
            path = get_field(t, "path", str, tw)
            if not path or len(path) > 4096 or path in shapes:
                raise MalformedInput(f"{tw}: empty, overlong or duplicate path")
            if get_field(t, "dtype", str, tw) != "float32":
                raise MalformedInput(f"{tw}: dtype must be float32")
            shape = get_field(t, "shape", list, tw)
            if len(shape) > 16 or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                                          for d in shape):
                raise MalformedInput(f"{tw}: bad shape")
            shapes[path] = tuple(shape)
        layout = cls.from_shapes(shapes, s, g)
        if layout.n_leaves > MAX_LEAVES:
            raise MalformedInput(f"{what}: too many leaves")
        if layout.manifest() != obj:
            raise MalformedInput(f"{what}: not canonical (order, offsets or n_leaves do not re-derive)")
        return layout

    def locate(self, leaf_index: int) -> tuple[TensorEntry, int]:
        """The tensor holding global leaf ``leaf_index`` and the leaf's index within it."""
        if not 0 <= leaf_index < self.n_leaves:
            raise IndexError(f"leaf {leaf_index} outside [0, {self.n_leaves})")
        lo, hi = 0, len(self.tensors)
        firsts = [t.first_leaf for t in self.tensors]
        while lo < hi:  # last tensor with first_leaf <= index and n_leaves > 0
            mid = (lo + hi) // 2
            if firsts[mid] <= leaf_index:
                lo = mid + 1
            else:
                hi = mid
        i = lo - 1
        while self.tensors[i].n_leaves == 0 or leaf_index >= firsts[i] + self.tensors[i].n_leaves:
            i -= 1  # skip empty tensors sharing the same first_leaf
        t = self.tensors[i]
        return t, leaf_index - t.first_leaf

    def valid_values(self, leaf_index: int) -> int:
        """How many of the leaf's S values are real (the rest is padding that must be +0.0)."""
        t, local = self.locate(leaf_index)
        return min(self.leaf_size, t.size - local * self.leaf_size)


def to_leaves(arrays: Mapping[str, np.ndarray], layout: Layout) -> np.ndarray:
    """Host: ``{path: float32 array}`` -> (n_leaves, S) float32 in canonical order, zero padded."""
    s = layout.leaf_size
    out = np.zeros((layout.n_leaves, s), dtype=np.float32)
    flat = out.reshape(-1)
    for t in layout.tensors:
        if t.path not in arrays:
            raise KeyError(f"missing tensor {t.path}")
        a = np.asarray(arrays[t.path])
        if a.dtype != np.float32 or tuple(a.shape) != t.shape:
            raise ValueError(f"{t.path}: expected float32{t.shape}, got {a.dtype}{tuple(a.shape)}")
        flat[t.first_leaf * s : t.first_leaf * s + t.size] = a.reshape(-1)
    return out


def from_leaves(leaves: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """Inverse of ``to_leaves`` (drops the padding)."""
    s = layout.leaf_size
    flat = np.asarray(leaves).reshape(-1)
    return {t.path: flat[t.first_leaf * s : t.first_leaf * s + t.size].reshape(t.shape).copy()
            for t in layout.tensors}
