"""Show the chain as its signed log implies it: blocks, rounds, candidates, votes and stakes.

Confirmed blocks, rounds with their sealed shards and windows, candidates with the chain's measurement
(improvement, lower bound) and votes, stakes. The log is replayed and checked here; nothing is taken on
the node's word."""

from __future__ import annotations

import argparse
import json

from pogo_jax.chain.explorer import votes_summary
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
        m = c.measurement
        return {"header_hash": c.hash.hex(), "miner": names.get(c.miner, c.miner.hex()[:12]), "status": c.status,
                "reason": c.reason, "reward": c.reward,
                "improvement": None if c.improvement is None else float(c.improvement),
                "lower_bound": None if m is None else m.bound.lcb,
                "loss": None if m is None else [float(m.prev_mean), float(m.next_mean)],
                "bundle": None if c.bundle_sha256 is None else c.bundle_sha256.hex(),
                "votes": {names.get(k, k.hex()[:12]): f"{v.body.verdict}/{v.body.tier}/{v.body.reason}"
                          for k, v in c.votes.items()},
                "vote_summary": {k: [names.get(x, x.hex()[:12]) for x in v] for k, v in votes_summary(c).items()}}

    def rnd(x) -> dict:  # noqa: ANN001
        return {"height": x.height, "round": x.round, "phase": x.phase, "opened_at": x.opened_at, "shard": x.shard,
                "sealed": x.sealed, "submit_closes_at": None if x.first_at is None else x.first_at
                + rules.submit_window_ms, "beacon": None if x.beacon is None else x.beacon.hex(),
                "winner": None if x.winner is None else x.winner.hex(),
                "candidates": [cand(c) for c in x.candidates.values()]}

    sealed = r.data.manifest.get("sealed", {}).get("shards", [])
    return {"chain_id": st.genesis.chain_id, "name": st.genesis.name, "tip_height": st.tip_height, "entries": st.seq,
            "shards": {"total": len(sealed), "used": st.shards_used.get(r.data.manifest_hash, 0)},
            "budget_left": st.budget_left,
            "blocks": [{"height": b.height, "round": b.round, "header_hash": b.hash.hex(),
                        "miner": names.get(b.header.body.miner_key, ""), "improvement": float(b.improvement),
                        "reward": b.reward, "root_next": b.header.body.root_next.hex()} for b in st.blocks],
            "rounds": [rnd(x) for x in [*st.history, r]],
            "windows_ms": {"submit": rules.submit_window_ms, "prove": rules.prove_window_ms,
                           "commit": rules.attest_window_ms, "reveal": rules.reveal_window_ms},
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
    w, sh = s["windows_ms"], s["shards"]
    con.print(f"chain '{s['name']}' ({s['chain_id'][:16]}...): confirmed height {s['tip_height']}, {s['entries']} log "
              f"entries; {sh['used']} of {sh['total']} sealed evaluation shards used"
              + (" (none left: no round opens until a governance epoch adds some)" if sh["used"] >= sh["total"] else "")
              + f"; windows submit {w['submit'] / 1000:g} s, prove {w['prove'] / 1000:g} s, commit "
                f"{w['commit'] / 1000:g} s, reveal {w['reveal'] / 1000:g} s")
    t = Table("height", "miner", "gain", "reward", title="blocks (gain: verified improvement, nats/token)")
    for b in s["blocks"]:
        t.add_row(str(b["height"]), b["miner"], f"{b['improvement']:.4f}", str(b["reward"]))
    con.print(t)
    t = Table("round", "shard", "candidate", "miner", "status", "gain", "bound", "reward", "votes",
              title="rounds (bound: lower confidence bound of the gain; votes: committed/revealed/outliers/light)")
    for col in t.columns:
        col.overflow = "fold"
    for x in s["rounds"]:
        for c in x["candidates"] or [None]:
            if c is None:
                t.add_row(f"{x['height']}.{x['round']}", str(x["shard"]), "", "", x["phase"], "", "", "", "")
                continue
            vs = c["vote_summary"]
            t.add_row(f"{x['height']}.{x['round']}", str(x["shard"]), c["header_hash"][:8], c["miner"],
                      f"{c['status']} {c['reason']}", "" if c["improvement"] is None else f"{c['improvement']:.4f}",
                      "" if c["lower_bound"] is None else f"{c['lower_bound']:.4f}", str(c["reward"]),
                      f"{len(vs['committed'])}/{len(vs['revealed'])}/{len(vs['outliers'])}/{len(vs['light'])}")
    con.print(t)
    t = Table("name", "role", "key", "stake", title="stakes")
    for p in s["stakes"]:
        t.add_row(p["name"], p["role"], p["key"][:16], str(p["stake"]))
    con.print(t)
    return 0
