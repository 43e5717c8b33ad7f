"""``pogo costs``: extrapolate measured per-unit costs to GPT-3 175B and Gemma 3 27B.

Exact quantities (from the config and PROTOCOL.md): parameter count, leaves, bytes of the 32-bit
model and of the 4-bit update, tree depth, binary bytes of a light proof for ``k`` leaves.
Extrapolated quantities (measured rates times counts; every assumption is returned with the
numbers, as text, and printed): miner time per block, commitment time, PoGO overhead, light and
full verification time, the verification/training ratios and the block length a loss target needs.

Imports no jax at module level; only ``model_layout`` builds the layout (via ``flax`` shapes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.bench.common import need, read_json, shown
from pogo_jax.config import load_config
from pogo_jax.errors import UserError
from pogo_jax.plotting import save_png
from pogo_jax.spec.layout import Layout

HASH_BYTES = 32
LARGE_MODELS = ("gpt3-175b", "gemma3-27b")


# ------------------------------------------------------------------------------ exact arithmetic


def tree_depth(n_leaves: int) -> int:
    """Audit-path length bound of an RFC 9162 tree over ``n_leaves``: ceil(log2 n) (0 for one leaf)."""
    if n_leaves < 1:
        raise ValueError("a tree needs at least one leaf")
    return (n_leaves - 1).bit_length()


def update_leaf_bytes(leaf_size: int, group_size: int) -> int:
    """S/G exponent bytes + S/2 code bytes (PROTOCOL 3): 528 for S=1024, G=64."""
    return leaf_size // group_size + leaf_size // 2


def proof_bytes(k: int, n_leaves: int, leaf_size: int = 1024, group_size: int = 64) -> int:
    """Binary size of a light proof for ``k`` leaves: per leaf the theta_prev and theta_next leaves
    (4*S bytes each) and the update leaf, plus three audit paths of at most ``depth`` 32-byte hashes.
    (Our .pogo file writes hashes as hex inside JSON and adds the header and layout manifest.)"""
    k = min(k, n_leaves)
    per_leaf = 2 * 4 * leaf_size + update_leaf_bytes(leaf_size, group_size)
    return k * per_leaf + 3 * k * tree_depth(n_leaves) * HASH_BYTES


def sizes(n_params: int, n_leaves: int, k: int, leaf_size: int = 1024, group_size: int = 64) -> dict[str, int]:
    """The exact byte counts of one model under the protocol."""
    return {
        "n_params": n_params,
        "n_leaves": n_leaves,
        "model_bytes_fp32": 4 * n_params,
        "committed_bytes_fp32": 4 * leaf_size * n_leaves,  # with the zero padding of last leaves
        "update_bytes_4bit": n_leaves * update_leaf_bytes(leaf_size, group_size),
        "tree_depth": tree_depth(n_leaves),
        "k": min(k, n_leaves),
        "proof_bytes": proof_bytes(k, n_leaves, leaf_size, group_size),
    }


def model_layout(name: str) -> tuple[Any, Any]:
    """(Config, Layout) of a config name or path; shapes from ``model.param_shapes`` (no allocation)."""
    from pogo_jax.train.model import param_shapes

    cfg = load_config(name)
    return cfg, Layout.from_shapes(param_shapes(cfg.model), cfg.chain.leaf_size, cfg.chain.group_size)


# ------------------------------------------------------------------------------ measured inputs


def measured_inputs(res: dict[str, Any], what: str) -> dict[str, Any]:
    """The per-unit rates a ``pogo bench`` JSON provides, validated (one line per problem)."""
    if res.get("schema") != "pogo-bench-v1":
        raise UserError(f"{what}: not a 'pogo bench' result (schema {res.get('schema')!r}, expected 'pogo-bench-v1')")
    peak = res.get("peak_bf16_flops_per_device")
    mfu_peak = need(res, "train.pogo_disabled", what, dict).get("mfu_vs_peak")
    if peak and mfu_peak:
        rate, mfu, basis = float(peak), float(mfu_peak), "data-sheet dense bf16 peak"
    else:
        rate = float(need(res, "matmul_bf16_flops_per_s_measured", what))
        mfu = float(need(res, "train.pogo_disabled.mfu_vs_measured_matmul", what))
        basis = "bf16 matmul rate measured on the same device (no data-sheet peak for it)"
    n_meas = int(need(res, "param_count", what, int))
    k_meas = int(need(res, "proof.k", what, int))
    return {
        "device_kind": need(res, "device_kind", what, str),
        "backend": need(res, "backend", what, str),
        "config": need(res, "config", what, str),
        "quick": bool(res.get("quick", False)),
        "peak_flops": rate,
        "peak_basis": basis,
        "mfu": mfu,
        "leaf_hash_Bps": float(need(res, "merkle.leaf_hash_GBps", what)) * 1e9,
        "host_node_hashes_per_s": float(need(res, "merkle.host_node_hashes_per_s", what)),
        "host_sha256_Bps": float(need(res, "merkle.host_sha256_GBps_one_core", what)) * 1e9,
        "light_s": float(need(res, "block.light_verify_s", what)),
        "light_k": k_meas,
        "light_depth": int(need(res, "tree_depth", what, int)),
        "quantize_s_per_param": float(need(res, "block.quantize_s", what)) / n_meas,
        "rebuild_s_per_param": float(need(res, "block.full_verify_parts_s.rebuild", what)) / n_meas,
        "open_s": float(need(res, "block.prove_open_s", what)),
        "n_params_measured": n_meas,
        "overhead_fraction_measured": float(need(res, "block.pogo_overhead_fraction", what)),
        "full_fraction_measured": float(need(res, "block.full_verify_fraction_of_mining", what)),
    }


# ------------------------------------------------------------------------------ loss curve


def load_curve(path: str | Path) -> tuple[list[tuple[float, float]], int, str]:
    """(tokens, eval loss) points, params of the model, description from a bench_quant JSON."""
    obj = read_json(path, "loss-curve file")
    what = f"loss-curve file {path}"
    curve = need(obj, "runs.fp32.eval_curve", what, list)
    per_step = int(need(obj, "batch_size", what, int)) * int(need(obj, "seq_len", what, int))
    pts = []
    for p in curve:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) for x in p)):
            raise UserError(f"{what}: runs.fp32.eval_curve must be a list of [step, loss] pairs")
        pts.append((float(p[0]) * per_step, float(p[1])))
    return pts, int(need(obj, "params", what, int)), f"{obj.get('config', '?')} fp32 eval curve ({shown(path)})"


def fit_power_law(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least-squares ``L(D) = E + A * D**-alpha`` with ``E >= 0`` over points with D > 0 (grid over alpha)."""
    d = np.array([p[0] for p in points if p[0] > 0], dtype=np.float64)
    y = np.array([p[1] for p in points if p[0] > 0], dtype=np.float64)
    if d.size < 3:
        raise UserError("the loss curve needs at least 3 points with tokens > 0 to fit a power law")
    best = None
    for alpha in np.arange(0.02, 3.0, 0.002):
        x = np.stack([np.ones_like(d), d**-alpha], axis=1)
        (e, a), *_ = np.linalg.lstsq(x, y, rcond=None)
        if e < 0:  # a loss floor below zero is not a loss: refit with E = 0
            e, a = 0.0, float(np.dot(x[:, 1], y) / np.dot(x[:, 1], x[:, 1]))
        if a <= 0:
            continue
        sse = float(np.sum((x @ np.array([e, a]) - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(e), float(a), float(alpha))
    if best is None:
        raise UserError("the loss curve does not decrease: no power law L = E + A*D^-alpha with A > 0 fits")
    return best[1], best[2], best[3]


def tokens_for_drop(e: float, a: float, alpha: float, d0: float, drop: float) -> float:
    """Tokens after ``d0`` until the fitted loss has fallen by ``drop`` (inf if below the floor E)."""
    target = e + a * d0**-alpha - drop
    if target <= e:
        return math.inf
    return (a / (target - e)) ** (1.0 / alpha) - d0


# ------------------------------------------------------------------------------ the cost model


def assumptions(m: dict[str, Any], p: dict[str, Any], curve_desc: str) -> list[str]:
    """Every assumption behind the extrapolated numbers, in words, with the values used."""
    return [
        f"A1 hardware: miner = {p['devices']} x '{m['device_kind']}' (the benchmarked device), full verifier = "
        f"{p['verifier_devices']} of the same, light verifier = one host core; memory capacity is ignored.",
        f"A2 training FLOPs per token = 6 x matmul params + 12 x layers x seq_len x d_model (PaLM; the convention "
        f"the MFU was measured with), at MFU {m['mfu']:.3f} of {m['peak_flops']:.3g} FLOP/s per device "
        f"({m['peak_basis']}), measured on config '{m['config']}' and assumed to hold at scale on all devices.",
        f"A3 tokens per block = {p['tokens']:.3g} (--tokens); challenge k = {p['k']} leaves, m = {p['m']} windows "
        "of the model's seq_len.",
        f"A4 commitment (as pogo_jax/roles/miner.py does it): the miner hashes theta_next (4*S bytes per leaf) "
        f"and the update (528 bytes per leaf) once each on its devices at the measured "
        f"{m['leaf_hash_Bps'] / 1e9:.3g} GB/s per device, split evenly over devices, and reduces 2 trees on one "
        f"host core at the measured {m['host_node_hashes_per_s']:.3g} node hashes/s; theta_prev is not hashed "
        "(its leaf hashes are kept from the block that committed it, or from re-deriving the tip once).",
        "A5 prove: no leaf is hashed again; the 3 trees (theta_prev, theta_next, update) are rebuilt from the "
        "kept leaf hashes on one host core for the audit paths (node-hash rate as A4), plus the loss of "
        "theta_prev and theta_next on the m windows (forward = 1/3 of training FLOPs per token, same MFU) "
        "and the measured time to cut the openings.",
        f"A6 quantize: linear in parameters, measured {m['quantize_s_per_param'] * 1e9:.3g} ns per parameter on one "
        "device, split evenly over the miner's devices.",
        f"A7 light verification: measured {m['light_s'] * 1e3:.3g} ms for k = {m['light_k']} at tree depth "
        f"{m['light_depth']} on one core; linear in k, plus 3 node hashes per leaf per extra tree level at the "
        "measured host node-hash rate; independent of model size otherwise.",
        f"A8 full verification (as pogo_jax/roles/full.py does it): rebuild theta_next and recompute the update "
        f"and state roots on one host core at the measured {m['rebuild_s_per_param'] * 1e9:.3g} ns per parameter "
        "(linear), then the loss of both states on the m windows on the verifier's devices (as A5); the "
        "download of the 4-bit update is not timed (bytes given).",
        f"A9 block length for a loss target: L(D) = E + A*D^-alpha fitted to the {curve_desc}; the large model is "
        "assumed to sit at the same tokens-per-parameter point as the end of that curve and to need the small "
        "model's tokens for the same drop scaled by N_large / N_small (an extrapolation, not a measurement).",
        f"A10 measured on backend '{m['backend']}'" + (" in --quick mode (tiny sizes: timings are not "
                                                         "representative)" if m["quick"] else "") + ".",
    ]


def model_costs(name: str, n_params: int, n_leaves: int, fpt: float, seq_len: int, m: dict[str, Any],
                p: dict[str, Any], fit: tuple[float, float, float, float, int] | None,
                leaf_size: int = 1024, group_size: int = 64) -> dict[str, Any]:
    """One model's table: exact sizes plus the extrapolated times (seconds) under ``assumptions``."""
    s = sizes(n_params, n_leaves, p["k"], leaf_size, group_size)
    dev, vdev = p["devices"], p["verifier_devices"]
    flops_rate = m["mfu"] * m["peak_flops"]
    state_bytes = 4 * leaf_size * n_leaves
    train_s = p["tokens"] * fpt / (flops_rate * dev)
    quantize_s = m["quantize_s_per_param"] * n_params / dev
    tree_s = n_leaves / m["host_node_hashes_per_s"]
    commit_s = (state_bytes + s["update_bytes_4bit"]) / (m["leaf_hash_Bps"] * dev) + 2 * tree_s
    eval_tokens = 2 * p["m"] * seq_len
    miner_eval_s = eval_tokens * fpt / 3 / (flops_rate * dev)
    prove_s = 3 * tree_s + miner_eval_s + m["open_s"]
    overhead_s = quantize_s + commit_s + prove_s
    extra_levels = max(0, s["tree_depth"] - m["light_depth"])
    light_s = s["k"] * (m["light_s"] / m["light_k"] + 3 * extra_levels / m["host_node_hashes_per_s"])
    rebuild_s = m["rebuild_s_per_param"] * n_params
    full_eval_s = eval_tokens * fpt / 3 / (flops_rate * vdev)
    full_s = rebuild_s + full_eval_s
    out: dict[str, Any] = {
        "model": name,
        **s,
        "flops_per_token": fpt,
        "tokens_per_block": p["tokens"],
        "miner_train_s": train_s,
        "miner_quantize_s": quantize_s,
        "miner_commit_s": commit_s,
        "miner_prove_s": prove_s,
        "pogo_overhead_s": overhead_s,
        "pogo_overhead_fraction": overhead_s / train_s,
        "light_verify_s": light_s,
        "full_verify_rebuild_s": rebuild_s,
        "full_verify_loss_s": full_eval_s,
        "full_verify_s": full_s,
        "ratio_train_to_full_verify_wall": train_s / full_s,
        "ratio_train_to_light_verify_wall": train_s / light_s,
        "ratio_train_to_full_verify_device_s": (train_s * dev) / (full_eval_s * vdev + rebuild_s),
        "ratio_train_to_loss_check_flops": (p["tokens"] * fpt) / (eval_tokens * fpt / 3),
    }
    if fit is not None:
        e, a, alpha, d0_per_param, n_small = fit
        small_tokens = tokens_for_drop(e, a, alpha, d0_per_param * n_small, p["target_drop"])
        big_tokens = small_tokens * n_params / n_small
        out["target_loss_drop"] = p["target_drop"]
        out["block_tokens_for_target"] = big_tokens
        out["block_time_for_target_s"] = (big_tokens * fpt / (flops_rate * dev) if math.isfinite(big_tokens)
                                          else math.inf)
    return out


def run_costs(results_path: str | Path, tokens: float, k: int, target_drop: float, devices: int,
              verifier_devices: int, curve_path: str | Path | None, models: tuple[str, ...] = LARGE_MODELS,
              m_windows: int = 8) -> dict[str, Any]:
    """The full ``pogo costs`` result: inputs, assumptions and one table per model."""
    from pogo_jax.train.model import flops_per_token

    if tokens <= 0 or k < 1 or devices < 1 or verifier_devices < 1 or m_windows < 1:
        raise UserError("--tokens, --k, --devices, --verifier-devices and --m must be positive")
    if not target_drop > 0:
        raise UserError("--target-loss-drop must be a positive number of nats")
    res = read_json(results_path)
    m = measured_inputs(res, f"results file {results_path}")
    p = {"tokens": float(tokens), "k": k, "devices": devices, "verifier_devices": verifier_devices,
         "target_drop": target_drop, "m": m_windows}
    fit = None
    curve_desc = "(no loss curve given)"
    fit_info = None
    if curve_path is not None:
        pts, n_small, curve_desc = load_curve(curve_path)
        e, a, alpha = fit_power_law(pts)
        d0 = max(x for x, _ in pts)
        fit = (e, a, alpha, d0 / n_small, n_small)
        fit_info = {"E": e, "A": a, "alpha": alpha, "end_tokens": d0, "params": n_small,
                    "end_tokens_per_param": d0 / n_small, "points": pts,
                    "small_tokens_for_target": tokens_for_drop(e, a, alpha, d0, target_drop)}
    tables = []
    for name in models:
        cfg, layout = model_layout(name)
        tables.append(model_costs(cfg.name, layout.n_values, layout.n_leaves, flops_per_token(cfg.model),
                                  cfg.model.seq_len, m, p, fit, layout.leaf_size, layout.group_size))
    return {"results_file": shown(results_path), "measured": m, "parameters": p, "loss_fit": fit_info,
            "assumptions": assumptions(m, p, curve_desc), "models": tables}


# ------------------------------------------------------------------------------ rendering


def _bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _secs(s: float) -> str:
    if not math.isfinite(s):
        return "unreachable under the fit"
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e3:.3g} ms"


ROWS: list[tuple[str, str, Any]] = [
    ("parameters", "n_params", lambda v: f"{v:,}"),
    ("Merkle leaves (S=1024)", "n_leaves", lambda v: f"{v:,}"),
    ("32-bit model", "model_bytes_fp32", _bytes),
    ("4-bit update", "update_bytes_4bit", _bytes),
    ("tree depth", "tree_depth", str),
    ("light proof for k leaves (binary)", "proof_bytes", _bytes),
    ("tokens per block (A3)", "tokens_per_block", lambda v: f"{v:.3g}"),
    ("miner training per block (A1, A2)", "miner_train_s", _secs),
    ("quantize (A6)", "miner_quantize_s", _secs),
    ("commitment: theta_next + update (A4)", "miner_commit_s", _secs),
    ("prove (A5)", "miner_prove_s", _secs),
    ("PoGO overhead / training", "pogo_overhead_fraction", lambda v: f"{v:.3%}"),
    ("light verification, one core (A7)", "light_verify_s", _secs),
    ("full verification (A8)", "full_verify_s", _secs),
    ("  of which host rebuild + roots", "full_verify_rebuild_s", _secs),
    ("  of which loss check", "full_verify_loss_s", _secs),
    ("training / full verification, wall", "ratio_train_to_full_verify_wall", lambda v: f"{v:,.3g}x"),
    ("training / full verification, device-s", "ratio_train_to_full_verify_device_s", lambda v: f"{v:,.3g}x"),
    ("training / light verification, wall", "ratio_train_to_light_verify_wall", lambda v: f"{v:,.3g}x"),
    ("training FLOPs / loss-check FLOPs", "ratio_train_to_loss_check_flops", lambda v: f"{v:,.3g}x"),
    ("tokens for the loss target (A9)", "block_tokens_for_target", lambda v: f"{v:.3g}"),
    ("block time for the loss target (A9)", "block_time_for_target_s", _secs),
]


def markdown(result: dict[str, Any]) -> str:
    """Both model tables side by side, the measured inputs and every assumption."""
    models = result["models"]
    m = result["measured"]
    lines = [f"# pogo costs (from {result['results_file']}: {m['config']} on {m['device_kind']})", "",
             "| quantity | " + " | ".join(t["model"] for t in models) + " |",
             "|---|" + "---|" * len(models)]
    for label, key, fmt in ROWS:
        if all(key in t for t in models):
            lines.append(f"| {label} | " + " | ".join(fmt(t[key]) for t in models) + " |")
    fit = result.get("loss_fit")
    if fit:
        lines += ["", f"Loss fit (A9): L(D) = {fit['E']:.4f} + {fit['A']:.4g} * D^-{fit['alpha']:.3f}, "
                  f"end of curve at {fit['end_tokens']:.3g} tokens ({fit['end_tokens_per_param']:.3g} tokens/param); "
                  f"target drop {result['parameters']['target_drop']} nats needs "
                  f"{fit['small_tokens_for_target']:.3g} more tokens on the small model."]
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in result["assumptions"]]
    return "\n".join(lines) + "\n"


def plot_costs(result: dict[str, Any], path: str | Path) -> Path:
    """Per-block seconds of each phase for each model (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("training", "miner_train_s"), ("quantize", "miner_quantize_s"), ("commit", "miner_commit_s"),
            ("prove", "miner_prove_s"), ("full verify", "full_verify_s"), ("light verify", "light_verify_s")]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    try:
        width = 0.8 / max(1, len(result["models"]))
        x = np.arange(len(keys))
        for i, t in enumerate(result["models"]):
            ax.bar(x + i * width, [t[k] for _, k in keys], width, label=t["model"])
        ax.set_xticks(x + width * (len(result["models"]) - 1) / 2, [n for n, _ in keys])
        ax.set_yscale("log")
        ax.set_ylabel("seconds per block")
        p = result["parameters"]
        ax.set_title(f"pogo costs: {p['tokens']:.3g} tokens/block, {p['devices']} miner devices, "
                     f"k={p['k']} (see assumptions)", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        return save_png(fig, path)
    finally:
        plt.close(fig)
