"""Full verification (PROTOCOL 4.5, full tier): rebuild theta_next from the verifier's own
theta_prev and the downloaded 4-bit update, recompute all three roots, and evaluate the loss on the
challenge windows on the verifier's own hardware (jax on CPU is enough).

The verifier's theta_prev is never the miner's: it comes from ``roles.sync`` (genesis + confirmed
updates, every root checked) or from the verifier's own cache of that result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pogo_jax.chain import ChainDir, apply_update_host, read_update, state_root, update_root
from pogo_jax.config import config_from_dict
from pogo_jax.errors import Rejected
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.challenge import make_challenge


@dataclass
class FullResult:
    accept: bool
    reason: str
    detail: str
    loss_prev: float | None = None
    loss_next: float | None = None
    timings: dict = field(default_factory=dict)


class StateCache:
    """A verifier's own confirmed state: (height, root, arrays), rebuilt by sync when stale."""

    def __init__(self) -> None:
        self.height = -1
        self.root = b""
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, chain: ChainDir, ledger, height: int) -> tuple[dict[str, np.ndarray], bytes]:
        """The confirmed state at ``height``; the cache is used only if its root is the confirmed one."""
        from pogo_jax.roles.chainops import confirmed_root, sync

        if self.height != height or self.root != confirmed_root(ledger, height):
            self.arrays, self.root, self.height = sync(chain, ledger, height)
        return self.arrays, self.root

    def advance(self, height: int, arrays: dict[str, np.ndarray], root: bytes) -> None:
        self.height, self.arrays, self.root = height, arrays, root


_EVALUATORS: dict[str, object] = {}


def chain_evaluator(cfg_dict: dict):  # noqa: ANN201 - Evaluator
    """One jitted loss evaluator per chain config (compiled once per process)."""
    from pogo_jax.train.evaluate import Evaluator

    cfg = config_from_dict(cfg_dict)
    key = cfg.config_hash()
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(cfg)
    return _EVALUATORS[key]


def verify_full(chain: ChainDir, ledger, bundle: Bundle, cache: StateCache | None = None) -> FullResult:
    """Full-tier check of one bundle whose light checks already passed."""
    try:
        return _verify_full(chain, ledger, bundle, cache or StateCache())
    except Rejected as r:
        return FullResult(False, r.code, r.detail)


def _verify_full(chain: ChainDir, ledger, bundle: Bundle, cache: StateCache) -> FullResult:
    from pogo_jax.roles.chainops import dataset_for
    from pogo_jax.spec.layout import Layout
    from pogo_jax.train.data import n_eval_windows

    t = {}
    h = bundle.header
    meta = ledger.meta()
    layout = Layout.from_manifest(meta["layout"])
    cfg_dict = meta["config"]
    t0 = time.perf_counter()
    theta_prev, root_prev = cache.get(chain, ledger, h.height - 1)
    if root_prev != h.root_prev:
        raise Rejected("WRONG_PARENT", "root_prev is not the root of the verifier's own confirmed state")
    t["state"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = read_update(Path(chain.update_file(h.height)), layout)
    if update_root(q) != h.root_q:
        raise Rejected("ROOT_Q_MISMATCH", "the published update does not hash to root_q")
    theta_next = apply_update_host(theta_prev, q, layout)
    if state_root(theta_next, layout) != h.root_next:
        raise Rejected("ROOT_NEXT_MISMATCH", "theta_prev + update does not hash to root_next")
    t["rebuild"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ev = chain_evaluator(cfg_dict)
    ds = dataset_for(chain, ledger, h.data_root)
    seq_len = ev.cfg.model.seq_len
    n_win = n_eval_windows(ds, seq_len)
    if h.train.get("n_windows") != n_win:
        raise Rejected("WRONG_CHALLENGE", f"header claims {h.train.get('n_windows')} eval windows, data has {n_win}")
    pc = cfg_dict["pogo"]
    ch = make_challenge(h.hash(), bundle.beacon, h.n_leaves, pc["k_leaves"], n_win, pc["m_windows"])
    lp = ev.loss(theta_prev, ds, ch.window_indices)
    ln = ev.loss(theta_next, ds, ch.window_indices)
    t["loss"] = time.perf_counter() - t0
    tol = pc["loss_tolerance"]
    if not ln < lp - pc["delta"]:
        return FullResult(False, "LOSS_NOT_DECREASED",
                          f"own loss {ln:.5f} is not below {lp:.5f} - delta", lp, ln, t)
    if abs(lp - bundle.loss_prev) > tol or abs(ln - bundle.loss_next) > tol:
        return FullResult(False, "LOSS_MISMATCH",
                          f"reported ({bundle.loss_prev:.5f}, {bundle.loss_next:.5f}) vs own "
                          f"({lp:.5f}, {ln:.5f}) beyond tolerance {tol}", lp, ln, t)
    cache.advance(h.height, theta_next, h.root_next)  # provisional: keyed by height, re-synced if not confirmed
    return FullResult(True, "OK", f"roots rebuilt, loss {lp:.4f} -> {ln:.4f} on {len(ch.window_indices)} windows",
                      lp, ln, t)

