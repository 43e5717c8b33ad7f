"""Run ``pogo demo --adversary NAME`` for every adversary, each in a fresh directory, and collect what each
one got: outcome, whether it was paid, the attacker's and the honest miner's stakes before and after.
Writes benchmarks/results/adversaries.json and adversaries.md (the table in docs/adversaries.md).

    PYTHONPATH=. python scripts/run_adversaries.py                    # every adversary, config small
    PYTHONPATH=. python scripts/run_adversaries.py --only tamper lazy --config tiny
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    from pogo_jax.demo.adversary import ALL, EXPECTED

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--keep", type=Path, default=None, help="keep each demo directory under this one")
    args = ap.parse_args()
    names = args.only or ALL
    path = args.out / f"adversaries_{args.config}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    base = args.keep or Path(tempfile.mkdtemp(prefix="pogo-adversaries-"))
    for name in names:
        out = base / name
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", "demo", "--config", args.config, "--adversary", name,
                            "--out", str(out)], capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"},
                           timeout=3600)
        rec_file = out / "report" / f"adversary-{name}.json"
        rec = json.loads(rec_file.read_text()) if rec_file.exists() else {"adversary": name, "error": p.stderr[-2000:]}
        rec["exit_code"], rec["seconds"] = p.returncode, round(time.perf_counter() - t0, 1)
        done[name] = rec
        print(f"{name:22s} exit {p.returncode}  {rec.get('outcome', 'ERROR')}  paid={rec.get('attacker_paid')}  "
              f"stake {rec.get('attacker_stake')}  honest {rec.get('honest_stake')}  {rec['seconds']:.0f} s",
              flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: done[k] for k in ALL if k in done}, indent=2) + "\n")
    lines = [f"Made by `PYTHONPATH=. python scripts/run_adversaries.py --config {args.config}` "
             f"(each: `pogo demo --config {args.config} --adversary NAME` in a fresh directory).", "",
             "| adversary | rule that stops it | caught at | outcome | attacker paid | attacker stake | honest stake |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for name in ALL:
        r = done.get(name)
        if r is None or "outcome" not in r:
            continue
        e = EXPECTED[name]
        stake = f"{r['attacker_stake'][0]} -> {r['attacker_stake'][1]}"
        if r.get("verifier_stake") and r.get("partner_stake"):
            stake = f"partner {stake}; liar {r['verifier_stake'][0]} -> {r['verifier_stake'][1]}"
        paid = str(r["attacker_paid"]).lower() + (" (allowed)" if e.fair else "")
        lines.append(f"| `{name}` | {e.rule} | {e.stage} | {r['outcome']} | {paid} | {stake} | "
                     f"{r['honest_stake'][0]} -> {r['honest_stake'][1]} |")
        if e.fair and r.get("candidates") and r.get("honest_candidates"):
            a, h = r["candidates"][0], r["honest_candidates"][0]
            notes.append(f"`{name}`: in its round it measured {a['improvement']} nats ({a['status']}), the honest "
                         f"miner {h['improvement']} ({h['status']}); tests/test_eval_trainer.py compares them over "
                         "several rounds.")
    (args.out / f"adversaries_{args.config}.md").write_text("\n".join(lines + [""] + notes) + "\n")
    bad = [n for n in names if done.get(n, {}).get("attacker_paid") is not False and not EXPECTED[n].fair]
    honest_slashed = [n for n in names if "honest_stake" in done.get(n, {})
                      and done[n]["honest_stake"][1] < done[n]["honest_stake"][0]]
    print("honest miner lost stake:", honest_slashed or "never")
    print("attacker paid or failed:", bad or "none")
    return 1 if bad or honest_slashed else 0


if __name__ == "__main__":
    sys.exit(main())
