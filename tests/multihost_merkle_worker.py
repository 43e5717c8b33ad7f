"""One process of the two-process Merkle test (started by ``multihost_harness.run_two_process``).

Builds a parameter pytree whose tensors are sharded across the devices of BOTH processes
(``jax.make_array_from_callback``: each process supplies only its own shards), commits it on
device with the default lowering (hashlib over each process's own CPU shards, digests exchanged)
and with the jnp lowering (``shard_map`` over the devices of both processes), opens two leaves from
the stored digests, and prints the roots; the test compares them with the single-process host root.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from multihost_worker import emit, init_distributed  # noqa: E402


def main() -> None:
    init_distributed()
    import jax
    import numpy as np
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    from pogo_jax.commit import merkle

    seed, s, g = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)  # same seed in both processes: same global values
    shapes = {"emb": (32, 40), "blk/w": (40, 16), "blk/b": (16,), "ln": (), "odd": (5, 7)}
    host = {k: np.asarray(rng.standard_normal(v), dtype=np.float32).reshape(v) for k, v in shapes.items()}
    n = jax.device_count()
    mesh = jax.make_mesh((n // 2, 2), ("fsdp", "model"), axis_types=(AxisType.Auto,) * 2)
    specs = {
        "emb": P(("fsdp", "model")),
        "blk/w": P("fsdp", "model"),
        "blk/b": P("model"),
        "ln": P(),
        "odd": P(),
    }
    params = {
        k: jax.make_array_from_callback(v.shape, NamedSharding(mesh, specs[k]), lambda idx, v=v: v[idx])
        for k, v in host.items()
    }
    assert not params["emb"].is_fully_addressable
    c = merkle.commit(params, s, g)
    c_jnp = merkle.commit(params, s, g, impl="jnp")
    ops = merkle.open(params, c, [0, c.n_leaves - 1])
    ok = merkle.verify_openings(c.root, merkle.TAG_PARAM, ops, c.n_leaves, 4 * s)
    emit(
        {
            "process": jax.process_index(),
            "devices": n,
            "root": c.root.hex(),
            "n_leaves": c.n_leaves,
            "open_ok": list(ok),
            "root_jnp": c_jnp.root.hex(),
        }
    )


if __name__ == "__main__":
    main()
