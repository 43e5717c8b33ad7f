"""Measure this backend: training with and without PoGO, hashing, commit, proofs, verification.

Writes OUT/bench_<backend>.json, OUT being runs/bench unless --out says otherwise (the committed
results are written only by an explicit --out benchmarks/results): device kind as jax reports it, jax
version, the command, training tokens/s and MFU with PoGO disabled (plain train step) and enabled (a
real miner block: train + quantize + commit + prove), the PoGO overhead per block as a fraction of its
training time, device leaf-hash GB/s, commit time, proof bytes for k leaves, light and full
verification time, and the Merkle roots of a fixed input so that `pogo report` can compare backends.
The default config is `small` on CPU and `gpt2-124m` elsewhere; --quick shrinks everything (a smoke
run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.bench.common import command_line, write_json
from pogo_jax.bench.suite import default_config, run_bench
from pogo_jax.config import load_config
from pogo_jax.errors import UserError

DEFAULT_OUT = Path("runs/bench")  # a run directory (ignored by git): a run never overwrites committed results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="config name or TOML path (default: small on CPU, "
                        "gpt2-124m on GPU/TPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable), e.g. --set model.n_layers=4")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 5-step blocks (smoke test)")
    parser.add_argument("--k", type=int, default=64, help="challenged leaves per block (default 64)")
    parser.add_argument("--block-steps", type=int, default=None,
                        help="steps per measured block (default: the config's miner.block_steps; 5 with --quick)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"directory for bench_<backend>.json (default {DEFAULT_OUT}; the committed results: "
                        "--out benchmarks/results)")


def run(args: argparse.Namespace) -> int:
    import jax

    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    if args.block_steps is not None and args.block_steps < 1:
        raise UserError(f"--block-steps must be at least 1, got {args.block_steps}")
    out = args.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, expected a directory")
    cfg = load_config(args.config or default_config(jax.default_backend()), args.overrides)
    res = run_bench(cfg, command_line("pogo bench"), quick=args.quick, k=args.k, block_steps=args.block_steps)
    path = write_json(out / f"bench_{res['backend']}.json", res)
    tr, blk = res["train"], res["block"]
    print(f"{cfg.name} on {res['n_devices']}x {res['device_kind']}: "
          f"{tr['pogo_disabled']['tokens_per_s']:,.0f} tokens/s without PoGO, "
          f"{tr['pogo_enabled']['tokens_per_s']:,.0f} with (overhead {blk['pogo_overhead_fraction']:.2%} of "
          f"{blk['block_steps']}-step block training); light verify {res['light_verify_s'] * 1e3:.1f} ms "
          f"(k={args.k}), full verify {blk['full_verify_fraction_of_mining']:.2%} of mining; "
          f"roots match host reference: {res['roots_match_host_reference']} -> {path}")
    return 0
