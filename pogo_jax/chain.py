"""A chain directory on disk and the host-only state rebuild (``pogo sync``). No jax.

Layout of a chain directory (``pogo demo --out DIR`` creates it; roles may share it or copy
files between machines):

    DIR/ledger.sqlite              headers, beacons, attestations, stakes, outcomes (ledger.py)
    DIR/states/genesis.npz         theta_0 (flushed float32, npz without pickle)
    DIR/blocks/<height>/header.json   the signed header (canonical JSON)
    DIR/blocks/<height>/update.qupd   the block's 4-bit update: n_leaves wire leaves back to back
    DIR/bundles/block-<height>.pogo   the proof bundle (protocol/bundle.py)
    DIR/beacon/                    the local hash-chain beacon's secret (beacon.py)

Confirmed states are never stored as trusted checkpoints: ``sync`` rebuilds theta at any height
from the genesis state and the confirmed updates alone, checking every root on the way.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_open
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves
from pogo_jax.train.data import file_sha256  # noqa: F401 - re-exported for the roles


class ChainDir:
    """Paths inside a chain directory (one place, so every role agrees on them)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def genesis(self) -> Path:
        return self.root / "states" / "genesis.npz"

    @property
    def beacon_dir(self) -> Path:
        return self.root / "beacon"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def block_dir(self, height: int) -> Path:
        return self.root / "blocks" / f"{height:06d}"

    def header_file(self, height: int) -> Path:
        return self.block_dir(height) / "header.json"

    def update_file(self, height: int) -> Path:
        return self.block_dir(height) / "update.qupd"

    def bundle_file(self, height: int) -> Path:
        return self.root / "bundles" / f"block-{height:06d}.pogo"


def save_state(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``{path: float32 array}`` as an npz (no pickle), atomically."""
    with atomic_open(path) as f:
        np.savez(f, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})


def load_state(path: str | Path, layout: Layout | None = None) -> dict[str, np.ndarray]:
    """Read an npz state; refuse pickles, non-float32 arrays and (with a layout) wrong names/shapes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"state file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"cannot read state {path}: {e} (expected an .npz of float32 arrays)") from None
    bad = [k for k, v in arrays.items() if v.dtype != np.float32]
    if bad:
        raise UserError(f"state {path}: tensor {bad[0]!r} is {arrays[bad[0]].dtype}, expected float32")
    if layout is not None:
        want = layout.shapes()
        if set(want) != set(arrays):
            missing = sorted(set(want) - set(arrays))
            extra = sorted(set(arrays) - set(want))
            raise UserError(f"state {path} does not match the chain layout (missing {missing[:3]}, "
                            f"unexpected {extra[:3]})")
        for k, shape in want.items():
            if tuple(arrays[k].shape) != shape:
                raise UserError(f"state {path}: {k} has shape {arrays[k].shape}, layout says {shape}")
    return arrays


def read_update(path: str | Path, layout: Layout) -> np.ndarray:
    """The block's update file as (n_leaves, B) uint8; size checked before reading."""
    path = Path(path)
    b = upd.update_leaf_bytes(layout.leaf_size, layout.group_size)
    want = layout.n_leaves * b
    if not path.is_file():
        raise UserError(f"update file {path} does not exist")
    size = path.stat().st_size
    if size != want:
        raise UserError(f"update file {path} is {size} bytes, the layout needs {want}")
    return np.fromfile(path, dtype=np.uint8).reshape(layout.n_leaves, b)


def state_root(arrays: Mapping[str, np.ndarray], layout: Layout) -> bytes:
    """Host reference root of a parameter state (PROTOCOL 1-2)."""
    return mh.root(mh.leaf_hashes(mh.TAG_PARAM, to_leaves(arrays, layout)))


def update_root(qleaves: np.ndarray) -> bytes:
    return mh.root(mh.leaf_hashes(mh.TAG_QUPD, qleaves))


def apply_update_host(arrays: Mapping[str, np.ndarray], qleaves: np.ndarray,
                      layout: Layout) -> dict[str, np.ndarray]:
    """theta_next = apply(theta_prev, q) for the whole model on the host (numpy reference)."""
    exps, codes = upd.unpack_leaves(qleaves, layout.leaf_size, layout.group_size)
    upd.check_padding(codes, [layout.valid_values(i) for i in range(layout.n_leaves)])
    nxt = upd.apply_leaves(to_leaves(arrays, layout), exps, codes)
    return from_leaves(nxt, layout)

