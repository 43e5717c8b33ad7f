"""Shared measurement helpers: device description, steady-state timing, result files.

Timings are medians of repeats after a first (compiling) call, which is reported separately,
because compile time and steady state answer different questions (first block vs every block).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pogo_jax.errors import UserError
from pogo_jax.fsutil import atomic_write_bytes

REPO = Path(__file__).resolve().parent.parent.parent
RESULTS = REPO / "benchmarks" / "results"


def device_info() -> dict[str, Any]:
    """Backend, device kind (as jax reports it), counts and versions: what every result file carries."""
    import jax

    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device_kind": dev.device_kind,
        "n_devices": jax.device_count(),
        "n_processes": jax.process_count(),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def command_line(prog: str, argv: Sequence[str] | None = None) -> str:
    """The command that made a result, as a user would type it again.

    ``prog`` may name a subcommand (``"pogo bench"``): it is not repeated from ``sys.argv``, and when
    ``sys.argv`` is not a ``pogo`` command line at all (called in-process, e.g. from a test) only
    ``prog`` is recorded rather than somebody else's arguments."""
    args = sys.argv[1:] if argv is None else list(argv)
    sub = prog.split()[1:] if prog.startswith("pogo ") else []
    if sub and argv is None:
        args = args[len(sub):] if args[: len(sub)] == sub else []
    return " ".join([prog, *(shlex.quote(a) for a in args)])


def shown(path: str | Path) -> str:
    """A path as it is printed in results: relative to the repository when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(path)


def block(x: Any) -> Any:
    """Wait for device work (no-op for host values)."""
    import jax

    return jax.block_until_ready(x)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """(first-call seconds, steady-state seconds of each of ``repeats`` further calls)."""
    t = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t)
    return first, times


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median steady-state seconds of ``fn`` (one untimed warm-up call first)."""
    _, times = timed(fn, max(1, repeats))
    return statistics.median(times)


def host_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of a host-only function (no warm-up: nothing compiles)."""
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (atomically: a crash never leaves half a result file)."""

    path = Path(path)
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())
    return path


def read_json(path: str | Path, what: str = "results file") -> dict[str, Any]:
    """Read a JSON object; a missing or invalid file is one clear ``UserError`` line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist (run 'pogo bench' to make one)")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} holds a JSON {type(obj).__name__}, expected an object")
    return obj


def need(obj: dict[str, Any], path: str, what: str, types: type | tuple[type, ...] = (int, float)) -> Any:
    """``obj["a"]["b"]`` for ``path="a.b"``, type-checked; missing or wrong is one ``UserError`` line."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise UserError(f"{what}: field '{path}' is missing (was it written by 'pogo bench'?)")
        cur = cur[part]
    wanted = types if isinstance(types, tuple) else (types,)
    if not isinstance(cur, wanted) or (isinstance(cur, bool) and bool not in wanted):
        raise UserError(f"{what}: field '{path}' has the wrong type ({type(cur).__name__})")
    return cur
