"""The demo's report, built from the demo's own replay of the signed log: one record per round with its
candidates, verdicts, verified improvement and reward; ``report.json``, ``blocks.md``, ``loss.png``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from pogo_jax.chain.state import ChainState
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.plotting import plot_block_losses


def build(st: ChainState, out: Path, seconds: float) -> dict:
    names = {k: p.name for k, p in st.participants.items()}
    rounds = []
    for r in st.history:
        cands = []
        for c in r.candidates.values():
            votes = [v.body for v in c.votes.values()]
            acc = [a for a in votes if a.tier == "full" and a.verdict == "accept"]
            cands.append({
                "header_hash": c.hash.hex(), "miner": names.get(c.miner, c.miner.hex()[:12]), "status": c.status,
                "reason": c.reason, "reward": c.reward,
                "improvement": None if c.improvement is None else float(Fraction(c.improvement)),
                "loss_prev": median(a.loss_prev for a in acc) if acc else None,
                "loss_next": median(a.loss_next for a in acc) if acc else None,
                "root_next": c.header.body.root_next.hex(), "steps": c.header.body.train.get("steps"),
                "verdicts": [{"verifier": names.get(a.verifier_key, ""), "verdict": a.verdict, "tier": a.tier,
                              "reason": a.reason, "loss_prev": a.loss_prev, "loss_next": a.loss_next} for a in votes]})
        rounds.append({"height": r.height, "round": r.round, "confirmed": r.winner is not None,
                       "seconds": round((r.finalized_at - r.opened_at) / 1000, 1), "candidates": cands})
    return {"chain_id": st.genesis.chain_id, "tip_height": st.tip_height, "wall_seconds": round(seconds, 1),
            "rounds": rounds, "stakes": {p.name: st.stakes[k] for k, p in st.participants.items()}}


def write(d: Path, rep: dict, adversary: dict | None) -> None:
    atomic_write_bytes(d / "report.json", json.dumps(rep, indent=2).encode())
    lines = ["| height | round | candidate | miner | status | verified loss | improvement | reward | verdicts |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rep["rounds"]:
        for c in r["candidates"] or [None]:
            if c is None:
                lines.append(f"| {r['height']} | {r['round']} | | | empty round | | | | |")
                continue
            loss = "" if c["loss_prev"] is None else f"{c['loss_prev']:.4f} -> {c['loss_next']:.4f}"
            imp = "" if c["improvement"] is None else f"{c['improvement']:.4f}"
            v = ", ".join(f"{x['verdict']}/{x['tier']}" for x in c["verdicts"])
            lines.append(f"| {r['height']} | {r['round']} | {c['header_hash'][:12]} | {c['miner']} | {c['status']} | "
                         f"{loss} | {imp} | {c['reward']} | {v} |")
    atomic_write_bytes(d / "blocks.md", ("\n".join(lines) + "\n").encode())
    won = [dict(height=r["height"], loss_prev=c["loss_prev"], loss_next=c["loss_next"], outcome="confirmed")
           for r in rep["rounds"] for c in r["candidates"] if c["status"] == "confirmed" and c["loss_prev"] is not None]
    if won:
        plot_block_losses(won, d / "loss.png")
    if adversary is not None:
        atomic_write_bytes(d / f"adversary-{adversary['adversary']}.json", json.dumps(adversary, indent=2).encode())


def show(console: Console, rep: dict, adversary: dict | None) -> None:
    t = Table(title=f"chain '{rep['chain_id']}': confirmed height {rep['tip_height']} ({rep['wall_seconds']:.0f} s)",
              title_justify="left")
    for col in ("round", "miner", "status", "verified loss", "gain", "reward", "verdicts"):
        t.add_column(col)
    for r in rep["rounds"][-12:]:
        for c in r["candidates"] or [None]:
            if c is None:
                t.add_row(f"{r['height']}.{r['round']}", "", "empty", "", "", "", "")
                continue
            loss = "" if c["loss_prev"] is None else f"{c['loss_prev']:.3f}->{c['loss_next']:.3f}"
            imp = "" if c["improvement"] is None else f"{c['improvement']:.3f}"
            v = " ".join(f"{x['verdict'][0]}/{x['tier'][0]}" for x in c["verdicts"])
            t.add_row(f"{r['height']}.{r['round']}", c["miner"], c["status"], loss, imp, str(c["reward"]), v)
    console.print(t)
    if adversary is not None:
        a = Table(title=f"adversary '{adversary['adversary']}'", title_justify="left", show_header=False)
        a.add_column("field", style="bold")
        a.add_column("value")
        a.add_row("outcome", adversary["outcome"])
        a.add_row("attacker paid", str(adversary["attacker_paid"]).lower())
        a.add_row("attacker stake", " -> ".join(map(str, adversary["attacker_stake"])))
        a.add_row("honest miner stake", " -> ".join(map(str, adversary["honest_stake"])))
        a.add_row("rule", adversary.get("expected", {}).get("rule", ""))
        console.print(a)
