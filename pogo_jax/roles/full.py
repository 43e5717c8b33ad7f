"""The full tier (PROTOCOL 4.4, 15): rebuild ``theta_next`` and measure both states on the round's windows.

The verifier's ``theta_prev`` is its own: rebuilt from genesis and the confirmed updates with every
root checked (``ChainView.confirmed``), never a file of the miner's. The update is the stored one
(fetched by the hash the log names), the dataset the recorded one, the windows the round's, drawn from
its sealed shard opened with the key the beacon released (checked against the manifest). Losses are
measured per window in float32 with the highest matmul precision (``train.evaluate``); the verdict is
what those numbers imply (``spec.verdict.own_verdict``), and the numbers themselves go into the vote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pogo_jax.errors import MalformedInput, NodeFault, Rejected
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.state import rebuild
from pogo_jax.spec.verdict import lower_bound, mean, own_verdict, paired

# A stored update of the wrong length or root: the node checks both before it records a candidate, so
# these say the node served other bytes than it admitted. Never evidence against the miner.
NODE_FAULTS = frozenset({"ROOT_Q_MISMATCH", "BAD_LENGTH"})


@dataclass
class FullResult:
    accept: bool
    reason: str
    detail: str
    losses_prev: tuple[float, ...] | None = None
    losses_next: tuple[float, ...] | None = None
    timings: dict = field(default_factory=dict)


def verify_full(bundle: Bundle, ctx: BlockContext, theta_prev, update: bytes, ds, evaluator) -> FullResult:  # noqa: ANN001
    """``theta_prev`` is a ``history.StateCache`` of the round's tip; ``evaluator`` a ``train.evaluate.Evaluator``."""
    t: dict[str, float] = {}
    hd = ctx.header.body
    if theta_prev.root != ctx.root_prev:
        raise NodeFault("the confirmed state rebuilt from the log is not the round's root_prev: the log is "
                        "inconsistent (run pogo audit)")
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
    try:
        tokens = ctx.eval_tokens(ds)
    except MalformedInput as e:
        raise NodeFault(f"the round's sealed shard does not open under the key the log released ({e}), though the "
                        "node recorded that it did: the node is faulty (run pogo audit)") from None
    lp = tuple(float(x) for x in evaluator.window_losses(theta_prev.arrays, tokens))
    ln = tuple(float(x) for x in evaluator.window_losses(theta_next, tokens))
    t["loss"] = time.perf_counter() - t0
    r = ctx.rules
    reported = (bundle.loss_prev, bundle.loss_next)
    reason = own_verdict(lp, ln, reported, r.delta, r.lcb_t, r.loss_tolerance)
    b = lower_bound(paired(lp, ln), r.delta, r.lcb_t)
    own = f"own mean {float(mean(lp)):.5f} -> {float(mean(ln)):.5f}, improvement {float(b.mean):.5f} " \
          f"(lower bound {b.lcb:.5f}, delta {float(r.delta):g}) on {len(lp)} windows of shard {ctx.shard}"
    if reason == "LOSS_MISMATCH":
        own += f"; reported ({reported[0]:.5f}, {reported[1]:.5f}) beyond the relative tolerance " \
               f"{float(r.loss_tolerance):g}"
    return FullResult(reason == "OK", reason, own, lp, ln, t)
