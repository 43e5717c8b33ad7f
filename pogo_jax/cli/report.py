"""Compare `pogo bench` results of several backends: one markdown table, one plot, a roots check.

FILE... are bench_<backend>.json files (CPU, H100, a TPU VM, ...). The table goes to stdout (and to
--md), the plot to --png. The Merkle roots of the fixed benchmark input must be identical on every
backend: any difference is printed loudly and the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pogo_jax.bench.report import load_results, markdown, plot, root_differences
from pogo_jax.fsutil import atomic_write_bytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="bench_<backend>.json files from 'pogo bench'")
    parser.add_argument("--md", type=Path, default=None, help="also write the table here (markdown)")
    parser.add_argument("--png", type=Path, default=None, help="write the comparison plot here")


def run(args: argparse.Namespace) -> int:
    results = load_results(args.files)
    diffs = root_differences(results)
    text = markdown(results, diffs)
    print(text, end="")
    if args.md is not None:
        atomic_write_bytes(args.md, text.encode())
    if args.png is not None:
        plot(results, args.png)
    if diffs:
        print(f"error: Merkle roots differ across backends ({len(diffs)} difference(s)): "
              + "; ".join(diffs), file=sys.stderr)
        return 1
    return 0
