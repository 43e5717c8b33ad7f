"""Show the chain: blocks and outcomes, participants with stakes and slashings, recent events."""

from __future__ import annotations

import argparse
import json

from pogo_jax.cmd._common import add_chain_arg, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_chain_arg(p)
    p.add_argument("--json", action="store_true", help="print everything as one JSON object")


def run(args: argparse.Namespace) -> int:
    _, ledger = open_chain(args.chain)
    blocks = [{k: v for k, v in b.items() if k != "header_bytes"} for b in ledger.blocks()]
    for b in blocks:
        b["attestations"] = [{k: a[k] for k in ("verifier_key", "verdict", "tier", "reason") if k in a}
                             for a in ledger.attestations(b["header_hash"])]
    parts = ledger.participants()
    if args.json:
        print(json.dumps({"tip": ledger.tip(), "blocks": blocks, "participants": parts,
                          "events": ledger.events()}, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    tip = ledger.tip()
    con.print(f"chain '{ledger.meta()['chain_id']}': confirmed tip at height {tip['height']} "
              f"(root {tip['root'][:16]}...)")
    t = Table("height", "status", "header", "root_next", "attestations", "reason", title="blocks")
    for b in blocks:
        att = ", ".join(f"{a['verdict']}/{a['tier']}" for a in b["attestations"])
        t.add_row(str(b["height"]), b["status"], b["header_hash"][:12], b["root_next"][:12], att, b["reason"])
    con.print(t)
    t = Table("name", "role", "key", "stake", "slashed", title="participants")
    for p in parts:
        t.add_row(p["name"], p["role"], p["key"][:16], str(p["stake"]), "yes" if p["slashed"] else "")
    con.print(t)
    return 0
