"""``pogo report``: merge ``pogo bench`` results from several backends into one table and plot.

Every file must carry ``roots`` (the Merkle roots of the fixed input of ``bench.roots``). The
protocol demands that they be identical on every backend; any difference is reported loudly and
makes the command exit 1, so a CI job or a user comparing CPU, H100 and TPU cannot miss it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.bench.common import need, read_json
from pogo_jax.errors import UserError
from pogo_jax.plotting import save_png

ROOT_KEYS = ("root_prev", "root_next", "root_q")


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Read and check each file (schema, roots); a bad file is one ``UserError`` line naming it."""
    if not paths:
        raise UserError("give at least one bench_<backend>.json (made by 'pogo bench')")
    out = []
    for p in paths:
        res = read_json(p)
        what = f"results file {p}"
        if res.get("schema") != "pogo-bench-v1":
            raise UserError(f"{what}: not a 'pogo bench' result (schema {res.get('schema')!r})")
        roots = need(res, "roots", what, dict)
        for k in ROOT_KEYS:
            v = roots.get(k)
            if not (isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)):
                raise UserError(f"{what}: roots.{k} is not a 64-digit lowercase hex SHA-256 root")
        for key in ("backend", "device_kind", "jax_version", "config"):
            need(res, key, what, str)
        res["_file"] = str(p)
        out.append(res)
    return out


def root_differences(results: list[dict[str, Any]]) -> list[str]:
    """One line per root that differs from the first file's (empty: all agree)."""
    ref = results[0]
    lines = []
    for r in results[1:]:
        if r.get("roots_input") != ref.get("roots_input"):
            lines.append(f"{r['_file']}: roots were computed from a different input than {ref['_file']}")
            continue
        for k in ROOT_KEYS:
            if r["roots"][k] != ref["roots"][k]:
                lines.append(f"{k}: {r['_file']} ({r['device_kind']}) has {r['roots'][k][:16]}..., "
                             f"{ref['_file']} ({ref['device_kind']}) has {ref['roots'][k][:16]}...")
    for r in results:
        if r.get("roots_match_host_reference") is False:
            lines.append(f"{r['_file']}: device roots differ from the numpy/hashlib reference on the same machine")
    return lines


def _get(r: dict[str, Any], path: str) -> Any:
    cur: Any = r
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _num(v: Any, fmt: str) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int | float):
        return format(v, fmt)
    return str(v)


ROWS: list[tuple[str, str, str]] = [
    ("config", "config", ""),
    ("devices", "n_devices", "d"),
    ("jax", "jax_version", ""),
    ("quick run", "quick", ""),
    ("parameters", "param_count", ",d"),
    ("tokens/s, PoGO disabled", "train.pogo_disabled.tokens_per_s", ",.0f"),
    ("tokens/s, PoGO enabled", "train.pogo_enabled.tokens_per_s", ",.0f"),
    ("MFU vs data-sheet peak, disabled", "train.pogo_disabled.mfu_vs_peak", ".1%"),
    ("MFU vs data-sheet peak, enabled", "train.pogo_enabled.mfu_vs_peak", ".1%"),
    ("MFU vs measured matmul, disabled", "train.pogo_disabled.mfu_vs_measured_matmul", ".1%"),
    ("MFU vs measured matmul, enabled", "train.pogo_enabled.mfu_vs_measured_matmul", ".1%"),
    ("block steps (measured)", "block.block_steps", "d"),
    ("block training s", "block.train_s", ".3f"),
    ("quantize s", "block.quantize_s", ".4f"),
    ("commit s (theta_next + update)", "block.commit_s", ".4f"),
    ("prove s", "block.prove_s", ".4f"),
    ("PoGO overhead / training", "block.pogo_overhead_fraction", ".2%"),
    ("same, at the config's block length", "block.pogo_overhead_fraction_at_config_block_steps", ".2%"),
    ("full verify s", "block.full_verify_s", ".4f"),
    ("full verify / mining", "block.full_verify_fraction_of_mining", ".2%"),
    ("light verify ms (one core)", "light_verify_ms", ".2f"),
    ("k (challenged leaves)", "proof.k", "d"),
    ("bundle bytes", "proof.bundle_bytes_measured", ",d"),
    ("proof bytes (binary)", "proof.proof_bytes_binary", ",d"),
    ("device leaf hashing GB/s", "merkle.leaf_hash_GBps", ".3f"),
    ("commit of the model state s", "merkle.commit_s", ".4f"),
    ("host SHA-256 GB/s (one core)", "merkle.host_sha256_GBps_one_core", ".3f"),
    ("root_prev", "roots.root_prev", ""),
    ("root_next", "roots.root_next", ""),
    ("root_q", "roots.root_q", ""),
    ("roots = host reference", "roots_match_host_reference", ""),
]


def markdown(results: list[dict[str, Any]], diffs: list[str]) -> str:
    for r in results:
        lv = _get(r, "light_verify_s")
        r["light_verify_ms"] = None if lv is None else lv * 1e3
    head = [f"{r['backend']}: {r['device_kind']}" for r in results]
    lines = ["# pogo bench: backends compared", "", "| measure | " + " | ".join(head) + " |",
             "|---|" + "---|" * len(results)]
    for label, path, fmt in ROWS:
        vals = [_get(r, path) for r in results]
        if path.startswith("roots."):
            vals = [v[:16] + "..." if isinstance(v, str) else v for v in vals]
        lines.append(f"| {label} | " + " | ".join(_num(v, fmt) for v in vals) + " |")
    lines += ["", "Files and commands:", ""]
    lines += [f"- `{r['_file']}`: `{r.get('command', '?')}`" for r in results]
    lines += [""]
    if diffs:
        lines += ["**ROOTS DIFFER ACROSS BACKENDS: the protocol requires identical roots.**", ""]
        lines += [f"- {d}" for d in diffs]
    else:
        lines += [f"Roots of the fixed input are identical in all {len(results)} file(s)."]
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart per backend: tokens/s (both ways), leaf-hash GB/s, light and full verify time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("tokens/s, PoGO off / on", ["train.pogo_disabled.tokens_per_s", "train.pogo_enabled.tokens_per_s"]),
              ("device leaf hashing GB/s", ["merkle.leaf_hash_GBps"]),
              ("light verify s (one core)", ["light_verify_s"]),
              ("full verify / mining", ["block.full_verify_fraction_of_mining"]),
              ("PoGO overhead / training", ["block.pogo_overhead_fraction"])]
    names = [f"{r['backend']}\n{r['device_kind'][:18]}" for r in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), dpi=120)
    try:
        x = np.arange(len(results))
        for ax, (title, keys) in zip(axes, panels, strict=True):
            w = 0.8 / len(keys)
            for j, key in enumerate(keys):
                vals = [_get(r, key) or 0.0 for r in results]
                ax.bar(x + j * w, vals, w, label=("off", "on")[j] if len(keys) == 2 else None)
            ax.set_xticks(x + w * (len(keys) - 1) / 2, names, fontsize=7)
            ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
            if len(keys) == 2:
                ax.legend(fontsize=7)
        return save_png(fig, path)
    finally:
        plt.close(fig)
