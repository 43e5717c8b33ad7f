"""Extrapolate measured costs to GPT-3 175B and Gemma 3 27B, with every assumption stated.

Reads a `pogo bench` result (--results) and prints, per model: bytes of the 32-bit model and of the
4-bit update, tree depth, bytes of a light proof for k leaves, miner time per block for --tokens
tokens at the measured MFU, commitment, quantize and prove time, light and full verification time,
the verification/training ratios and the block length a --target-loss-drop needs (from a fitted
loss-versus-tokens curve of a small config: an extrapolation, stated as such). Writes
costs_<backend>.json/.md/.png under --out (runs/costs by default; the committed ones only with an
explicit --out benchmarks/results). --scaling also measures the scaling study (commit time,
proof size, light verification versus parameter count) on this machine and plots it on log axes;
without it an existing scaling_<backend>.json in --out is plotted again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.bench import costs
from pogo_jax.bench.common import RESULTS, command_line, read_json, write_json
from pogo_jax.bench.scaling import DEFAULT_SIZES
from pogo_jax.cli.bench import DEFAULT_OUT as BENCH_OUT
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes

DEFAULT_OUT = Path("runs/costs")  # a run directory (ignored by git): a run never overwrites committed results


def _default_results() -> Path:
    """This machine's own `pogo bench` result (runs/bench) before the committed ones; GPU, TPU, then CPU."""
    for d in (BENCH_OUT, RESULTS):
        for backend in ("gpu", "tpu", "cpu"):
            if (d / f"bench_{backend}.json").is_file():
                return d / f"bench_{backend}.json"
    return RESULTS / "bench_cpu.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=None, metavar="FILE",
                        help="bench_<backend>.json (default: runs/bench/bench_gpu.json, else _tpu, else _cpu, "
                        "else the same in benchmarks/results)")
    parser.add_argument("--tokens", type=float, default=1e9, help="training tokens per block (default 1e9)")
    parser.add_argument("--k", type=int, default=64, help="challenged leaves per block (default 64)")
    parser.add_argument("--m", type=int, default=8, help="challenge loss windows (default 8)")
    parser.add_argument("--target-loss-drop", type=float, default=0.01,
                        help="loss improvement per block in nats/token for the block-length estimate (default 0.01)")
    parser.add_argument("--devices", type=int, default=1024, help="miner accelerators (default 1024)")
    parser.add_argument("--verifier-devices", type=int, default=8, help="full verifier accelerators (default 8)")
    parser.add_argument("--curve", type=Path, default=None, metavar="FILE",
                        help="loss-vs-tokens source, a bench_quant JSON "
                        "(default benchmarks/results/quant_small_cpu.json)")
    parser.add_argument("--models", default="gpt3-175b,gemma3-27b", help="comma-separated config names")
    parser.add_argument("--scaling", action="store_true", help="measure the scaling study now (a few minutes)")
    parser.add_argument("--scaling-sizes", default=None,
                        help="comma-separated parameter counts (default 1e5,1e6,1e7,1e8)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output directory (default {DEFAULT_OUT}; the committed results: "
                        "--out benchmarks/results)")


def _sizes(text: str | None) -> tuple[int, ...]:
    if text is None:
        return DEFAULT_SIZES
    try:
        sizes = tuple(int(float(x)) for x in text.split(","))
    except ValueError:
        raise UserError(f"--scaling-sizes {text!r}: expected comma-separated numbers such as 1e5,1e6") from None
    if any(s < 2000 for s in sizes):
        raise UserError("--scaling-sizes: every size must be at least 2000 parameters")
    return sizes


def run(args: argparse.Namespace) -> int:
    out = args.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, expected a directory")
    results = args.results or _default_results()
    curve = args.curve if args.curve is not None else RESULTS / "quant_small_cpu.json"
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise UserError("--models is empty")
    sizes = _sizes(args.scaling_sizes) if args.scaling else None
    result = costs.run_costs(results, args.tokens, args.k, args.target_loss_drop, args.devices,
                             args.verifier_devices, curve, models, args.m)
    result["command"] = command_line("pogo costs")
    backend = result["measured"]["backend"]
    text = costs.markdown(result)
    print(text, end="")
    write_json(out / f"costs_{backend}.json", result)
    atomic_write_bytes(out / f"costs_{backend}.md", text.encode())
    costs.plot_costs(result, out / f"costs_{backend}.png")
    written = [f"costs_{backend}.json", f"costs_{backend}.md", f"costs_{backend}.png"]

    scal = out / f"scaling_{backend}.json"
    if sizes is not None:
        import jax

        from pogo_jax.bench.common import device_info
        from pogo_jax.bench.scaling import run_scaling

        study = {**device_info(), "command": result["command"], **run_scaling(sizes, args.k)}
        scal = write_json(out / f"scaling_{jax.default_backend()}.json", study)
        written.append(scal.name)
    if scal.is_file():
        from pogo_jax.bench.scaling import plot_scaling

        study = read_json(scal, "scaling study")
        png = plot_scaling(study, scal.with_suffix(".png"))
        written.append(png.name)
        s = study["loglog_slopes"]
        print(f"\nScaling study ({scal}): log-log slopes vs parameters: commit {s['commit_s']:.2f} (linear = 1), "
              f"bundle bytes {s['bundle_bytes']:.3f} (log: ~0), light verify {s['light_verify_s']:.3f} (flat = 0)")
    print(f"\nwrote {', '.join(str(out / w) for w in written)}")
    return 0
