"""What a long training loop shows while it runs: a rich progress bar on a terminal, plain lines elsewhere.

A log file or a CI job keeps only the last frame of a progress bar, which says nothing about how the run
went; when stderr is not a terminal a plain line every ``every`` steps (and at the last one) is written
instead. ``plot_metrics`` draws ``metrics.jsonl`` as the run's loss curve, so ``loss.png`` can be
refreshed at every checkpoint (a run stopped half way still has its curve).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pogo_jax.plotting import plot_curves


class TrainProgress:
    """``update(step, status)`` after every step; a context manager like rich's ``Progress``."""

    def __init__(self, total: int, start: int, enabled: bool = True, every: int = 10, label: str = "train",
                 stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.start, self.label = total, start, label
        self.every = max(1, every)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.status = "compiling"
        self._bar = None
        self._task = None
        self._t0 = clock()

    def __enter__(self) -> TrainProgress:
        if self.enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.start, status=self.status)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def update(self, step: int, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, status=self.status)
        elif step % self.every == 0 or step == self.total:
            self.stream.write(self.line(step) + "\n")
            self.stream.flush()

    def line(self, step: int) -> str:
        """``train: step 40/60 (67%) loss 2.913  12,345 tok/s, 8 s, about 4 s left``"""
        elapsed = self.clock() - self._t0
        done = step - self.start
        left = f", about {elapsed / done * (self.total - step):.0f} s left" if done > 0 and step < self.total else ""
        pct = f"{100 * step / self.total:.0f}%" if self.total else "-"
        return f"{self.label}: step {step}/{self.total} ({pct}) {self.status}, {elapsed:.0f} s{left}"


def plot_metrics(metrics_path: Path, png: Path, title: str) -> Path | None:
    """``metrics.jsonl`` (train ``loss`` and ``eval_loss`` records by step) as a loss curve; None without
    any point yet. A line cut by a kill is skipped."""
    train, ev = [], []
    for line in Path(metrics_path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in rec:
            train.append((rec["step"], rec["loss"]))
        if "eval_loss" in rec:
            ev.append((rec["step"], rec["eval_loss"]))
    if not train and not ev:
        return None
    return plot_curves({"train": train, "eval": ev}, png, title, "step", "loss (nats/token)")
