"""Benchmark the Merkle layer: device leaf hashing, end-to-end commit, host hashing and proof checks.

  PYTHONPATH=. python scripts/bench_merkle.py [--sizes 124m,1b] [--quick] [--unrolls 1,2,4,8]

Writes benchmarks/results/merkle_<backend>.json (with device kind, jax version and the command)
and a markdown table merkle_<backend>.md. Leaf-hash throughput is parameter bytes per second in
steady state (median of repeats after a compile, compile timed separately). The Pallas path is
reported when ``pogo_jax.merkle.pallas_sha256`` exists, as a fraction of the 710 GB/s measured
for a plain CUDA kernel on the H100.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pogo_jax import merkle
from pogo_jax.merkle import device
from pogo_jax.verifier import merkle_host as mh
from pogo_jax.verifier.openings import Opening, verify_openings, verify_paths

CUDA_CEILING_GBS = 710.0
REPO = Path(__file__).resolve().parent.parent


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    """(first-call seconds, steady-state seconds per repeat)."""
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return first, times


def model_shapes(size: str) -> dict[str, tuple[int, ...]]:
    from pogo_jax.config import load_config
    from pogo_jax.model import param_shapes

    if size in ("tiny", "small", "124m"):
        cfg = load_config(REPO / "configs" / ("gpt2-124m.toml" if size == "124m" else f"{size}.toml")).model
    elif size == "1b":  # GPT-2-style 1.3B (GPT-3 XL dimensions)
        base = load_config(REPO / "configs" / "gpt2-124m.toml").model
        cfg = dataclasses.replace(base, n_layers=24, d_model=2048, d_ff=8192, n_heads=16)
    else:
        raise SystemExit(f"unknown size {size!r}: use tiny, small, 124m or 1b")
    return param_shapes(cfg)


def bench_leaf_hashing(n_leaves: int, unrolls: list[int], repeats: int) -> list[dict]:
    words = jax.random.bits(jax.random.key(0), (n_leaves, 1024), jnp.uint32)
    nbytes = n_leaves * 4096
    rows = []
    variants = [("window", u) for u in unrolls] + [("schedule", unrolls[0])]
    for variant, u in variants:
        prefix = tuple(int(x) for x in device.header_prefix_words(mh.TAG_PARAM))
        lo, hi = device._split_index(0)
        t = time.perf_counter()
        compiled = device._leaf_hashes_jit.lower(words, lo, hi, prefix, u, variant).compile()
        compile_s = time.perf_counter() - t
        _, times = timed(lambda c=compiled, lo=lo, hi=hi: c(words, lo, hi), repeats)
        med = statistics.median(times)
        rows.append(
            {
                "variant": variant,
                "unroll": u,
                "n_leaves": n_leaves,
                "compile_s": round(compile_s, 3),
                "seconds": round(med, 5),
                "GBps": round(nbytes / med / 1e9, 3),
            }
        )
        print(
            f"leaf hash {variant:8s} unroll={u:<2d} {rows[-1]['GBps']:8.3f} GB/s  compile {compile_s:.2f}s",
            flush=True,
        )
    return rows


def bench_pallas(n_leaves: int, repeats: int) -> dict | None:
    try:
        from pogo_jax.merkle import pallas_sha256  # optional fast path
    except ImportError:
        return None
    if jax.default_backend() == "cpu":  # interpret mode only: checked in tests, not worth timing
        return {"skipped": "Pallas runs in interpret mode on CPU; bits checked in tests/test_merkle.py"}
    words = jax.random.bits(jax.random.key(0), (n_leaves, 1024), jnp.uint32)
    ref = device.leaf_hashes(words, mh.TAG_PARAM)
    first, times = timed(lambda: pallas_sha256.leaf_hashes(words, mh.TAG_PARAM), repeats)
    same = bool(jnp.array_equal(pallas_sha256.leaf_hashes(words, mh.TAG_PARAM), ref))
    gbs = n_leaves * 4096 / statistics.median(times) / 1e9
    return {
        "n_leaves": n_leaves,
        "first_call_s": round(first, 3),
        "GBps": round(gbs, 3),
        "fraction_of_cuda_ceiling": round(gbs / CUDA_CEILING_GBS, 4),
        "bits_identical": same,
    }


def bench_commit(size: str, repeats: int) -> dict:
    shapes = model_shapes(size)
    keys = jax.random.split(jax.random.key(1), len(shapes))
    params = {k: jax.random.normal(kk, s, jnp.float32) for kk, (k, s) in zip(keys, shapes.items(), strict=True)}
    n_params = sum(int(np.prod(s)) for s in shapes.values())
    out = {"size": size, "n_params": n_params, "n_tensors": len(shapes)}
    for tree in ("host", "device"):
        first, times = timed(lambda t=tree: merkle.commit(params, tree=t).root, repeats)
        out[f"{tree}_tree"] = {"first_call_s": round(first, 3), "seconds": round(statistics.median(times), 4)}
    c = merkle.commit(params)
    out["n_leaves"] = c.n_leaves
    _, t_leaf = timed(lambda: device.param_leaf_hashes(params, c.layout, mh.TAG_PARAM), repeats)
    out["leaf_hashes_s"] = round(statistics.median(t_leaf), 4)
    out["leaf_hashes_GBps"] = round(4 * n_params / statistics.median(t_leaf) / 1e9, 3)
    print(
        f"commit {size}: {n_params / 1e6:.1f}M params, host tree {out['host_tree']['seconds']}s, device tree "
        f"{out['device_tree']['seconds']}s (first {out['device_tree']['first_call_s']}s)",
        flush=True,
    )
    return out


def bench_host(quick: bool) -> dict:
    rng = np.random.default_rng(0)
    leaf = rng.bytes(4096)
    n = 4000 if quick else 20000
    t = time.perf_counter()
    for i in range(n):
        h = hashlib.sha256(mh.leaf_header(mh.TAG_PARAM, i))
        h.update(leaf)
        h.digest()
    leaf_gbs = n * 4096 / (time.perf_counter() - t) / 1e9

    depth = 17
    n_leaves = 2**depth - 1000  # realistic: ~121k leaves of a 124M model has depth 17
    digests = [rng.bytes(32) for _ in range(n_leaves)]
    t = time.perf_counter()
    levels = mh.tree_levels(digests)
    tree_s = time.perf_counter() - t
    root = levels[-1][0]
    k = 2000 if quick else 20000
    idx = rng.choice(n_leaves, size=k, replace=False)
    items = [(digests[i], int(i), mh.audit_path(levels, int(i))) for i in idx]
    t = time.perf_counter()
    assert verify_paths(root, items, n_leaves)
    batched = k / (time.perf_counter() - t)
    t = time.perf_counter()
    for h, i, p in items[: k // 4]:
        assert mh.verify_path(root, h, i, n_leaves, p)
    single = (k // 4) / (time.perf_counter() - t)

    # full openings: 4 KiB leaf bytes hashed too (what a light verifier does per challenged leaf)
    m = 256 if quick else 2048
    leaves = {int(i): rng.bytes(4096) for i in idx[:m]}
    dig2 = list(digests)
    for i, b in leaves.items():
        dig2[i] = mh.leaf_hash(mh.TAG_PARAM, i, b)
    lv2 = mh.tree_levels(dig2)
    ops = [Opening(i, n_leaves, b, tuple(mh.audit_path(lv2, i))) for i, b in leaves.items()]
    t = time.perf_counter()
    assert verify_openings(lv2[-1][0], mh.TAG_PARAM, ops, n_leaves, 4096) == (True, "OK")
    openings_per_s = m / (time.perf_counter() - t)
    return {
        "sha256_4KiB_leaf_GBps_one_core": round(leaf_gbs, 3),
        "tree_levels_s": round(tree_s, 4),
        "tree_n_leaves": n_leaves,
        "node_hashes_per_s": round((n_leaves - 1) / tree_s),
        "path_depth": depth,
        "paths_checked": k,
        "path_verifications_per_s_batched": round(batched),
        "path_verifications_per_s_single": round(single),
        "openings_4KiB_verified_per_s": round(openings_per_s),
    }


def markdown(res: dict) -> str:
    lines = [
        f"# Merkle benchmark ({res['backend']}, {res['device_kind']})",
        "",
        f"Command: `{res['command']}`  ",
        f"jax {res['jax_version']}, {res['host_cpu']}",
        "",
        "## Device leaf hashing (4 KiB leaves)",
        "",
        "| variant | unroll | leaves | compile s | steady s | GB/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["leaf_hashing"]:
        lines.append(
            f"| {r['variant']} | {r['unroll']} | {r['n_leaves']} | {r['compile_s']} | {r['seconds']} | {r['GBps']} |"
        )
    p = res.get("pallas")
    lines += [
        "",
        f"Pallas path: {'absent' if p is None else p}",
        "",
        "## End-to-end commit",
        "",
        "| size | params | leaves | leaf hashes s (GB/s) | commit, host tree s | commit, device tree s (first call) |",
        "|---|---|---|---|---|---|",
    ]
    for c in res["commit"]:
        lines.append(
            f"| {c['size']} | {c['n_params']} | {c['n_leaves']} | {c['leaf_hashes_s']} "
            f"({c['leaf_hashes_GBps']}) | {c['host_tree']['seconds']} | {c['device_tree']['seconds']} "
            f"({c['device_tree']['first_call_s']}) |"
        )
    h = res["host"]
    lines += ["", "## Host (one core)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in h.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma list of tiny,small,124m,1b (default 124m,1b; --quick: tiny)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a CPU run")
    ap.add_argument("--unrolls", default="1,2,4,8")
    ap.add_argument("--leaves", type=int, default=None, help="leaves for the throughput runs")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()
    sizes = (args.sizes or ("tiny" if args.quick else "124m,1b")).split(",")
    repeats = args.repeats or (3 if args.quick else 10)
    n_leaves = args.leaves or (1024 if args.quick else 121_600)
    unrolls = [int(u) for u in args.unrolls.split(",")]
    backend = jax.default_backend()
    res = {
        "backend": backend,
        "device_kind": jax.devices()[0].device_kind,
        "n_devices": jax.device_count(),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "command": "PYTHONPATH=. python scripts/bench_merkle.py " + " ".join(sys.argv[1:]),
        "cuda_ceiling_GBps": CUDA_CEILING_GBS,
        "default_unroll": device.DEFAULT_UNROLL,
    }
    res["leaf_hashing"] = bench_leaf_hashing(n_leaves, unrolls, repeats)
    res["pallas"] = bench_pallas(n_leaves, repeats)
    res["commit"] = [bench_commit(s, repeats) for s in sizes]
    res["host"] = bench_host(args.quick)
    print(json.dumps(res["host"]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"merkle_{backend}.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    (out / f"merkle_{backend}.md").write_text(markdown(res))
    print(f"wrote {out / f'merkle_{backend}.json'}")


if __name__ == "__main__":
    main()
