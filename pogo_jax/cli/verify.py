"""Verify a proof bundle, light tier: numpy + pycryptodome, never jax.

Offline (a file alone) the checks that need the chain (tip, beacon, windows, dataset) are skipped and
listed, and the challenge is checked for the number of leaves the bundle opens unless ``--k`` says how many
the chain demands (a bundle does not carry its chain's ``k_leaves``); with ``--node URL`` the context, k
included, comes from the chain's signed log, as an attesting verifier's does. Exit codes: 0 accept, 1
reject (one line with the reason code), 2 unusable input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from pogo_jax.errors import UserError
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.light import verify_light


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="proof bundle file (.pogo)")
    p.add_argument("--node", default=None, metavar="URL", help="take the context from this chain node")
    p.add_argument("--k", type=int, default=None,
                   help="offline: the leaves the chain demands (its chain.k_leaves; default: as many as the bundle "
                        "opens, which the check then cannot hold against the chain)")
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON line")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.bundle.is_dir():
        raise UserError(f"{args.bundle} is a directory; give a bundle file (.pogo), e.g. one from pogo fetch bundle")
    if not args.bundle.is_file():
        raise UserError(f"bundle {args.bundle} does not exist")
    if args.k is not None and args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    if args.bundle.stat().st_size > (1 << 31):
        raise UserError(f"bundle {args.bundle} is larger than any valid bundle")
    bundle = Bundle.from_bytes(args.bundle.read_bytes())
    ctx = None
    if args.node:
        from pogo_jax.chain.client import NodeClient
        from pogo_jax.chain.view import ChainView

        ctx = ChainView(NodeClient(args.node)).context(bundle.header_hash)
    k = args.k
    if ctx is None and k is None:  # offline and not told: the bundle's own count, and the list says so
        k = len(bundle.openings)
    res = verify_light(bundle, ctx, k)
    if ctx is None and args.k is None:
        res = dataclasses.replace(res, unchecked=(*res.unchecked, "k"))
    dt = time.perf_counter() - t0
    h = bundle.header
    if args.json:
        print(json.dumps({"accept": res.accept, "tier": "light", "reason": res.reason, "detail": res.detail,
                          "height": h.height, "round": h.round, "header_hash": bundle.header_hash.hex(),
                          "unchecked": list(res.unchecked), "fraud_proof": res.fraud_proof, "seconds": round(dt, 4),
                          "k": None if ctx is not None else k,
                          "leaves": len(bundle.openings)}))
    elif res.accept:
        note = f"; not checked offline: {', '.join(res.unchecked)}" if res.unchecked else ""
        if "k" in res.unchecked:
            note += f" (k = the bundle's {k} openings; --k K demands the chain's k_leaves)"
        print(f"ACCEPT block {h.height} round {h.round} (light): {res.detail} [{dt * 1e3:.1f} ms]{note}")
    if not res.accept:
        hint = ""
        if res.reason == "WRONG_CHALLENGE" and ctx is None and args.k is not None:
            hint = f" (offline with --k {args.k}: is it the chain's k_leaves? the bundle opens {len(bundle.openings)})"
        print(f"REJECT {res.reason}: {res.detail}{hint}", file=sys.stderr)
        return 1
    return 0
