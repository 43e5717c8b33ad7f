"""Re-checking an objective claim from stored bytes (PROTOCOL 9): the node does it before it finalizes, and
every role that replays the log (``ChainView``, ``pogo audit``) does it again rather than take the node's
``Finalize.rechecks`` on trust. Deterministic and jax-free, so all of them reach the same answer."""

from __future__ import annotations

from pogo_jax.chain.history import StateCache, confirmed_state
from pogo_jax.chain.state import ChainState
from pogo_jax.errors import Rejected
from pogo_jax.spec.attestation import OBJECTIVE_FULL
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.light import verify_light
from pogo_jax.spec.records import Recheck
from pogo_jax.spec.state import rebuild


def recheck(st: ChainState, header_hash: bytes, tier: str, fetch, cache: StateCache | None = None) -> Recheck:
    """Re-check the objective claims against one candidate from stored bytes: the light rule on its
    bundle, or the full rebuild from the confirmed state and its update. Deterministic, so the node
    and ``pogo audit`` reach the same answer. A claim that cannot be re-checked (no such candidate, no stored
    bundle, an unknown tier, a confirmed state that is not the round's) is ``Rejected``, never acted on."""
    if tier not in ("light", "full"):
        raise Rejected("BAD_RECHECK", f"no re-check tier {str(tier)[:16]!r}")
    ctx = st.context(header_hash)
    if tier == "light":
        if ctx.bundle_sha256 is None:
            raise Rejected("NO_BUNDLE", f"candidate {header_hash.hex()[:16]}... has no stored bundle to re-check")
        b = Bundle.from_bytes(fetch(ctx.bundle_sha256))
        res = verify_light(b, ctx)
        return Recheck(header_hash, "light", bool(res.fraud_proof), res.reason if not res.accept else "OK")
    theta = confirmed_state(st, ctx.height - 1, fetch, cache)
    if theta.root != ctx.root_prev:
        raise Rejected("ROOT_MISMATCH", f"the confirmed state at height {ctx.height - 1} is not the root_prev of "
                                        f"candidate {header_hash.hex()[:16]}...'s round")
    hd = ctx.header.body
    try:
        rebuild(theta.arrays, fetch(ctx.update_sha256), ctx.layout, hd.root_q, hd.root_next)
    except Rejected as r:
        return Recheck(header_hash, "full", r.code in OBJECTIVE_FULL, r.code)
    return Recheck(header_hash, "full", False, "OK")
