"""Scaling study: commitment time, proof size and light-verification time versus parameter count.

Expectations from the protocol: commitment hashes every byte once (linear in N), a proof holds
k leaves plus k audit paths of depth ceil(log2(N/S)) (logarithmic), and the light verifier does
k leaf hashes, 3k paths and k bit-exact applies (flat up to that log term). Each size is a random
state (one tensor whose length is not a multiple of S, so the last leaf is padded, plus a small
odd tensor), a random 4-bit update from the real quantizer, three real device commitments, a
signed header, real openings and a real ``verify_light`` on the parsed bundle bytes.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from typing import Any

import numpy as np

from pogo_jax.bench.common import host_time, median_time
from pogo_jax.bench.costs import proof_bytes, tree_depth
from pogo_jax.plotting import save_png
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.challenge import challenge_leaves
from pogo_jax.spec.header import Header, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.light import verify_light
from pogo_jax.spec.merkle import TAG_QUPD

DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000, 100_000_000)
QUICK_SIZES = (100_000, 1_000_000)


def shapes_for(n: int) -> dict[str, tuple[int, ...]]:
    rows = max(1, (n - 777) // 1000)
    return {"w": (rows, 1000), "z": (777,)}


def measure_size(n: int, k: int = 64, repeats: int = 3) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from pogo_jax.commit import merkle, quant

    shapes = shapes_for(n)
    layout = Layout.from_shapes(shapes)
    keys = jax.random.split(jax.random.key(n % (2**31)), 2 * len(shapes) + 1)
    prev = {p: quant.flush(jax.random.normal(keys[i], s, jnp.float32)) for i, (p, s) in enumerate(shapes.items())}
    delta = {p: 1e-3 * jax.random.normal(keys[len(shapes) + i], s, jnp.float32)
             for i, (p, s) in enumerate(shapes.items())}
    q, _ = quant.quantize(delta, keys[-1], layout)
    nxt = quant.apply_update(prev, q, layout)
    packed = quant.pack_update(q, layout)
    del delta

    t0 = time.perf_counter()
    c_prev = merkle.commit(prev)
    commit_first = time.perf_counter() - t0
    commit_s = median_time(lambda: merkle.commit(prev).root, repeats)
    c_next = merkle.commit(nxt)
    c_q = merkle.commit_leaves(packed, TAG_QUPD, layout)

    key = key_from_seed(b"\x07" * 32)
    chain_id = hashlib.sha256(b"pogo-scaling").hexdigest()  # a chain id is a genesis hash; none exists here
    header = Header(version=3, chain_id=chain_id, height=1, round=1, parent_hash=bytes(32),
                    miner_key=public_bytes(key), layout_hash=layout.layout_hash(), data_root=bytes(32),
                    root_prev=c_prev.root, root_next=c_next.root, root_q=c_q.root, leaf_size=layout.leaf_size,
                    group_size=layout.group_size, n_leaves=layout.n_leaves, train={})
    signed = sign_header(header, key)
    beacon = bytes(range(32))
    idx = list(challenge_leaves(signed.hash, beacon, layout.n_leaves, k))
    t0 = time.perf_counter()
    o_prev, o_next, o_q = merkle.open(prev, c_prev, idx), merkle.open(nxt, c_next, idx), merkle.open(packed, c_q, idx)
    open_s = time.perf_counter() - t0
    openings = tuple(LeafOpening(i, a.leaf, b.leaf, c.leaf, tuple(a.path), tuple(b.path), tuple(c.path))
                     for i, a, b, c in zip(idx, o_prev, o_next, o_q, strict=True))
    bundle = Bundle(signed, beacon, layout, openings, (0,), 2.0, 1.0).signed(key)
    data = bundle.to_bytes()
    res = verify_light(Bundle.from_bytes(data), None, k)  # the offline check: no chain context
    if not res.accept:
        raise RuntimeError(f"scaling study: light verification rejected an honest bundle ({res.reason}: {res.detail})")
    light_s = host_time(lambda: verify_light(Bundle.from_bytes(data), None, k), 10)
    light_verify_only_s = host_time(lambda: verify_light(bundle, None, k), 10)
    out = {
        "n_params": layout.n_values,
        "n_leaves": layout.n_leaves,
        "tree_depth": tree_depth(layout.n_leaves),
        "k": len(idx),
        "commit_s": commit_s,
        "commit_first_call_s": commit_first,
        "commit_GBps": 4 * layout.n_values / commit_s / 1e9,
        "open_3_trees_s": open_s,
        "bundle_bytes": len(data),
        "proof_bytes_binary": proof_bytes(k, layout.n_leaves),
        "light_verify_s": light_s,
        "light_verify_without_parse_s": light_verify_only_s,
    }
    print(f"  {layout.n_values:>12,} params: commit {commit_s:.4f}s, bundle {len(data):,} B, "
          f"light {light_s * 1e3:.1f} ms", flush=True)
    return out


def run_scaling(sizes: tuple[int, ...] = DEFAULT_SIZES, k: int = 64) -> dict[str, Any]:
    rows = [measure_size(n, k) for n in sizes]
    x = np.log([r["n_params"] for r in rows])
    slope = {key: float(np.polyfit(x, np.log([r[key] for r in rows]), 1)[0]) for key in
             ("commit_s", "bundle_bytes", "light_verify_s")} if len(rows) >= 2 else {}
    return {"k": k, "sizes": rows, "loglog_slopes": slope,
            "light_verify_spread": max(r["light_verify_s"] for r in rows) / min(r["light_verify_s"] for r in rows),
            "median_light_verify_s": statistics.median(r["light_verify_s"] for r in rows)}


def plot_scaling(study: dict[str, Any], path) -> Any:  # noqa: ANN001 - str | Path
    """Three log-log panels of measured points: commit time, proof bytes, light-verify time."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = study["sizes"]
    n = [r["n_params"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120)
    try:
        panels = [("commit_s", "commitment time (s)", "expect linear"),
                  ("bundle_bytes", f"proof bundle bytes (k={study['k']})", "expect log"),
                  ("light_verify_s", "light verification (s, one core)", "expect flat")]
        for ax, (key, label, expect) in zip(axes, panels, strict=True):
            ax.plot(n, [r[key] for r in rows], "o-", label="measured")
            if key == "commit_s":
                ax.plot(n, [rows[0][key] * x / n[0] for x in n], ":", label="linear through first point")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("parameters")
            ax.set_title(f"{label}\n({expect}; log-log slope {study['loglog_slopes'].get(key, float('nan')):.2f})",
                         fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        return save_png(fig, path)
    finally:
        plt.close(fig)
