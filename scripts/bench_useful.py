"""The usefulness tax of a PoGO chain against plain training (issue 23): see pogo_jax/bench/useful.py.

    PYTHONPATH=. python scripts/bench_useful.py                 # small-bpe, 20 blocks (~70 min on 2 CPU cores)
    PYTHONPATH=. python scripts/bench_useful.py --blocks 2 --out runs/useful-quick   # a dry run

Writes useful.{json,md,png} under --out (default benchmarks/results); the chain, its logs and the dataset stay
in --work (default runs/bench-useful), so a second run reuses the tokenizer and dataset.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pogo_jax.bench.useful import run
from pogo_jax.errors import UserError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small-bpe", help="model and rules (default small-bpe)")
    p.add_argument("--blocks", type=int, default=20,
                   help="run until the chain holds this many confirmed blocks (default 20); a chain already in "
                        "--work is resumed")
    p.add_argument("--vocab", type=int, default=4096, help="BPE vocabulary to train (default 4096)")
    p.add_argument("--corpus", nargs="*", default=[], help="text files/folders/JSONL (default: the embedded corpus)")
    p.add_argument("--work", default="runs/bench-useful", help="chain, logs, tokenizer and dataset")
    p.add_argument("--out", default="benchmarks/results", help="where useful.{json,md,png} go")
    p.add_argument("--submit-window-ms", type=int, default=30_000,
                   help="submission window: long enough for both miners to join a round (default 30000)")
    p.add_argument("--eval-windows", type=int, default=256, help="held-out windows per evaluation (default 256)")
    p.add_argument("--baseline-to", choices=["all", "winning"], default="winning",
                   help="plain AdamW as far as the winning tokens (default) or all candidates' (about twice as long)")
    p.add_argument("--analyse-only", action="store_true",
                   help="no new blocks: measure the chain already in --work (and rerun plain AdamW)")
    p.add_argument("--timeout", type=float, default=5400.0,
                   help="seconds to wait for the chain (default 5400); then what it confirmed is measured")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = p.parse_args()
    args.command = "PYTHONPATH=. python scripts/bench_useful.py " + shlex.join(sys.argv[1:])
    try:
        run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the chain's processes were stopped; its directory is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
