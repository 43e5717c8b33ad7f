"""Read a parameter file into ``{name: float32 array}``: an ``.npz`` (through ``spec.state``, no jax) or an
orbax checkpoint directory (an item, a step, a CheckpointManager or a ``pogo train --out`` directory; the
``params`` subtree when there is one). ``pogo commit`` and ``pogo govern epoch --init-from`` read with it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.pytree import flatten_params
from pogo_jax.spec.state import load_state

PREFERRED_ITEMS = ("params", "state", "model", "default")


def _find_params(tree: Any) -> Any:
    """The ``params`` subtree (searched breadth-first), else the whole tree."""
    queue = [tree]
    while queue:
        t = queue.pop(0)
        if isinstance(t, dict):
            if "params" in t:
                return t["params"]
            queue.extend(v for v in t.values() if isinstance(v, dict))
    return tree


def _item_dir(path: str) -> str:
    if os.path.exists(os.path.join(path, "_METADATA")):
        return path
    steps = [d for d in os.listdir(path) if d.isdigit() and os.path.isdir(os.path.join(path, d))]
    if steps:  # a CheckpointManager directory: take the latest step
        return _item_dir(os.path.join(path, max(steps, key=int)))
    if os.path.isdir(os.path.join(path, "checkpoints")):  # a `pogo train --out DIR` run directory
        return _item_dir(os.path.join(path, "checkpoints"))
    items = [d for d in sorted(os.listdir(path)) if os.path.exists(os.path.join(path, d, "_METADATA"))]
    for name in PREFERRED_ITEMS:
        if name in items:
            return os.path.join(path, name)
    if len(items) == 1:
        return os.path.join(path, items[0])
    raise UserError(f"{path}: not an orbax checkpoint (no _METADATA; items found: {items or 'none'})")


def load_orbax(path: str) -> dict[str, Any]:
    """Restore generically (onto one device, stored dtypes checked first) and flatten the params."""
    import jax
    import orbax.checkpoint as ocp

    item = _item_dir(os.path.abspath(path))
    ck = ocp.StandardCheckpointer()
    try:
        meta = ck.metadata(item)
        tree = getattr(getattr(meta, "item_metadata", meta), "tree", None)
        if tree is None:
            tree = meta.item_metadata
        dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=dev), tree)
        for name, m in flatten_params(_find_params(target)).items():
            if np.dtype(m.dtype) != np.float32:
                raise UserError(f"{path}: parameter {name!r} is stored as {m.dtype}, not float32")
        restored = ck.restore(item, target)
    except UserError:
        raise
    except Exception as e:  # orbax raises many types for unreadable directories
        raise UserError(f"{path}: could not restore the orbax checkpoint ({type(e).__name__}: {e})") from e
    return flatten_params(_find_params(restored))


def load_params(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    arrays = load_orbax(path) if os.path.isdir(path) else load_state(path, what=path)
    if not arrays:
        raise UserError(f"{path}: holds no arrays; nothing to commit")
    for name, a in arrays.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}: empty tensor name")
        if np.dtype(a.dtype) != np.float32:
            raise UserError(f"{path}: array {name!r} is {a.dtype}, expected float32 (convert it before committing)")
    if all(int(np.prod(a.shape)) == 0 for a in arrays.values()):
        raise UserError(f"{path}: every array is empty; nothing to commit")
    return arrays
