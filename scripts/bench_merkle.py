"""Benchmark the Merkle layer: device leaf hashing, end-to-end commit, host hashing and proof checks.

  PYTHONPATH=. python scripts/bench_merkle.py [--sizes 124m,1b] [--quick] [--unrolls 1,2,4,8]

Writes benchmarks/results/merkle_<backend>.json (with device kind, jax version and the command)
and a markdown table merkle_<backend>.md. A thin entry point: the measurements are
``pogo_jax.bench.merkle`` (the same code ``pogo bench`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pogo_jax.bench import merkle as bm
from pogo_jax.bench.common import RESULTS, command_line, device_info, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma list of tiny,small,124m,1b (default 124m,1b; --quick: tiny)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a CPU run")
    ap.add_argument("--unrolls", default="1,2,4,8")
    ap.add_argument("--leaves", type=int, default=None, help="leaves for the throughput runs")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    sizes = (args.sizes or ("tiny" if args.quick else "124m,1b")).split(",")
    repeats = args.repeats or (3 if args.quick else 10)
    n_leaves = args.leaves or (1024 if args.quick else 121_600)
    unrolls = [int(u) for u in args.unrolls.split(",")]

    from pogo_jax.commit import device

    info = device_info()
    res = {
        **{k: info[k] for k in ("backend", "device_kind", "n_devices", "jax_version", "python", "host_cpu",
                                "cpu_count")},
        "command": command_line("PYTHONPATH=. python scripts/bench_merkle.py"),
        "cuda_ceiling_GBps": bm.CUDA_CEILING_GBS,
        "default_unroll": device.DEFAULT_UNROLL,
    }
    res["leaf_hashing"] = bm.bench_leaf_hashing(n_leaves, unrolls, repeats)
    res["pallas"] = bm.bench_pallas(n_leaves, repeats)
    res["commit"] = [bm.bench_commit(s, repeats) for s in sizes]
    res["host"] = bm.bench_host(args.quick)
    print(json.dumps(res["host"]), flush=True)
    out = Path(args.out)
    backend = res["backend"]
    write_json(out / f"merkle_{backend}.json", dict(sorted(res.items())))
    (out / f"merkle_{backend}.md").write_text(bm.markdown(res))
    print(f"wrote {out / f'merkle_{backend}.json'}")


if __name__ == "__main__":
    sys.exit(main())
