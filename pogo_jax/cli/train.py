"""Train the transformer on a dataset's tokens, bytes or BPE ids (sharded; resumes from DIR/checkpoints).

  pogo train --config configs/tiny.toml [--out DIR] [--set model.n_layers=4 ...] [--data FILE] [--steps N]

Writes DIR/metrics.jsonl, DIR/loss.png and orbax checkpoints under DIR/checkpoints (default DIR:
runs/<config name>). Rerunning with the same --out continues from the last checkpoint. On multi-host
TPU/GPU, pass --distributed (or set POGO_DISTRIBUTED=1) on every host: jax.distributed.initialize()
then reads the cluster from the environment (TPU VM metadata, SLURM, or JAX_COORDINATOR_ADDRESS...).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pogo_jax.config import load_config
from pogo_jax.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--config", required=True, metavar="TOML", help="config file or name (tiny, small, gpt2-124m, ...)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="run directory (default runs/<name>)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (repeatable), e.g. --set model.n_layers=4",
    )
    parser.add_argument("--data", default=None, metavar="FILE", help="packed .pogodata file (pogo data pack)")
    parser.add_argument(
        "--steps", type=int, default=None, metavar="N", help="total optimizer steps (train.steps)"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first (multi-host; also POGO_DISTRIBUTED=1)",
    )


def _check_data_path(path: str) -> None:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"--data '{path}' does not exist or is not a file; pack text with `pogo data pack`")
    if p.stat().st_size == 0:
        raise UserError(f"--data '{path}' is empty; pack text with `pogo data pack PATH --out FILE`")
    if not os.access(p, os.R_OK):
        raise UserError(f"--data '{path}' is not readable; check its permissions")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.data is not None:
        _check_data_path(args.data)
        overrides.append(f"data.path={args.data}")
    if args.steps is not None:
        if args.steps < 0:
            raise UserError(f"--steps must be >= 0, got {args.steps}")
        overrides.append(f"train.steps={args.steps}")
    cfg = load_config(args.config, overrides)  # all config errors before jax starts

    import jax

    if args.distributed or os.environ.get("POGO_DISTRIBUTED", "") not in ("", "0"):
        jax.distributed.initialize()
    from pogo_jax.train.step import train

    out = args.out if args.out is not None else Path("runs") / cfg.name
    summary = train(cfg, out)
    if jax.process_index() == 0:
        resumed = "" if summary["resumed_from"] is None else f" (resumed from step {summary['resumed_from']})"
        print(
            f"done: step {summary['step']}{resumed}, eval loss {summary['eval_loss']:.4f} nats/token "
            f"({_bits_per_byte(cfg, summary['eval_loss']):.4f} bits/byte); metrics, loss.png and checkpoints in {out}"
        )
    return 0


def _bits_per_byte(cfg, nats: float) -> float:  # noqa: ANN001 - Config
    """The eval split's loss in bits per byte of its text (comparable across tokenizers)."""
    from pogo_jax.spec.units import bits_per_byte
    from pogo_jax.train.data import load_dataset

    ds = load_dataset(cfg.data)
    lo, hi = ds.eval_range
    return bits_per_byte(nats, hi - lo, ds.text_bytes("eval"))
