"""Merkle-layer measurements: leaf hashing per lowering, a device copy beside it, end-to-end commit,
``pogo commit`` as a whole process, host thread scaling, host SHA-256 and proof checks.

Leaf-hash throughput is leaf bytes per second in steady state (median of repeats after a first
call, which includes compilation and is reported separately). Device lowerings are timed twice:
on the device alone (``sharded.run``) and end to end through ``hasher.leaf_hashes``, which also
brings the 32-byte digests to the host in leaf order. The memory-bound limit beside them is a
device-to-device copy of the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.bench.common import REPO, host_time, timed
from pogo_jax.commit import host_hash
from pogo_jax.commit.sha256_np import digest_words
from pogo_jax.config import load_config
from pogo_jax.errors import UserError
from pogo_jax.spec import merkle as mh
from pogo_jax.spec.merkle import Opening, verify_openings

NUMPY_MAX_LEAVES = 1024  # the numpy lowering runs at tens of MB/s: a few MiB is enough to time it


def model_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of tiny, small, 124m (gpt2-124m) or 1b (GPT-3 XL dimensions)."""
    from pogo_jax.train.model import param_shapes

    if size in ("tiny", "small", "124m"):
        cfg = load_config(REPO / "configs" / ("gpt2-124m.toml" if size == "124m" else f"{size}.toml")).model
    elif size == "1b":  # GPT-2-style 1.3B (GPT-3 XL dimensions)
        base = load_config(REPO / "configs" / "gpt2-124m.toml").model
        cfg = dataclasses.replace(base, n_layers=24, d_model=2048, d_ff=8192, n_heads=16)
    else:
        raise UserError(f"unknown size {size!r}: use tiny, small, 124m or 1b")
    return param_shapes(cfg)


def _gbps(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e9, 4)


def _row(impl: str, n: int, leaf_bytes: int, first: float, times: list[float], **extra: Any) -> dict[str, Any]:
    med = statistics.median(times)
    return {"impl": impl, "n_leaves": n, "leaf_bytes": leaf_bytes, "first_call_s": round(first, 4),
            "seconds": round(med, 6), "GBps": _gbps(n * leaf_bytes, med), **extra}


def bench_leaf_hashing(n_leaves: int, unrolls: list[int], repeats: int, variants: bool = True,
                       impls: list[str] | None = None, leaf_words: int = 1024) -> list[dict]:
    """GB/s of leaf hashing on ``n_leaves`` random leaves of ``leaf_words`` words, one row per lowering.

    Row 0 is the lowering ``impl="auto"`` picks for device arrays here (what ``pogo bench`` reports);
    with ``variants`` every lowering in ``impls`` (default: all available) follows: jnp per unroll,
    hashlib on one thread and on every core, numpy on at most ``NUMPY_MAX_LEAVES`` leaves.
    """
    import jax
    import jax.numpy as jnp

    from pogo_jax.commit import device, hasher, host_hash, sharded

    x = jax.random.bits(jax.random.key(0), (n_leaves, leaf_words), jnp.uint32)
    host = np.asarray(x)
    nbytes = 4 * leaf_words
    auto = hasher.resolve_impl([x])
    todo = [auto] if not variants else [i for i in (impls or hasher.available_impls()) if i in hasher.IMPLS]
    if auto in todo:
        todo.remove(auto)
    todo.insert(0, auto)
    rows = []
    segs = [sharded.Segment(x, leaf_words, 0, n_leaves)]
    jobs = host_hash.array_jobs(host, leaf_words, 0)
    for impl in todo:
        if impl in sharded.DEVICE_IMPLS:
            mine = []
            for u in (unrolls if impl == "jnp" else [None]):
                kw = {} if u is None else {"unroll": u}
                first, times = timed(lambda impl=impl, kw=kw: sharded.run(segs, mh.TAG_PARAM, impl, **kw), repeats)
                mine.append(_row(impl, n_leaves, nbytes, first, times, unroll=u, threads=None))
            # end to end (digests to the host in leaf order) with the default unroll, after every
            # device-only timing so that no first call above found its program compiled already
            _, e2e = timed(lambda impl=impl: hasher.leaf_hashes(x, mh.TAG_PARAM, impl=impl), repeats)
            for r in mine:
                if r["unroll"] in (None, device.DEFAULT_UNROLL):
                    r["end_to_end_GBps"] = _gbps(n_leaves * nbytes, statistics.median(e2e))
            rows += mine
        elif impl == "hashlib":
            for threads in (None, 1):
                fn = lambda t=threads: host_hash.hash_jobs(jobs, mh.TAG_PARAM, "hashlib", threads=t)  # noqa: E731
                first, times = timed(fn, repeats)
                rows.append(_row("hashlib", n_leaves, nbytes, first, times, unroll=None,
                                 threads=threads or host_hash.cpu_count()))
        elif impl == "numpy":
            m = min(n_leaves, NUMPY_MAX_LEAVES)
            first, times = timed(lambda m=m: hasher.leaf_hashes(host[:m], mh.TAG_PARAM, impl="numpy"), repeats)
            rows.append(_row("numpy", m, nbytes, first, times, unroll=None, threads=host_hash.cpu_count()))
    for r in rows:
        print(f"leaf hash {r['impl']:8s} unroll={r['unroll']} threads={r['threads']} {r['GBps']:9.3f} GB/s "
              f"(first call {r['first_call_s']}s)", flush=True)
    return rows


def bench_copy(n_leaves: int, repeats: int, leaf_words: int = 1024) -> dict[str, Any]:
    """A device-to-device copy of the same bytes: the memory-bound limit beside the hashers.

    ``GBps`` is bytes copied per second (the traffic is twice that: each byte is read and written);
    a hasher reads each byte once, so its memory-bound ceiling is about ``2 * GBps``.
    """
    import jax
    import jax.numpy as jnp

    x = jax.random.bits(jax.random.key(1), (n_leaves, leaf_words), jnp.uint32)
    copy = jax.jit(jnp.copy)
    first, times = timed(lambda: copy(x), repeats)
    nbytes = 4 * n_leaves * leaf_words
    out = {"bytes": nbytes, "first_call_s": round(first, 4), "seconds": round(statistics.median(times), 6),
           "GBps": _gbps(nbytes, statistics.median(times))}
    print(f"device copy {out['GBps']:9.3f} GB/s of {nbytes / 2**30:.3f} GiB", flush=True)
    return out


def random_params(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, Any]:
    """Random normal float32 device arrays with the given shapes (a stand-in state to commit)."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {k: jax.random.normal(kk, s, jnp.float32) for kk, (k, s) in zip(keys, shapes.items(), strict=True)}


def bench_commit(size: str, repeats: int, shapes: dict[str, tuple[int, ...]] | None = None,
                 trees: tuple[str, ...] = ("host",), impls: list[str] | None = None) -> dict:
    """End-to-end ``merkle.commit`` of a random device state with the ``auto`` lowering (key
    ``host_tree``: the tree is built on the host from the digests), its parts, and other lowerings."""
    import jax.numpy as jnp

    from pogo_jax.commit import device, hasher, merkle

    shapes = model_shapes(size) if shapes is None else shapes
    params = random_params(shapes)
    n_params = sum(int(np.prod(s)) for s in shapes.values())
    out: dict[str, Any] = {"size": size, "n_params": n_params, "n_tensors": len(shapes),
                           "impl": hasher.resolve_impl(list(params.values()))}
    first, times = timed(lambda: merkle.commit(params).root, repeats)
    out["host_tree"] = {"first_call_s": round(first, 3), "seconds": round(statistics.median(times), 4)}
    c = merkle.commit(params)
    out["n_leaves"] = c.n_leaves
    _, t_leaf = timed(lambda: hasher.param_leaf_hashes(params, c.layout), repeats)
    out["leaf_hashes_s"] = round(statistics.median(t_leaf), 4)
    out["leaf_hashes_GBps"] = _gbps(4 * n_params, statistics.median(t_leaf))
    out["tree_s"] = round(host_time(lambda: merkle.Commitment.from_digests(c.digests, c.tag, c.layout), repeats), 4)
    if "device" in trees:
        words = jnp.asarray(np.stack([digest_words(bytes(d)) for d in c.digests]))
        first, times = timed(lambda: device.tree_root(words), repeats)
        out["device_tree"] = {"first_call_s": round(first, 3), "seconds": round(statistics.median(times), 4)}
    out["impls"] = {}
    for impl in impls or []:
        first, times = timed(lambda impl=impl: merkle.commit(params, impl=impl).root, repeats)
        out["impls"][impl] = {"first_call_s": round(first, 3), "seconds": round(statistics.median(times), 4)}
    extra = ", ".join(f"{k} {v['seconds']}s" for k, v in out["impls"].items())
    print(f"commit {size}: {n_params / 1e6:.1f}M params, {c.n_leaves} leaves, {out['impl']} "
          f"{out['host_tree']['seconds']}s (first {out['host_tree']['first_call_s']}s) {extra}", flush=True)
    return out


# ---------------------------------------------------------------- CPU targets: whole process, thread scaling

CLI = "from pogo_jax.cli import main; raise SystemExit(main())"
JNP_COMMIT = (  # the lowering the default path used before: jax device arrays, jnp leaf hashing
    "import sys, json, numpy as np, jax.numpy as jnp\n"
    "from pogo_jax.commit import merkle\n"
    "z = np.load(sys.argv[1], allow_pickle=False)\n"
    "c = merkle.commit({k: jnp.asarray(z[k]) for k in z.files}, impl='jnp')\n"
    "print(json.dumps({'root': c.root.hex()}))\n"
)


def write_state_npz(path: Path, n_leaves: int, seed: int = 0) -> dict[str, Any]:
    """A float32 .npz of ``n_leaves`` 1024-value leaves: layers of (1024, 2048) + (2048, 1024)
    kernels (4096 leaves a layer), or one (n_leaves, 1024) tensor below a layer's worth."""
    rng = np.random.default_rng(seed)
    if n_leaves >= 4096 and n_leaves % 4096 == 0:
        arrays = {}
        for i in range(n_leaves // 4096):
            arrays[f"layers/{i}/w1"] = rng.standard_normal((1024, 2048), dtype=np.float32)
            arrays[f"layers/{i}/w2"] = rng.standard_normal((2048, 1024), dtype=np.float32)
    else:
        arrays = {"w": rng.standard_normal((n_leaves, 1024), dtype=np.float32)}
    np.savez(path, **arrays)
    return {"n_params": sum(a.size for a in arrays.values()), "n_leaves": n_leaves, "n_tensors": len(arrays),
            "bytes": path.stat().st_size}


def _run_json(cmd: list[str]) -> tuple[float, dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(f"{cmd[-2:]} exited {out.returncode}: {out.stderr[-2000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def bench_cli_commit(n_leaves: int = 32768, repeats: int = 3, jnp_repeats: int = 1) -> dict[str, Any]:
    """``pogo commit FILE`` (default path) against ``pogo commit FILE --host``, whole processes, run
    alternately in one run on the same file; plus the jnp lowering on device arrays (the path the
    default took before) for context. Medians of ``repeats``."""
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="pogo-bench-commit-") as tmp:
        path = Path(tmp) / "state.npz"
        info = write_state_npz(path, n_leaves)
        variants = {"default": [py, "-c", CLI, "commit", str(path)],
                    "host": [py, "-c", CLI, "commit", str(path), "--host"],
                    "jnp_device_arrays": [py, "-c", JNP_COMMIT, str(path)]}
        runs: dict[str, list[float]] = {k: [] for k in variants}
        roots, impl = set(), None
        for r in range(repeats):
            for name, cmd in variants.items():
                if name == "jnp_device_arrays" and r >= jnp_repeats:
                    continue
                wall, out = _run_json(cmd)
                runs[name].append(round(wall, 3))
                roots.add(out["root"])
                impl = out.get("impl", impl) if name == "default" else impl
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    res = {"file": info, "default_impl": impl, "runs_s": runs, "median_s": med,
           "default_over_host": round(med["default"] / med["host"], 3), "roots_agree": len(roots) == 1,
           "commands": {"default": "pogo commit FILE", "host": "pogo commit FILE --host",
                        "jnp_device_arrays": "python -c '<commit(jnp.asarray arrays, impl=\"jnp\")>' FILE"}}
    print(f"pogo commit ({n_leaves} leaves): default {med['default']:.3f}s ({impl}), --host {med['host']:.3f}s, "
          f"jnp on device arrays {med.get('jnp_device_arrays', float('nan')):.3f}s", flush=True)
    return res


_WORKER = (  # one process: its own random leaves, hashed by the one-thread hashlib loop from a shared start time
    "import sys, time, numpy as np\n"
    "from pogo_jax.commit import host_hash\n"
    "n, start = int(sys.argv[1]), float(sys.argv[2])\n"
    "rows = np.random.default_rng(n).integers(0, 2**32, size=(n, 1024), dtype=np.uint32)\n"
    "jobs = host_hash.array_jobs(rows, 1024, 0)\n"
    "host_hash.hash_jobs(jobs[:1], b'x', 'hashlib', threads=1)\n"
    "time.sleep(max(0.0, start - time.time()))\n"
    "t = time.time()\n"
    "host_hash.hash_jobs(jobs, b'x', 'hashlib', threads=1)\n"
    "print(time.time() - t)\n"
)


def _process_ceiling(n_leaves: int, procs: int) -> dict[str, Any]:
    """The same one-thread loop in ``procs`` separate processes at once (no GIL between them) against
    one process alone: what two cores of this machine give to any parallel hashlib scheme."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))

    def wave(k: int, n: int) -> float:
        start = time.time() + 2.0  # every worker has imported and generated its leaves by then
        ps = [subprocess.Popen([sys.executable, "-c", _WORKER, str(n), str(start)], stdout=subprocess.PIPE,
                               text=True, env=env) for _ in range(k)]
        return max(float(p.communicate(timeout=300)[0]) for p in ps)

    solo = min(wave(1, n_leaves) for _ in range(2))
    together = min(wave(procs, n_leaves) for _ in range(2))
    return {"processes": procs, "leaves_each": n_leaves, "one_process_s": round(solo, 4),
            "all_processes_s": round(together, 4), "speedup": round(procs * solo / together, 3)}


def host_scaling(n_leaves: int = 32768, repeats: int = 11) -> dict[str, Any]:
    """hashlib over 4 KiB leaves in this process: the spec's one-core loop, then the hashlib lowering
    on one thread, a thread pool, forked processes, and ``auto``, run alternately; medians."""

    rows = np.random.default_rng(0).integers(0, 2**32, size=(n_leaves, 1024), dtype=np.uint32)
    jobs = host_hash.array_jobs(rows, 1024, 0)
    hj = host_hash.hash_jobs
    fns = {"spec_reference_one_core": lambda: mh.leaf_hashes(mh.TAG_PARAM, rows),
           "hashlib_one_thread": lambda: hj(jobs, mh.TAG_PARAM, "hashlib", mode="serial"),
           "hashlib_threads": lambda: hj(jobs, mh.TAG_PARAM, "hashlib", mode="threads"),
           "hashlib_processes": lambda: hj(jobs, mh.TAG_PARAM, "hashlib", mode="processes"),
           "hashlib_auto": lambda: hj(jobs, mh.TAG_PARAM, "hashlib")}
    want = np.frombuffer(b"".join(fns["spec_reference_one_core"]()), np.uint8).reshape(-1, 32)
    for name, fn in list(fns.items())[1:]:  # warm (page in the leaves, start the pool) and check the bits
        if not np.array_equal(fn()[1], want):
            raise AssertionError(f"{name} digests differ from the spec reference")
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    one = med["hashlib_one_thread"]
    # the same ratio per repeat (one thread and auto a few ms apart), robust to a host that drifts
    paired = statistics.median(a / b for a, b in zip(times["hashlib_one_thread"], times["hashlib_auto"], strict=True))
    return {"n_leaves": n_leaves, "cpus": host_hash.cpu_count(), "repeats": repeats,
            "jax_imported": "jax" in sys.modules, "fork_is_safe": host_hash.fork_is_safe(),
            "GBps": {k: _gbps(4096 * n_leaves, v) for k, v in med.items()},
            "speedup_vs_one_hashlib_thread": {k: round(one / med[k], 3) for k in
                                              ("hashlib_threads", "hashlib_processes", "hashlib_auto")},
            "paired_speedup_auto": round(paired, 3),
            "speedup_auto_vs_spec_reference": round(med["spec_reference_one_core"] / med["hashlib_auto"], 3)}


def bench_host_scaling(n_leaves: int = 32768, repeats: int = 11) -> dict[str, Any]:
    """``host_scaling`` in a fresh process that has not imported jax (as ``pogo commit FILE.npz`` runs),
    plus the machine's ceiling: independent processes at once."""

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    code = ("import json; from pogo_jax.bench.merkle import host_scaling; "
            f"print(json.dumps(host_scaling({int(n_leaves)}, {int(repeats)})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode:
        raise RuntimeError(f"host scaling run failed: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_ceiling"] = _process_ceiling(n_leaves, res["cpus"])
    print(f"host hashing {res['GBps']}, vs one thread {res['speedup_vs_one_hashlib_thread']}, "
          f"ceiling x{res['process_ceiling']['speedup']}", flush=True)
    return res


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


# ---------------------------------------------------------------- markdown


def markdown(res: dict) -> str:
    """The merkle_<backend>.md table of a ``scripts/bench_merkle.py`` result."""
    lines = [
        f"# Merkle benchmark ({res['backend']}, {res['device_kind']})",
        "",
        f"Command: `{res['command']}`  ",
        f"jax {res['jax_version']}, {res['host_cpu']}, {res['cpu_count']} CPUs",
        "",
        "## Leaf hashing (random leaves; row 1 is what `auto` picks for device arrays here)",
        "",
        "| lowering | unroll | threads | leaves | leaf bytes | first call s | steady s | GB/s | end-to-end GB/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["leaf_hashing"]:
        lines.append(f"| {r['impl']} | {r['unroll']} | {r['threads']} | {r['n_leaves']} | {r['leaf_bytes']} | "
                     f"{r['first_call_s']} | {r['seconds']} | {r['GBps']} | {r.get('end_to_end_GBps', '')} |")
    cp = res.get("copy")
    if cp:
        lines += ["", f"Device-to-device copy of {cp['bytes']} bytes: {cp['GBps']} GB/s copied "
                      f"({cp['seconds']} s; read + write, so about {2 * cp['GBps']:.1f} GB/s of traffic)."]
    lines += [
        "",
        "## End-to-end commit (random device state, `auto` lowering, tree on the host)",
        "",
        "| size | params | leaves | lowering | commit s (first call) | leaf hashes s (GB/s) | host tree s "
        "| device tree s (first call) | other lowerings: commit s (first call) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["commit"]:
        others = ", ".join(f"{k} {v['seconds']} ({v['first_call_s']})" for k, v in c.get("impls", {}).items())
        dt = c.get("device_tree")
        dev = f"{dt['seconds']} ({dt['first_call_s']})" if dt else ""
        lines.append(f"| {c['size']} | {c['n_params']} | {c['n_leaves']} | {c['impl']} | {c['host_tree']['seconds']} "
                     f"({c['host_tree']['first_call_s']}) | {c['leaf_hashes_s']} ({c['leaf_hashes_GBps']}) | "
                     f"{c['tree_s']} | {dev} | {others} |")
    h = res["host"]
    lines += ["", "## Host (one core)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in h.items()]
    return "\n".join(lines) + "\n"


def markdown_targets(res: dict) -> str:
    """The commit_<backend>.md table of ``scripts/bench_merkle.py --targets``."""
    cli, sc = res["cli_commit"], res["host_scaling"]
    m = cli["median_s"]
    lines = [
        f"# CPU commit targets ({res['backend']}, {res['host_cpu']}, {res['cpu_count']} CPUs)",
        "",
        f"Command: `{res['command']}`  ",
        f"jax {res['jax_version']}; load average before the run {res['loadavg_before']}",
        "",
        f"## (a) `pogo commit` of a {cli['file']['n_params']:,}-parameter .npz ({cli['file']['n_leaves']} leaves "
        "of 1024 float32), whole process",
        "",
        "| path | runs (s) | median s |",
        "|---|---|---|",
    ]
    names = {"default": f"`pogo commit FILE` (default: {cli['default_impl']})",
             "host": "`pogo commit FILE --host` (spec reference, one core)",
             "jnp_device_arrays": "jnp lowering on jax device arrays (the default before)"}
    for k, runs in cli["runs_s"].items():
        if runs:
            lines.append(f"| {names[k]} | {', '.join(str(r) for r in runs)} | {m[k]:.3f} |")
    sp = sc["speedup_vs_one_hashlib_thread"]
    pc = sc["process_ceiling"]
    lines += [
        "",
        f"default / --host = {cli['default_over_host']} (target: at most 1); roots agree: {cli['roots_agree']}.",
        "",
        f"## (b) hashlib over {sc['n_leaves']} leaves of 4 KiB on {sc['cpus']} CPUs (medians of {sc['repeats']}; "
        f"a process without jax, fork safe: {sc['fork_is_safe']})",
        "",
        "| path | GB/s | vs one hashlib thread |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v} | {sp.get(k, '')} |" for k, v in sc["GBps"].items()]
    lines += ["", f"`auto` / one hashlib thread = x{sp['hashlib_auto']} (target: x1.8; the median of the per-repeat "
                  f"ratios: x{sc.get('paired_speedup_auto', '-')}); `auto` / the spec's one-core "
                  f"loop = x{sc['speedup_auto_vs_spec_reference']}.",
              "", f"Ceiling of the machine: the one-thread loop in {pc['processes']} independent processes at once "
                  f"({pc['leaves_each']} leaves each) ran x{pc['speedup']} of one process alone "
                  f"({pc['one_process_s']} s alone, {pc['all_processes_s']} s together)."]
    return "\n".join(lines) + "\n"
