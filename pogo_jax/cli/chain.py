"""Show the chain as its signed log implies it: confirmed blocks, rounds and their windows, candidates
and verdicts, stakes. The log is replayed and checked here; nothing is taken on the node's word."""

from __future__ import annotations

import argparse
import json

from pogo_jax.chain.view import ChainView
from pogo_jax.cli._common import add_node_arg, client


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_node_arg(p)
    p.add_argument("--json", action="store_true", help="print everything as one JSON object")


def summary(st) -> dict:  # noqa: ANN001 - ChainState
    rules = st.rules
    r = st.round
    names = {k: p.name for k, p in st.participants.items()}

    def cand(c) -> dict:  # noqa: ANN001
        return {"header_hash": c.hash.hex(), "miner": names.get(c.miner, c.miner.hex()[:12]), "status": c.status,
                "reason": c.reason, "reward": c.reward,
                "improvement": None if c.improvement is None else float(c.improvement),
                "bundle": None if c.bundle_sha256 is None else c.bundle_sha256.hex(),
                "votes": {names.get(k, k.hex()[:12]): f"{v.body.verdict}/{v.body.tier}/{v.body.reason}"
                          for k, v in c.votes.items()}}

    def rnd(x) -> dict:  # noqa: ANN001
        return {"height": x.height, "round": x.round, "phase": x.phase, "opened_at": x.opened_at,
                "submit_closes_at": None if x.first_at is None else x.first_at + rules.submit_window_ms,
                "beacon": None if x.beacon is None else x.beacon.hex(), "winner": None if x.winner is None
                else x.winner.hex(), "candidates": [cand(c) for c in x.candidates.values()]}

    return {"chain_id": st.genesis.chain_id, "tip_height": st.tip_height, "entries": st.seq,
            "blocks": [{"height": b.height, "round": b.round, "header_hash": b.hash.hex(),
                        "miner": names.get(b.header.body.miner_key, ""), "improvement": float(b.improvement),
                        "reward": b.reward, "root_next": b.header.body.root_next.hex()} for b in st.blocks],
            "rounds": [rnd(x) for x in [*st.history, r]],
            "windows_ms": {"submit": rules.submit_window_ms, "prove": rules.prove_window_ms,
                           "attest": rules.attest_window_ms},
            "stakes": [{"name": p.name, "role": p.role, "key": k.hex(), "stake": st.stakes[k]}
                       for k, p in st.participants.items()]}


def run(args: argparse.Namespace) -> int:
    st = ChainView(client(args.node)).state
    s = summary(st)
    if args.json:
        print(json.dumps(s))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    w = s["windows_ms"]
    con.print(f"chain '{s['chain_id']}': confirmed height {s['tip_height']}, {s['entries']} log entries; windows "
              f"submit {w['submit'] / 1000:g} s, prove {w['prove'] / 1000:g} s, attest {w['attest'] / 1000:g} s")
    t = Table("round", "phase", "candidate", "miner", "status", "reward", "verdicts", title="rounds")
    for x in s["rounds"]:
        for c in x["candidates"] or [None]:
            t.add_row(f"({x['height']}, {x['round']})", x["phase"], c["header_hash"][:12] if c else "",
                      c["miner"] if c else "", f"{c['status']} {c['reason']}" if c else "",
                      str(c["reward"]) if c else "", ", ".join(f"{k}: {v}" for k, v in c["votes"].items()) if c else "")
    con.print(t)
    t = Table("name", "role", "key", "stake", title="stakes")
    for p in s["stakes"]:
        t.add_row(p["name"], p["role"], p["key"][:16], str(p["stake"]))
    con.print(t)
    return 0
