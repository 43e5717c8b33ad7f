"""How far apart do honest evaluations of one state land? The number behind ``chain.loss_tolerance``.

Trains one block of a config on the embedded dataset, then evaluates theta_prev and theta_next on the
same challenge windows (a) on one CPU device, (b) sharded over 8 fake CPU devices (data, fsdp and tensor
axes: a different reduction order), (c) with bfloat16 compute, all with the highest matmul precision;
and measures what one optimizer step and one block improve. Writes JSON under benchmarks/results/.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 PYTHONPATH=. python scripts/loss_agreement.py --config small
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from pogo_jax.config import load_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    from pogo_jax.commit.block import BlockMiner
    from pogo_jax.train import data, sharding
    from pogo_jax.train.evaluate import Evaluator
    from pogo_jax.train.step import _eval_pure

    cfg = load_config(args.config)
    ds = data.load_dataset(cfg.data)
    windows = list(range(args.windows))
    t0 = time.perf_counter()
    bm = BlockMiner(cfg)
    bm.run_block(ds)  # a first block from genesis (past the warmup)
    prev0 = {k: np.asarray(v) for k, v in bm.theta.items()}
    one = bm.run_block(ds, 1)  # one step from there: how much does a single honest step improve?
    prev = {k: np.asarray(v) for k, v in one.theta_next.items()}
    res = bm.run_block(ds)  # then a whole second block
    nxt = {k: np.asarray(v) for k, v in res.theta_next.items()}
    ev = Evaluator(cfg)

    def single(arrays) -> float:  # noqa: ANN001
        return ev.loss(arrays, ds, windows)

    def sharded(arrays) -> float:  # noqa: ANN001
        mesh = sharding.make_mesh(dataclasses.replace(cfg.mesh, data=2, fsdp=2, tensor=2))
        from pogo_jax.train.step import Trainer

        t = Trainer(dataclasses.replace(cfg, mesh=dataclasses.replace(cfg.mesh, data=2, fsdp=2, tensor=2)), mesh)
        t.set_params(arrays)
        w = data.eval_windows(ds, windows, cfg.model.seq_len).astype(np.int32)
        wsh = jax.device_put(w, sharding.batch_sharding(mesh, cfg.mesh.rule_map()))
        with jax.default_matmul_precision("highest"):
            return float(np.float32(_eval_pure(t.graphdef, t.state["params"], wsh)))

    bf = Evaluator(cfg, compute_dtype="bfloat16")

    out = {"config": args.config, "windows": len(windows), "devices": jax.device_count(), "jax": jax.__version__}
    for name, arrays in (("theta_prev", prev), ("theta_next", nxt)):
        a, b, c = single(arrays), sharded(arrays), bf.loss(arrays, ds, windows)
        out[name] = {"one_device": a, "eight_devices_fsdp2_tp2_dp2": b, "bfloat16_compute": c,
                     "rel_mesh": abs(a - b) / abs(a), "rel_bf16": abs(a - c) / abs(a)}
    l0, l1 = single(prev0), single(prev)
    out["one_step_improvement"] = {"loss_before": l0, "loss_after": l1, "rel": (l0 - l1) / l0}
    lp, ln = out["theta_prev"]["one_device"], out["theta_next"]["one_device"]
    out["block_improvement"] = {"block": 2, "steps": cfg.miner.block_steps, "loss_prev": lp, "loss_next": ln,
                                "rel": (lp - ln) / lp, "nats": lp - ln}
    out["max_rel_mesh"] = max(out[n]["rel_mesh"] for n in ("theta_prev", "theta_next"))
    out["max_rel_bf16"] = max(out[n]["rel_bf16"] for n in ("theta_prev", "theta_next"))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["command"] = ("XLA_FLAGS=--xla_force_host_platform_device_count=8 PYTHONPATH=. python "
                      "scripts/loss_agreement.py " + " ".join(sys.argv[1:]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"loss_agreement_{args.config}_cpu.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
