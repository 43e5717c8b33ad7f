"""Model states and updates on the host (PROTOCOL 1-3): npz files, roots, and the one rebuild rule.

``rebuild`` is the full tier's objective check and every sync's step: from a confirmed
``theta_prev`` (whose root is known) and the stored 4-bit update bytes it derives ``theta_next``
exactly and checks ``root_q`` and ``root_next``. Any failure is a reason code anyone can reproduce
from the chain's stored bytes (``Rejected``), which is why the finalizer and ``pogo audit`` call the
same function as the verifiers. numpy + hashlib only.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.fsutil import atomic_open
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves

MAX_STATE_BYTES = 1 << 36

State = dict[str, np.ndarray]


def state_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The npz bytes of a state (no pickle; the chain names it by SHA-256 and checks it by its root)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(arrays[k], dtype=np.float32) for k in sorted(arrays, key=lambda p: p.encode())})
    return buf.getvalue()


def save_state(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``{path: float32 array}`` as an npz (no pickle), atomically."""
    with atomic_open(path) as f:
        f.write(state_bytes(arrays))


def load_state(source: str | Path | bytes, layout: Layout | None = None, what: str | None = None) -> State:
    """Read an npz state from a file or bytes; refuse pickles, non-float32 arrays and (with a layout)
    wrong names or shapes."""
    what = what or (f"state {source}" if not isinstance(source, bytes) else "state")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise UserError(f"{what} does not exist")
    try:
        z = np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise MalformedInput(f"{what} is a single .npy array, not an .npz of named float32 arrays")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise MalformedInput(f"cannot read {what}: {str(e)[:80]} (expected an .npz of float32 arrays, "
                             "no pickles)") from None
    return check_state(arrays, layout, what)


def check_state(arrays: State, layout: Layout | None, what: str) -> State:
    """``arrays`` if every tensor is float32 and (with a layout) the names and shapes are the layout's."""
    bad = [k for k, v in arrays.items() if np.dtype(v.dtype) != np.float32]
    if bad:
        raise MalformedInput(f"{what}: tensor {bad[0]!r} is {arrays[bad[0]].dtype}, expected float32")
    if layout is not None:
        want = layout.shapes()
        if set(want) != set(arrays):
            missing, extra = sorted(set(want) - set(arrays)), sorted(set(arrays) - set(want))
            raise MalformedInput(f"{what} does not match the chain layout (missing {missing[:3]}, "
                                 f"unexpected {extra[:3]})")
        for k, shape in want.items():
            if tuple(arrays[k].shape) != shape:
                raise MalformedInput(f"{what}: {k} has shape {tuple(arrays[k].shape)}, the layout says {shape}")
    return arrays


def update_size(layout: Layout) -> int:
    """Bytes of a whole update: ``n_leaves`` wire leaves back to back."""
    return layout.n_leaves * upd.update_leaf_bytes(layout.leaf_size, layout.group_size)


def update_leaves(data: bytes | np.ndarray, layout: Layout) -> np.ndarray:
    """Update bytes as ``(n_leaves, B)`` uint8 wire leaves; the size is checked first."""
    b = upd.update_leaf_bytes(layout.leaf_size, layout.group_size)
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else np.asarray(data)
    if raw.dtype != np.uint8 or raw.size != layout.n_leaves * b:
        raise Rejected("BAD_LENGTH", f"update is {raw.size} bytes, the layout needs {layout.n_leaves * b}")
    return raw.reshape(layout.n_leaves, b)


def state_leaf_digests(arrays: Mapping[str, np.ndarray], layout: Layout) -> list[bytes]:
    return mh.leaf_hashes(mh.TAG_PARAM, to_leaves(arrays, layout))


def state_root(arrays: Mapping[str, np.ndarray], layout: Layout) -> bytes:
    """Host reference root of a parameter state (PROTOCOL 1-2)."""
    return mh.root(state_leaf_digests(arrays, layout))


def update_root(qleaves: np.ndarray) -> bytes:
    return mh.root(mh.leaf_hashes(mh.TAG_QUPD, qleaves))


def is_committable(arrays: Mapping[str, np.ndarray]) -> bool:
    """A committed state holds no NaN/Inf, no subnormal and no -0.0 (PROTOCOL 1 and 3)."""
    for v in arrays.values():
        w = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
        exp = (w >> 23) & 0xFF
        if ((exp == 0xFF) | ((exp == 0) & (w != 0))).any():
            return False
    return True


def apply_update(arrays: Mapping[str, np.ndarray], qleaves: np.ndarray, layout: Layout) -> State:
    """theta_next = apply(theta_prev, q) for the whole model (numpy reference; Rejected on bad codes)."""
    exps, codes = upd.unpack_leaves(qleaves, layout.leaf_size, layout.group_size)
    upd.check_padding(codes, upd.valid_counts(layout).tolist())
    return from_leaves(upd.apply_leaves(to_leaves(arrays, layout), exps, codes), layout)


def rebuild(theta_prev: Mapping[str, np.ndarray], update: bytes | np.ndarray, layout: Layout, root_q: bytes,
            root_next: bytes) -> tuple[State, list[bytes]]:
    """The full tier's objective check: ``theta_next`` from the confirmed state and the stored update,
    with ``root_q`` and ``root_next`` checked. Returns the state and its leaf digests (so a caller
    that keeps them never hashes the state again). Raises Rejected(ROOT_Q_MISMATCH, BAD_CODE,
    BAD_EXPONENT, BAD_PADDING, BAD_LENGTH, NONFINITE, ROOT_NEXT_MISMATCH)."""
    q = update_leaves(update, layout)
    if update_root(q) != root_q:
        raise Rejected("ROOT_Q_MISMATCH", "the stored update does not hash to root_q")
    theta_next = apply_update(theta_prev, q, layout)
    digests = state_leaf_digests(theta_next, layout)
    if mh.root(digests) != root_next:
        raise Rejected("ROOT_NEXT_MISMATCH", "theta_prev + update does not hash to root_next")
    return theta_next, digests
