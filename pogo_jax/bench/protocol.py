"""One real PoGO chain, measured: the code the role commands run, timed phase by phase.

A fresh chain (``genesis.create_chain``) in a scratch directory; the real ``Miner`` mines and
commits each block, the beacon is revealed, the miner proves, and verifiers run the light check
(``verifier.light.verify_light``) and the full check (``fullverify.verify_full``), attest and
finalize. The first block pays every compilation; the figures are taken from the last block
(steady state). The second block is not steady either: the miner's quantize step compiles again
there (measured: 2.7 s of a 2.9 s block on `tiny`), so the default is three blocks.

Definitions (issue 5):
- PoGO overhead per block = quantize + commit + prove, as a fraction of the block's training time.
- Full-verify fraction = full verification wall time over the mining wall time of the same block.
- Light verify = ``verify_light`` on the parsed bundle with the ledger's policy (one core, no jax),
  median of repeats; bundle bytes = the .pogo file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pogo_jax.bench.common import host_time
from pogo_jax.config import Config, config_from_dict

# Issue 5 targets.
TARGET_LIGHT_S = 0.050  # light verify per bundle at k = 64, one core
TARGET_FULL_FRACTION = 0.05  # full verify <= 5% of the block's mining time
TARGET_OVERHEAD_FRACTION = 0.03  # quantize + commit + prove <= 3% of the block's training time


def bench_config(cfg: Config, k: int, block_steps: int | None) -> Config:
    """The config with the challenge size ``k`` and (optionally) a shorter block for the run."""
    raw = cfg.to_dict()
    raw["pogo"] = {**raw["pogo"], "k_leaves": k}
    if block_steps is not None:
        raw["pogo"]["block_steps"] = block_steps
    raw["train"] = {**raw["train"], "steps": max(raw["train"]["steps"], 4 * raw["pogo"]["block_steps"])}
    return config_from_dict(raw)


def _block(chain, ledger, miner, verifiers, cache, light_repeats: int) -> dict[str, Any]:
    from pogo_jax.fullverify import verify_full
    from pogo_jax.roles.chainops import Verdict, attest, finalize, policy_for, read_bundle, reveal_beacon
    from pogo_jax.roles.light import verify_light

    t0 = time.perf_counter()
    mined = miner.mine()
    mine_s = time.perf_counter() - t0
    h = mined.height
    reveal_beacon(chain, ledger, h)
    t0 = time.perf_counter()
    path, pinfo = miner.prove(h)
    prove_s = time.perf_counter() - t0
    bundle = read_bundle(path)
    policy = policy_for(ledger, mined.header_hash)
    light = verify_light(bundle, policy)
    light_s = host_time(lambda: verify_light(bundle, policy), light_repeats)
    t0 = time.perf_counter()
    full = verify_full(chain, ledger, bundle, cache)
    full_s = time.perf_counter() - t0
    for key in verifiers:
        attest(ledger, key, bundle, Verdict(full.accept, "full", full.reason, full.detail,
                                            full.loss_prev, full.loss_next))
    outcome = finalize(chain, ledger, h)
    mt = dict(mined.timings)
    overhead = mt.get("quantize", 0.0) + mt.get("commit", 0.0) + prove_s
    return {
        "height": h,
        "outcome": outcome.status,
        "light_accept": light.accept,
        "light_reason": light.reason,
        "full_accept": full.accept,
        "full_reason": full.reason,
        "loss_prev": pinfo["loss_prev"],
        "loss_next": pinfo["loss_next"],
        "train_loss_first": mined.train_losses[0] if mined.train_losses else None,
        "train_loss_last": mined.train_losses[-1] if mined.train_losses else None,
        "mine_s": mine_s,
        "train_s": mt.get("train"),
        "quantize_s": mt.get("quantize"),
        "commit_s": mt.get("commit"),
        "write_s": mt.get("write"),
        "load_s": mt.get("load"),
        "prove_s": prove_s,
        "prove_open_s": pinfo["timings"].get("open"),
        "prove_loss_s": pinfo["timings"].get("loss"),
        "pogo_overhead_s": overhead,
        "pogo_overhead_fraction": overhead / mt["train"] if mt.get("train") else None,
        "light_verify_s": light_s,
        "full_verify_s": full_s,
        "full_verify_parts_s": dict(full.timings),
        "full_verify_fraction_of_mining": full_s / mine_s,
        "bundle_bytes": int(pinfo["bytes"]),
        "update_bytes": int(chain.update_file(h).stat().st_size),
        "k": int(pinfo["k"]),
    }


def run_protocol(cfg: Config, workdir: str | Path, k: int = 64, block_steps: int | None = None,
                 blocks: int = 3, light_repeats: int = 20) -> dict[str, Any]:
    """Mine, prove and verify ``blocks`` blocks on a fresh chain under ``workdir``; the last one is
    the steady-state measurement. Returns per-block records and the summary of the last block."""
    from pogo_jax.fullverify import StateCache
    from pogo_jax.genesis import create_chain
    from pogo_jax.miner import Miner
    from pogo_jax.spec.keys import load_private_pem

    cfg = bench_config(cfg, k, block_steps)
    workdir = Path(workdir)
    t0 = time.perf_counter()
    chain, ledger = create_chain(workdir / "chain", cfg)
    genesis_s = time.perf_counter() - t0
    miner = Miner(chain, ledger, load_private_pem(chain.keys_dir / "miner.pem"), workdir / "miner")
    verifiers = [load_private_pem(p) for p in sorted(chain.keys_dir.glob("verifier-*.pem"))]
    cache = StateCache()
    records = [_block(chain, ledger, miner, verifiers, cache, light_repeats) for _ in range(blocks)]
    last = records[-1]
    layout = miner.layout
    p = cfg.pogo
    tokens = p.block_steps * cfg.train.batch_size * cfg.model.seq_len
    return {
        "config": cfg.name,
        "block_steps": p.block_steps,
        "tokens_per_block": tokens,
        "k": k,
        "m_windows": p.m_windows,
        "n_leaves": layout.n_leaves,
        "n_params": layout.n_values,
        "model_bytes_fp32": 4 * layout.n_values,
        "genesis_s": genesis_s,
        "blocks": records,
        "measured_block": last["height"],
        "all_confirmed": all(r["outcome"] == "confirmed" for r in records),
        "targets": {
            "light_verify_s_max": TARGET_LIGHT_S,
            "full_verify_fraction_max": TARGET_FULL_FRACTION,
            "pogo_overhead_fraction_max": TARGET_OVERHEAD_FRACTION,
        },
        "meets": {
            "light_verify": last["light_verify_s"] < TARGET_LIGHT_S,
            "full_verify_fraction": last["full_verify_fraction_of_mining"] <= TARGET_FULL_FRACTION,
            "pogo_overhead_fraction": (last["pogo_overhead_fraction"] or 0.0) <= TARGET_OVERHEAD_FRACTION,
        },
    }


def overhead_at(block: dict[str, Any], block_steps: int, steps: int) -> float | None:
    """The overhead fraction the same fixed per-block cost would be at ``steps`` steps per block
    (training time scales with steps; quantize, commit and prove do not)."""
    if not block.get("train_s"):
        return None
    return block["pogo_overhead_s"] / (block["train_s"] * steps / block_steps)

