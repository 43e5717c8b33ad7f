"""The light-tier check (PROTOCOL 4.4): a bundle against its ``BlockContext``. numpy + hashlib only.

Cost is independent of model size: k leaves, three audit paths each (one batched inclusion check
per tree), one bit-exact apply per leaf. Nothing in the bundle is trusted that the context fixes:
the header must be the recorded one, the beacon the round's, the windows the round's, the opened
leaves those that header hash and beacon imply, the layout the chain's; every opened leaf must sit
under the header's three roots and satisfy ``next == apply(prev, update)`` bit for bit.

This is the rule that makes a light reject *objective*: the finalizer and ``pogo audit`` call this
same function on the stored bundle to re-check a verifier's claim. A light accept certifies
consistency only; it is never a vote for a loss decrease, so no loss is looked at here.

Without a context (``pogo verify FILE`` offline) the checks that need the chain are skipped and
said so in ``unchecked``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pogo_jax.errors import Rejected
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import OBJECTIVE_LIGHT
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.challenge import challenge_leaves
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.header import HEADER_VERSION


@dataclass(frozen=True)
class LightResult:
    accept: bool
    reason: str
    detail: str
    leaf_indices: tuple[int, ...] = ()
    unchecked: tuple[str, ...] = ()  # what an offline check could not compare with the chain
    # True when this reject proves fraud by the miner: the bundle is signed by the miner of the
    # recorded header and fails an objective check. A copy whose bundle signature fails gets the
    # same reason code (say BAD_PROOF for a flipped leaf byte) but proves nothing about anyone.
    fraud_proof: bool = False


def state_bits_ok(words: np.ndarray) -> bool:
    """Committed states hold no subnormal, no -0.0, no NaN/Inf (PROTOCOL 1 and 3)."""
    exp = (words >> 23) & 0xFF
    return not bool(((exp == 0xFF) | ((exp == 0) & (words != 0))).any())


def verify_light(bundle: Bundle, ctx: BlockContext | None, k: int | None = None) -> LightResult:
    """Every light check; a false claim is a reason code, never an exception. ``k`` is only for the
    offline check (with a context the chain's ``k_leaves`` applies)."""
    authentic = [False]
    unchecked: list[str] = []
    try:
        leaves = _verify(bundle, ctx, k, authentic, unchecked)
    except Rejected as r:
        fraud = authentic[0] and bundle.verify_signature() and r.code in OBJECTIVE_LIGHT
        return LightResult(False, r.code, r.detail, unchecked=tuple(unchecked), fraud_proof=fraud)
    if not bundle.verify_signature():
        return LightResult(False, "BAD_SIGNATURE", "bundle signature does not verify under the header's miner key "
                           "(not the miner's answer)", unchecked=tuple(unchecked))
    return LightResult(True, "OK", f"{len(leaves)} leaves in 3 trees, apply rule bit-exact", leaves,
                       tuple(unchecked))


def _verify(b: Bundle, ctx: BlockContext | None, k: int | None, authentic: list[bool],
            unchecked: list[str]) -> tuple[int, ...]:
    h = b.header
    hh = b.header_hash
    if h.version != HEADER_VERSION:
        raise Rejected("BAD_VERSION", f"header version {h.version}")
    if not b.signed_header.verify():
        raise Rejected("BAD_SIGNATURE", "header signature does not verify under the miner key")
    if ctx is not None:
        if h.chain_id != ctx.chain_id:
            raise Rejected("WRONG_CHAIN", f"header is for chain {h.chain_id!r}, expected {ctx.chain_id!r}")
        if ctx.header_hash is not None and hh != ctx.header_hash:
            raise Rejected("UNKNOWN_HEADER", "the bundle's header is not the candidate recorded on the chain")
        if (h.height, h.round) != (ctx.height, ctx.round):
            raise Rejected("UNKNOWN_HEADER", f"header is for round ({h.height}, {h.round}), the context is "
                                             f"({ctx.height}, {ctx.round})")
    # From here on, if the bundle signature verifies, an objective failure is the miner's fraud.
    authentic[0] = True
    lay = b.layout
    if ctx is not None:
        if h.parent_hash != ctx.parent_hash or h.root_prev != ctx.root_prev:
            raise Rejected("WRONG_PARENT", "parent hash or root_prev is not the round's confirmed tip")
        if h.layout_hash != ctx.layout.layout_hash() or lay.layout_hash() != ctx.layout.layout_hash():
            raise Rejected("LAYOUT_MISMATCH", "layout differs from the chain's")
        if h.data_root != ctx.data.data_root:
            raise Rejected("WRONG_DATA", "header data_root is not the round's dataset")
    else:
        unchecked += ["tip", "layout", "dataset"]
    if lay.layout_hash() != h.layout_hash:
        raise Rejected("LAYOUT_MISMATCH", "bundle layout does not hash to the header's layout_hash")
    if (lay.n_leaves, lay.leaf_size, lay.group_size) != (h.n_leaves, h.leaf_size, h.group_size):
        raise Rejected("LAYOUT_MISMATCH", "n_leaves / leaf_size / group_size differ from the header")
    if ctx is not None and ctx.beacon is not None:
        if b.beacon != ctx.beacon:
            raise Rejected("BEACON_MISMATCH", "bundle beacon differs from the round's revealed beacon")
        if tuple(b.windows) != ctx.windows:
            raise Rejected("WRONG_CHALLENGE", "loss windows are not the round's evaluation windows")
    else:
        unchecked += ["beacon", "windows"]
    want = challenge_leaves(hh, b.beacon, h.n_leaves, ctx.rules.k_leaves if ctx is not None else (k or 1))
    got = tuple(o.index for o in b.openings)
    # The draw sequence is prefix-stable, so a bundle may open more leaves than asked.
    if len(got) < len(want) or got[: len(want)] != want:
        raise Rejected("WRONG_CHALLENGE", f"opened leaves are not the {len(want)} that the header hash and beacon "
                                          "imply")
    if len(set(got)) != len(got):
        raise Rejected("WRONG_CHALLENGE", "duplicate opened leaf")

    n, s, g = h.n_leaves, lay.leaf_size, lay.group_size
    if any(o.index >= n for o in b.openings):
        raise Rejected("BAD_PROOF", f"leaf index >= n_leaves {n}")
    for tag, attr, path, root, name in ((mh.TAG_PARAM, "prev", "path_prev", h.root_prev, "theta_prev"),
                                        (mh.TAG_PARAM, "next", "path_next", h.root_next, "theta_next"),
                                        (mh.TAG_QUPD, "update", "path_q", h.root_q, "update")):
        items = [(mh.leaf_hash(tag, o.index, getattr(o, attr)), o.index, getattr(o, path)) for o in b.openings]
        if not mh.verify_inclusions(root, items, n):
            raise Rejected("BAD_PROOF", f"an opened leaf does not sit under the {name} root")

    kk = len(b.openings)
    if kk == 0:
        return got
    prev = np.frombuffer(b"".join(o.prev for o in b.openings), dtype="<u4").reshape(kk, s)
    nxt = np.frombuffer(b"".join(o.next for o in b.openings), dtype="<u4").reshape(kk, s)
    if not (state_bits_ok(prev) and state_bits_ok(nxt)):
        raise Rejected("NONCANONICAL_STATE", "an opened state leaf holds a subnormal, -0.0, NaN or Inf")
    valid = [lay.valid_values(o.index) for o in b.openings]
    for row, v in enumerate(valid):
        if prev[row, v:].any() or nxt[row, v:].any():
            raise Rejected("BAD_PADDING", f"leaf {b.openings[row].index}: padding is not +0.0")
    qbuf = np.frombuffer(b"".join(o.update for o in b.openings), dtype=np.uint8).reshape(kk, -1)
    exps, codes = upd.unpack_leaves(qbuf, s, g)
    upd.check_padding(codes, valid)
    expect = upd.apply_leaves(prev.view(np.float32), exps, codes).view(np.uint32)
    bad = np.nonzero((expect != nxt).any(axis=1))[0]
    if bad.size:
        raise Rejected("APPLY_MISMATCH", f"leaf {b.openings[int(bad[0])].index}: theta_next != apply(theta_prev, "
                                         "update)")
    return got
