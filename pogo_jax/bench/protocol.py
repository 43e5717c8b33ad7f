"""One real PoGO chain, measured: the roles' own code on an in-process chain (``LocalClient``), phase by phase.

A fresh chain (``roles.governance.create_chain``) on a fake clock; the real ``Miner`` trains, commits and
submits each block, the round's windows are closed by advancing the clock, the miner proves, a full and a
light ``Verifier`` check and attest, and the chain finalizes. The first block pays every compilation, the
second compiles the block quantizer's steady state; the figures are taken from the last block.

Then two measurements of the chain itself (issue "Consensus v2"): the finalization of a round with 3
candidates and 16 verifiers (with and without objective claims to re-check), and ``pogo audit``'s time per
block against the full verification time of the same blocks.

Definitions:
- PoGO overhead per block = quantize + commit + prove, as a fraction of the block's training time.
- Full-verify fraction = one full verification's wall time over the mining wall time of the same block.
- Light verify = ``verify_light`` on the parsed bundle against the chain's context (one core, no jax),
  median of repeats; bundle bytes = the stored bundle.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.bench.common import host_time
from pogo_jax.chain.audit import audit
from pogo_jax.chain.beacon import BeaconService
from pogo_jax.chain.history import confirmed_state
from pogo_jax.chain.ledger import summary
from pogo_jax.chain.state import replay
from pogo_jax.config import Config, config_from_dict
from pogo_jax.demo.synthetic import openings, random_update
from pogo_jax.roles.governance import create_chain
from pogo_jax.roles.miner import Miner
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import Attestation, sign_attestation
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.header import Header, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import to_leaves
from pogo_jax.spec.light import verify_light
from pogo_jax.spec.records import Participant

TARGET_LIGHT_S = 0.050  # light verify per bundle at k = 64, one core
TARGET_FULL_FRACTION = 0.05  # full verify <= 5% of the block's mining time
TARGET_OVERHEAD_FRACTION = 0.03  # quantize + commit + prove <= 3% of the block's training time
TARGET_AUDIT_FRACTION = 0.05  # audit <= 5% of the full verification of the same blocks


class Clock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def bench_config(cfg: Config, k: int, block_steps: int | None) -> Config:
    """The config with the challenge size ``k`` and (optionally) a shorter block for the run."""
    raw = cfg.to_dict()
    raw["chain"] = {**raw["chain"], "k_leaves": k, "delta": "0"}
    if block_steps is not None:
        raw["miner"] = {**raw["miner"], "block_steps": block_steps}
    raw["train"] = {**raw["train"], "steps": max(raw["train"]["steps"], 4 * raw["miner"]["block_steps"])}
    return config_from_dict(raw)


class Bench:
    """The chain, its roles and the clock of one run."""

    def __init__(self, cfg: Config, workdir: Path, n_verifiers: int = 3, n_miners: int = 1) -> None:
        from pogo_jax.chain.client import LocalClient

        self.cfg, self.clock = cfg, Clock()
        key = lambda s: key_from_seed(hashlib.sha256(s.encode()).digest())  # noqa: E731
        self.gov, node = key("bench gov"), key("bench node")
        self.miners = [key(f"bench miner {i}") for i in range(n_miners)]
        self.verifiers = [key(f"bench verifier {i}") for i in range(n_verifiers)]
        beacon = BeaconService.create(workdir / "beacon", length=256, clock=self.clock)
        parts = [Participant(public_bytes(k), "miner", f"m{i}", 1000) for i, k in enumerate(self.miners)]
        parts += [Participant(public_bytes(k), "verifier", f"v{i}", 1000) for i, k in enumerate(self.verifiers)]
        t0 = time.perf_counter()
        self.chain = create_chain(workdir / "node", cfg, self.gov, node, beacon.info(), parts, clock=self.clock)
        self.genesis_s = time.perf_counter() - t0
        self.chain.beacon = beacon
        beacon.bind(cfg.chain.chain_id, public_bytes(node))
        self.client = LocalClient(self.chain)
        self.work = workdir

    def advance(self, ms: int) -> None:
        self.clock.now += ms
        self.chain.tick()


def _block(b: Bench, miner, full, light, light_repeats: int) -> dict[str, Any]:  # noqa: ANN001

    rules = b.cfg.chain
    miner.view.refresh()
    t0 = time.perf_counter()
    made = miner.make_candidate(miner.view.context())
    miner.view.client.submit_candidate(made.header_bytes, made.update_path)
    mine_s = time.perf_counter() - t0
    b.advance(rules.submit_window_ms)
    miner.view.refresh()
    t0 = time.perf_counter()
    data = miner.prove(made)
    prove_s = time.perf_counter() - t0
    b.client.submit_bundle(data)
    b.chain.tick()
    for v in (full, light):
        v.view.refresh()
    ctx = full.view.context(made.hash)
    bundle = Bundle.from_bytes(data)
    res = verify_light(bundle, ctx)
    light_s = host_time(lambda: verify_light(bundle, ctx), light_repeats)
    t0 = time.perf_counter()
    verdict, _ = full.attest(made.hash)
    full_s = time.perf_counter() - t0
    light.attest(made.hash)

    for v in b.verifiers[2:]:  # the remaining verifiers sign the full verifier's verdict (a second full vote)
        other = Verifier(b.client, v, b.work / "extra", "light", view=full.view)
        b.client.submit_attestation(other.attestation(ctx, verdict))
    b.advance(rules.attest_window_ms)
    st = b.chain.state
    cand = st.find(made.hash)[1]
    mt = made.seconds
    overhead = mt.get("quantize", 0.0) + mt.get("commit", 0.0) + prove_s
    return {
        "height": ctx.height, "outcome": cand.status, "light_accept": res.accept, "light_reason": res.reason,
        "full_accept": verdict.accept, "full_reason": verdict.reason, "loss_prev": verdict.loss_prev,
        "loss_next": verdict.loss_next,
        "train_loss_first": made.train_losses[0] if made.train_losses else None,
        "train_loss_last": made.train_losses[-1] if made.train_losses else None,
        "mine_s": mine_s, "train_s": mt.get("train"), "quantize_s": mt.get("quantize"), "commit_s": mt.get("commit"),
        "write_s": mt.get("keep"), "load_s": mt.get("load"), "prove_s": prove_s, "prove_open_s": mt.get("open"),
        "prove_loss_s": mt.get("loss"), "pogo_overhead_s": overhead,
        "pogo_overhead_fraction": overhead / mt["train"] if mt.get("train") else None,
        "light_verify_s": light_s, "full_verify_s": full_s, "full_verify_parts_s": dict(verdict.timings),
        "full_verify_fraction_of_mining": full_s / mine_s, "bundle_bytes": len(data),
        "update_bytes": made.update_path.stat().st_size, "k": len(bundle.openings),
    }


def run_protocol(cfg: Config, workdir: str | Path, k: int = 64, block_steps: int | None = None,
                 blocks: int = 3, light_repeats: int = 20) -> dict[str, Any]:
    """Mine, prove, verify and finalize ``blocks`` blocks on a fresh chain under ``workdir``; the last one is
    the steady-state measurement; then audit the chain and time it against the full verifications."""

    cfg = bench_config(cfg, k, block_steps)
    workdir = Path(workdir)
    b = Bench(cfg, workdir)
    miner = Miner(b.client, b.miners[0], workdir / "miner", cfg)
    full = Verifier(b.client, b.verifiers[0], workdir / "full", "full")
    light = Verifier(b.client, b.verifiers[1], workdir / "light", "light")
    records = [_block(b, miner, full, light, light_repeats) for _ in range(blocks)]

    entries = b.chain.ledger.entries()
    t0 = time.perf_counter()
    rep = audit(entries, b.chain.ledger.tables(), b.chain.fetch)
    audit_s = time.perf_counter() - t0
    genesis_tables = summary(replay(entries[:1]))
    t0 = time.perf_counter()
    audit(entries[:1], genesis_tables, b.chain.fetch)  # the one-time part: the genesis state and dataset
    audit_fixed_s = time.perf_counter() - t0
    last = records[-1]
    layout = miner.layout
    m = cfg.miner
    tokens = m.block_steps * cfg.train.batch_size * cfg.model.seq_len
    full_steady = sum(r["full_verify_s"] for r in records[1:]) / (blocks - 1)  # block 1 pays the compile
    per_block = (audit_s - audit_fixed_s) / blocks
    audit_fraction = per_block / full_steady if full_steady else None
    return {
        "config": cfg.name, "block_steps": m.block_steps, "tokens_per_block": tokens, "k": k,
        "m_windows": cfg.chain.m_windows, "n_leaves": layout.n_leaves, "n_params": layout.n_values,
        "model_bytes_fp32": 4 * layout.n_values, "genesis_s": b.genesis_s, "blocks": records,
        "measured_block": last["height"], "all_confirmed": all(r["outcome"] == "confirmed" for r in records),
        "audit": {"seconds": audit_s, "genesis_seconds": audit_fixed_s, "seconds_per_block": per_block,
                  "full_verify_seconds_per_block": full_steady, "clean": rep.clean, "entries": rep.entries,
                  "blobs_checked": rep.blobs_checked, "fraction_of_full_verification": audit_fraction,
                  "what": "audit time per block beyond the one-time genesis checks, over one full "
                          "verification of a block (steady state)"},
        "targets": {"light_verify_s_max": TARGET_LIGHT_S, "full_verify_fraction_max": TARGET_FULL_FRACTION,
                    "pogo_overhead_fraction_max": TARGET_OVERHEAD_FRACTION,
                    "audit_fraction_of_full_max": TARGET_AUDIT_FRACTION},
        "meets": {
            "light_verify": last["light_verify_s"] < TARGET_LIGHT_S,
            "full_verify_fraction": last["full_verify_fraction_of_mining"] <= TARGET_FULL_FRACTION,
            "pogo_overhead_fraction": (last["pogo_overhead_fraction"] or 0.0) <= TARGET_OVERHEAD_FRACTION,
            "audit_fraction": audit_fraction is not None and audit_fraction <= TARGET_AUDIT_FRACTION,
        },
    }


def bench_finalize(cfg: Config, workdir: str | Path, n_candidates: int = 3, n_verifiers: int = 16,
                   repeats: int = 3) -> dict[str, Any]:
    """Finalization of one round with ``n_candidates`` candidates and ``n_verifiers`` attesting verifiers:
    the node's ``tick`` that decides the round and appends the signed Finalize record. Candidates are
    synthetic (random 4-bit updates on the genesis state, no training): finalization never looks at how an
    update was made. ``claims``: one verifier makes an objective claim per candidate and tier, so the node
    re-checks 3 bundles (light rule) and rebuilds 3 states (full rule) before it may finalize."""

    out: dict[str, Any] = {"n_candidates": n_candidates, "n_verifiers": n_verifiers}
    for mode in ("no_claims", "claims"):
        times = []
        for rep in range(repeats):
            b = Bench(cfg, Path(workdir) / f"{mode}-{rep}", n_verifiers, n_candidates)
            st = b.chain.state
            lay, r = st.genesis.layout, st.round
            prev = to_leaves(confirmed_state(st, 0, b.chain.fetch).arrays, lay)
            rng = np.random.default_rng(rep)
            made = []
            for i, mk in enumerate(b.miners):
                q = random_update(lay, rng)
                nxt = upd.apply_leaves(prev, *upd.unpack_leaves(q, lay.leaf_size, lay.group_size))
                h = Header(version=2, chain_id=cfg.chain.chain_id, height=1, round=1, parent_hash=r.parent_hash,
                           miner_key=public_bytes(mk), layout_hash=lay.layout_hash(), data_root=r.data.data_root,
                           root_prev=r.root_prev, root_next=mh.root(mh.leaf_hashes(mh.TAG_PARAM, nxt)),
                           root_q=mh.root(mh.leaf_hashes(mh.TAG_QUPD, q)), leaf_size=lay.leaf_size,
                           group_size=lay.group_size, n_leaves=lay.n_leaves, train={"steps": 0, "i": i})
                signed = sign_header(h, mk)
                b.client.submit_candidate(signed.to_bytes(), q.tobytes())
                made.append((signed, nxt, q, mk))
            b.advance(cfg.chain.submit_window_ms)
            for signed, nxt, q, mk in made:
                ctx = b.chain.state.context(signed.hash)
                bundle = Bundle(signed, ctx.beacon, lay, openings(prev, nxt, q, ctx.leaves()), ctx.windows, 3.0, 2.5)
                b.client.submit_bundle(bundle.signed(mk).to_bytes())
            b.chain.tick()
            for signed, _, _, _ in made:
                ctx = b.chain.state.context(signed.hash)
                for j, vk in enumerate(b.verifiers):
                    claim = mode == "claims" and j < 2
                    tier = "light" if j == 0 else "full"
                    verdict, reason = ("reject", "BAD_PROOF" if j == 0 else "ROOT_NEXT_MISMATCH") if claim \
                        else ("accept", "OK")
                    a = Attestation(2, cfg.chain.chain_id, 1, 1, signed.hash, public_bytes(vk), verdict,
                                    tier, reason, ctx.bundle_sha256, None if claim else 3.0,
                                    None if claim else 2.5 - 0.0001 * j)  # within the tolerance of 2.5
                    b.client.submit_attestation(sign_attestation(a, vk).to_bytes())
            t0 = time.perf_counter()
            done = b.chain.tick()
            times.append(time.perf_counter() - t0)
            assert "finalize" in done and b.chain.state.tip_height == 1, done
        out[mode] = {"seconds_median": float(np.median(times)), "seconds": times}
    out["n_leaves"] = lay.n_leaves
    return out


def overhead_at(block: dict[str, Any], block_steps: int, steps: int) -> float | None:
    """The overhead fraction the same fixed per-block cost would be at ``steps`` steps per block
    (training time scales with steps; quantize, commit and prove do not)."""
    if not block.get("train_s"):
        return None
    return block["pogo_overhead_s"] / (block["train_s"] * steps / block_steps)
