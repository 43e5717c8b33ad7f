"""Protocol performance (issue 5): light-verify time, bundle bytes, full-verify and PoGO overhead fractions.

  PYTHONPATH=. python scripts/bench_protocol.py --config small        # CPU
  PYTHONPATH=. python scripts/bench_protocol.py --config gpt2-124m    # GPU

Runs a real chain (``pogo_jax.bench.protocol``, the code ``pogo bench`` runs too) on a sealed copy of the
config's dataset: three blocks are mined, proved, verified light and full, voted (full votes committed,
then revealed) and finalized; the last block is the measurement. Targets: light verify < 50 ms per
bundle for k = 64 on one core (flat in model size: see ``pogo costs --scaling``), full verify (the v3
full tier: check, commit and reveal) <= 5% of the block's mining time, PoGO overhead (quantize + commit +
prove) <= 3% of the block's training time, and consensus v3's own per-round costs (commit and reveal of a
full vote, opening the round's sealed shard, per-window instead of mean losses) <= 2% of the block's
training time (``v3_overhead_frac``; each number is defined in ``pogo_jax.bench.protocol``). Writes
benchmarks/results/protocol_<config>_<backend>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pogo_jax.bench.common import RESULTS, command_line, device_info, write_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--block-steps", type=int, default=None, help="default: the config's miner.block_steps")
    ap.add_argument("--blocks", type=int, default=3, help="blocks to run; the last one is measured (>= 3)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed repeats of each loss evaluation (after a warm-up call)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from pogo_jax.bench.protocol import overhead_at, run_protocol
    from pogo_jax.config import load_config

    cfg = load_config(args.config, args.overrides)
    info = device_info()
    with tempfile.TemporaryDirectory(prefix="pogo-bench-protocol-") as tmp:
        res = run_protocol(cfg, tmp, k=args.k, block_steps=args.block_steps, blocks=args.blocks,
                           eval_repeats=args.repeats)
    last = res["blocks"][-1]
    res["overhead_fraction_at_config_block_steps"] = overhead_at(last, res["block_steps"], cfg.miner.block_steps)
    res = {**info, "command": command_line("PYTHONPATH=. python scripts/bench_protocol.py"), **res}
    path = write_json(args.out / f"protocol_{cfg.name}_{info['backend']}.json", res)
    ok, v3 = res["meets"], res["v3"]
    print(f"{cfg.name} on {info['n_devices']}x {info['device_kind']}, block {last['height']} "
          f"({res['block_steps']} steps, k={args.k}):\n"
          f"  light verify   {last['light_verify_s'] * 1e3:8.2f} ms   (target < 50 ms: {ok['light_verify']})\n"
          f"  bundle         {last['bundle_bytes']:>11,} B\n"
          f"  full verify    {last['full_verify_s']:8.3f} s  = {last['full_verify_fraction_of_mining']:.2%} of mining "
          f"{last['mine_s']:.2f} s (target <= 5%: {ok['full_verify_fraction']})\n"
          f"  PoGO overhead  {last['pogo_overhead_s']:8.3f} s  = {last['pogo_overhead_fraction']:.2%} of training "
          f"{last['train_s']:.2f} s (target <= 3%: {ok['pogo_overhead_fraction']})\n"
          f"  v3 overhead    {v3['v3_overhead_s']:8.3f} s  = {v3['v3_overhead_frac']:.2%} of training "
          f"(target <= 2%: {ok['v3_overhead_frac']})\n"
          f"    commit+reveal {v3['commit_reveal_s'] * 1e3:8.2f} ms, open shard {v3['open_shard_s'] * 1e3:.2f} ms, "
          f"losses on {v3['eval_windows']} windows: per window {v3['window_losses_s']:.3f} s vs one mean "
          f"{v3['mean_loss_s']:.3f} s\n"
          f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
