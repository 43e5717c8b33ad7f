"""Quality and size of PoGO's 4-bit block updates against plain float32 AdamW, at equal tokens.

Trains the same config on the same batches (``train_batch`` is a pure function of (seed, step)) as:
``fp32`` (plain AdamW, no commitment), ``4bit`` (PoGO blocks, the miner's default: block mode with
error feedback), ``2bit``/``8bit`` (ablation of the code width, same rule), ``4bit_step`` (each step's
update quantized inside the optax chain, net delta published in 4 bits) and optionally
``4bit_noef`` (no error feedback). Evaluates after every block on fixed eval windows and writes

  benchmarks/results/quant_<name>.json   (final_eval_loss keyed fp32/2bit/4bit/8bit/..., curves, bytes)
  benchmarks/results/quant_<name>.md     (tables)
  benchmarks/results/quant_<name>.png    (eval-loss curves)

Bytes per block: the float32 model, the 4-bit wire update, the update compressed with zlib and
lzma, and a sparse form (a bitmap of leaves + only the leaves whose codes are not all zero).

    PYTHONPATH=. python scripts/bench_quant.py                      # small config, 600 steps
    PYTHONPATH=. python scripts/bench_quant.py --steps 300 --block-steps 50   # shorter (CPU)
"""

from __future__ import annotations

import argparse
import json
import lzma
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

VARIANTS = {
    "fp32": None,
    "4bit": {"bits": 4, "quant_mode": "block", "error_feedback": True},
    "2bit": {"bits": 2, "quant_mode": "block", "error_feedback": True},
    "8bit": {"bits": 8, "quant_mode": "block", "error_feedback": True},
    "4bit_step": {"bits": 4, "quant_mode": "step", "error_feedback": True},
    "4bit_noef": {"bits": 4, "quant_mode": "block", "error_feedback": False},
}
DEFAULT_VARIANTS = "fp32,4bit,2bit,8bit,4bit_step"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", help="config name or TOML path (default: small)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: train.steps)")
    p.add_argument("--block-steps", type=int, default=None,
                   help="steps per block (default: miner.block_steps)")
    p.add_argument("--eval-windows", type=int, default=128, help="fixed eval windows per evaluation")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma list from {', '.join(VARIANTS)}")
    p.add_argument("--name", default=None, help="result name (default: <config>_<backend>)")
    p.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    return p.parse_args(argv)


def update_bytes(q, layout) -> dict[str, float]:
    """Sizes of one 4-bit update in the wire format and three compressed forms."""
    from pogo_jax.commit import quant

    wire = quant.pack_update(q, layout)
    raw = wire.tobytes()
    nonzero = int(wire[:, layout.leaf_size // layout.group_size:].any(axis=1).sum())
    sparse = (layout.n_leaves + 7) // 8 + nonzero * wire.shape[1]
    return {"update_4bit": len(raw), "zlib": len(zlib.compress(raw, 9)), "lzma": len(lzma.compress(raw)),
            "sparse": sparse, "nonzero_leaves": nonzero}


def nominal_bytes(layout, bits: int) -> int:
    """Bytes of a ``bits``-wide update with the same exponents (only 4 bits has a wire format)."""
    s, g = layout.leaf_size, layout.group_size
    return layout.n_leaves * (s // g + s * bits // 8)


def host_check(r, layout) -> bool:
    """theta_next == numpy apply(theta_prev, wire update), bit for bit (PROTOCOL 3)."""
    from pogo_jax.commit import quant
    from pogo_jax.spec import update as U
    from pogo_jax.spec.layout import to_leaves

    exps, codes = U.unpack_leaves(quant.pack_update(r.q, layout), layout.leaf_size, layout.group_size)
    want = U.apply_leaves(to_leaves({k: np.asarray(v) for k, v in r.theta_prev.items()}, layout), exps, codes)
    got = to_leaves({k: np.asarray(v) for k, v in r.theta_next.items()}, layout)
    return bool(np.array_equal(want.view(np.uint32), got.view(np.uint32)))


def run_variant(name: str, cfg, ds, n_blocks: int, k: int, n_eval: int) -> dict:
    from pogo_jax.commit import block
    from pogo_jax.train.step import Trainer

    spec = VARIANTS[name]
    t0 = time.perf_counter()
    if spec is None:
        trainer = Trainer(cfg)
        miner = None
    else:
        cfg = block.override_config(cfg, miner=spec)
        miner = block.BlockMiner(cfg)
        trainer = miner.trainer
    curve = [(0, trainer.evaluate(ds, n_eval))]
    sizes, zero_leaves, residual, exact = [], [], [], True
    for b in range(n_blocks):
        if miner is None:
            trainer.train_steps(ds, k)
        else:
            r = miner.run_block(ds, k)
            zero_leaves.append(r.zero_leaves)
            residual.append(r.residual_rms)
            if spec["bits"] == 4:
                sizes.append(update_bytes(r.q, miner.layout))
                if b == n_blocks - 1:
                    exact = host_check(r, miner.layout)
        curve.append(((b + 1) * k, trainer.evaluate(ds, n_eval)))
        print(f"  {name:10s} block {b + 1}/{n_blocks} step {(b + 1) * k} eval {curve[-1][1]:.4f}", flush=True)
    out = {"eval_curve": curve, "final_eval_loss": curve[-1][1], "wall_s": time.perf_counter() - t0,
           "miner": spec}
    if miner is not None:
        out["zero_leaves_per_block"] = zero_leaves
        out["residual_rms_per_block"] = residual
        out["nominal_update_bytes"] = nominal_bytes(miner.layout, spec["bits"])
        if sizes:
            out["bytes_per_block"] = {key: float(np.mean([s[key] for s in sizes])) for key in sizes[0]}
            out["last_block_bit_exact_vs_numpy"] = exact
    return out


def write_markdown(res: dict, path: Path) -> None:
    fp = res["final_eval_loss"].get("fp32")
    lines = [f"# Quantization benchmark: {res['config']} on {res['backend']} ({res['device']})", "",
             f"Command: `{res['command']}`", "",
             f"{res['steps']} steps x {res['batch_size']} x {res['seq_len']} tokens "
             f"({res['tokens']:,} tokens per run), blocks of {res['block_steps']} steps, "
             f"eval on {res['eval_windows']} fixed windows.", "",
             "| variant | final eval loss | vs fp32 | update bytes/block | wall s |",
             "|---|---|---|---|---|"]
    for name, v in res["runs"].items():
        rel = f"{100 * (v['final_eval_loss'] / fp - 1):+.2f}%" if fp else "-"
        nb = v.get("nominal_update_bytes", res["bytes"]["float32_model"])
        lines.append(f"| {name} | {v['final_eval_loss']:.4f} | {rel} | {nb:,} | {v['wall_s']:.0f} |")
    b = res["bytes"]
    if "update_4bit" in b:
        m = b["float32_model"]
        lines += ["", "Bytes per block (4-bit run, mean over blocks):", "",
                  "| form | bytes | vs float32 model |", "|---|---|---|"]
        for key in ("float32_model", "update_4bit", "zlib", "lzma", "sparse"):
            lines.append(f"| {key} | {b[key]:,.0f} | {b[key] / m:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import jax

    from pogo_jax.commit import block
    from pogo_jax.config import load_config
    from pogo_jax.plotting import plot_curves
    from pogo_jax.spec.layout import Layout
    from pogo_jax.train import data
    from pogo_jax.train.model import param_count, param_shapes

    base = load_config(args.config, args.overrides)
    steps = args.steps if args.steps is not None else base.train.steps
    k = args.block_steps if args.block_steps is not None else base.miner.block_steps
    if steps <= 0 or k <= 0 or steps % k:
        print(f"--steps ({steps}) must be a positive multiple of --block-steps ({k})", file=sys.stderr)
        return 2
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        print(f"unknown variant {unknown[0]} (known: {', '.join(VARIANTS)})", file=sys.stderr)
        return 2
    cfg = block.override_config(base, train={"steps": steps}, miner={"block_steps": k})
    backend = jax.default_backend()
    name = args.name or f"{base.name}_{backend}"
    ds = data.load_dataset(cfg.data)
    layout = Layout.from_shapes(param_shapes(cfg.model), cfg.chain.leaf_size, cfg.chain.group_size)
    res = {
        "config": base.name, "backend": backend, "device": jax.devices()[0].device_kind,
        "n_devices": jax.device_count(), "jax_version": jax.__version__, "python": platform.python_version(),
        "command": "PYTHONPATH=. python " + " ".join(["scripts/bench_quant.py", *sys.argv[1:]]),
        "steps": steps, "config_steps": base.train.steps, "steps_reduced": steps < base.train.steps,
        "block_steps": k, "batch_size": cfg.train.batch_size, "seq_len": cfg.model.seq_len,
        "tokens": steps * cfg.train.batch_size * cfg.model.seq_len, "eval_windows": args.eval_windows,
        "params": param_count(cfg.model), "n_leaves": layout.n_leaves, "data_source": ds.source,
        "runs": {},
    }
    for v in names:
        print(f"[{v}]", flush=True)
        res["runs"][v] = run_variant(v, cfg, ds, steps // k, k, args.eval_windows)
    res["final_eval_loss"] = {v: r["final_eval_loss"] for v, r in res["runs"].items()}
    res["bytes"] = {"float32_model": layout.n_values * 4,
                    "float32_leaves": layout.n_leaves * layout.leaf_size * 4}
    if "4bit" in res["runs"] and "bytes_per_block" in res["runs"]["4bit"]:
        res["bytes"].update(res["runs"]["4bit"]["bytes_per_block"])
    if "fp32" in res["final_eval_loss"] and "4bit" in res["final_eval_loss"]:
        rel = res["final_eval_loss"]["4bit"] / res["final_eval_loss"]["fp32"] - 1
        res["4bit_vs_fp32_rel"] = rel
        res["target_within_2pct"] = bool(rel <= 0.02)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"quant_{name}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    write_markdown(res, stem.with_suffix(".md"))
    plot_curves({v: r["eval_curve"] for v, r in res["runs"].items()}, stem.with_suffix(".png"),
                f"{base.name}: eval loss, float32 vs PoGO quantized blocks ({backend})", "step",
                "eval loss (nats/byte)")
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
