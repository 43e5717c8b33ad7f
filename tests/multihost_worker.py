"""One process of a two-process jax.distributed CPU cluster (started by ``multihost_harness``).

  python tests/multihost_worker.py MODE [args...]

Modes:
  ping                 psum of ones over all devices of both processes (checks collectives)
  train --out DIR [--steps N] [--mesh data,fsdp,tensor]
                       tiny for N steps over a mesh spanning both processes, orbax save, reload
Prints ``RESULT {json}`` on success. Environment: see ``multihost_harness.run_two_process``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def init_distributed() -> None:
    """jax.distributed on CPU with gloo collectives, from the harness's environment variables."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ["POGO_MH_COORDINATOR"],
        num_processes=int(os.environ["POGO_MH_NUM_PROCESSES"]),
        process_id=int(os.environ["POGO_MH_PROCESS_ID"]),
        local_device_ids=list(range(int(os.environ.get("POGO_MH_LOCAL_DEVICES", "2")))),
    )


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)


def mode_ping() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((jax.device_count(),), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    sh = NamedSharding(mesh, PartitionSpec("d"))
    x = jax.make_array_from_callback((jax.device_count(),), sh, lambda idx: np.ones(jax.device_count())[idx])
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(x)
    return {"process": jax.process_index(), "devices": jax.device_count(), "sum": float(total)}


def mode_train(argv: list[str]) -> dict:
    import jax
    import numpy as np

    from pogo_jax.config import load_config
    from pogo_jax.train import checkpoint, data, sharding
    from pogo_jax.train.step import Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--mesh", default="2,2,1")
    a = ap.parse_args(argv)
    d, f, t = (int(x) for x in a.mesh.split(","))
    cfg = load_config(
        "tiny", [f"mesh.data={d}", f"mesh.fsdp={f}", f"mesh.tensor={t}", f"train.steps={a.steps}"]
    )
    mesh = sharding.make_mesh(cfg.mesh)
    ds = data.load_dataset(cfg.data)
    trainer = Trainer(cfg, mesh)
    metrics = trainer.train_steps(ds, a.steps)
    # every process fetches the full params (an all-gather) to fingerprint them
    from jax.experimental import multihost_utils

    def gathered() -> dict:
        return {
            k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in trainer.params().items()
        }

    params = gathered()
    mngr = checkpoint.open_manager(a.out, keep=1)
    trainer.save(mngr, {"note": "two-process"})
    mngr.wait_until_finished()
    trainer.step = -1
    trainer.set_params({k: np.zeros_like(v) for k, v in params.items()})  # forget, then reload from disk
    trainer.load(mngr)
    mngr.close()
    again = gathered()
    same = all(np.array_equal(params[k], again[k]) for k in params)
    return {
        "process": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "mesh": dict(mesh.shape),
        "losses": [m["loss"] for m in metrics],
        "restored_step": trainer.step,
        "restore_bitwise_equal": same,
        "param_sum": float(sum(np.float64(v).sum() for v in params.values())),
    }


def main() -> int:
    mode, rest = sys.argv[1], sys.argv[2:]
    init_distributed()
    if mode == "ping":
        emit(mode_ping())
    elif mode == "train":
        emit(mode_train(rest))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
