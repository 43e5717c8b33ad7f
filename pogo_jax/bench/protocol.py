"""One real PoGO chain, measured: the roles' own code on an in-process chain (``LocalClient``), phase by phase.

A fresh chain (``roles.governance.create_chain``) on a fake clock, on a sealed copy of the config's dataset
(``train.data.seal_dataset``: one evaluation shard per round, keys with the beacon); the real ``Miner``
trains, commits and submits each block, the submission window is closed by advancing the clock (the beacon
reveals the round's value and releases its shard key), the miner proves, a full and a light ``Verifier``
check; the light vote is posted at once, the full votes (the full verifier's and a second one signed by a
third verifier on the same numbers) are committed, revealed after the commit window closes, and the chain
finalizes. The first block pays every compilation, the second compiles the block quantizer's steady state;
the figures are taken from the last block.

Then two measurements of the chain itself (issue "Consensus v2"): the finalization of a round with 3
candidates and 16 verifiers (with and without objective claims to re-check), and ``pogo audit``'s time per
block against the full verification time of the same blocks.

Definitions (per block record; the top-level ``v3`` object repeats the measured block's v3 numbers):
- PoGO overhead per block = quantize + commit + prove, as a fraction of the block's training time
  (``pogo_overhead_fraction``, target <= 3%).
- Full verify (``full_verify_s``) = everything the v3 full verifier does for one candidate: its check
  (``full_verify_check_s``: the light checks, the rebuild of ``theta_next``, opening the round's sealed
  shard and both states' per-window losses on its windows) plus building, signing and committing the vote
  and revealing it (``commit_reveal_s``). Full-verify fraction = that over the mining wall time of the same
  block (``full_verify_fraction_of_mining``, target <= 5%).
- Light verify = ``verify_light`` on the parsed bundle against the chain's context (one core, no jax),
  median of repeats; bundle bytes = the stored bundle.

The per-round costs consensus v3 added (PROTOCOL 13-16), each on the measured block:
- ``commit_reveal_s`` = ``vote_commit_s`` + ``vote_reveal_s``: the full verifier's ``Verifier.attest`` less
  its check (build and sign the vote with fresh salt, keep it on disk, sign the ``VoteCommit`` and post it
  through the node) plus ``Verifier.reveal`` after the commit close (read the kept vote, post it; the node
  checks it against the commitment and recomputes the verdict its losses imply). v2 posted one attestation
  instead; the whole time is counted, so the overhead below is an upper bound.
- ``open_shard_s``: ``BlockContext.eval_tokens`` on the round's dataset, median of repeats: check the
  released key against the manifest, AES-256-GCM decrypt and authenticate the round's sealed shard, check
  its plaintext hash and gather the round's windows. Miner (for its reported means) and each full verifier
  pay it once a round.
- ``window_losses_s`` vs ``mean_loss_s``: both states' losses on ``eval_windows`` windows (the round's
  count), steady state (a warm-up call first, then the median of repeats): v3's ``Evaluator.window_losses``
  on the round's shard windows (one loss per window, in fixed chunks of ``EVAL_CHUNK``) against v2's
  ``Evaluator.loss`` (one mean over as many public evaluation windows, one compiled program of that shape).
  Their difference, floored at 0, is ``per_window_eval_extra`` (paid by the miner and each full verifier).
- ``v3_overhead_s`` = ``commit_reveal_s`` + ``open_shard_s`` + ``per_window_eval_extra``: what a full
  verifier pays per candidate that v2 did not (a miner pays the last two of it), and ``v3_overhead_frac`` =
  that over the block's training time (``train_s``), target <= 2% (``targets.v3_overhead_frac_max``). The
  rules' larger window count (``m_windows``) is a rule, not a protocol cost: it is in the full-verify
  fraction. Also recorded: ``full_vote_bytes`` (a revealed full vote, with its per-window losses) and
  ``vote_commit_bytes`` (its commitment).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.bench.common import host_time, median_time
from pogo_jax.chain.audit import audit
from pogo_jax.chain.beacon import BeaconService
from pogo_jax.chain.history import confirmed_state
from pogo_jax.chain.ledger import summary
from pogo_jax.chain.state import replay
from pogo_jax.config import Config, config_from_dict
from pogo_jax.demo.synthetic import openings, random_update
from pogo_jax.errors import UserError
from pogo_jax.roles.governance import create_chain
from pogo_jax.roles.miner import Miner
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import ATTEST_VERSION, Attestation, read_signed_attestation, sign_attestation
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.header import Header, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import to_leaves
from pogo_jax.spec.light import verify_light
from pogo_jax.spec.records import Participant, VoteCommit
from pogo_jax.spec.verdict import own_verdict

TARGET_LIGHT_S = 0.050  # light verify per bundle at k = 64, one core
TARGET_FULL_FRACTION = 0.05  # full verify <= 5% of the block's mining time
TARGET_OVERHEAD_FRACTION = 0.03  # quantize + commit + prove <= 3% of the block's training time
TARGET_AUDIT_FRACTION = 0.05  # audit <= 5% of the full verification of the same blocks
TARGET_V3_OVERHEAD_FRACTION = 0.02  # commit/reveal + shard opening + per-window evaluation <= 2% of training
SEALED_SHARDS = 16  # evaluation shards sealed for a bench chain: one per round


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


def sealed_data(cfg: Config, workdir: str | Path, shards: int = SEALED_SHARDS) -> tuple[Config, Path]:
    """``cfg`` on a sealed copy of its dataset (written to ``workdir``) and the keys file for the beacon. Each
    shard holds the round's ``m_windows`` windows (at least ``train.data.DEFAULT_SEALED_BYTES``). A dataset that
    is sealed already is used as it is, with its keys beside it (``FILE.keys``)."""
    from pogo_jax.train.data import DEFAULT_SEALED_BYTES, SealSpec, load_dataset, seal_dataset

    src = load_dataset(cfg.data)
    if src.sealed is not None:
        keys = Path(f"{src.path}.keys")
        if not keys.is_file():
            raise UserError(f"{src.path} is sealed and its keys file {keys} is missing: the bench's beacon needs "
                            "the keys (or give an unsealed dataset, which the bench seals itself)")
        return cfg, keys
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out, keys = workdir / "data-sealed.pogodata", workdir / "data-sealed.pogodata.keys"
    shard_bytes = max(DEFAULT_SEALED_BYTES, cfg.chain.m_windows * cfg.model.seq_len + 1)
    seal_dataset(src.path, out, SealSpec(shards, shard_bytes, keys))
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(out))), keys


class Bench:
    """The chain, its roles and the clock of one run. ``sealed``: a (config, keys file) pair from
    ``sealed_data`` to share one sealed dataset between chains; by default the config's is sealed here."""

    def __init__(self, cfg: Config, workdir: Path, n_verifiers: int = 3, n_miners: int = 1,
                 sealed: tuple[Config, Path] | None = None) -> None:
        from pogo_jax.chain.client import LocalClient

        workdir = Path(workdir)
        cfg, keys = sealed or sealed_data(cfg, workdir)
        self.cfg, self.clock = cfg, Clock()
        key = lambda s: key_from_seed(hashlib.sha256(s.encode()).digest())  # noqa: E731
        self.gov, node = key("bench gov"), key("bench node")
        self.miners = [key(f"bench miner {i}") for i in range(n_miners)]
        self.verifiers = [key(f"bench verifier {i}") for i in range(n_verifiers)]
        beacon = BeaconService.create(workdir / "beacon", length=256, clock=self.clock)
        beacon.add_keys(keys)
        parts = [Participant(public_bytes(k), "miner", f"m{i}", 1000) for i, k in enumerate(self.miners)]
        parts += [Participant(public_bytes(k), "verifier", f"v{i}", 1000) for i, k in enumerate(self.verifiers)]
        t0 = time.perf_counter()
        self.chain = create_chain(workdir / "node", cfg, self.gov, node, beacon.info(), parts, clock=self.clock)
        self.genesis_s = time.perf_counter() - t0
        self.chain.beacon = beacon
        self.chain_id = self.chain.state.genesis.chain_id
        beacon.bind(self.chain_id, public_bytes(node))
        self.client = LocalClient(self.chain)
        self.work = workdir

    def advance(self, ms: int) -> None:
        self.clock.now += ms
        self.chain.tick()

    def close_commits(self) -> None:
        """Close the commit window (at once when every verifier voted or committed, else at its deadline)."""
        self.chain.tick()
        if self.chain.state.round.phase == "commit":
            self.advance(self.cfg.chain.attest_window_ms)

    def finish(self) -> None:
        """Close the reveal window (at once when every commitment is revealed) and finalize."""
        self.chain.tick()
        if self.chain.state.round.phase == "reveal":
            self.advance(self.cfg.chain.reveal_window_ms)


def _v3_costs(miner, full, made, ctx, eval_repeats: int, shard_repeats: int) -> dict[str, Any]:  # noqa: ANN001
    """Opening the round's shard, and both states' per-window losses (v3) against one mean loss (v2) on as many
    windows, on the full verifier's own evaluator and the round's dataset (see the module docstring)."""
    from pogo_jax.train.data import n_eval_windows

    ds = full.full_inputs.dataset(ctx)
    open_s = host_time(lambda: ctx.eval_tokens(ds), shard_repeats)
    tokens = ctx.eval_tokens(ds)
    ev = full.evaluator()
    prev = full.full_inputs.theta_prev(ctx).arrays
    held = miner.held_state(made.root_next)
    nxt = held[0] if held is not None else prev
    n_pub = n_eval_windows(ds, ev.cfg.model.seq_len)
    public = [w % n_pub for w in ctx.windows]  # v2 measured a mean on public evaluation windows
    window_s = median_time(lambda: [ev.window_losses(a, tokens) for a in (prev, nxt)], eval_repeats)
    mean_s = median_time(lambda: [ev.loss(a, ds, public) for a in (prev, nxt)], eval_repeats)
    return {"open_shard_s": open_s, "window_losses_s": window_s, "mean_loss_s": mean_s,
            "eval_windows": int(tokens.shape[0])}


def _block(b: Bench, miner, full, light, light_repeats: int, eval_repeats: int) -> dict[str, Any]:  # noqa: ANN001

    rules = b.cfg.chain
    miner.view.refresh()
    t0 = time.perf_counter()
    made = miner.make_candidate(miner.view.context())
    miner.view.client.submit_candidate(made.header_bytes, made.update_path)
    mine_s = time.perf_counter() - t0
    b.advance(rules.submit_window_ms)  # the submit close; the beacon reveals the value and the shard key
    miner.view.refresh()
    t0 = time.perf_counter()
    data = miner.prove(made)
    prove_s = time.perf_counter() - t0
    b.client.submit_bundle(data)
    b.chain.tick()  # every bundle is in: the proof window closes, votes and commitments are due
    for v in (full, light):
        v.view.refresh()
    ctx = full.view.context(made.hash)
    bundle = Bundle.from_bytes(data)
    res = verify_light(bundle, ctx)
    light_s = host_time(lambda: verify_light(bundle, ctx), light_repeats)

    # The full verifier's vote: its check timed apart from building, signing, keeping and committing the vote.
    check, spent = full.check, {}

    def timed_check(hh: bytes):  # noqa: ANN202
        t = time.perf_counter()
        out = check(hh)
        spent["check"] = time.perf_counter() - t
        return out

    full.check = timed_check
    try:
        t0 = time.perf_counter()
        verdict, _ = full.attest(made.hash)
        attest_s = time.perf_counter() - t0
    finally:
        del full.check
    check_s = spent["check"]
    light.attest(made.hash)

    extra_votes = []
    for v in b.verifiers[2:]:  # the remaining verifiers sign the full verifier's verdict (a second full vote)
        other = Verifier(b.client, v, b.work / "extra", "light", view=full.view)
        vote = other.attestation(ctx, verdict)
        commit = other.commit_record(ctx, vote)
        b.client.submit_commit(commit)
        extra_votes.append(vote)
    b.close_commits()
    t0 = time.perf_counter()
    full.reveal(made.hash)
    reveal_s = time.perf_counter() - t0
    for vote in extra_votes:
        b.client.submit_attestation(vote)
    b.finish()

    v3 = _v3_costs(miner, full, made, ctx, eval_repeats, light_repeats)
    st = b.chain.state
    cand = st.find(made.hash)[1]
    mt = made.seconds
    overhead = mt.get("quantize", 0.0) + mt.get("commit", 0.0) + prove_s
    commit_s = attest_s - check_s
    commit_reveal_s = commit_s + reveal_s
    full_s = attest_s + reveal_s
    eval_extra = max(0.0, v3["window_losses_s"] - v3["mean_loss_s"])
    v3_parts = {"commit_reveal": commit_reveal_s, "open_shard": v3["open_shard_s"], "per_window_eval_extra": eval_extra}
    v3_overhead = sum(v3_parts.values())
    train_s = mt.get("train")
    return {
        "height": ctx.height, "outcome": cand.status, "light_accept": res.accept, "light_reason": res.reason,
        "full_accept": verdict.accept, "full_reason": verdict.reason, "loss_prev": verdict.loss_prev,
        "loss_next": verdict.loss_next,
        "train_loss_first": made.train_losses[0] if made.train_losses else None,
        "train_loss_last": made.train_losses[-1] if made.train_losses else None,
        "mine_s": mine_s, "train_s": train_s, "quantize_s": mt.get("quantize"), "commit_s": mt.get("commit"),
        "write_s": mt.get("keep"), "load_s": mt.get("load"), "prove_s": prove_s, "prove_open_s": mt.get("open"),
        "prove_loss_s": mt.get("loss"), "pogo_overhead_s": overhead,
        "pogo_overhead_fraction": overhead / train_s if train_s else None,
        "light_verify_s": light_s, "full_verify_s": full_s, "full_verify_check_s": check_s,
        "full_verify_parts_s": dict(verdict.timings),
        "full_verify_fraction_of_mining": full_s / mine_s, "bundle_bytes": len(data),
        "update_bytes": made.update_path.stat().st_size, "k": len(bundle.openings),
        "vote_commit_s": commit_s, "vote_reveal_s": reveal_s, "commit_reveal_s": commit_reveal_s,
        "full_vote_bytes": len(extra_votes[0]) if extra_votes else None,
        "vote_commit_bytes": len(commit) if extra_votes else None,
        **v3,
        "v3_overhead_parts_s": v3_parts, "v3_overhead_s": v3_overhead,
        "v3_overhead_miner_s": v3["open_shard_s"] + eval_extra,
        "v3_overhead_frac": v3_overhead / train_s if train_s else None,
    }


V3_WHAT = {
    "commit_reveal_s": "the full verifier's vote: build, sign, keep and commit it through the node "
                       "(Verifier.attest less its check) plus reveal it after the commit close (Verifier.reveal)",
    "open_shard_s": "BlockContext.eval_tokens: check the released key, AES-256-GCM decrypt and authenticate the "
                    "round's sealed shard, check its plaintext hash, gather the round's windows (median)",
    "window_losses_s": "Evaluator.window_losses of theta_prev and theta_next on the round's windows (v3 full "
                       "tier), steady state",
    "mean_loss_s": "Evaluator.loss of both states on as many public evaluation windows (v2's single mean), "
                   "steady state",
    "v3_overhead_s": "commit_reveal_s + open_shard_s + max(0, window_losses_s - mean_loss_s): a full "
                     "verifier's per-candidate cost v2 did not have (a miner pays the last two terms)",
    "v3_overhead_frac": "v3_overhead_s / the block's training time (train_s)",
}


def run_protocol(cfg: Config, workdir: str | Path, k: int = 64, block_steps: int | None = None,
                 blocks: int = 3, light_repeats: int = 20, eval_repeats: int = 3) -> dict[str, Any]:
    """Mine, prove, verify and finalize ``blocks`` blocks on a fresh chain under ``workdir``; the last one is
    the steady-state measurement; then audit the chain and time it against the full verifications."""

    cfg = bench_config(cfg, k, block_steps)
    workdir = Path(workdir)
    b = Bench(cfg, workdir, sealed=sealed_data(cfg, workdir, max(SEALED_SHARDS, blocks + 4)))
    cfg = b.cfg
    miner = Miner(b.client, b.miners[0], workdir / "miner", cfg)
    full = Verifier(b.client, b.verifiers[0], workdir / "full", "full")
    light = Verifier(b.client, b.verifiers[1], workdir / "light", "light")
    records = [_block(b, miner, full, light, light_repeats, eval_repeats) for _ in range(blocks)]

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
    v3_keys = ("commit_reveal_s", "vote_commit_s", "vote_reveal_s", "open_shard_s", "window_losses_s",
               "mean_loss_s", "eval_windows", "full_vote_bytes", "vote_commit_bytes", "v3_overhead_parts_s",
               "v3_overhead_s", "v3_overhead_miner_s", "v3_overhead_frac", "train_s")
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
        "v3": {**{key: last[key] for key in v3_keys}, "block": last["height"],
               "v3_overhead_frac_max": TARGET_V3_OVERHEAD_FRACTION, "what": V3_WHAT},
        "targets": {"light_verify_s_max": TARGET_LIGHT_S, "full_verify_fraction_max": TARGET_FULL_FRACTION,
                    "pogo_overhead_fraction_max": TARGET_OVERHEAD_FRACTION,
                    "audit_fraction_of_full_max": TARGET_AUDIT_FRACTION,
                    "v3_overhead_frac_max": TARGET_V3_OVERHEAD_FRACTION},
        "meets": {
            "light_verify": last["light_verify_s"] < TARGET_LIGHT_S,
            "full_verify_fraction": last["full_verify_fraction_of_mining"] <= TARGET_FULL_FRACTION,
            "pogo_overhead_fraction": (last["pogo_overhead_fraction"] or 0.0) <= TARGET_OVERHEAD_FRACTION,
            "audit_fraction": audit_fraction is not None and audit_fraction <= TARGET_AUDIT_FRACTION,
            "v3_overhead_frac": last["v3_overhead_frac"] is not None
                                and last["v3_overhead_frac"] <= TARGET_V3_OVERHEAD_FRACTION,
        },
    }


def bench_finalize(cfg: Config, workdir: str | Path, n_candidates: int = 3, n_verifiers: int = 16,
                   repeats: int = 3) -> dict[str, Any]:
    """Finalization of one round with ``n_candidates`` candidates and ``n_verifiers`` voting verifiers:
    the node's ``tick`` that decides the round and appends the signed Finalize record, once every full vote
    is committed and revealed. Candidates are synthetic (random 4-bit updates on the genesis state, no
    training): finalization never looks at how an update was made. Verifier 0 votes light, the others full
    (per-window losses, the verdict they imply). ``claims``: one light and one full verifier make an
    objective claim per candidate, so the node re-checks 3 bundles (light rule) and rebuilds 3 states (full
    rule) before it may finalize."""

    out: dict[str, Any] = {"n_candidates": n_candidates, "n_verifiers": n_verifiers}
    sealed = sealed_data(cfg, workdir)
    rules = sealed[0].chain
    spread = float(rules.loss_tolerance) / (4 * n_verifiers)  # distinct votes, none an outlier or a mismatch
    for mode in ("no_claims", "claims"):
        times = []
        for rep in range(repeats):
            b = Bench(cfg, Path(workdir) / f"{mode}-{rep}", n_verifiers, n_candidates, sealed=sealed)
            st = b.chain.state
            lay, r = st.genesis.layout, st.round
            prev = to_leaves(confirmed_state(st, 0, b.chain.fetch).arrays, lay)
            rng = np.random.default_rng(rep)
            made = []
            for i, mk in enumerate(b.miners):
                q = random_update(lay, rng)
                nxt = upd.apply_leaves(prev, *upd.unpack_leaves(q, lay.leaf_size, lay.group_size))
                h = Header(version=3, chain_id=b.chain_id, height=1, round=1, parent_hash=r.parent_hash,
                           miner_key=public_bytes(mk), layout_hash=lay.layout_hash(), data_root=r.data.data_root,
                           root_prev=r.root_prev, root_next=mh.root(mh.leaf_hashes(mh.TAG_PARAM, nxt)),
                           root_q=mh.root(mh.leaf_hashes(mh.TAG_QUPD, q)), leaf_size=lay.leaf_size,
                           group_size=lay.group_size, n_leaves=lay.n_leaves, train={"steps": 0, "i": i})
                signed = sign_header(h, mk)
                b.client.submit_candidate(signed.to_bytes(), q.tobytes())
                made.append((signed, nxt, q, mk))
            b.advance(rules.submit_window_ms)
            for signed, nxt, q, mk in made:
                ctx = b.chain.state.context(signed.hash)
                bundle = Bundle(signed, ctx.beacon, lay, openings(prev, nxt, q, ctx.leaves()), ctx.windows, 3.0, 2.5)
                b.client.submit_bundle(bundle.signed(mk).to_bytes())
            b.chain.tick()
            kept = []
            for signed, _, _, _ in made:
                ctx = b.chain.state.context(signed.hash)
                n_win = len(ctx.windows)
                for j, vk in enumerate(b.verifiers):
                    pub = public_bytes(vk)
                    claim = mode == "claims" and j < 2
                    tier = "light" if j == 0 else "full"
                    lp = ln = None
                    if claim:
                        reason = "BAD_PROOF" if j == 0 else "ROOT_NEXT_MISMATCH"
                    elif tier == "light":
                        reason = "OK"
                    else:  # the same L(prev) on every candidate; L(next) spread within a quarter of the tolerance
                        lp, ln = (3.0,) * n_win, (2.5 * (1 - spread * j),) * n_win
                        reason = own_verdict(lp, ln, (3.0, 2.5), rules.delta, rules.lcb_t, rules.loss_tolerance)
                    salt = hashlib.sha256(b"bench salt" + signed.hash + pub).digest() if tier == "full" else None
                    a = Attestation(version=ATTEST_VERSION, chain_id=b.chain_id, height=1, round=1,
                                    header_hash=signed.hash, verifier_key=pub,
                                    verdict="accept" if reason == "OK" else "reject", tier=tier,
                                    reason=reason, evidence=ctx.bundle_sha256, salt=salt, losses_prev=lp,
                                    losses_next=ln, bundle_entry=ctx.bundle_entry)
                    vote = sign_attestation(a, vk).to_bytes()
                    if tier == "light":
                        b.client.submit_attestation(vote)
                        continue
                    commit = VoteCommit(b.chain_id, 1, 1, signed.hash, pub, read_signed_attestation(vote).hash)
                    b.client.submit_commit(seal(commit, vk).to_bytes())
                    kept.append(vote)
            b.close_commits()
            for vote in kept:
                b.client.submit_attestation(vote)
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
