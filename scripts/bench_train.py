"""Training throughput and model FLOPs utilization (MFU) of the jitted, sharded train step.

  PYTHONPATH=. python scripts/bench_train.py --config gpt2-124m [--steps 30] [--gpu-flags] [--set ...]

Reports tokens/s and MFU = (flops_per_token * tokens/s) over (a) the device's dense bf16 peak from a
table of known parts and (b) the bf16 matmul rate this script measures in the same run with a large
``jnp`` matmul (an achievable roofline on this exact machine). flops_per_token is
``pogo_jax.model.flops_per_token`` (6 * matmul params + 12 * L * T * d attention, PaLM appendix B).
Writes benchmarks/results/train_<config>_<backend>.json with the device kind, jax version and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Dense (no sparsity) bf16 tensor-core peaks per device, FLOP/s, from the vendors' data sheets.
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),  # v5e
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v6 lite", 918e12),  # Trillium (v6e)
    ("TPU v6e", 918e12),
]

# Flags that help one-GPU training throughput; opt-in with --gpu-flags (set before jax starts).
GPU_XLA_FLAGS = "--xla_gpu_enable_latency_hiding_scheduler=true"


def peak_for(device_kind: str) -> float | None:
    for key, peak in PEAK_BF16:
        if key.lower() in device_kind.lower():
            return peak
    return None


def measure_matmul(n: int, iters: int) -> float:
    """bf16 (n x n) @ (n x n) with float32 accumulation on one device; returns FLOP/s."""
    import jax
    import jax.numpy as jnp

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.bfloat16)
    b = jax.random.normal(kb, (n, n), jnp.bfloat16)

    @jax.jit
    def chain(a, b):
        def body(_, acc):
            return (acc @ b).astype(jnp.bfloat16) * jnp.bfloat16(0.01)

        return jax.lax.fori_loop(0, iters, body, a)

    chain(a, b).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        chain(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 * iters / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="gpt2-124m")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after warmup)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps after compilation")
    ap.add_argument(
        "--matmul-size", type=int, default=0, help="n of the n x n bf16 matmul (0: 8192 GPU/TPU, 1024 CPU)"
    )
    ap.add_argument("--gpu-flags", action="store_true", help=f"add XLA_FLAGS {GPU_XLA_FLAGS}")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = ap.parse_args()
    if args.gpu_flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + GPU_XLA_FLAGS).strip()

    import flax
    import jax
    import numpy as np

    from pogo_jax import data
    from pogo_jax.config import load_config
    from pogo_jax.model import flops_per_token, param_count
    from pogo_jax.train import Trainer

    cfg = load_config(args.config, args.overrides + [f"train.steps={args.warmup + args.steps + 1}"])
    backend = jax.default_backend()
    dev = jax.devices()[0]
    n_dev = jax.device_count()
    ds = data.load_dataset(cfg.data)

    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    init_s = time.perf_counter() - t0
    total = 1 + args.warmup + args.steps
    batches = [trainer.batch(ds, s) for s in range(total)]  # placed ahead: time the step, not the host
    t0 = time.perf_counter()
    m = trainer.train_step(batches[0])
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for b in batches[1 : 1 + args.warmup]:
        m = trainer.train_step(b)
    jax.block_until_ready(m)
    times = []
    t_all = time.perf_counter()
    for b in batches[1 + args.warmup :]:
        t0 = time.perf_counter()
        m = trainer.train_step(b)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    loss = float(m["loss"])

    tokens_per_step = cfg.train.batch_size * cfg.model.seq_len
    tps = tokens_per_step * args.steps / wall
    fpt = flops_per_token(cfg.model)
    model_flops = fpt * tps
    peak = peak_for(dev.device_kind)
    n = args.matmul_size or (1024 if backend == "cpu" else 8192)
    matmul = measure_matmul(n, iters=4 if backend == "cpu" else 50)

    result = {
        "config": cfg.name,
        "overrides": args.overrides,
        "backend": backend,
        "device_kind": dev.device_kind,
        "n_devices": n_dev,
        "mesh": dict(trainer.mesh.shape),
        "jax_version": jax.__version__,
        "flax_version": flax.__version__,
        "python": platform.python_version(),
        "command": "PYTHONPATH=. python scripts/bench_train.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compute_dtype": cfg.model.compute_dtype,
        "attention_impl": cfg.model.attention_impl,
        "param_count": param_count(cfg.model),
        "seq_len": cfg.model.seq_len,
        "batch_size": cfg.train.batch_size,
        "tokens_per_step": tokens_per_step,
        "timed_steps": args.steps,
        "init_s": init_s,
        "compile_s": compile_s,
        "step_time_s_median": statistics.median(times),
        "step_time_s_mean": float(np.mean(times)),
        "tokens_per_s": tps,
        "flops_per_token": fpt,
        "model_flops_per_s": model_flops,
        "peak_bf16_flops_per_device": peak,
        "mfu_vs_peak": None if peak is None else model_flops / (peak * n_dev),
        "matmul_n": n,
        "matmul_bf16_flops_per_s_measured": matmul,
        "mfu_vs_measured_matmul": model_flops / (matmul * n_dev),
        "final_loss": loss,
    }
    out = args.out or REPO / "benchmarks" / "results" / f"train_{cfg.name}_{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    peak_txt = "n/a (unknown device)" if peak is None else f"{result['mfu_vs_peak']:.1%}"
    print(
        f"{cfg.name} on {n_dev}x {dev.device_kind}: {tps:,.0f} tokens/s, "
        f"step {result['step_time_s_median'] * 1e3:.1f} ms, "
        f"MFU vs peak {peak_txt}, vs measured bf16 matmul ({matmul / 1e12:.2f} TFLOP/s) "
        f"{result['mfu_vs_measured_matmul']:.1%}; compile {compile_s:.1f}s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
