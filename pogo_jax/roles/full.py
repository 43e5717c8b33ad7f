"""The full tier (PROTOCOL 4.4): rebuild ``theta_next`` and measure the loss on the round's windows.

The verifier's ``theta_prev`` is its own: rebuilt from genesis and the confirmed updates with every
root checked (``ChainView.confirmed``), never a file of the miner's. The update is the stored one
(fetched by the hash the log names), the dataset the recorded one, the windows the round's. Losses
are measured in float32 with the highest matmul precision (``train.evaluate``), and the miner's
reported losses must be within the chain's *relative* ``loss_tolerance`` of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

from pogo_jax.errors import NodeFault, Rejected
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.state import rebuild

# A stored update of the wrong length or root: the node checks both before it records a candidate, so
# these say the node served other bytes than it admitted. Never evidence against the miner.
NODE_FAULTS = frozenset({"ROOT_Q_MISMATCH", "BAD_LENGTH"})


@dataclass
class FullResult:
    accept: bool
    reason: str
    detail: str
    loss_prev: float | None = None
    loss_next: float | None = None
    timings: dict = field(default_factory=dict)


def verify_full(bundle: Bundle, ctx: BlockContext, theta_prev, update: bytes, ds, evaluator) -> FullResult:  # noqa: ANN001
    """``theta_prev`` is a ``history.StateCache`` of the round's tip; ``evaluator`` a ``train.evaluate.Evaluator``."""
    t: dict[str, float] = {}
    hd = ctx.header.body
    if theta_prev.root != ctx.root_prev:
        return FullResult(False, "WRONG_PARENT", "the verifier's confirmed state is not the round's root_prev")
    t0 = time.perf_counter()
    try:
        theta_next, _ = rebuild(theta_prev.arrays, update, ctx.layout, hd.root_q, hd.root_next)
    except Rejected as r:
        if r.code in NODE_FAULTS:  # the node admitted this update only if it hashed to root_q: it served others
            raise NodeFault(f"the node served update {ctx.update_sha256.hex()[:16]}... for candidate "
                            f"{ctx.header_hash.hex()[:16]}..., which does not match the signed header ({r.code}): "
                            "the node is faulty, not the miner; not attesting (run pogo audit)") from None
        return FullResult(False, r.code, r.detail, timings={"rebuild": time.perf_counter() - t0})
    t["rebuild"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    windows = ctx.windows
    lp = evaluator.loss(theta_prev.arrays, ds, windows)
    ln = evaluator.loss(theta_next, ds, windows)
    t["loss"] = time.perf_counter() - t0
    r = ctx.rules
    if not Fraction(ln) <= Fraction(lp) - r.delta:
        return FullResult(False, "LOSS_NOT_DECREASED", f"own loss {ln:.5f} is not below {lp:.5f} - delta "
                          f"{float(r.delta):g}", lp, ln, t)
    if not (r.within_tolerance(bundle.loss_prev, lp) and r.within_tolerance(bundle.loss_next, ln)):
        return FullResult(False, "LOSS_MISMATCH", f"reported ({bundle.loss_prev:.5f}, {bundle.loss_next:.5f}) vs own "
                          f"({lp:.5f}, {ln:.5f}): beyond the relative tolerance {float(r.loss_tolerance):g}", lp, ln, t)
    return FullResult(True, "OK", f"roots rebuilt, loss {lp:.4f} -> {ln:.4f} on {len(windows)} windows", lp, ln, t)
