"""The demo's report, built from the demo's own replay of the signed log: one record per round with its
sealed shard, candidates, the chain's measurement (median improvement and its lower confidence bound),
the votes (committed, revealed, outliers, light) and who was paid; ``report.json``, ``blocks.md``,
``loss.png``. Losses are nats per token (tokens are bytes on the demo's dataset)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pogo_jax.chain.explorer import votes_summary
from pogo_jax.chain.state import ChainState
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.plotting import plot_block_losses
from pogo_jax.spec.units import shard_bits_per_byte


def build(st: ChainState, out: Path, seconds: float) -> dict:
    names = {k: p.name for k, p in st.participants.items()}
    rounds = []
    for r in st.history:
        cands = []
        for c in r.candidates.values():
            votes = [v.body for v in c.votes.values()]
            m, vs = c.measurement, votes_summary(c)
            cands.append({
                "header_hash": c.hash.hex(), "miner": names.get(c.miner, c.miner.hex()[:12]), "status": c.status,
                "reason": c.reason, "reward": c.reward,
                "improvement": None if c.improvement is None else float(Fraction(c.improvement)),
                "lower_bound": None if m is None else m.bound.lcb,
                "loss_prev": None if m is None else float(m.prev_mean),
                "loss_next": None if m is None else float(m.next_mean),
                "bits_per_byte": None if m is None or r.shard is None else
                [shard_bits_per_byte(r.data.manifest, r.shard, float(x)) for x in (m.prev_mean, m.next_mean)],
                "reported": None if c.reported is None else list(c.reported),
                "root_next": c.header.body.root_next.hex(), "steps": c.header.body.train.get("steps"),
                "votes": {k: [names.get(x, x.hex()[:12]) for x in v] for k, v in vs.items()},
                "verdicts": [{"verifier": names.get(a.verifier_key, ""), "verdict": a.verdict, "tier": a.tier,
                              "reason": a.reason, "windows": None if a.losses_prev is None else len(a.losses_prev)}
                             for a in votes]})
        rounds.append({"height": r.height, "round": r.round, "shard": r.shard, "sealed": r.sealed,
                       "confirmed": r.winner is not None,
                       "seconds": round((r.finalized_at - r.opened_at) / 1000, 1), "candidates": cands})
    return {"chain_id": st.genesis.chain_id, "name": st.genesis.name, "tip_height": st.tip_height,
            "wall_seconds": round(seconds, 1), "rounds": rounds,
            "stakes": {p.name: st.stakes[k] for k, p in st.participants.items()},
            "paid": {p.name: sum(e.delta for e in st.events if e.key == k and e.delta > 0)
                     for k, p in st.participants.items()}}


def _votes_cell(c: dict) -> str:
    """c/r/o/u/l: committed, revealed, outlier, unrevealed, light (names in report.json)."""
    v = c["votes"]
    return f"{len(v['committed'])}c {len(v['revealed'])}r {len(v['outliers'])}o {len(v['unrevealed'])}u " \
           f"{len(v['light'])}l, {len(v['paid'])} paid"


def write(d: Path, rep: dict, adversary: dict | None) -> None:
    atomic_write_bytes(d / "report.json", json.dumps(rep, indent=2).encode())
    lines = ["Losses in nats per token (a token is a byte on a byte dataset; bits per byte of the shard's text "
             "beside them). improvement: mean over the round's windows of the per-window median "
             "L(prev) - L(next) of the counted full votes; bound: its one-sided lower confidence bound (valid when it "
             "reaches delta). votes: c committed, r revealed, o outliers (slashed), u unrevealed (fee lost), l light.",
             "", "| height | round | shard | candidate | miner | status | verified loss | bits/byte | improvement "
             "| bound | reward | votes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["rounds"]:
        for c in r["candidates"] or [None]:
            if c is None:
                lines.append(f"| {r['height']} | {r['round']} | {r['shard']} | | | no candidates | | | | | | |")
                continue
            loss = "" if c["loss_prev"] is None else f"{c['loss_prev']:.4f} -> {c['loss_next']:.4f}"
            imp = "" if c["improvement"] is None else f"{c['improvement']:.4f}"
            lcb = "" if c["lower_bound"] is None else f"{c['lower_bound']:.4f}"
            bpb = "" if not c.get("bits_per_byte") else "{:.4f} -> {:.4f}".format(*c["bits_per_byte"])
            lines.append(f"| {r['height']} | {r['round']} | {r['shard']} | {c['header_hash'][:12]} | {c['miner']} | "
                         f"{c['status']} | {loss} | {bpb} | {imp} | {lcb} | {c['reward']} | {_votes_cell(c)} |")
    atomic_write_bytes(d / "blocks.md", ("\n".join(lines) + "\n").encode())
    won = [dict(height=r["height"], loss_prev=c["loss_prev"], loss_next=c["loss_next"], outcome="confirmed")
           for r in rep["rounds"] for c in r["candidates"] if c["status"] == "confirmed" and c["loss_prev"] is not None]
    if won:
        plot_block_losses(won, d / "loss.png")
    if adversary is not None:
        atomic_write_bytes(d / f"adversary-{adversary['adversary']}.json", json.dumps(adversary, indent=2).encode())


def show(console: Console, rep: dict, adversary: dict | None) -> None:
    t = Table(title=f"chain '{rep['name']}' {rep['chain_id'][:12]}: confirmed height {rep['tip_height']} "
                    f"({rep['wall_seconds']:.0f} s)", title_justify="left",
              caption="gain: median improvement (nats/token), bound: its lower confidence bound; votes: c committed, "
                      "r revealed, o outliers, l light, p verifiers paid", caption_justify="left")
    for col in ("round", "miner", "status", "loss", "gain", "bound", "reward", "votes"):
        t.add_column(col, overflow="fold")
    for r in rep["rounds"][-12:]:
        for c in r["candidates"] or [None]:
            if c is None:
                t.add_row(f"{r['height']}.{r['round']}", "", "no candidates", "", "", "", "", "")
                continue
            loss = "" if c["loss_prev"] is None else f"{c['loss_prev']:.3f}->{c['loss_next']:.3f}"
            imp = "" if c["improvement"] is None else f"{c['improvement']:.3f}"
            lcb = "" if c["lower_bound"] is None else f"{c['lower_bound']:.3f}"
            v = c["votes"]
            t.add_row(f"{r['height']}.{r['round']}", c["miner"], c["status"], loss, imp, lcb, str(c["reward"]),
                      f"{len(v['committed'])}c {len(v['revealed'])}r {len(v['outliers'])}o {len(v['light'])}l "
                      f"{len(v['paid'])}p")
    console.print(t)
    if adversary is not None:
        a = Table(title=f"adversary '{adversary['adversary']}'", title_justify="left", show_header=False)
        a.add_column("field", style="bold")
        a.add_column("value")
        a.add_row("outcome", adversary["outcome"])
        a.add_row("attacker paid", str(adversary["attacker_paid"]).lower())
        a.add_row("attacker stake", " -> ".join(map(str, adversary["attacker_stake"])))
        a.add_row("honest miner stake", " -> ".join(map(str, adversary["honest_stake"])))
        if adversary.get("partner_stake"):
            a.add_row("partner stake", " -> ".join(map(str, adversary["partner_stake"])))
        a.add_row("rule", adversary.get("expected", {}).get("rule", ""))
        console.print(a)
