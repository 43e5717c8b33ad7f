"""How far apart do honest per-window losses land, and how often is an honest block judged weak?

The numbers behind ``ChainRules.loss_tolerance``, ``m_windows``, ``delta`` and ``lcb_t`` (pogo_jax/spec/rules.py).

1. Spread. Each config is trained from genesis for a few PoGO blocks (``BlockMiner``) so the state is
   realistic; theta_prev and theta_next of one block are evaluated on the same m = 256 public eval windows
   (a fixed-seed draw) with the highest matmul precision under many honest setups, each in its own
   subprocess (XLA flags must be set before jax is imported): 1, 2, 4 and 8 fake CPU devices with the batch
   on the mesh's data axis, a 4-device tensor=4 and an 8-device data=2,fsdp=2,tensor=2 mesh (parameters
   sharded: other reduction orders), every lower XLA CPU ISA (``--xla_cpu_max_isa``) against the host's
   best, single-threaded Eigen, the verifier's own chunked ``Evaluator`` path, and bfloat16 compute (not
   allowed for verifiers: shown to say why). Per variant: max and 99th percentile over windows of
   ``|v - ref| / |ref|`` against the 1-device float32 reference.
2. Paired improvement. For consecutive honest blocks, ``d_w = L_prev(w) - L_next(w)`` on the same 256
   windows (float32, 1 device): mean, sd, CV = sd / mean, and the chain's exact lower confidence bound
   (``verdict.lower_bound`` with the ChainRules defaults). The raw ``d_w`` go into the JSON.
3. False-invalid rate. Each block after the first has its ``d_w`` scaled to mean exactly 2 * delta and
   ``m`` windows are resampled with replacement (``--draws`` times): how often is the block judged weak
   (``mean - t * sd / sqrt(m) < delta``)? Beside it the normal approximation ``Phi(t - sqrt(m) / (2 CV))``.
4. Recommendations: ``loss_tolerance`` = worst float32 spread (meshes, ISAs, threads; not bf16) times
   ``--margin``, rounded up to 1, 2 or 5 times a power of ten; the margin the default 1/1000 leaves.

    PYTHONPATH=. python scripts/loss_spread.py            # ~5-10 minutes on 2 CPU cores
    PYTHONPATH=. python scripts/loss_spread.py --quick    # tiny only, fewer blocks and variants, < 2 min
    JAX_PLATFORMS=cpu PYTHONPATH=. python scripts/loss_spread.py --quick --accelerator   # + the GPU (device suite)

Writes benchmarks/results/loss_spread.{json,md,png} (``--out DIR`` to change; ``--quick`` writes
loss_spread_quick.*).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ISA_ORDER = ("SSE4_2", "AVX", "AVX2", "AVX512")  # what --xla_cpu_max_isa accepts, lowest first
SPREAD_BLOCK = {"tiny": 3, "small": 2}  # which block's theta_prev / theta_next the spread is measured on
BLOCKS = {"tiny": 8, "small": 4}
REF = "1dev_f32"


def log(msg: str) -> None:
    print(f"[loss_spread {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def host_isas() -> list[str]:
    """The --xla_cpu_max_isa levels this host supports, lowest first (from /proc/cpuinfo)."""
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError:
        return []
    have = {"SSE4_2": "sse4_2" in flags, "AVX": "avx" in flags, "AVX2": "avx2" in flags,
            "AVX512": "avx512f" in flags}
    return [isa for isa in ISA_ORDER if have[isa]]


def cpu_info() -> dict:
    flags: set[str] = set()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    simd = sorted(f for f in flags if f.startswith(("avx", "sse", "fma", "amx")))
    return {"model": model, "simd_flags": simd, "cores": os.cpu_count(), "machine": platform.machine()}


# ----------------------------------------------------------------------------------------- variants


def worker_plan(quick: bool, accelerator: bool = False) -> list[dict]:
    """One subprocess per (device count, XLA flags); each evaluates a list of (name, mesh, dtype) jobs.

    The 1-device float32 job of the first worker is the reference. CPU workers run with JAX_PLATFORMS=cpu;
    with ``accelerator`` one more worker evaluates on jax's default backend (a lent GPU or a TPU), so the same
    CPU-trained states are compared across backends."""
    if accelerator:
        return [*worker_plan(quick), {"tag": "accel", "devices": 1, "flags": [], "platform": "default",
                                      "jobs": [["1dev_accel_f32", [1, 1, 1], "float32"],
                                               ["1dev_accel_bf16", [1, 1, 1], "bfloat16"]]}]
    isas = host_isas()
    lower = list(isas[:-1])  # the host's best is the default
    plan = [{"tag": "d1", "devices": 1, "flags": [],
             "jobs": [[REF, [1, 1, 1], "float32"], ["1dev_bf16", [1, 1, 1], "bfloat16"]]}]
    if quick:
        plan.append({"tag": "d8", "devices": 8, "flags": [],
                     "jobs": [["8dev_data8", [8, 1, 1], "float32"], ["8dev_d2_f2_t2", [2, 2, 2], "float32"]]})
        if lower:
            plan.append({"tag": lower[0], "devices": 1, "flags": [f"--xla_cpu_max_isa={lower[0]}"],
                         "jobs": [[f"1dev_{lower[0]}", [1, 1, 1], "float32"]]})
        return plan
    plan += [
        {"tag": "d2", "devices": 2, "flags": [], "jobs": [["2dev_data2", [2, 1, 1], "float32"]]},
        {"tag": "d4", "devices": 4, "flags": [],
         "jobs": [["4dev_data4", [4, 1, 1], "float32"], ["4dev_tensor4", [1, 1, 4], "float32"]]},
        {"tag": "d8", "devices": 8, "flags": [],
         "jobs": [["8dev_data8", [8, 1, 1], "float32"], ["8dev_d2_f2_t2", [2, 2, 2], "float32"],
                  ["8dev_d2_f2_t2_bf16", [2, 2, 2], "bfloat16"]]},
        {"tag": "eigen1", "devices": 1, "flags": ["--xla_cpu_multi_thread_eigen=false"],
         "jobs": [["1dev_eigen_1thread", [1, 1, 1], "float32"]]},
    ]
    for isa in lower:
        plan.append({"tag": isa, "devices": 8, "flags": [f"--xla_cpu_max_isa={isa}"],
                     "jobs": [[f"1dev_{isa}", [1, 1, 1], "float32"], [f"8dev_d2_f2_t2_{isa}", [2, 2, 2], "float32"]]})
    return plan


def run_worker(workdir: Path, spec: dict) -> dict[str, np.ndarray]:
    flags = [f"--xla_force_host_platform_device_count={spec['devices']}", *spec["flags"]]
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    if spec.get("platform") == "default":  # the accelerator: jax picks the backend, one device of it
        env.pop("JAX_PLATFORMS")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(workdir),
                           "--worker-spec", json.dumps(spec)], env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"worker {spec['tag']} failed (rc {proc.returncode})")
    out = dict(np.load(workdir / f"out_{spec['tag']}.npz"))
    log(f"  worker {spec['tag']:<7} XLA_FLAGS='{' '.join(flags)}': {len(out)} evaluations "
        f"in {time.perf_counter() - t0:.1f} s")
    return out


def worker_main(workdir: Path, spec: dict) -> int:
    """Subprocess: evaluate the saved states on the saved windows for each job; XLA_FLAGS come from the parent."""
    import dataclasses

    import jax
    from flax import nnx

    from pogo_jax.config import MeshConfig, load_config
    from pogo_jax.pytree import flatten_params
    from pogo_jax.train import sharding
    from pogo_jax.train.model import abstract_model, unflatten_like
    from pogo_jax.train.step import _eval_windows_pure

    if spec.get("platform") != "default" and jax.device_count() != spec["devices"]:
        raise SystemExit(f"worker expected {spec['devices']} devices, got {jax.device_count()}")
    meta = json.loads((workdir / "states.json").read_text())
    saved = np.load(workdir / "states.npz")
    out: dict[str, np.ndarray] = {}
    for cname in meta["configs"]:
        cfg = load_config(cname)
        rules = cfg.mesh.rule_map()
        windows = saved[f"{cname}|windows"].astype(np.int32)
        for name, shape, dtype in spec["jobs"]:
            n = math.prod(shape)
            mesh = sharding.make_mesh(MeshConfig(data=shape[0], fsdp=shape[1], tensor=shape[2], rules=cfg.mesh.rules),
                                      devices=jax.devices()[:n])
            model_cfg = dataclasses.replace(cfg.model, compute_dtype=dtype, remat=False)
            graphdef, abs_state = nnx.split(abstract_model(model_cfg), nnx.Param)
            template = nnx.to_pure_dict(abs_state)
            shard = flatten_params(sharding.tree_shardings(abs_state, mesh, rules))
            wsh = sharding.put_global(windows, sharding.batch_sharding(mesh, rules))
            for state in ("prev", "next"):
                prefix = f"{cname}|{state}|"
                flat = {k[len(prefix):]: saved[k] for k in saved.files if k.startswith(prefix)}
                params = unflatten_like(template, {k: sharding.put_global(np.asarray(v, np.float32), shard[k])
                                                   for k, v in flat.items()})
                with jax.default_matmul_precision("highest"):
                    losses = np.asarray(_eval_windows_pure(graphdef, params, wsh), np.float32)
                out[f"{cname}|{state}|{name}"] = losses
    np.savez(workdir / f"out_{spec['tag']}.npz", **out)
    return 0


# ------------------------------------------------------------------------------------- statistics


def rel_spread(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    v64, r64 = np.asarray(v, np.float64), np.asarray(ref, np.float64)
    return np.abs(v64 - r64) / np.abs(r64)


def spread_stats(v: np.ndarray, ref: np.ndarray) -> dict:
    r = rel_spread(v, ref)
    mv, mr = float(np.mean(np.asarray(v, np.float64))), float(np.mean(np.asarray(ref, np.float64)))
    return {"max_rel": float(r.max()), "p99_rel": float(np.percentile(r, 99)), "median_rel": float(np.median(r)),
            "identical_fraction": float(np.mean(np.asarray(v, np.float32) == np.asarray(ref, np.float32))),
            "mean_rel": abs(mv - mr) / abs(mr)}


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def p_weak_resampled(d: np.ndarray, delta: float, t: float, m: int, draws: int, seed: int) -> tuple[float, float]:
    """Bootstrap: fraction of ``draws`` resamples of ``m`` windows (with replacement) whose bound misses delta,
    and a one-sided 95% upper bound on it (3 / draws when none does)."""
    rng = np.random.default_rng(seed)
    weak = 0
    for lo in range(0, draws, 5000):
        idx = rng.integers(0, len(d), size=(min(5000, draws - lo), m))
        x = d[idx]
        lcb = x.mean(axis=1) - t * x.std(axis=1, ddof=1) / math.sqrt(m)
        weak += int(np.sum(lcb < delta))
    p = weak / draws
    upper = 3.0 / draws if weak == 0 else p + 1.645 * math.sqrt(p * (1 - p) / draws)  # one-sided 95%
    return p, upper


def round_up_125(x: float) -> Fraction:
    """The smallest 1, 2 or 5 times a power of ten that is >= x, as an exact fraction."""
    e = math.floor(math.log10(x))
    for k in range(e, e + 2):
        for a in (1, 2, 5):
            f = Fraction(a) * (Fraction(10) ** k)
            if f >= Fraction(x):
                return f
    return Fraction(10) ** (e + 2)


# ------------------------------------------------------------------------------------------- main


def train_and_measure(cname: str, n_blocks: int, spread_block: int, m: int, window_seed: int, saved: dict,
                      rules) -> dict:  # noqa: ANN001 - ChainRules
    """Train ``n_blocks`` blocks from genesis; per block the paired d_w on the m windows (1 device, f32)."""
    from pogo_jax.commit.block import BlockMiner
    from pogo_jax.config import load_config
    from pogo_jax.spec import verdict
    from pogo_jax.train import data
    from pogo_jax.train.evaluate import Evaluator

    cfg = load_config(cname)
    ds = data.load_dataset(cfg.data)
    seq = cfg.model.seq_len
    n_avail = data.n_eval_windows(ds, seq)
    idx = np.sort(np.random.default_rng(window_seed).choice(n_avail, size=m, replace=False))
    tokens = data.eval_windows(ds, idx, seq)
    saved[f"{cname}|windows"] = tokens
    ev = Evaluator(cfg)
    bm = BlockMiner(cfg)
    t0 = time.perf_counter()
    losses_prev = ev.window_losses({k: np.asarray(v) for k, v in bm.theta.items()}, tokens)
    blocks = []
    for b in range(1, n_blocks + 1):
        tb = time.perf_counter()
        res = bm.run_block(ds)
        nxt = {k: np.asarray(v) for k, v in res.theta_next.items()}
        train_s = time.perf_counter() - tb
        losses_next = ev.window_losses(nxt, tokens)
        d = losses_prev.astype(np.float64) - losses_next.astype(np.float64)  # exact for float32 inputs
        bound = verdict.lower_bound(verdict.paired([float(x) for x in losses_prev], [float(x) for x in losses_next]),
                                    rules.delta, rules.lcb_t)
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        blocks.append({
            "block": b, "steps": cfg.miner.block_steps, "loss_prev": float(losses_prev.astype(np.float64).mean()),
            "loss_next": float(losses_next.astype(np.float64).mean()), "mean_d": mean, "sd_d": sd,
            "cv": sd / mean if mean > 0 else float("inf"), "frac_windows_improved": float(np.mean(d > 0)),
            "lcb": bound.lcb, "valid": bound.ok, "train_losses_last": res.train_losses[-1],
            "train_seconds": round(train_s, 1), "d_w": [float(x) for x in d],
        })
        if b == spread_block:
            prev_arrays = {k: np.asarray(v) for k, v in res.theta_prev.items()}
            for k, v in prev_arrays.items():
                saved[f"{cname}|prev|{k}"] = v
            for k, v in nxt.items():
                saved[f"{cname}|next|{k}"] = v
            saved[f"{cname}|prev|evaluator"] = losses_prev
            saved[f"{cname}|next|evaluator"] = losses_next
        log(f"{cname} block {b}/{n_blocks}: loss {blocks[-1]['loss_prev']:.4f} -> {blocks[-1]['loss_next']:.4f}, "
            f"mean d {mean:.4f} sd {sd:.4f} CV {sd / mean if mean else float('nan'):.2f} "
            f"LCB {bound.lcb:.4f} ({'valid' if bound.ok else 'WEAK'}) [{train_s:.1f} s]")
        losses_prev = losses_next
    return {"config": cname, "seq_len": seq, "block_steps": cfg.miner.block_steps, "eval_windows_available": n_avail,
            "window_indices": [int(i) for i in idx], "spread_block": spread_block, "blocks": blocks,
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="tiny,small", help="comma-separated config names")
    ap.add_argument("--tiny-blocks", type=int, default=BLOCKS["tiny"])
    ap.add_argument("--small-blocks", type=int, default=BLOCKS["small"])
    ap.add_argument("--windows", type=int, default=256, help="m: evaluation windows per block")
    ap.add_argument("--window-seed", type=int, default=2024)
    ap.add_argument("--draws", type=int, default=20000, help="bootstrap resamples per block")
    ap.add_argument("--margin", type=float, default=10.0, help="safety factor over the worst float32 spread")
    ap.add_argument("--quick", action="store_true", help="tiny only, 3 blocks, 3 workers (< 2 minutes)")
    ap.add_argument("--accelerator", action="store_true",
                    help="also evaluate on jax's default backend (GPU/TPU) the states trained on the CPU")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        return worker_main(args.worker, json.loads(args.worker_spec))

    import jax

    from pogo_jax.spec.rules import ChainRules

    t_start = time.perf_counter()
    rules = ChainRules()
    delta, t_crit, m = float(rules.delta), float(rules.lcb_t), args.windows
    configs = ["tiny"] if args.quick else [c.strip() for c in args.configs.split(",") if c.strip()]
    n_blocks = {"tiny": 3 if args.quick else args.tiny_blocks, "small": args.small_blocks}
    draws = min(args.draws, 5000) if args.quick else args.draws
    stem = "loss_spread_quick" if args.quick else "loss_spread"

    # 2. paired improvement (and the states for 1.)
    saved: dict[str, np.ndarray] = {}
    per_config = {}
    for cname in configs:
        nb = n_blocks.get(cname, 4)
        sb = min(SPREAD_BLOCK.get(cname, 2), nb) if not args.quick else 2
        log(f"training {cname}: {nb} blocks from genesis, d_w on {m} windows; spread measured on block {sb}")
        per_config[cname] = train_and_measure(cname, nb, sb, m, args.window_seed, saved, rules)

    # 1. spread across honest setups, each in a subprocess
    plan = worker_plan(args.quick, args.accelerator)
    log(f"spread: {sum(len(w['jobs']) for w in plan)} variants in {len(plan)} subprocesses")
    evals: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="loss_spread_") as tmp:
        work = Path(tmp)
        (work / "states.json").write_text(json.dumps({"configs": configs}))
        np.savez(work / "states.npz", **{k: v for k, v in saved.items() if not k.endswith("|evaluator")})
        for spec in plan:
            evals.update(run_worker(work, spec))
    for cname in configs:
        for state in ("prev", "next"):
            evals[f"{cname}|{state}|evaluator_chunk64"] = saved[f"{cname}|{state}|evaluator"]
    variants = [REF] + [j[0] for w in plan for j in w["jobs"] if j[0] != REF] + ["evaluator_chunk64"]
    spread: dict[str, dict] = {}
    for v in variants:
        spread[v] = {"bf16": "bf16" in v, "configs": {}}
        for cname in configs:
            spread[v]["configs"][cname] = {state: spread_stats(evals[f"{cname}|{state}|{v}"],
                                                               evals[f"{cname}|{state}|{REF}"])
                                           for state in ("prev", "next")}
        cells = [s for c in spread[v]["configs"].values() for s in c.values()]
        spread[v]["max_rel"] = max(s["max_rel"] for s in cells)
        spread[v]["p99_rel"] = max(s["p99_rel"] for s in cells)
        spread[v]["mean_rel"] = max(s["mean_rel"] for s in cells)
        spread[v]["identical_fraction"] = min(s["identical_fraction"] for s in cells)
        log(f"  {v:<22} max {spread[v]['max_rel']:.2e}  p99 {spread[v]['p99_rel']:.2e}  "
            f"identical {100 * spread[v]['identical_fraction']:.0f}%")

    # 3. false-invalid rate at 2 delta
    # each config's own chain rules: its m_windows windows are resampled from the m measured ones
    from pogo_jax.config import load_config

    cv_maxes = {}
    for cname in configs:
        crules = load_config(cname).chain
        mc, delta, t_crit = crules.m_windows, float(crules.delta), float(crules.lcb_t)
        sqrt_m = math.sqrt(mc)
        cv_maxes[cname] = cv_max = sqrt_m / (2 * (t_crit + 3.090232306167813))  # Phi^-1(0.999)
        per_config[cname]["chain"] = {"m_windows": mc, "delta": str(crules.delta), "lcb_t": str(crules.lcb_t)}
        log(f"{cname}: P(weak) at 2*delta by {draws} resamples of its m_windows = {mc} windows (target <= 0.001: "
            f"CV <= {cv_max:.2f})")
        for i, blk in enumerate(per_config[cname]["blocks"]):
            d = np.asarray(blk["d_w"])
            if i == 0 or blk["mean_d"] <= 0:
                blk["p_weak_2delta"] = None
                continue
            scaled = d * (2 * delta / d.mean())
            p, up = p_weak_resampled(scaled, delta, t_crit, mc, draws, seed=1000 + i)
            blk["p_weak_2delta"] = {"resampled": p, "resampled_upper95": up, "draws": draws,
                                    "normal": normal_cdf(t_crit - sqrt_m / (2 * blk["cv"])),
                                    "sd_scaled": float(scaled.std(ddof=1))}
            # Pessimistic variant, only for blocks already near 2 delta (mean <= 4 delta): shift instead of
            # scale, as if the per-window noise did not shrink with the mean.
            blk["p_weak_2delta_shifted"] = None
            msg = ""
            if blk["mean_d"] <= 4 * delta:
                shifted = d - d.mean() + 2 * delta
                ps, ups = p_weak_resampled(shifted, delta, t_crit, mc, draws, seed=2000 + i)
                cv_s = float(shifted.std(ddof=1)) / (2 * delta)
                blk["p_weak_2delta_shifted"] = {"resampled": ps, "resampled_upper95": ups, "draws": draws,
                                                "cv": cv_s, "normal": normal_cdf(t_crit - sqrt_m / (2 * cv_s))}
                msg = f"; shifted instead: CV {cv_s:.2f}, resampled {ps:.4f}"
            blk["p_weak_actual_normal"] = normal_cdf(t_crit - (blk["mean_d"] - delta) * sqrt_m / blk["sd_d"])
            log(f"  {cname} block {blk['block']}: CV {blk['cv']:.2f}  P(weak) resampled {p:.4f} (95% upper {up:.4f}), "
                f"normal {blk['p_weak_2delta']['normal']:.2e}{msg}")

    # 4. recommendations
    f32 = [v for v in variants if v != REF and not spread[v]["bf16"]]
    bf = [v for v in variants if spread[v]["bf16"]]
    worst_v = max(f32, key=lambda v: spread[v]["max_rel"])
    worst = spread[worst_v]["max_rel"]
    default_tol = float(rules.loss_tolerance)
    rec = round_up_125(max(worst, float(np.finfo(np.float32).eps)) * args.margin)
    bf_worst = max((spread[v]["max_rel"] for v in bf), default=float("nan"))
    losses_ref = [float(np.median(evals[f"{c}|{s}|{REF}"])) for c in configs for s in ("prev", "next")]
    later = [(c, b) for c in configs for b in per_config[c]["blocks"] if b["p_weak_2delta"]]
    p_all = [b["p_weak_2delta"]["resampled"] for _, b in later]
    recs = {
        "worst_f32_variant": worst_v, "worst_f32_max_rel": worst, "margin": args.margin,
        "loss_tolerance": f"{rec.numerator}/{rec.denominator}", "loss_tolerance_float": float(rec),
        "default_loss_tolerance": str(rules.loss_tolerance),
        "default_covers": default_tol >= worst, "default_margin_over_worst": default_tol / worst if worst else None,
        "bf16_max_rel": bf_worst, "bf16_over_default_tolerance": bf_worst / default_tol,
        "default_tolerance_nats_at_median_loss": default_tol * max(losses_ref),
        "delta": float(rules.delta), "cv_max_for_p_weak_0.001": cv_maxes,
        "max_p_weak_2delta": max(p_all) if p_all else None,
        "p_weak_target_met": bool(p_all) and max(p_all) <= 1e-3,
        "max_cv": max((b["cv"] for _, b in later), default=None),
        "max_p_weak_2delta_shifted": max((b["p_weak_2delta_shifted"]["resampled"] for _, b in later
                                          if b["p_weak_2delta_shifted"]), default=None),
        "honest_blocks_judged_weak": [f"{c} block {b['block']}" for c in configs for b in per_config[c]["blocks"]
                                      if not b["valid"]],
        "bf16_mean_rel": max((spread[v]["mean_rel"] for v in bf), default=float("nan")),
    }
    log(f"worst float32 spread {worst:.2e} ({worst_v}); x{args.margin:g} -> loss_tolerance {rec} "
        f"(default {rules.loss_tolerance}: {'covers' if recs['default_covers'] else 'DOES NOT cover'} it, "
        f"margin {recs['default_margin_over_worst'] or float('inf'):.3g}x); bf16 spread {bf_worst:.2e}")

    out = {
        "command": " ".join(["PYTHONPATH=. python scripts/loss_spread.py", *sys.argv[1:]]),
        "jax": jax.__version__, "python": platform.python_version(), "host_cpu": cpu_info(),
        "host_isas": host_isas(), "main_process_devices": jax.device_count(),
        "chain_defaults": {"m_windows": rules.m_windows, "delta": str(rules.delta), "lcb_t": str(rules.lcb_t),
                           "loss_tolerance": str(rules.loss_tolerance)},
        "m": m, "window_seed": args.window_seed, "quick": args.quick,
        "spread_definition": "per window |v - ref| / |ref| against the 1-device float32 reference (ref: "
                             f"'{REF}'); max and 99th percentile over windows, max over configs and both states",
        "workers": plan, "spread": spread, "paired": per_config, "recommendations": recs,
    }
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(out))
    plot(out, args.out / f"{stem}.png")
    log(f"wrote {args.out / stem}.{{json,md,png}} in {out['seconds']:.0f} s")
    return 0


def markdown(out: dict) -> str:
    r = out["recommendations"]
    lines = [
        "# Honest loss spread and paired improvement",
        "",
        f"`{out['command']}` (jax {out['jax']}, {out['host_cpu']['model']}, {out['host_cpu']['cores']} cores, "
        f"ISAs {', '.join(out['host_isas'])}; {out['seconds']:.0f} s). m = {out['m']} windows.",
        "",
        "## Spread of per-window losses of one state",
        "",
        f"Per window `|v - ref| / |ref|` against `{REF}`; max over configs ({', '.join(out['paired'])}) and both "
        "states.",
        "",
        "| variant | max rel | p99 rel | rel of mean | bit-identical windows |",
        "|---|---|---|---|---|",
    ]
    for v, s in out["spread"].items():
        if v == REF:
            continue
        lines.append(f"| {v} | {s['max_rel']:.2e} | {s['p99_rel']:.2e} | {s['mean_rel']:.2e} | "
                     f"{100 * s['identical_fraction']:.0f}% |")
    lines += [
        "",
        f"Worst float32 spread: **{r['worst_f32_max_rel']:.2e}** ({r['worst_f32_variant']}). "
        f"Recommended `loss_tolerance` = worst x {r['margin']:g}, rounded up: **{r['loss_tolerance']}**. "
        f"The default {r['default_loss_tolerance']} {'covers' if r['default_covers'] else 'does NOT cover'} it "
        f"with a margin of {r['default_margin_over_worst'] or float('inf'):.3g}x. bfloat16 compute spreads up to "
        f"{r['bf16_max_rel']:.2e} per window ({r['bf16_over_default_tolerance']:.2g}x the default tolerance; "
        f"{r['bf16_mean_rel']:.1e} on the mean): honest bf16 votes would be outliers, so verifiers must use float32. "
        f"In nats the default tolerance is {r['default_tolerance_nats_at_median_loss']:.4f} at the largest median "
        f"loss measured (delta = {r['delta']:g}).",
        "",
        "## Paired improvement of honest blocks",
        "",
        f"d_w = L_prev(w) - L_next(w); LCB = mean - t sd / sqrt(m) with the chain defaults (delta "
        f"{out['chain_defaults']['delta']}, t {out['chain_defaults']['lcb_t']}). P(weak at 2 delta): d_w scaled to "
        f"mean 2 delta, the config's m_windows windows resampled with replacement from the {out['m']} measured; "
        f"normal approximation Phi(t - sqrt(m) / (2 CV)); 'shifted' (blocks with mean <= 4 delta only): d_w - mean "
        f"+ 2 delta instead (sd kept, pessimistic). Target <= 0.001, i.e. CV <= "
        + ", ".join(f"{v:.2f} ({c}, m = {out['paired'][c]['chain']['m_windows']})"
                    for c, v in r["cv_max_for_p_weak_0.001"].items()) + ".",
        "",
        "| config | block | loss prev -> next | mean d | sd d | CV | LCB | valid | P(weak, 2 delta) resampled "
        "| normal | shifted: CV, resampled |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cname, pc in out["paired"].items():
        for b in pc["blocks"]:
            pw = b["p_weak_2delta"]
            sh = b.get("p_weak_2delta_shifted")
            shifted = f"{sh['cv']:.2f}, {sh['resampled']:.4f} |" if sh else "- |"
            tail = (f"{pw['resampled']:.4f} (< {pw['resampled_upper95']:.4f}) | {pw['normal']:.1e} | " + shifted
                    if pw else "- (first block) | - | - |")
            lines.append(
                f"| {cname} | {b['block']} | {b['loss_prev']:.3f} -> {b['loss_next']:.3f} | {b['mean_d']:.4f} | "
                f"{b['sd_d']:.4f} | {b['cv']:.2f} | {b['lcb']:.4f} | {'yes' if b['valid'] else 'no'} | " + tail)
    weak = ", ".join(r["honest_blocks_judged_weak"]) or "none"
    lines += ["", f"Largest P(weak at 2 delta): {r['max_p_weak_2delta']} "
              f"(target <= 0.001 met: {r['p_weak_target_met']}; largest CV {r['max_cv']:.2f}); "
              f"shifted instead of scaled (blocks near 2 delta): {r['max_p_weak_2delta_shifted']}. "
              f"Honest blocks whose own bound missed delta: {weak}.", ""]
    return "\n".join(lines)


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = out["recommendations"]
    floor = 1e-10
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1.2, 1]})
    names = [v for v in out["spread"] if v != REF]
    marker = {("tiny", "prev"): "o", ("tiny", "next"): "s", ("small", "prev"): "^", ("small", "next"): "D"}
    for i, v in enumerate(names):
        s = out["spread"][v]
        ax.bar(i, max(s["max_rel"], floor), color="tab:red" if s["bf16"] else "tab:blue", alpha=0.35, width=0.7)
        for cname, states in s["configs"].items():
            for state, st in states.items():
                ax.scatter(i, max(st["p99_rel"], floor), marker=marker.get((cname, state), "x"), color="k", s=14,
                           label=f"p99 {cname} {state}" if i == 0 else None, zorder=3)
        if s["max_rel"] == 0:
            ax.text(i, floor * 1.5, "0: bit-identical", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.axhline(float(r["default_loss_tolerance"].split("/")[0]) / float(r["default_loss_tolerance"].split("/")[1]),
               color="tab:green", ls="-", label=f"default loss_tolerance {r['default_loss_tolerance']}")
    ax.axhline(r["loss_tolerance_float"], color="tab:orange", ls="--",
               label=f"recommended {r['loss_tolerance']} (worst f32 x {r['margin']:g})")
    ax.axhline(float(np.finfo(np.float32).eps), color="gray", ls=":", label="float32 eps")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 1)
    ax.set_xticks(range(len(names)), names, rotation=55, ha="right", fontsize=8)
    ax.set_ylabel("|v - ref| / |ref| per window (bar: max, dots: p99)")
    ax.set_title(f"Spread vs {REF} (red: bfloat16 compute)")
    ax.legend(fontsize=7, loc="upper left", ncol=2)

    delta = float(Fraction(out["chain_defaults"]["delta"]))
    shown = []
    for cname, pc in out["paired"].items():
        bl = pc["blocks"]
        pick = sorted({len(bl) // 2, len(bl) - 1}) if len(bl) > 2 else list(range(len(bl)))
        shown += [(cname, bl[i]) for i in pick]  # a middle and the last block: the ones near delta
    allv = np.concatenate([np.asarray(b["d_w"]) for _, b in shown])
    lo, hi = np.percentile(allv, 0.5), np.percentile(allv, 99.5)
    bins = np.linspace(min(lo, -0.05), max(hi, 3 * delta), 60)
    for cname, b in shown:
        bx.hist(np.clip(b["d_w"], bins[0], bins[-1]), bins=bins, histtype="step", lw=1.5,
                label=f"{cname} block {b['block']}: mean {b['mean_d']:.3f}, CV {b['cv']:.2f}")
    bx.axvline(delta, color="tab:red", ls="--", label="delta")
    bx.axvline(2 * delta, color="tab:orange", ls="--", label="2 delta")
    bx.axvline(0, color="gray", lw=0.8)
    bx.set_xlabel("d_w = L_prev(w) - L_next(w) (nats)")
    bx.set_ylabel("windows")
    bx.set_title(f"Honest per-window improvement (m = {out['m']})")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
