"""Run a local PoGO chain on loopback and mine, verify, attest and finalize a few blocks.

A beacon and a node run as child processes, a miner and verifiers as clients in their own directories,
on the embedded dataset.

With ``--adversary NAME`` one cheating miner (or verifier) joins after the honest block(s) and the
report says what it got: ``DIR/report/adversary-NAME.json``. ``--out DIR`` keeps the chain, so a second
run continues it. Ctrl-C stops every process cleanly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogo_jax.cli._common import add_config_args, load_cfg
from pogo_jax.demo.adversary import ALL
from pogo_jax.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo directory (default runs/demo)")
    add_config_args(p, "small")
    p.add_argument("--blocks", type=int, default=None,
                   help="honest blocks to confirm (default 3; with --adversary 1 on a new chain, else 0)")
    p.add_argument("--verifiers", type=int, default=None, help="verifiers (default demo.verifiers, 3)")
    p.add_argument("--full", type=int, default=None, help="of them full-tier (default demo.full, 2)")
    p.add_argument("--adversary", default=None, metavar="NAME",
                   help=f"one cheat after the honest block(s): {', '.join(ALL)} (docs/adversaries.md)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for any one stage")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.demo.run import run_demo

    cfg = load_cfg(args, "small")
    if args.blocks is not None and args.blocks < 0:
        raise UserError("--blocks must be >= 0")
    verifiers = cfg.demo.verifiers if args.verifiers is None else args.verifiers
    full = min(cfg.demo.full, verifiers) if args.full is None else args.full
    blocks = args.blocks if args.blocks is not None or args.adversary else cfg.demo.blocks
    out = run_demo(cfg, args.config or "small", args.set, args.out, blocks, verifiers, full, args.adversary,
                   timeout=args.timeout)
    if args.adversary:  # exit 1 when a cheat was paid (eval-trainer's training is allowed in v3: not a cheat)
        adv = out["adversary"]
        return 1 if adv["attacker_paid"] and not adv["expected"]["fair"] else 0
    return 0
