"""Merkle-layer measurements: device leaf hashing, end-to-end commit, host SHA-256 and proof checks.

Leaf-hash throughput is parameter bytes per second in steady state (median of repeats after a
compile, compile timed separately). The Pallas path is reported when it exists, as a fraction of
the 710 GB/s measured for a plain CUDA kernel on the H100.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from typing import Any

import numpy as np

from pogo_jax.bench.common import REPO, timed
from pogo_jax.spec import merkle as mh
from pogo_jax.spec.merkle import Opening, verify_openings

CUDA_CEILING_GBS = 710.0


def model_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of tiny, small, 124m (gpt2-124m) or 1b (GPT-3 XL dimensions)."""
    from pogo_jax.config import load_config
    from pogo_jax.errors import UserError
    from pogo_jax.train.model import param_shapes

    if size in ("tiny", "small", "124m"):
        cfg = load_config(REPO / "configs" / ("gpt2-124m.toml" if size == "124m" else f"{size}.toml")).model
    elif size == "1b":  # GPT-2-style 1.3B (GPT-3 XL dimensions)
        base = load_config(REPO / "configs" / "gpt2-124m.toml").model
        cfg = dataclasses.replace(base, n_layers=24, d_model=2048, d_ff=8192, n_heads=16)
    else:
        raise UserError(f"unknown size {size!r}: use tiny, small, 124m or 1b")
    return param_shapes(cfg)


def bench_leaf_hashing(n_leaves: int, unrolls: list[int], repeats: int, variants: bool = True) -> list[dict]:
    """Steady-state GB/s of the device leaf hasher on random 4 KiB leaves, per unroll (and variant)."""
    import jax
    import jax.numpy as jnp

    from pogo_jax.commit import device

    words = jax.random.bits(jax.random.key(0), (n_leaves, 1024), jnp.uint32)
    nbytes = n_leaves * 4096
    rows = []
    todo = [("window", u) for u in unrolls] + ([("schedule", unrolls[0])] if variants else [])
    for variant, u in todo:
        prefix = tuple(int(x) for x in device.header_prefix_words(mh.TAG_PARAM))
        lo, hi = device._split_index(0)
        t = time.perf_counter()
        compiled = device._leaf_hashes_jit.lower(words, lo, hi, prefix, u, variant).compile()
        compile_s = time.perf_counter() - t
        _, times = timed(lambda c=compiled, lo=lo, hi=hi: c(words, lo, hi), repeats)
        med = statistics.median(times)
        rows.append({"variant": variant, "unroll": u, "n_leaves": n_leaves, "compile_s": round(compile_s, 3),
                     "seconds": round(med, 5), "GBps": round(nbytes / med / 1e9, 3)})
        print(f"leaf hash {variant:8s} unroll={u:<2d} {rows[-1]['GBps']:8.3f} GB/s  compile {compile_s:.2f}s",
              flush=True)
    return rows


def bench_pallas(n_leaves: int, repeats: int) -> dict | None:
    import jax
    import jax.numpy as jnp

    from pogo_jax.commit import device

    try:
        from pogo_jax.commit import pallas_sha256  # optional fast path
    except ImportError:
        return None
    if jax.default_backend() == "cpu":  # interpret mode only: checked in tests, not worth timing
        return {"skipped": "Pallas runs in interpret mode on CPU; bits checked in tests/test_merkle.py"}
    words = jax.random.bits(jax.random.key(0), (n_leaves, 1024), jnp.uint32)
    ref = device.leaf_hashes(words, mh.TAG_PARAM)
    first, times = timed(lambda: pallas_sha256.leaf_hashes(words, mh.TAG_PARAM), repeats)
    same = bool(jnp.array_equal(pallas_sha256.leaf_hashes(words, mh.TAG_PARAM), ref))
    gbs = n_leaves * 4096 / statistics.median(times) / 1e9
    return {"n_leaves": n_leaves, "first_call_s": round(first, 3), "GBps": round(gbs, 3),
            "fraction_of_cuda_ceiling": round(gbs / CUDA_CEILING_GBS, 4), "bits_identical": same}


def random_params(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, Any]:
    """Random normal float32 device arrays with the given shapes (a stand-in state to commit)."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {k: jax.random.normal(kk, s, jnp.float32) for kk, (k, s) in zip(keys, shapes.items(), strict=True)}


def bench_commit(size: str, repeats: int, shapes: dict[str, tuple[int, ...]] | None = None,
                 trees: tuple[str, ...] = ("host", "device")) -> dict:
    """End-to-end ``merkle.commit`` of a random state: host and device tree reduction, leaf hashing alone."""
    from pogo_jax.commit import device, merkle

    shapes = model_shapes(size) if shapes is None else shapes
    params = random_params(shapes)
    n_params = sum(int(np.prod(s)) for s in shapes.values())
    out: dict[str, Any] = {"size": size, "n_params": n_params, "n_tensors": len(shapes)}
    for tree in trees:
        first, times = timed(lambda t=tree: merkle.commit(params, tree=t).root, repeats)
        out[f"{tree}_tree"] = {"first_call_s": round(first, 3), "seconds": round(statistics.median(times), 4)}
    c = merkle.commit(params)
    out["n_leaves"] = c.n_leaves
    _, t_leaf = timed(lambda: device.param_leaf_hashes(params, c.layout, mh.TAG_PARAM), repeats)
    out["leaf_hashes_s"] = round(statistics.median(t_leaf), 4)
    out["leaf_hashes_GBps"] = round(4 * n_params / statistics.median(t_leaf) / 1e9, 3)
    tree_txt = ", ".join(f"{t} tree {out[f'{t}_tree']['seconds']}s (first {out[f'{t}_tree']['first_call_s']}s)"
                         for t in trees)
    print(f"commit {size}: {n_params / 1e6:.1f}M params, {tree_txt}", flush=True)
    return out


def bench_host(quick: bool) -> dict:
    """One host core: SHA-256 of 4 KiB leaves, tree building, audit-path and opening checks."""
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
    assert mh.verify_inclusions(root, items, n_leaves)
    batched = k / (time.perf_counter() - t)
    t = time.perf_counter()
    for h, i, p in items[: k // 4]:
        assert mh.verify_inclusion(root, h, i, n_leaves, p)
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
    """The merkle_<backend>.md table of a ``scripts/bench_merkle.py`` result."""
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
