"""Training throughput and model FLOPs utilization (MFU) of the jitted, sharded train step.

MFU = flops_per_token * tokens/s over (a) the device's dense bf16 peak from a table of known parts
and (b) the bf16 matmul rate measured in the same process with a large ``jnp`` matmul (an
achievable roofline on this exact machine; the only denominator a CPU has). flops_per_token is
``pogo_jax.model.flops_per_token`` (6 * matmul params + 12 * L * T * d attention, PaLM appendix B).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from pogo_jax.config import resolve_vocab
from pogo_jax.train import data

# Dense (no sparsity) bf16 tensor-core peaks per device, FLOP/s, from the vendors' data sheets.
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", 835e12),
    ("H200", 989e12),  # SXM ("NVIDIA H200"), the part scripts/device_suite.sh is written for
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

# Flags that help one-GPU training throughput; opt-in (set before jax starts).
GPU_XLA_FLAGS = "--xla_gpu_enable_latency_hiding_scheduler=true"


def peak_entry(device_kind: str) -> tuple[str, float] | None:
    """The first data-sheet row whose name occurs in the device kind (table order: specific first)."""
    for key, peak in PEAK_BF16:
        if key.lower() in device_kind.lower():
            return key, peak
    return None


def peak_for(device_kind: str) -> float | None:
    """Dense bf16 peak FLOP/s of a device kind, or None for parts not in the table (e.g. CPUs)."""
    entry = peak_entry(device_kind)
    return None if entry is None else entry[1]


def default_matmul_size(backend: str) -> int:
    return 1024 if backend == "cpu" else 8192


def measure_matmul(n: int, iters: int) -> float:
    """bf16 (n x n) @ (n x n) with float32 accumulation on one device; returns FLOP/s (best of 3)."""
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


def measure_matmul_default(backend: str, n: int = 0) -> tuple[int, float]:
    """(n, FLOP/s) with the backend's default size and iteration count."""
    n = n or default_matmul_size(backend)
    return n, measure_matmul(n, iters=4 if backend == "cpu" else 50)


def mfu_fields(fpt: float, tokens_per_s: float, device_kind: str, n_devices: int,
               matmul_flops: float | None) -> dict[str, Any]:
    """MFU against the data-sheet peak (None when unknown) and against the measured matmul rate."""
    model_flops = fpt * tokens_per_s
    entry = peak_entry(device_kind)
    peak = None if entry is None else entry[1]
    return {
        "model_flops_per_s": model_flops,
        "peak_bf16_flops_per_device": peak,
        "peak_source": None if entry is None else f"data sheet, dense bf16, {entry[0]}",
        "mfu_vs_peak": None if peak is None else model_flops / (peak * n_devices),
        "mfu_vs_measured_matmul": None if not matmul_flops else model_flops / (matmul_flops * n_devices),
    }


def bench_train_step(cfg, steps: int, warmup: int) -> dict[str, Any]:  # noqa: ANN001 - Config
    """Time ``steps`` train steps on pre-placed batches (the step, not the host) after ``warmup``.

    This is PoGO disabled: a plain ``train.Trainer``, no quantization, no commitment.
    """
    import jax

    from pogo_jax.train.model import flops_per_token, param_count
    from pogo_jax.train.step import Trainer

    ds = data.load_dataset(cfg.data)
    cfg, _ = resolve_vocab(cfg, ds.vocab_size, ds.token_info is not None)  # a BPE dataset sets the vocabulary
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    init_s = time.perf_counter() - t0
    total = 1 + warmup + steps
    batches = [trainer.batch(ds, s) for s in range(total)]  # placed ahead: time the step, not the host
    t0 = time.perf_counter()
    m = trainer.train_step(batches[0])
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for b in batches[1 : 1 + warmup]:
        m = trainer.train_step(b)
    jax.block_until_ready(m)
    times = []
    t_all = time.perf_counter()
    for b in batches[1 + warmup :]:
        t0 = time.perf_counter()
        m = trainer.train_step(b)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    tokens_per_step = cfg.train.batch_size * cfg.model.seq_len
    return {
        "mesh": dict(trainer.mesh.shape),
        "compute_dtype": cfg.model.compute_dtype,
        "attention_impl": cfg.model.attention_impl,
        "param_count": param_count(cfg.model),
        "seq_len": cfg.model.seq_len,
        "batch_size": cfg.train.batch_size,
        "tokens_per_step": tokens_per_step,
        "timed_steps": steps,
        "init_s": init_s,
        "compile_s": compile_s,
        "step_time_s_median": statistics.median(times),
        "step_time_s_mean": float(np.mean(times)),
        "tokens_per_s": tokens_per_step * steps / wall,
        "flops_per_token": flops_per_token(cfg.model),
        "final_loss": float(m["loss"]),
    }
