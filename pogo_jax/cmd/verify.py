"""Verify a proof bundle: light tier by default (numpy + pycryptodome, never jax); --full rebuilds.

Exit codes: 0 accept, 1 reject (one line with the reason code), 2 unusable input.
Without --chain the beacon and chain rules come from the bundle and the flags (the beacon is then
not authenticated); with --chain they come from the ledger, as a real verifier does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pogo_jax.cmd._common import add_chain_arg, open_chain
from pogo_jax.config import PogoConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="proof bundle file (.pogo)")
    add_chain_arg(p, required=False)
    p.add_argument("--full", action="store_true",
                   help="also rebuild theta_next from theta_prev + the 4-bit update and check the losses (jax, CPU)")
    p.add_argument("--k", type=int, default=PogoConfig.k_leaves, help="leaves to demand when no --chain")
    p.add_argument("--m", type=int, default=None,
                   help="loss windows to demand when no --chain (default: as many as the bundle names)")
    p.add_argument("--delta", type=float, default=PogoConfig.delta)
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON line")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.roles.chainops import light_verify, read_bundle

    t0 = time.perf_counter()
    bundle = read_bundle(args.bundle)
    ledger = None
    chain = None
    if args.chain is not None:
        chain, ledger = open_chain(args.chain)
    res = light_verify(bundle, ledger, args.k, args.m, args.delta)
    tier, reason, detail = "light", res.reason, res.detail
    losses = None
    if res.accept and args.full:
        if chain is None:
            from pogo_jax.errors import UserError

            raise UserError("--full needs --chain DIR (theta_prev and the update come from the chain)")
        from pogo_jax.fullverify import verify_full

        full = verify_full(chain, ledger, bundle)
        tier, reason, detail = "full", full.reason, full.detail
        losses = (full.loss_prev, full.loss_next)
        accept = full.accept
    else:
        accept = res.accept
    dt = time.perf_counter() - t0
    h = bundle.header
    if args.json:
        print(json.dumps({"accept": accept, "tier": tier, "reason": reason, "detail": detail,
                          "height": h.height, "header_hash": h.hash().hex(), "seconds": round(dt, 4),
                          "losses": losses, "leaves": len(bundle.openings)}))
    elif accept:
        print(f"ACCEPT block {h.height} ({tier}): {detail} [{dt * 1e3:.1f} ms]")
    if not accept:
        print(f"REJECT {reason}: {detail}", file=sys.stderr)
        return 1
    return 0
