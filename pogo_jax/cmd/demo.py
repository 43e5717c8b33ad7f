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
    p.add_argument("--blocks", type=int, default=None,
                   help="honest blocks to run in this invocation (default 3; 0 with --adversary)")
    p.add_argument("--verifiers", type=int, default=None, help="number of verifiers (default pogo.n_verifiers)")
    p.add_argument("--light-verifiers", type=int, default=1,
                   help="how many of the verifiers run only the light tier (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="chain directory (default runs/demo)")
    p.add_argument("--adversary", default=None, metavar="NAME",
                   help="after the honest blocks, one block by a cheating miner: tamper, inconsistent-update, "
                        "lazy, fake-loss, loss-up, replay, swap, wrong-layout, wrong-challenge (docs/adversaries.md)")
    p.add_argument("--fraction", type=float, default=None,
                   help="tamper / inconsistent-update: fraction of leaves made inconsistent (default 0.01 / 1.0)")
    p.add_argument("--mode", default=None,
                   help="variant: lazy zero|random, replay update|header, swap leaves|indices, "
                        "wrong-layout layout|data")


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

    if args.adversary is None:
        if args.fraction is not None or args.mode is not None:
            raise UserError("--fraction and --mode go with --adversary NAME")
        blocks = 3 if args.blocks is None else args.blocks
        records = run_demo(cfg, args.out, blocks, args.light_verifiers)
        return 0 if all(r["outcome"] == "confirmed" for r in records[-blocks:]) else 1
    from pogo_jax.adversary import make_adversary

    opts = {k: v for k, v in (("fraction", args.fraction), ("mode", args.mode)) if v is not None}
    try:
        adv = make_adversary(args.adversary, **opts)
    except (TypeError, ValueError) as e:
        raise UserError(f"--adversary {args.adversary}: {e}") from None
    blocks = args.blocks or 0
    if args.adversary == "replay":
        blocks = max(blocks, 1)  # something to replay
    records = run_demo(cfg, args.out, blocks, args.light_verifiers, adversary=adv)
    return 0 if records[-1]["outcome"] == "slashed" else 1
