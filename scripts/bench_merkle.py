"""Benchmark the Merkle layer: leaf hashing per lowering, a device copy, commit, host hashing and proofs.

  PYTHONPATH=. python scripts/bench_merkle.py [--sizes 124m,1b] [--quick] [--unrolls 1,2,4,8] [--leaves N]
  PYTHONPATH=. python scripts/bench_merkle.py --targets [--cli-leaves 32768]

The first form writes OUT/merkle_<backend>.json (device kind, jax version, the command) and a
markdown table merkle_<backend>.md; the default leaf count is 1 GiB of 4 KiB leaves on an
accelerator and 32 MiB on a CPU. ``--targets`` measures the CPU commit targets instead (``pogo
commit`` whole process, default path beside ``--host``; hashlib over every core beside one thread)
into OUT/commit_<backend>.json and .md. A thin entry point: the measurements are
``pogo_jax.bench.merkle`` (the same code ``pogo bench`` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pogo_jax.bench import merkle as bm
from pogo_jax.bench.common import RESULTS, command_line, device_info, write_json

INFO_KEYS = ("backend", "device_kind", "n_devices", "jax_version", "python", "host_cpu", "cpu_count")


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma list of tiny,small,124m,1b (default 124m,1b; --quick: tiny)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a CPU run")
    ap.add_argument("--unrolls", default=None, help="jnp unrolls to time (default 1,2,4,8; --quick: 4)")
    ap.add_argument("--leaves", type=int, default=None, help="leaves for the throughput runs")
    ap.add_argument("--impls", default=None, help="comma list of lowerings to time (default: all available)")
    ap.add_argument("--commit-impls", default="", help="also time commit with these lowerings (comma list)")
    ap.add_argument("--device-tree", action="store_true", help="also time the tree reduced on the device")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--targets", action="store_true", help="measure the CPU commit targets instead")
    ap.add_argument("--cli-leaves", type=int, default=32768, help="leaves of the .npz for --targets")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    out = Path(args.out)
    load = _loadavg()
    info = device_info()
    backend = info["backend"]
    res = {**{k: info[k] for k in INFO_KEYS}, "command": command_line("PYTHONPATH=. python scripts/bench_merkle.py"),
           "loadavg_before": load}
    if args.targets:
        res["cli_commit"] = bm.bench_cli_commit(args.cli_leaves, repeats=args.repeats or 3)
        res["host_scaling"] = bm.bench_host_scaling(repeats=args.repeats or 11)
        res["loadavg_after"] = _loadavg()
        write_json(out / f"commit_{backend}.json", res)
        (out / f"commit_{backend}.md").write_text(bm.markdown_targets(res))
        print(f"wrote {out / f'commit_{backend}.json'}")
        return 0

    from pogo_jax.commit import device

    sizes = (args.sizes or ("tiny" if args.quick else "124m,1b")).split(",")
    repeats = args.repeats or (3 if args.quick else 5)
    n_leaves = args.leaves or (1024 if args.quick else (8192 if backend == "cpu" else 262_144))
    unrolls = [int(u) for u in (args.unrolls or ("4" if args.quick else "1,2,4,8")).split(",")]
    impls = args.impls.split(",") if args.impls else None
    res["default_unroll"] = device.DEFAULT_UNROLL
    res["leaf_hashing"] = bm.bench_leaf_hashing(n_leaves, unrolls, repeats, impls=impls)
    res["copy"] = bm.bench_copy(n_leaves, repeats)
    commit_impls = [i for i in args.commit_impls.split(",") if i]
    trees = ("host", "device") if args.device_tree else ("host",)
    res["commit"] = [bm.bench_commit(s, repeats, trees=trees, impls=commit_impls) for s in sizes]
    res["host"] = bm.bench_host(args.quick)
    res["loadavg_after"] = _loadavg()
    print(json.dumps(res["host"]), flush=True)
    write_json(out / f"merkle_{backend}.json", dict(sorted(res.items())))
    (out / f"merkle_{backend}.md").write_text(bm.markdown(res))
    print(f"wrote {out / f'merkle_{backend}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
