"""Print the Merkle commitment (root, layout hash) of a parameter file: .npz or orbax checkpoint.

PARAMS is a ``.npz`` of named float32 arrays (names are the tensor paths, loaded without pickle)
or an orbax checkpoint directory (an item directory, a step directory or a CheckpointManager
directory, whose latest step is used; the ``params`` subtree is taken when there is one). The
root is computed by ``commit`` with the leaf-hash lowering that suits where the arrays live (an
``.npz`` is on the host: hashlib over the CPU cores, without importing jax; an orbax checkpoint is
restored onto the default jax device), or with the single-core host reference (``spec``) when
``--host`` is given; both print the same root.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from typing import Any

import numpy as np

from pogo_jax.errors import UserError

PREFERRED_ITEMS = ("params", "state", "model", "default")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params", metavar="PARAMS", help=".npz of float32 arrays or an orbax checkpoint dir")
    parser.add_argument("--host", action="store_true", help="use the host reference (no jax)")
    parser.add_argument("--leaf-size", type=int, default=1024, help="float32 values per leaf (S)")
    parser.add_argument("--group-size", type=int, default=64, help="quantization group size (G)")


def load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz file without pickle ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: a single .npy array, not an .npz of named arrays (use numpy.savez)")
    with z:
        out = {}
        for name in z.files:
            try:
                out[name] = z[name]
            except (ValueError, OSError, zipfile.BadZipFile) as e:
                raise UserError(
                    f"{path}: array {name!r} is unreadable or needs pickle, which is refused; save plain float32 arrays"
                ) from e
        return out


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

    from pogo_jax.commit.merkle import flatten_params

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
    arrays = load_orbax(path) if os.path.isdir(path) else load_npz(path)
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


def run(args: argparse.Namespace) -> int:
    from pogo_jax.spec.layout import Layout

    s, g = args.leaf_size, args.group_size
    if s <= 0 or g <= 0 or s % g or g % 2:
        raise UserError(f"--leaf-size ({s}) must be a positive multiple of an even --group-size ({g})")
    arrays = load_params(args.params)
    if args.host:
        from pogo_jax.commit.merkle import host_commit

        root, layout = host_commit({k: np.asarray(v) for k, v in arrays.items()}, s, g)
        backend, impl = "host", "reference"
    else:
        from pogo_jax.commit import hasher
        from pogo_jax.commit.merkle import commit

        c = commit(arrays, s, g)
        root, layout = c.root, c.layout
        platform = hasher.platform_of(arrays.values())
        backend = "cpu" if platform == "host" else platform  # numpy arrays are hashed on this CPU
        impl = hasher.resolve_impl(list(arrays.values()))
    assert isinstance(layout, Layout)
    print(
        json.dumps(
            {
                "root": root.hex(),
                "layout_hash": layout.layout_hash().hex(),
                "n_leaves": layout.n_leaves,
                "leaf_size": s,
                "backend": backend,
                "impl": impl,
            },
            sort_keys=True,
        )
    )
    return 0
