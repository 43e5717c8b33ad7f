"""Pack text into a .pogodata dataset, seal evaluation shards for a chain, or show a dataset's manifest.

  pogo data pack PATH... --out FILE [--shard-size N] [--eval-fraction F]
                         [--sealed-eval N --keys-out KEYS [--sealed-bytes B]]
  pogo data seal [FILE] --out SEALED --sealed-eval N --keys-out KEYS [--sealed-bytes B]
                                      (no FILE: the embedded standard-library corpus)
  pogo data info [FILE] [--verify]     (no FILE: the embedded standard-library corpus)

A chain judges every round on one sealed shard (PROTOCOL 14): ``--sealed-eval N`` takes N shards of
``--sealed-bytes`` out of the text at secret random positions and encrypts each under its own key;
KEYS (mode 0600) goes to the beacon service (``pogo beacon serve --eval-keys KEYS``) and to nobody else.
Output files are written atomically: on any error nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    _seal_args(p, required=False)
    s = sub.add_parser("seal", help="a sealed copy of a packed dataset, for a chain")
    s.add_argument("file", nargs="?", default="", metavar="FILE",
                   help="packed .pogodata file (public, version 1; default: the embedded standard-library corpus)")
    s.add_argument("--out", required=True, metavar="SEALED", help="output .pogodata file")
    _seal_args(s, required=True)
    i = sub.add_parser("info", help="print a dataset's manifest as JSON")
    i.add_argument("file", nargs="?", default="", metavar="FILE",
                   help="packed file (default: the embedded standard-library corpus)")
    i.add_argument("--verify", action="store_true", help="recompute data_root from the tokens")


def _seal_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--sealed-eval", type=int, default=None, required=required,
                   metavar="N", help="sealed evaluation shards (one per chain round)")
    p.add_argument("--sealed-bytes", type=int, default=data.DEFAULT_SEALED_BYTES, metavar="B",
                   help=f"bytes per sealed shard (default {data.DEFAULT_SEALED_BYTES}; a round needs m_windows x "
                        "seq_len + 1)")
    p.add_argument("--keys-out", type=Path, default=None, metavar="KEYS",
                   help="where the shard keys go (for the beacon only; never overwritten)")


def _seal_spec(args: argparse.Namespace) -> data.SealSpec | None:
    if args.sealed_eval is None:
        if args.keys_out is not None:
            raise UserError("--keys-out goes with --sealed-eval N")
        return None
    return data.SealSpec(args.sealed_eval, args.sealed_bytes, args.keys_out)


def run(args: argparse.Namespace) -> int:
    if args.data_command in ("pack", "seal"):
        spec = _seal_spec(args)
        if args.data_command == "pack":
            ds = data.pack(args.paths, args.out, shard_size=args.shard_size, eval_fraction=args.eval_fraction,
                           seal_spec=spec)
        else:
            src = args.file or data.load_dataset(DataConfig()).path
            ds = data.seal_dataset(src, args.out, spec)
        m = ds.manifest
        print(f"{args.data_command}ed {ds.source.removeprefix('packed: ')} ({m['n_skipped']} skipped: binary, "
              f"undecodable or unreadable) -> {ds.path}")
        print(f"bytes: {m['n_bytes']}  shards: {m['n_shards']} x {m['shard_size']}  "
              f"train: {m['train']}  eval: {m['eval']}")
        if ds.sealed is not None:
            print(f"sealed: {ds.sealed.n} evaluation shards x {ds.sealed.shard_bytes} bytes; keys -> {spec.keys_out} "
                  "(give them to the beacon service only)")
        print(f"data_root: {m['data_root']}")
        return 0
    if args.data_command == "info":
        ds = data.load_dataset(DataConfig(path=args.file), verify=args.verify)
        print(json.dumps(ds.manifest, indent=2, sort_keys=True))
        return 0
    raise UserError("say what to do: `pogo data pack PATH... --out FILE` or `pogo data info [FILE]`")
