"""Run a local PoGO chain end to end: mine, beacon, prove, verify, attest and finalize N blocks.

One miner and several verifiers (the last --light-verifiers of them check only the light tier).
Writes DIR/ledger.sqlite, DIR/bundles/, DIR/report/{report.json,blocks.md,loss.png}. Rerunning
with the same --out finishes any pending block and continues from the last confirmed one.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="small", help="config name or path (default: small)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. pogo.block_steps=50 (repeatable)")
    p.add_argument("--blocks", type=int, default=3, help="blocks to run in this invocation (default 3)")
    p.add_argument("--verifiers", type=int, default=None, help="number of verifiers (default pogo.n_verifiers)")
    p.add_argument("--light-verifiers", type=int, default=1,
                   help="how many of the verifiers run only the light tier (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="chain directory (default runs/demo)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.config import load_config
    from pogo_jax.errors import UserError

    overrides = list(args.overrides)
    if args.verifiers is not None:
        overrides.append(f"pogo.n_verifiers={args.verifiers}")
    cfg = load_config(args.config, overrides)
    if not 0 <= args.light_verifiers <= cfg.pogo.n_verifiers:
        raise UserError("--light-verifiers must be between 0 and the number of verifiers")
    from pogo_jax.demo import run_demo

    records = run_demo(cfg, args.out, args.blocks, args.light_verifiers)
    return 0 if all(r["outcome"] == "confirmed" for r in records[-args.blocks:]) else 1
