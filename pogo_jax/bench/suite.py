"""``pogo bench``: every per-unit measurement on the current backend, into ``bench_<backend>.json``.

Training tokens/s and MFU with PoGO disabled (plain train step) and enabled (a real miner block:
train + quantize + commit + prove), device leaf-hash GB/s, commit time of the model state, proof
bytes for k leaves, light and full verification time, consensus v3's per-round costs (``v3``: commit and
reveal of a full vote, opening the round's sealed shard, per-window against mean losses; defined in
``bench.protocol``), the node's finalization of a round with 3 candidates and 16 verifiers, ``pogo audit``'s
time per block, and the roots of a fixed input (``bench.roots``) for the cross-backend check in ``pogo report``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pogo_jax.bench import merkle as bm
from pogo_jax.bench import protocol as bp
from pogo_jax.bench import train as bt
from pogo_jax.bench.common import device_info
from pogo_jax.bench.costs import proof_bytes, tree_depth
from pogo_jax.bench.roots import roots_record

SCHEMA = "pogo-bench-v1"


def default_config(backend: str) -> str:
    return "small" if backend == "cpu" else "gpt2-124m"


def run_bench(cfg, command: str, quick: bool = False, k: int = 64, block_steps: int | None = None,
              workdir: str | Path | None = None) -> dict[str, Any]:  # noqa: ANN001 - Config
    """All measurements for ``cfg`` on this backend; ``quick`` shrinks every size (tests, smoke runs)."""
    from pogo_jax.commit import device
    from pogo_jax.train.model import param_shapes

    t_start = time.perf_counter()
    info = device_info()
    backend = info["backend"]
    steps = block_steps if block_steps is not None else (5 if quick else None)
    print(f"pogo bench: {cfg.name} on {info['n_devices']}x {info['device_kind']} ({backend})", flush=True)

    plain = bt.bench_train_step(cfg, steps=3 if quick else 20, warmup=1 if quick else 3)
    n_mm, matmul = bt.measure_matmul_default(backend, 256 if quick else 0)
    fpt = plain["flops_per_token"]
    print(f"  plain train step: {plain['tokens_per_s']:,.0f} tokens/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="pogo-bench-") as tmp:
        proto = bp.run_protocol(cfg, workdir or tmp, k=k, block_steps=steps, blocks=3,
                                light_repeats=5 if quick else 20, eval_repeats=1 if quick else 3)
        fin = bp.bench_finalize(cfg, Path(workdir or tmp) / "finalize", repeats=1 if quick else 3)
    print(f"  finalize 3 candidates x 16 verifiers: {fin['no_claims']['seconds_median'] * 1e3:.0f} ms, "
          f"with objective claims {fin['claims']['seconds_median'] * 1e3:.0f} ms; audit "
          f"{proto['audit']['seconds_per_block']:.3f} s per block", flush=True)
    blk = proto["blocks"][-1]
    print(f"  block {blk['height']}: train {blk['train_s']:.2f}s, overhead {blk['pogo_overhead_s']:.3f}s "
          f"({blk['pogo_overhead_fraction']:.1%}), light {blk['light_verify_s'] * 1e3:.1f} ms, "
          f"full {blk['full_verify_s']:.3f}s", flush=True)
    print(f"  v3: commit + reveal {blk['commit_reveal_s'] * 1e3:.1f} ms, open shard "
          f"{blk['open_shard_s'] * 1e3:.1f} ms, losses per window {blk['window_losses_s']:.3f}s vs one mean "
          f"{blk['mean_loss_s']:.3f}s: overhead "
          f"{blk['v3_overhead_s']:.3f}s ({blk['v3_overhead_frac']:.1%} of training)", flush=True)
    tokens = proto["tokens_per_block"]
    enabled_tps = tokens / (blk["train_s"] + blk["pogo_overhead_s"])
    miner_tps = tokens / blk["train_s"]

    leaf = bm.bench_leaf_hashing(1024 if quick else (16384 if backend == "cpu" else 121_600),
                                 [device.DEFAULT_UNROLL], 3 if quick else 5, variants=False)[0]
    shapes = param_shapes(cfg.model)
    commit = bm.bench_commit(cfg.name, 3 if quick else 5, shapes=shapes, trees=("host",))
    host = bm.bench_host(quick=True)
    roots = roots_record()

    n_leaves = proto["n_leaves"]
    depth = tree_depth(n_leaves)
    mfu = {name: bt.mfu_fields(fpt, tps, info["device_kind"], info["n_devices"], matmul)
           for name, tps in (("disabled", plain["tokens_per_s"]), ("enabled", enabled_tps),
                             ("miner_train_only", miner_tps))}
    return {
        "schema": SCHEMA,
        "config": cfg.name,
        "quick": quick,
        "command": command,
        **info,
        "param_count": plain["param_count"],
        "n_leaves": n_leaves,
        "tree_depth": depth,
        "flops_per_token": fpt,
        "matmul_n": n_mm,
        "matmul_bf16_flops_per_s_measured": matmul,
        "peak_bf16_flops_per_device": bt.peak_for(info["device_kind"]),
        "train": {
            "pogo_disabled": {
                "what": "plain Trainer.train_step on pre-placed batches (no quantization, no commitment)",
                "tokens_per_s": plain["tokens_per_s"],
                "step_time_s_median": plain["step_time_s_median"],
                "compile_s": plain["compile_s"],
                "mfu_vs_peak": mfu["disabled"]["mfu_vs_peak"],
                "mfu_vs_measured_matmul": mfu["disabled"]["mfu_vs_measured_matmul"],
            },
            "pogo_enabled": {
                "what": "tokens of one miner block / (its training + quantize + commit + prove time)",
                "tokens_per_s": enabled_tps,
                "mfu_vs_peak": mfu["enabled"]["mfu_vs_peak"],
                "mfu_vs_measured_matmul": mfu["enabled"]["mfu_vs_measured_matmul"],
            },
            "miner_train_only": {
                "what": "the same block's training alone (Miner loop: Trainer.train_steps, metrics read one step late)",
                "tokens_per_s": miner_tps,
                "mfu_vs_measured_matmul": mfu["miner_train_only"]["mfu_vs_measured_matmul"],
            },
            "tokens_per_step": plain["tokens_per_step"],
        },
        "block": {
            "block_steps": proto["block_steps"],
            "config_block_steps": cfg.miner.block_steps,
            "tokens_per_block": tokens,
            **{key: blk[key] for key in ("train_s", "quantize_s", "commit_s", "prove_s", "prove_open_s",
                                         "prove_loss_s", "write_s", "mine_s", "pogo_overhead_s",
                                         "pogo_overhead_fraction", "full_verify_s", "full_verify_parts_s",
                                         "full_verify_fraction_of_mining", "light_verify_s", "bundle_bytes",
                                         "update_bytes", "loss_prev", "loss_next", "outcome",
                                         "full_verify_check_s", "commit_reveal_s", "open_shard_s",
                                         "window_losses_s", "mean_loss_s", "v3_overhead_s", "v3_overhead_frac")},
            "pogo_overhead_fraction_at_config_block_steps": bp.overhead_at(blk, proto["block_steps"],
                                                                           cfg.miner.block_steps),
            "model_bytes_fp32": proto["model_bytes_fp32"],
            "all_blocks_confirmed": proto["all_confirmed"],
            "first_block": {key: proto["blocks"][0][key] for key in ("mine_s", "train_s", "quantize_s",
                                                                      "commit_s", "prove_s", "full_verify_s")},
        },
        "merkle": {
            "leaf_hash_GBps": leaf["GBps"],
            "leaf_hash_n_leaves": leaf["n_leaves"],
            "leaf_hash_unroll": leaf["unroll"],
            "commit_s": commit["host_tree"]["seconds"],
            "commit_first_call_s": commit["host_tree"]["first_call_s"],
            "commit_leaf_hashes_GBps": commit["leaf_hashes_GBps"],
            "host_sha256_GBps_one_core": host["sha256_4KiB_leaf_GBps_one_core"],
            "host_node_hashes_per_s": host["node_hashes_per_s"],
            "host_path_verifications_per_s": host["path_verifications_per_s_batched"],
        },
        "proof": {
            "k": k,
            "tree_depth": depth,
            "proof_bytes_binary": proof_bytes(k, n_leaves, cfg.chain.leaf_size, cfg.chain.group_size),
            "bundle_bytes_measured": blk["bundle_bytes"],
        },
        "chain": {"finalize": fin, "audit": proto["audit"]},
        "v3": proto["v3"],
        "light_verify_s": blk["light_verify_s"],
        "full_verify_s": blk["full_verify_s"],
        "targets": proto["targets"],
        "meets": proto["meets"],
        **roots,
        "wall_s": time.perf_counter() - t_start,
    }
