"""Pack text into a .pogodata dataset, seal evaluation shards for a chain, train a tokenizer, or show a
dataset's manifest.

  pogo data pack PATH... --out FILE [--tokenizer TOK.json] [--text-field F] [--shard-size N]
                         [--eval-fraction F] [--sealed-eval N --keys-out KEYS [--sealed-bytes B]]
  pogo data tokenizer train PATH... --vocab N --out TOK.json [--text-field F]
                                      (PATH @stdlib: the embedded standard-library corpus)
  pogo data seal [FILE] --out SEALED --sealed-eval N --keys-out KEYS [--sealed-bytes B]
                                      (no FILE: the embedded standard-library corpus)
  pogo data info [FILE] [--verify]     (no FILE: the embedded standard-library corpus)

A chain judges every round on one sealed shard (PROTOCOL 14): ``--sealed-eval N`` takes N shards of
``--sealed-bytes`` out of the text at secret random positions and encrypts each under its own key;
KEYS (mode 0600) goes to the beacon service (``pogo beacon serve --eval-keys KEYS``) and to nobody else.
PATH: text files, directories (recursive), ``*.jsonl`` and ``*.parquet`` (field ``--text-field``, default
"text"), and with ``--tokenizer`` nanoGPT ``*.bin`` files of uint16 ids made by that tokenizer. Without
``--tokenizer`` the dataset is bytes (vocab 256). Every skipped file gets a line on stderr saying why.
Output files are written atomically: on any error nothing is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from pogo_jax.config import DataConfig
from pogo_jax.errors import UserError
from pogo_jax.train import data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage lines above as written
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    p = sub.add_parser("pack", help="pack text files/directories into one .pogodata file")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="text files or directories (recursive), .jsonl, .parquet, .bin ids (with --tokenizer), "
                        "or @stdlib (the embedded corpus)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .pogodata file")
    p.add_argument("--tokenizer", default=None, metavar="TOK",
                   help="byte-level BPE tokenizer file (`pogo data tokenizer train`); default: bytes, vocab 256")
    p.add_argument("--text-field", default="text", metavar="F", help="JSONL/Parquet text field (default text)")
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
    t = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on a corpus")
    tsub = t.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    tt = tsub.add_parser("train", help="train a byte-level BPE offline")
    tt.add_argument("paths", nargs="+", metavar="PATH",
                    help="text files or directories (recursive), .jsonl, .parquet, or @stdlib (the embedded corpus)")
    tt.add_argument("--vocab", type=int, required=True, metavar="N", help="vocabulary size (ids), above 256")
    tt.add_argument("--out", required=True, metavar="TOK", help="output tokenizer .json file")
    tt.add_argument("--text-field", default="text", metavar="F", help="JSONL/Parquet text field (default text)")
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


def _skip_line(path: Path, why: str) -> None:
    print(f"skipped {path}: {why}", file=sys.stderr)


@contextlib.contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over input bytes on stderr (only on a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn(what), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console,
                   transient=True, disable=not console.is_terminal)
    task = bar.add_task(what, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


EMBEDDED = "@stdlib"  # a PATH naming the embedded corpus: the interpreter's standard-library *.py files


def _expand(paths: list[str]) -> list:
    """``@stdlib`` stands for the embedded corpus's files (what the demo trains on), in its order."""
    out: list = []
    for p in paths:
        out += [f for _, f in data.stdlib_files()] if p == EMBEDDED else [p]
    return out


def run(args: argparse.Namespace) -> int:
    if hasattr(args, "paths"):
        args.paths = _expand(args.paths)
    if args.data_command == "tokenizer":
        if getattr(args, "tokenizer_command", None) != "train":
            raise UserError("say what to do: `pogo data tokenizer train PATH... --vocab N --out tok.json`")
        with _progress("reading") as prog:
            info = data.train_tokenizer(args.paths, args.vocab, args.out, args.text_field, _skip_line, prog)
        print(f"trained a byte-level BPE of {info.vocab_size} ids -> {args.out}")
        print(f"sha256: {info.sha256.hex()}")
        return 0
    if args.data_command in ("pack", "seal"):
        spec = _seal_spec(args)
        if args.data_command == "pack":
            with _progress("packing") as prog:
                ds = data.pack(args.paths, args.out, shard_size=args.shard_size, eval_fraction=args.eval_fraction,
                               seal_spec=spec, tokenizer=args.tokenizer, text_field=args.text_field,
                               on_skip=_skip_line, on_progress=prog)
        else:
            src = args.file or data.load_dataset(DataConfig()).path
            ds = data.seal_dataset(src, args.out, spec)
        m = ds.manifest
        print(f"{args.data_command}ed {ds.source.removeprefix('packed: ')} ({m['n_skipped']} skipped: binary, "
              f"undecodable or unreadable) -> {ds.path}")
        print(f"bytes: {m['n_bytes']}  shards: {m['n_shards']} x {m['shard_size']}  "
              f"train: {m['train']}  eval: {m['eval']}")
        if "tokens" in m:
            t = m["tokens"]
            tb = t["text_bytes"]
            print(f"tokens: {ds.n_tokens} ids of {t['width']} bytes, vocabulary {t['vocab_size']}, tokenizer sha256 "
                  f"{t['tokenizer_sha256'][:16]}...; text bytes per token: train "
                  f"{tb['train'] / max(1, ds.train_range[1]):.3f}, eval "
                  f"{tb['eval'] / max(1, ds.eval_range[1] - ds.eval_range[0]):.3f}")
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
