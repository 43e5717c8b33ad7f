"""Light verification of a proof bundle (PROTOCOL 4.5): numpy + hashlib + pycryptodome only.

Cost is independent of model size: k leaves, three audit paths each, one bit-exact apply per
leaf. The verifier trusts nothing in the bundle that it can re-derive: the challenge comes from
the header hash and the beacon (the beacon itself from the ledger when the caller has one), the
layout must hash to the header's layout_hash, and every opened leaf must sit under the header's
three roots and satisfy ``next == apply(prev, update)`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pogo_jax.errors import Rejected
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import OBJECTIVE_REASONS
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.challenge import make_challenge

PROTOCOL_VERSION = 1

# Reasons a light check can prove to anyone from the bundle alone (objective fraud proofs).
OBJECTIVE = OBJECTIVE_REASONS


@dataclass(frozen=True)
class Policy:
    """What the verifier knows independently of the miner (chain rules and, if any, the ledger)."""

    k: int
    m: int | None  # None: as many windows as the bundle names (standalone check without chain rules)
    delta: float = 0.0
    chain_id: str | None = None
    beacon: bytes | None = None  # authenticated beacon value (from the ledger); None = take the bundle's
    root_prev: bytes | None = None  # confirmed tip root from the ledger
    parent_hash: bytes | None = None
    layout_hash: bytes | None = None
    data_root: bytes | None = None
    header_hash: bytes | None = None  # the header recorded in the ledger for this height


@dataclass(frozen=True)
class LightResult:
    accept: bool
    reason: str
    detail: str
    leaf_indices: tuple[int, ...]
    window_indices: tuple[int, ...]
    beacon_source: str
    # True when this reject is a fraud proof against the miner: the bundle is signed by the miner
    # of the (recorded) header and fails an objective check. A copy whose bundle signature fails
    # gets the same reason code (say BAD_PROOF for a flipped leaf byte) but proves nothing about
    # anyone, so it never sets this.
    fraud_proof: bool = False


def _check_state_bits(words: np.ndarray) -> bool:
    """Committed states hold no subnormal, no -0.0, no NaN/Inf (PROTOCOL 1 and 3)."""
    exp = (words >> 23) & 0xFF
    mant = words & 0x7FFFFF
    bad = (exp == 0xFF) | ((exp == 0) & ((mant != 0) | (words != 0)))
    return not bool(bad.any())


def verify_light(bundle: Bundle, policy: Policy) -> LightResult:
    """Run every light check; raise nothing for a false claim, return a reason code instead."""
    authentic = [False]
    try:
        leaves, windows, source = _verify(bundle, policy, authentic)
    except Rejected as r:
        signed = authentic[0] and bundle.verify_signature()
        return LightResult(False, r.code, r.detail, (), (), "", signed and r.code in OBJECTIVE)
    if not bundle.verify_signature():
        return LightResult(False, "BAD_SIGNATURE", "bundle signature does not verify under the header's miner key "
                           "(not the miner's answer)", (), (), "")
    return LightResult(True, "OK", f"{len(leaves)} leaves in 3 trees, apply rule bit-exact", leaves,
                       windows, source)


def _verify(b: Bundle, p: Policy, authentic: list[bool]) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    h = b.header
    hh = h.hash()
    if h.version != PROTOCOL_VERSION:
        raise Rejected("BAD_VERSION", f"header version {h.version}")
    if not b.signed_header.verify():
        raise Rejected("BAD_SIGNATURE", "header signature does not verify under the miner key")
    if p.chain_id is not None and h.chain_id != p.chain_id:
        raise Rejected("WRONG_CHAIN", f"header is for chain {h.chain_id!r}, expected {p.chain_id!r}")
    if p.header_hash is not None and hh != p.header_hash:
        raise Rejected("UNKNOWN_HEADER", "header differs from the one recorded in the ledger")
    # From here on, if the bundle signature verifies, an objective failure is the miner's fraud.
    authentic[0] = True
    if p.parent_hash is not None and h.parent_hash != p.parent_hash:
        raise Rejected("WRONG_PARENT", "parent hash is not the confirmed tip")
    if p.root_prev is not None and h.root_prev != p.root_prev:
        raise Rejected("WRONG_PARENT", "root_prev is not the confirmed state's root")
    if p.layout_hash is not None and h.layout_hash != p.layout_hash:
        raise Rejected("LAYOUT_MISMATCH", "header layout_hash differs from the chain's layout")
    if p.data_root is not None and h.data_root != p.data_root:
        raise Rejected("WRONG_DATA", "header data_root differs from the chain's dataset")
    lay = b.layout
    if lay.layout_hash() != h.layout_hash:
        raise Rejected("LAYOUT_MISMATCH", "bundle layout does not hash to the header's layout_hash")
    if (lay.n_leaves, lay.leaf_size, lay.group_size) != (h.n_leaves, h.leaf_size, h.group_size):
        raise Rejected("LAYOUT_MISMATCH", "n_leaves / leaf_size / group_size differ from the header")
    if p.beacon is not None:
        if b.beacon != p.beacon:
            raise Rejected("BEACON_MISMATCH", "bundle beacon differs from the revealed beacon")
        source = "ledger"
    else:
        source = "bundle (not authenticated: pass --chain to check it against the ledger)"
    n_windows = int(h.train.get("n_windows", 0)) if isinstance(h.train.get("n_windows", 0), int) else 0
    m = len(b.windows) if p.m is None else p.m
    ch = make_challenge(hh, b.beacon, h.n_leaves, p.k, max(n_windows, 1), max(m, 1))
    got = tuple(o.index for o in b.openings)
    # The draw sequence is prefix-stable, so a bundle may open more leaves than this verifier asks.
    if len(got) < len(ch.leaf_indices):
        raise Rejected("WRONG_CHALLENGE", f"bundle opens {len(got)} leaves, this verifier demands "
                       f"{len(ch.leaf_indices)} (k={p.k}, n_leaves={h.n_leaves})")
    if got[: len(ch.leaf_indices)] != ch.leaf_indices:
        raise Rejected("WRONG_CHALLENGE", "opened leaves are not the ones the header hash and beacon imply")
    if len(set(got)) != len(got):
        raise Rejected("WRONG_CHALLENGE", "duplicate opened leaf")
    if n_windows > 0 and tuple(b.windows) != ch.window_indices:
        raise Rejected("WRONG_CHALLENGE", "loss windows are not the ones the challenge implies")

    s, g = lay.leaf_size, lay.group_size
    n = h.n_leaves
    for o in b.openings:
        if o.index >= n:
            raise Rejected("BAD_PROOF", f"leaf index {o.index} >= n_leaves {n}")
        for tag, data, path, root, name in (
            (mh.TAG_PARAM, o.prev, o.path_prev, h.root_prev, "theta_prev"),
            (mh.TAG_PARAM, o.next, o.path_next, h.root_next, "theta_next"),
            (mh.TAG_QUPD, o.update, o.path_q, h.root_q, "update"),
        ):
            if not mh.verify_inclusion(root, mh.leaf_hash(tag, o.index, data), o.index, n, path):
                raise Rejected("BAD_PROOF", f"leaf {o.index} does not open under the {name} root")

    k = len(b.openings)
    if k == 0:
        return got, tuple(b.windows), source
    prev = np.frombuffer(b"".join(o.prev for o in b.openings), dtype="<u4").reshape(k, s)
    nxt = np.frombuffer(b"".join(o.next for o in b.openings), dtype="<u4").reshape(k, s)
    if not (_check_state_bits(prev) and _check_state_bits(nxt)):
        raise Rejected("NONCANONICAL_STATE", "an opened state leaf holds a subnormal, -0.0, NaN or Inf")
    valid = [lay.valid_values(o.index) for o in b.openings]
    for row, v in enumerate(valid):
        if prev[row, v:].any() or nxt[row, v:].any():
            raise Rejected("BAD_PADDING", f"leaf {b.openings[row].index}: padding is not +0.0")
    qbuf = np.frombuffer(b"".join(o.update for o in b.openings), dtype=np.uint8).reshape(k, -1)
    exps, codes = upd.unpack_leaves(qbuf, s, g)
    upd.check_padding(codes, valid)
    expect = upd.apply_leaves(prev.view(np.float32), exps, codes).view(np.uint32)
    bad = np.nonzero((expect != nxt).any(axis=1))[0]
    if bad.size:
        leaf = b.openings[int(bad[0])].index
        raise Rejected("APPLY_MISMATCH", f"leaf {leaf}: theta_next != apply(theta_prev, update)")
    if not b.loss_next < b.loss_prev - p.delta:
        raise Rejected("LOSS_NOT_DECREASED",
                       f"reported loss {b.loss_next:.6f} is not below {b.loss_prev:.6f} - delta {p.delta}")
    return got, tuple(b.windows), source
