"""Pack text into a .pogodata dataset, or show a dataset's manifest (data_root, splits).

  pogo data pack PATH... --out FILE [--shard-size N] [--eval-fraction F]
  pogo data info [FILE] [--verify]     (no FILE: the embedded standard-library corpus)

The output file is written atomically: on any error nothing is left behind.
"""

from __future__ import annotations

import argparse
import json

from pogo_jax.config import DataConfig
from pogo_jax.errors import UserError
from pogo_jax.train import data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage lines above as written
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    p = sub.add_parser("pack", help="pack text files/directories into one .pogodata file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="text files or directories (recursive)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .pogodata file")
    p.add_argument("--shard-size", type=int, default=65536, metavar="N",
                   help="bytes per data_root leaf (default 65536)")
    p.add_argument("--eval-fraction", type=float, default=0.05, metavar="F",
                   help="tail fraction reserved for eval/challenge windows (default 0.05)")
    i = sub.add_parser("info", help="print a dataset's manifest as JSON")
    i.add_argument("file", nargs="?", default="", metavar="FILE",
                   help="packed file (default: the embedded standard-library corpus)")
    i.add_argument("--verify", action="store_true", help="recompute data_root from the tokens")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "pack":
        ds = data.pack(args.paths, args.out, shard_size=args.shard_size, eval_fraction=args.eval_fraction)
        m = ds.manifest
        print(f"packed {ds.source.removeprefix('packed: ')} ({m['n_skipped']} skipped: binary, undecodable "
              f"or unreadable) -> {ds.path}")
        print(f"bytes: {m['n_bytes']}  shards: {m['n_shards']} x {m['shard_size']}  "
              f"train: {m['train']}  eval: {m['eval']}")
        print(f"data_root: {m['data_root']}")
        return 0
    if args.data_command == "info":
        ds = data.load_dataset(DataConfig(path=args.file), verify=args.verify)
        print(json.dumps(ds.manifest, indent=2, sort_keys=True))
        return 0
    raise UserError("say what to do: `pogo data pack PATH... --out FILE` or `pogo data info [FILE]`")
