"""Synthetic committed blocks (random state, random 4-bit update, no training, host hashing only):
what the detection measurement, the bundle fuzzer and the chain tests need without a model. Also the
small state edits the cheating miners are made of. numpy + hashlib only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.challenge import challenge_leaves
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import Header, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.records import DataRef
from pogo_jax.spec.rules import ChainRules


def tamper_leaves(leaves: np.ndarray, valid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Change one real value in each of ``rows`` (float32 leaves, padding untouched): flip the lowest
    mantissa bit of a normal value, or set a zero to 2**-10. The result stays a valid committed
    state (finite, no subnormal, no -0.0), so only the apply rule can catch it."""
    out = leaves.copy()
    bits = out.view(np.uint32)
    for r in rows:
        pos = int(valid[r]) // 2
        if (bits[r, pos] & 0x7F800000) == 0:
            out[r, pos] = np.float32(2.0**-10)
        else:
            bits[r, pos] ^= np.uint32(1)
    return out


def pick_rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``max(1, round(fraction * n))`` distinct rows (a cheat that changes nothing is not a cheat)."""
    b = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=b, replace=False))


def perturb_update(packed: np.ndarray, rows: np.ndarray, s: int, g: int, valid: np.ndarray) -> np.ndarray:
    """Change one real code in each of ``rows`` of wire update leaves (7 -> 6, else c -> c + 1)."""
    exps, codes = upd.unpack_leaves(packed, s, g)
    for r in rows:
        pos = int(valid[r]) // 2
        codes[r, pos] = 6 if codes[r, pos] == 7 else codes[r, pos] + 1
    return upd.pack_leaves(exps, codes)


def random_update(layout: Layout, rng: np.random.Generator, exps: tuple[int, int] = (-14, -9)) -> np.ndarray:
    """Random valid wire leaves: codes in [-7, 7] (zero in the padding), exponents in ``exps``."""
    n, s, g = layout.n_leaves, layout.leaf_size, layout.group_size
    e = rng.integers(exps[0], exps[1], size=(n, s // g)).astype(np.int8)
    c = rng.integers(-7, 8, size=(n, s)).astype(np.int8)
    c[np.arange(s)[None, :] >= upd.valid_counts(layout)[:, None]] = 0
    return upd.pack_leaves(e, c)


def openings(prev: np.ndarray, nxt: np.ndarray, q: np.ndarray, idx, levels=None) -> tuple[LeafOpening, ...]:  # noqa: ANN001
    """The three-tree openings of leaves ``idx`` (host trees built once, or given as ``levels``)."""
    lv = levels or [mh.tree_levels(mh.leaf_hashes(t, a))
                    for t, a in ((mh.TAG_PARAM, prev), (mh.TAG_PARAM, nxt), (mh.TAG_QUPD, q))]
    return tuple(LeafOpening(i, prev[i].tobytes(), nxt[i].tobytes(), q[i].tobytes(),
                             *(tuple(mh.audit_path(x, i)) for x in lv)) for i in idx)


@dataclass
class SyntheticBlock:
    """A committed block; ``bad_rows`` are the inconsistent leaves (theta_next tampered or update perturbed)."""

    layout: Layout
    prev: np.ndarray  # (n, S) float32 leaves
    next: np.ndarray
    q: np.ndarray  # (n, B) uint8 wire leaves
    levels: list
    signed: Signed[Header]
    key: object
    n_windows: int
    bad_rows: np.ndarray

    def context(self, beacon: bytes, k: int, m: int) -> BlockContext:
        h = self.signed.body
        rules = ChainRules(leaf_size=h.leaf_size, group_size=h.group_size, k_leaves=k, m_windows=m,
                           loss_tolerance=Fraction(1, 100))
        manifest = {"eval": [0, self.n_windows * 16 + 1]}
        data = DataRef(h.data_root, b"\0" * 32, b"\0" * 32, manifest)
        return BlockContext(rules, self.layout, 16, h.height, h.round, h.parent_hash, h.root_prev, data,
                            self.n_windows, h.chain_id, beacon, header=self.signed)

    def bundle(self, beacon: bytes, k: int, m: int, loss_prev: float = 2.0, loss_next: float = 1.875) -> Bundle:
        """The miner's signed answer to the challenge that ``beacon`` implies (honest prover)."""
        ctx = self.context(beacon, k, m)
        idx = challenge_leaves(self.signed.hash, beacon, self.layout.n_leaves, k)
        ops = openings(self.prev, self.next, self.q, idx, self.levels)
        return Bundle(self.signed, beacon, self.layout, ops, ctx.windows, loss_prev, loss_next).signed(self.key)


SYNTHETIC_CHAIN = hashlib.sha256(b"pogo synthetic genesis").hexdigest()  # a chain id (a genesis hash) of its own


def synthetic_block(n_leaves: int, leaf_size: int = 256, group_size: int = 64, seed: int = 0,
                    tamper: float = 0.0, inconsistent: float = 0.0, n_windows: int = 64,
                    chain_id: str = SYNTHETIC_CHAIN) -> SyntheticBlock:
    """Random flushed theta_prev, random valid update, theta_next = apply(prev, update); then a
    fraction ``tamper`` of theta_next leaves or ``inconsistent`` of update leaves made inconsistent
    (exact counts: ``round(f * n_leaves)``). Roots by the host reference (hashlib)."""
    rng = np.random.default_rng(seed)
    s, g = leaf_size, group_size
    layout = Layout.from_shapes({"w": (n_leaves * s,)}, s, g)
    prev = upd.flush(rng.normal(0, 0.02, size=(n_leaves, s)).astype(np.float32))
    q = random_update(layout, rng)
    nxt = upd.apply_leaves(prev, *upd.unpack_leaves(q, s, g))
    valid = np.full(n_leaves, s)
    bad = np.zeros(0, dtype=np.int64)
    if tamper > 0:
        bad = np.sort(rng.choice(n_leaves, size=round(tamper * n_leaves), replace=False))
        nxt = tamper_leaves(nxt, valid, bad)
    if inconsistent > 0:
        bad = np.sort(rng.choice(n_leaves, size=round(inconsistent * n_leaves), replace=False))
        q = perturb_update(q, bad, s, g, valid)
    levels = [mh.tree_levels(mh.leaf_hashes(tag, a))
              for tag, a in ((mh.TAG_PARAM, prev), (mh.TAG_PARAM, nxt), (mh.TAG_QUPD, q))]
    key = key_from_seed(hashlib.sha256(b"pogo synthetic miner %d" % seed).digest())
    header = Header(
        version=3, chain_id=chain_id, height=1, round=1, parent_hash=bytes(32), miner_key=public_bytes(key),
        layout_hash=layout.layout_hash(), data_root=hashlib.sha256(b"synthetic data").digest(),
        root_prev=levels[0][-1][0], root_next=levels[1][-1][0], root_q=levels[2][-1][0],
        leaf_size=s, group_size=g, n_leaves=n_leaves, train={"steps": 0, "note": "synthetic"})
    return SyntheticBlock(layout, prev, nxt, q, levels, sign_header(header, key), key, n_windows, bad)


def swap_openings(ops: tuple[LeafOpening, ...], mode: str) -> tuple[LeafOpening, ...]:
    """Swap the leaf data of the first two openings (``"leaves"``) or their positions (``"indices"``)."""
    if len(ops) < 2:
        raise ValueError("swap needs at least two opened leaves")
    a, b, *rest = ops
    if mode == "leaves":
        return (replace(a, prev=b.prev, next=b.next, update=b.update),
                replace(b, prev=a.prev, next=a.next, update=a.update), *rest)
    return (b, a, *rest)


def fresh_beacon(seed: bytes, i: int) -> bytes:
    """Trial ``i``'s beacon value (a hash, as unpredictable to the committed miner as any other)."""
    return hashlib.sha256(b"pogo/detection/beacon" + seed + i.to_bytes(8, "little")).digest()
