"""``pogo demo``: a local chain with one miner and several verifiers, N blocks end to end.

Every phase is the real one (the same code the role commands run): mine + commit, record the
signed header, reveal the beacon, prove, light and full verification, signed attestations,
finalization. Rerunning with the same ``--out`` first finishes a block left pending by a crash,
then continues from the ledger's last confirmed block.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pogo_jax.chain import ChainDir
from pogo_jax.config import Config, config_from_dict
from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.fullverify import StateCache, verify_full
from pogo_jax.ledger import Ledger
from pogo_jax.roles.chainops import Verdict, attest, finalize, light_verify, read_bundle, reveal_beacon
from pogo_jax.spec.keys import load_private_pem, public_bytes


@dataclass
class VerifierNode:
    name: str
    key: object
    tier: str  # "full" or "light"
    cache: StateCache = field(default_factory=StateCache)


def open_or_create(out: Path, cfg: Config, console: Console) -> tuple[ChainDir, Ledger, Config]:
    from pogo_jax.genesis import create_chain

    chain = ChainDir(out)
    if chain.ledger.exists():
        ledger = Ledger.open(chain.ledger)
        stored = config_from_dict(ledger.meta()["config"])
        if stored.config_hash() != cfg.config_hash():
            console.print(f"[yellow]continuing the chain in {out} with its own config "
                          f"'{stored.name}' (the --config/--set given differ)[/]")
        return chain, ledger, stored
    console.print(f"creating a new chain in {out} (config '{cfg.name}')")
    chain, ledger = create_chain(out, cfg)
    return chain, ledger, cfg


def _verify_one(node: VerifierNode, chain: ChainDir, ledger: Ledger, bundle) -> tuple[Verdict, dict]:
    pc = ledger.meta()["config"]["pogo"]
    t0 = time.perf_counter()
    light = light_verify(bundle, ledger, pc["k_leaves"], pc["m_windows"], pc["delta"])
    timings = {"light": time.perf_counter() - t0}
    if not light.accept or node.tier == "light":
        return Verdict(light.accept, "light", light.reason, light.detail), timings
    t0 = time.perf_counter()
    full = verify_full(chain, ledger, bundle, node.cache)
    timings["full"] = time.perf_counter() - t0
    return Verdict(full.accept, "full", full.reason, full.detail, full.loss_prev, full.loss_next), timings


def run_block(chain: ChainDir, ledger: Ledger, miner, verifiers: list[VerifierNode],
              progress: Progress, console: Console) -> dict:
    """One block through every phase; each phase is skipped if a crashed run already did it."""
    steps = miner.cfg.pogo.block_steps
    h = ledger.tip()["height"] + 1
    task = progress.add_task(f"block {h}: training", total=steps)
    base = {}

    def on_step(step: int, m: dict) -> None:
        base.setdefault("start", step - 1)
        progress.update(task, completed=step - base["start"], description=f"block {h}: loss {m['loss']:.3f}")

    t0 = time.perf_counter()
    mined = miner.mine(progress=on_step)
    t_mine = time.perf_counter() - t0
    progress.update(task, completed=steps, description=f"block {h}: committed")
    hh = mined.header_hash
    progress.update(task, description=f"block {h}: beacon")
    reveal_beacon(chain, ledger, h)
    progress.update(task, description=f"block {h}: proving")
    t0 = time.perf_counter()
    bundle_path, pinfo = miner.prove(h)
    t_prove = time.perf_counter() - t0
    bundle = read_bundle(bundle_path)
    done = {a["verifier_key"] for a in ledger.attestations(hh)}
    verdicts = []
    for node in verifiers:
        if public_bytes(node.key).hex() in done:
            continue
        progress.update(task, description=f"block {h}: {node.name} verifying ({node.tier})")
        verdict, vt = _verify_one(node, chain, ledger, bundle)
        attest(ledger, node.key, bundle, verdict)
        verdicts.append({"verifier": node.name, "verdict": "accept" if verdict.accept else "reject",
                         "tier": verdict.tier, "reason": verdict.reason, "detail": verdict.detail,
                         "loss_prev": verdict.loss_prev, "loss_next": verdict.loss_next,
                         "seconds": {k: round(v, 4) for k, v in vt.items()}})
    outcome = finalize(chain, ledger, h)
    progress.update(task, description=f"block {h}: {outcome.status}")
    progress.remove_task(task)
    blk = ledger.block(header_hash=hh)
    return {
        "height": h, "header_hash": hh.hex(), "root_prev": blk["root_prev"], "root_next": blk["root_next"],
        "root_q": blk["root_q"], "outcome": outcome.status, "outcome_reason": outcome.reason,
        "loss_prev": pinfo["loss_prev"], "loss_next": pinfo["loss_next"],
        "train_loss_first": mined.train_losses[0] if mined.train_losses else None,
        "train_loss_last": mined.train_losses[-1] if mined.train_losses else None,
        "verifiers": verdicts, "resumed": mined.resumed, "k": pinfo["k"],
        "bytes": {"update": chain.update_file(h).stat().st_size, "bundle": pinfo["bytes"],
                  "model_fp32": 4 * miner.layout.n_values},
        "seconds": {"mine": round(t_mine, 3), "prove": round(t_prove, 3),
                    **{f"mine_{k}": round(v, 3) for k, v in mined.timings.items()},
                    **{f"prove_{k}": round(v, 3) for k, v in pinfo["timings"].items()}},
    }


def adversary_key(chain: ChainDir, ledger: Ledger, name: str, stake: int):  # noqa: ANN201 - private key
    """A registered, unslashed miner key for the named adversary (a new one after each slashing)."""
    from pogo_jax.spec.keys import generate_key, save_private_pem

    i = 0
    while True:
        path = chain.keys_dir / f"adversary-{name}{f'-{i}' if i else ''}.pem"
        if not path.exists():
            save_private_pem(generate_key(), path)
        key = load_private_pem(path)
        part = ledger.participant(public_bytes(key))
        if part is None:
            ledger.add_participant(public_bytes(key), "miner", path.stem[:64], stake)
            return key
        if not part["slashed"]:
            return key
        i += 1


def run_adversary_block(chain: ChainDir, ledger: Ledger, miner, verifiers: list[VerifierNode],
                        progress: Progress) -> dict:
    """One block mined by a cheating miner (``miner.hooks``) through every phase it reaches.

    Outcomes: the ledger refuses the header at record ("rejected at record", the signer slashed
    when the fault is attributable, see ``Ledger.report_invalid_header``), or verifiers attest and
    finalize decides (a light-tier fraud proof slashes at once, full-tier rejects by quorum)."""
    from pogo_jax.errors import Rejected
    from pogo_jax.roles.chainops import report_refused_header

    h = ledger.tip()["height"] + 1
    stake0 = ledger.participant(miner.pub)["stake"]
    rec = {"adversary": miner.hooks.name, "height": h, "miner_key": miner.pub.hex(), "verifiers": []}
    task = progress.add_task(f"block {h}: {miner.hooks.name} mining", total=None)
    try:
        mined = miner.mine()
    except Rejected as r:
        code = report_refused_header(chain, ledger, h)
        progress.remove_task(task)
        part = ledger.participant(miner.pub)
        return {**rec, "stage": "record", "record_reason": r.code, "record_detail": r.detail,
                "outcome": "slashed" if part["slashed"] else "refused",
                "outcome_reason": code or "NOT_ATTRIBUTABLE", "stake": [stake0, part["stake"]]}
    hh = mined.header_hash
    reveal_beacon(chain, ledger, h)
    progress.update(task, description=f"block {h}: {miner.hooks.name} proving")
    bundle = read_bundle(miner.prove(h)[0])
    for node in verifiers:
        progress.update(task, description=f"block {h}: {node.name} verifying ({node.tier})")
        verdict, vt = _verify_one(node, chain, ledger, bundle)
        attest(ledger, node.key, bundle, verdict)
        rec["verifiers"].append({"verifier": node.name, "verdict": "accept" if verdict.accept else "reject",
                                 "tier": verdict.tier, "reason": verdict.reason, "detail": verdict.detail})
    outcome = finalize(chain, ledger, h)
    progress.remove_task(task)
    blk = ledger.block(header_hash=hh)
    return {**rec, "stage": "verify", "header_hash": hh.hex(), "outcome": outcome.status,
            "outcome_reason": outcome.reason, "fraud_evidence": blk["fraud_evidence"],
            "stake": [stake0, ledger.participant(miner.pub)["stake"]]}


def adversary_table(rec: dict) -> Table:
    t = Table(title=f"adversary '{rec['adversary']}' at height {rec['height']}: {rec['outcome'].upper()} "
              f"({rec['outcome_reason']})", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    if rec["stage"] == "record":
        t.add_row("ledger", f"rejected at record: {rec['record_reason']} ({rec['record_detail']})")
        t.add_row("block", "never recorded as a block; the signed header is kept as evidence"
                  if rec["outcome"] == "slashed" else "never recorded as a block")
    for v in rec["verifiers"]:
        t.add_row(v["verifier"], f"{v['verdict']} ({v['tier']}, {v['reason']})")
    if rec.get("fraud_evidence"):
        t.add_row("fraud proof", rec["fraud_evidence"][:70])
    t.add_row("miner stake", f"{rec['stake'][0]} -> {rec['stake'][1]}")
    t.add_row("outcome", rec["outcome"])
    return t


def block_table(rec: dict) -> Table:
    """One block as a two-column table (fits an 80-column terminal)."""
    t = Table(title=f"block {rec['height']}: {rec['outcome'].upper()} ({rec['outcome_reason']})",
              title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    b, s = rec["bytes"], rec["seconds"]
    t.add_row("roots", f"prev {rec['root_prev'][:16]}  next {rec['root_next'][:16]}  q {rec['root_q'][:16]}")
    t.add_row("loss (challenge windows)", f"{rec['loss_prev']:.4f} -> {rec['loss_next']:.4f}  "
              f"(train {rec['train_loss_first'] or float('nan'):.3f} -> {rec['train_loss_last'] or float('nan'):.3f})")
    for v in rec["verifiers"]:
        secs = " ".join(f"{k} {x * 1e3:.0f} ms" for k, x in v["seconds"].items())
        t.add_row(v["verifier"], f"{v['verdict']} ({v['tier']}, {v['reason']})  {secs}")
    if not rec["verifiers"]:
        t.add_row("verifiers", "(attested before a restart)")
    t.add_row("time", f"mine {s['mine']:.1f} s (train {s.get('mine_train', 0):.1f}, commit "
              f"{s.get('mine_commit', 0):.2f})  prove {s['prove']:.2f} s")
    t.add_row("bytes", f"model {b['model_fp32']:,}  update {b['update']:,}  bundle {b['bundle']:,} (k={rec['k']})")
    return t


def write_report(out: Path, records: list[dict]) -> Path:
    """report.json (all blocks of this directory so far), blocks.md and loss.png under DIR/report."""
    from pogo_jax.plotting import plot_block_losses

    rdir = out / "report"
    atomic_write_bytes(rdir / "report.json", json.dumps({"blocks": records}, indent=2).encode())
    lines = ["| height | outcome | loss prev | loss next | verdicts | mine s | prove s | update B | bundle B |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        v = ", ".join(f"{x['verdict']}/{x['tier']}" for x in r["verifiers"])
        lines.append(f"| {r['height']} | {r['outcome']} | {r['loss_prev']:.4f} | {r['loss_next']:.4f} | {v} | "
                     f"{r['seconds']['mine']:.1f} | {r['seconds']['prove']:.2f} | {r['bytes']['update']} | "
                     f"{r['bytes']['bundle']} |")
    atomic_write_bytes(rdir / "blocks.md", ("\n".join(lines) + "\n").encode())
    plotted = [r for r in records if r.get("loss_prev") is not None and r.get("loss_next") is not None]
    if plotted:
        plot_block_losses(plotted, rdir / "loss.png")
    return rdir


def run_demo(cfg: Config, out: Path, blocks: int, light_verifiers: int = 1,
             console: Console | None = None, adversary=None) -> list[dict]:
    """``blocks`` honest blocks, then (with ``adversary``, a ``MinerHooks``) one block by a cheating
    miner with its own registered key; its record is the last one returned."""
    from pogo_jax.miner import Miner

    console = console or Console()
    if blocks < (0 if adversary is not None else 1):
        raise UserError("--blocks must be at least 1 (or 0 with --adversary)")
    chain, ledger, cfg = open_or_create(out, cfg, console)
    keys = sorted(chain.keys_dir.glob("verifier-*.pem"))
    if not (chain.keys_dir / "miner.pem").is_file() or not keys:
        raise UserError(f"{chain.keys_dir} lacks the demo's keys: this chain was not made by pogo demo")
    miner = Miner(chain, ledger, load_private_pem(chain.keys_dir / "miner.pem"), out / "miner")
    n = len(keys)
    nodes = [VerifierNode(p.stem, load_private_pem(p), "light" if i >= n - light_verifiers else "full")
             for i, p in enumerate(keys)]
    rec_file = out / "report" / "blocks.jsonl"
    records = [json.loads(x) for x in rec_file.read_text().splitlines() if x.strip()] if rec_file.exists() else []
    start = ledger.tip()["height"]
    console.print(f"chain '{cfg.pogo.chain_id}' at height {start}; running {blocks} block(s) of "
                  f"{cfg.pogo.block_steps} steps with 1 miner and {n} verifiers "
                  f"({n - light_verifiers} full, {light_verifiers} light); k={cfg.pogo.k_leaves} "
                  f"of {miner.layout.n_leaves} leaves, m={cfg.pogo.m_windows} windows")
    done = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        while done < blocks:
            rec = run_block(chain, ledger, miner, nodes, progress, console)
            records = [r for r in records if r["header_hash"] != rec["header_hash"]] + [rec]
            rec_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(rec_file, "".join(json.dumps(r) + "\n" for r in records).encode())
            console.print(block_table(rec))
            done += 1
        if adversary is not None:
            key = adversary_key(chain, ledger, adversary.name, cfg.pogo.stake)
            cheat = miner.fork(key, out / "adversaries" / adversary.name, adversary)
            arec = run_adversary_block(chain, ledger, cheat, nodes, progress)
            console.print(adversary_table(arec))
            atomic_write_bytes(out / "report" / f"adversary-{adversary.name}.json",
                               json.dumps(arec, indent=2).encode())
    if adversary is not None:
        return [*records, arec]
    rdir = write_report(out, records)
    console.print(f"report: {rdir}/report.json, {rdir}/blocks.md, {rdir}/loss.png; ledger: {chain.ledger}; "
                  f"bundles: {out / 'bundles'}")
    return records
