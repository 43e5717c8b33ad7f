"""Training throughput and model FLOPs utilization (MFU) of the jitted, sharded train step.

  PYTHONPATH=. python scripts/bench_train.py --config gpt2-124m [--steps 30] [--gpu-flags] [--set ...]

Reports tokens/s and MFU = (flops_per_token * tokens/s) over (a) the device's dense bf16 peak from a
table of known parts and (b) the bf16 matmul rate measured in the same run with a large ``jnp``
matmul. Writes benchmarks/results/train_<config>_<backend>.json with the device kind, jax version
and command. A thin entry point: the measurements are ``pogo_jax.bench.train`` (the same code
``pogo bench`` runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pogo_jax.bench import train as bt
from pogo_jax.bench.common import RESULTS, command_line, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="gpt2-124m")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after warmup)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    ap.add_argument(
        "--matmul-size", type=int, default=0, help="n of the n x n bf16 matmul (0: 8192 GPU/TPU, 1024 CPU)"
    )
    ap.add_argument("--gpu-flags", action="store_true", help=f"add XLA_FLAGS {bt.GPU_XLA_FLAGS}")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = ap.parse_args()
    if args.gpu_flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + bt.GPU_XLA_FLAGS).strip()

    import flax
    import jax

    from pogo_jax.bench.common import device_info
    from pogo_jax.config import load_config

    cfg = load_config(args.config, args.overrides + [f"train.steps={args.warmup + args.steps + 1}"])
    info = device_info()
    step = bt.bench_train_step(cfg, args.steps, args.warmup)
    n, matmul = bt.measure_matmul_default(info["backend"], args.matmul_size)
    mfu = bt.mfu_fields(step["flops_per_token"], step["tokens_per_s"], info["device_kind"], info["n_devices"],
                        matmul)
    result = {
        "config": cfg.name,
        "overrides": args.overrides,
        **{k: info[k] for k in ("backend", "device_kind", "n_devices")},
        "mesh": step.pop("mesh"),
        "jax_version": jax.__version__,
        "flax_version": flax.__version__,
        "python": info["python"],
        "command": command_line("PYTHONPATH=. python scripts/bench_train.py"),
        "xla_flags": info["xla_flags"],
        **{k: v for k, v in step.items() if k != "final_loss"},
        **mfu,
        "matmul_n": n,
        "matmul_bf16_flops_per_s_measured": matmul,
        "final_loss": step["final_loss"],
    }
    out = args.out or RESULTS / f"train_{cfg.name}_{info['backend']}.json"
    write_json(out, result)
    peak_txt = "n/a (unknown device)" if result["mfu_vs_peak"] is None else f"{result['mfu_vs_peak']:.1%}"
    print(
        f"{cfg.name} on {info['n_devices']}x {info['device_kind']}: {result['tokens_per_s']:,.0f} tokens/s, "
        f"step {result['step_time_s_median'] * 1e3:.1f} ms, "
        f"MFU vs peak {peak_txt}, vs measured bf16 matmul ({matmul / 1e12:.2f} TFLOP/s) "
        f"{result['mfu_vs_measured_matmul']:.1%}; compile {result['compile_s']:.1f}s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
