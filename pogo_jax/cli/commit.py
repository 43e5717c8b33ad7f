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

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.spec.layout import Layout
from pogo_jax.train.param_files import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("params", metavar="PARAMS", help=".npz of float32 arrays or an orbax checkpoint dir")
    parser.add_argument("--host", action="store_true", help="use the host reference (no jax)")
    parser.add_argument("--leaf-size", type=int, default=1024, help="float32 values per leaf (S)")
    parser.add_argument("--group-size", type=int, default=64, help="quantization group size (G)")


def run(args: argparse.Namespace) -> int:
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
