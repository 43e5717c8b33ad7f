"""The adversary suite: named cheating miners, each a small deviation from the honest miner.

Every cheat is a ``MinerHooks`` subclass (``pogo_jax/miner.py``) that overrides one or two of the
honest miner's choices and nothing else, so a cheating block runs through the same training,
quantization, commitment, proving and verification code as an honest one. ``ADVERSARIES`` maps the
names of ``pogo demo --adversary NAME`` to factories, and ``EXPECTED`` says where each is caught
(record / light / full), with which reason code and how the miner is slashed; docs/adversaries.md
explains each row. The second half builds synthetic committed blocks (random state, random 4-bit
update, no training, host hashing only) for the measured detection rates and the bundle fuzzer.

No jax is imported here: states arrive as arrays and are handled with numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pogo_jax.miner import MinerHooks
from pogo_jax.roles.light import Policy
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.header import Header, SignedHeader, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves

# ----------------------------------------------------------------------------------- state helpers


def _host(arrays: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


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


# ------------------------------------------------------------------------------- cheating miners


class Tamper(MinerHooks):
    """Commits a theta_next in which a fraction ``f`` of the leaves differ from theta_prev + update."""

    name = "tamper"

    def __init__(self, fraction: float = 0.01, seed: int = 0) -> None:
        self.fraction, self.rng = fraction, np.random.default_rng(seed)

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        leaves = to_leaves(_host(theta_next), lay)
        rows = pick_rows(lay.n_leaves, self.fraction, self.rng)
        self.rows = rows
        return from_leaves(tamper_leaves(leaves, upd.valid_counts(lay), rows), lay), packed


class InconsistentUpdate(MinerHooks):
    """Publishes a 4-bit update that differs from the one that produced root_next in a fraction
    ``f`` of its leaves (default: every leaf)."""

    name = "inconsistent-update"

    def __init__(self, fraction: float = 1.0, seed: int = 0) -> None:
        self.fraction, self.rng = fraction, np.random.default_rng(seed)

    def update(self, miner, theta_prev, theta_next, packed):
        lay = miner.layout
        rows = pick_rows(lay.n_leaves, self.fraction, self.rng)
        return theta_next, perturb_update(np.asarray(packed), rows, lay.leaf_size, lay.group_size,
                                          upd.valid_counts(lay))


class Lazy(MinerHooks):
    """Does not train; commits an all-zero (``mode="zero"``) or random (``"random"``) update,
    consistently, and reports a loss decrease it did not achieve."""

    name = "lazy"

    def __init__(self, mode: str = "zero", seed: int = 0) -> None:
        if mode not in ("zero", "random"):
            raise ValueError("lazy mode is 'zero' or 'random'")
        self.mode, self.rng = mode, np.random.default_rng(seed)

    def train(self, miner, steps, progress):
        return []

    def update(self, miner, theta_prev, theta_next, packed):
        from pogo_jax.chain import apply_update_host

        lay = miner.layout
        s, g = lay.leaf_size, lay.group_size
        n = lay.n_leaves
        exps = np.full((n, s // g), -12, dtype=np.int8)
        codes = np.zeros((n, s), dtype=np.int8)
        if self.mode == "random":
            codes = self.rng.integers(-7, 8, size=(n, s), dtype=np.int8)
            codes[np.arange(s)[None, :] >= upd.valid_counts(lay)[:, None]] = 0
        q = upd.pack_leaves(exps, codes)
        return apply_update_host(_host(theta_prev), q, lay), q

    def losses(self, miner, measure):
        lp, _ = measure()
        return lp, lp - 0.1


class FakeLoss(MinerHooks):
    """Trains honestly but reports losses it never measured."""

    name = "fake-loss"

    def __init__(self, loss_prev: float = 3.0, loss_next: float = 2.0) -> None:
        self.claim = (loss_prev, loss_next)

    def losses(self, miner, measure):
        return self.claim


class LossUp(MinerHooks):
    """Trains, then commits the negated update (ascent instead of descent), consistently, and
    reports its measured losses swapped so that they seem to fall."""

    name = "loss-up"

    def update(self, miner, theta_prev, theta_next, packed):
        from pogo_jax.chain import apply_update_host

        lay = miner.layout
        exps, codes = upd.unpack_leaves(np.asarray(packed), lay.leaf_size, lay.group_size)
        q = upd.pack_leaves(exps, -codes)
        return apply_update_host(_host(theta_prev), q, lay), q

    def losses(self, miner, measure):
        lp, ln = measure()
        return max(lp, ln), min(lp, ln)


class Replay(MinerHooks):
    """Replays the last confirmed block: its update under a fresh, otherwise correct header
    (``mode="update"``), or its roots re-signed for the new height and parent (``"header"``)."""

    name = "replay"

    def __init__(self, mode: str = "update") -> None:
        if mode not in ("update", "header"):
            raise ValueError("replay mode is 'update' or 'header'")
        self.mode = mode

    def _last(self, miner) -> tuple[int, Header]:
        tip = miner.ledger.tip()
        if tip["height"] < 1:
            raise ValueError("replay needs a confirmed block to replay")
        blk = miner.ledger.block(height=tip["height"], status="confirmed")
        return tip["height"], SignedHeader.from_bytes(blk["header_bytes"]).header

    def update(self, miner, theta_prev, theta_next, packed):
        if self.mode != "update":
            return theta_next, packed
        from pogo_jax.chain import apply_update_host, read_update

        h, _ = self._last(miner)
        q = read_update(miner.chain.update_file(h), miner.layout)
        return apply_update_host(_host(theta_prev), q, miner.layout), q

    def header(self, miner, header):
        if self.mode != "header":
            return header
        _, old = self._last(miner)
        return replace(header, root_prev=old.root_prev, root_next=old.root_next, root_q=old.root_q)


class Swap(MinerHooks):
    """Swaps inside the proofs: the leaf data of two openings (``mode="leaves"``) or their
    positions in the answer (``"indices"``)."""

    name = "swap"

    def __init__(self, mode: str = "leaves") -> None:
        if mode not in ("leaves", "indices"):
            raise ValueError("swap mode is 'leaves' or 'indices'")
        self.mode = mode

    def openings(self, miner, openings):
        return swap_openings(openings, self.mode)


def swap_openings(openings: tuple[LeafOpening, ...], mode: str) -> tuple[LeafOpening, ...]:
    if len(openings) < 2:
        raise ValueError("swap needs at least two opened leaves")
    a, b, *rest = openings
    if mode == "leaves":
        a2 = replace(a, prev=b.prev, next=b.next, update=b.update)
        b2 = replace(b, prev=a.prev, next=a.next, update=a.update)
        return (a2, b2, *rest)
    return (b, a, *rest)


class WrongLayout(MinerHooks):
    """Commits to another layout (the same tensors cut into half-size leaves, ``mode="layout"``)
    or another dataset (the root of the first half of the chain's data, ``"data"``)."""

    name = "wrong-layout"

    def __init__(self, mode: str = "layout") -> None:
        if mode not in ("layout", "data"):
            raise ValueError("wrong-layout mode is 'layout' or 'data'")
        self.mode = mode

    def header(self, miner, header):
        if self.mode == "layout":
            lay = miner.layout
            other = Layout.from_shapes(lay.shapes(), lay.leaf_size // 2, lay.group_size)
            return replace(header, layout_hash=other.layout_hash())
        from pogo_jax.train.data import compute_data_root

        toks = np.asarray(miner.ds.tokens)
        return replace(header, data_root=compute_data_root(toks[: len(toks) // 2], miner.ds.shard_size))


class WrongChallenge(MinerHooks):
    """Answers the challenge of a beacon value of its own choosing (a ground one) instead of the
    revealed beacon, and puts the revealed beacon in the bundle."""

    name = "wrong-challenge"

    def challenge_beacon(self, miner, header_hash, beacon):
        return hashlib.sha256(b"pogo/adversary/ground-beacon" + beacon).digest()


ADVERSARIES: dict[str, Callable[..., MinerHooks]] = {
    "tamper": Tamper,
    "inconsistent-update": InconsistentUpdate,
    "lazy": Lazy,
    "fake-loss": FakeLoss,
    "loss-up": LossUp,
    "replay": Replay,
    "swap": Swap,
    "wrong-layout": WrongLayout,
    "wrong-challenge": WrongChallenge,
}


@dataclass(frozen=True)
class Expected:
    """Where a cheat is caught: ``stage`` is "record" (the ledger refuses the header and slashes its
    signer), "light" (a fraud proof: finalize re-checks the bundle and slashes at once) or "full"
    (a subjective reject: slashed by the quorum rule, reject stake > 1/3)."""

    stage: str
    reasons: frozenset[str]
    outcome: str  # the block's reason once slashed


EXPECTED: dict[str, Expected] = {
    "tamper": Expected("light", frozenset({"APPLY_MISMATCH"}), "FRAUD_CONFIRMED"),
    "inconsistent-update": Expected("light", frozenset({"APPLY_MISMATCH"}), "FRAUD_CONFIRMED"),
    "lazy": Expected("full", frozenset({"LOSS_NOT_DECREASED"}), "QUORUM_REJECT"),
    "fake-loss": Expected("full", frozenset({"LOSS_MISMATCH"}), "QUORUM_REJECT"),
    "loss-up": Expected("full", frozenset({"LOSS_NOT_DECREASED"}), "QUORUM_REJECT"),
    "replay": Expected("record", frozenset({"REPLAYED_UPDATE"}), "REPLAYED_UPDATE"),
    "swap": Expected("light", frozenset({"BAD_PROOF"}), "FRAUD_CONFIRMED"),
    "wrong-layout": Expected("record", frozenset({"LAYOUT_MISMATCH"}), "LAYOUT_MISMATCH"),
    "wrong-challenge": Expected("light", frozenset({"WRONG_CHALLENGE"}), "FRAUD_CONFIRMED"),
}


def make_adversary(name: str, **options) -> MinerHooks:
    """``ADVERSARIES[name](**options)`` with a clear error for unknown names."""
    from pogo_jax.errors import UserError

    if name not in ADVERSARIES:
        raise UserError(f"unknown adversary {name!r}; choose one of: {', '.join(ADVERSARIES)}")
    return ADVERSARIES[name](**options)


# ------------------------------------------------------------------ synthetic blocks (no training)


@dataclass
class SyntheticBlock:
    """A committed block built on the host from a random state and a random 4-bit update: what the
    detection measurement and the fuzzer need, without a model. ``bad_rows`` are the inconsistent
    leaves (theta_next tampered or update perturbed)."""

    layout: Layout
    prev: np.ndarray  # (n, S) float32 leaves
    next: np.ndarray
    q: np.ndarray  # (n, B) uint8 wire leaves
    levels: tuple[list[list[bytes]], list[list[bytes]], list[list[bytes]]]
    signed: SignedHeader
    key: object
    n_windows: int
    bad_rows: np.ndarray

    def policy(self, beacon: bytes, k: int, m: int) -> Policy:
        h = self.signed.header
        return Policy(k=k, m=m, delta=0.0, chain_id=h.chain_id, beacon=beacon, root_prev=h.root_prev,
                      parent_hash=h.parent_hash, layout_hash=h.layout_hash, data_root=h.data_root,
                      header_hash=h.hash())

    def bundle(self, beacon: bytes, k: int, m: int, loss_prev: float = 2.0, loss_next: float = 1.875) -> Bundle:
        """The miner's signed answer to the challenge that ``beacon`` implies (honest prover)."""
        from pogo_jax.spec.challenge import make_challenge

        h = self.signed.header
        ch = make_challenge(h.hash(), beacon, h.n_leaves, k, self.n_windows, m)
        lp, ln, lq = self.levels
        ops = tuple(
            LeafOpening(i, self.prev[i].tobytes(), self.next[i].tobytes(), self.q[i].tobytes(),
                        tuple(mh.audit_path(lp, i)), tuple(mh.audit_path(ln, i)), tuple(mh.audit_path(lq, i)))
            for i in ch.leaf_indices)
        return Bundle(self.signed, beacon, self.layout, ops, ch.window_indices, loss_prev, loss_next).signed(self.key)


def synthetic_block(n_leaves: int, leaf_size: int = 256, group_size: int = 64, seed: int = 0,
                    tamper: float = 0.0, inconsistent: float = 0.0, n_windows: int = 64,
                    chain_id: str = "pogo-synthetic") -> SyntheticBlock:
    """Random flushed theta_prev, random valid update, theta_next = apply(prev, update); then a
    fraction ``tamper`` of theta_next leaves or ``inconsistent`` of update leaves made inconsistent
    (exact counts: ``round(f * n_leaves)``). Roots by the host reference (hashlib)."""
    rng = np.random.default_rng(seed)
    s, g = leaf_size, group_size
    layout = Layout.from_shapes({"w": (n_leaves * s,)}, s, g)
    prev = upd.flush(rng.normal(0, 0.02, size=(n_leaves, s)).astype(np.float32))
    exps = rng.integers(-14, -9, size=(n_leaves, s // g)).astype(np.int8)
    codes = rng.integers(-7, 8, size=(n_leaves, s)).astype(np.int8)
    q = upd.pack_leaves(exps, codes)
    nxt = upd.apply_leaves(prev, exps, codes)
    valid = np.full(n_leaves, s)
    bad = np.zeros(0, dtype=np.int64)
    if tamper > 0:
        bad = np.sort(rng.choice(n_leaves, size=round(tamper * n_leaves), replace=False))
        nxt = tamper_leaves(nxt, valid, bad)
    if inconsistent > 0:
        bad = np.sort(rng.choice(n_leaves, size=round(inconsistent * n_leaves), replace=False))
        q = perturb_update(q, bad, s, g, valid)
    levels = tuple(mh.tree_levels(mh.leaf_hashes(tag, a))
                   for tag, a in ((mh.TAG_PARAM, prev), (mh.TAG_PARAM, nxt), (mh.TAG_QUPD, q)))
    key = key_from_seed(hashlib.sha256(b"pogo synthetic miner %d" % seed).digest())
    header = Header(
        version=1, chain_id=chain_id, height=1, parent_hash=bytes(32), miner_key=public_bytes(key),
        layout_hash=layout.layout_hash(), data_root=hashlib.sha256(b"synthetic data").digest(),
        root_prev=levels[0][-1][0], root_next=levels[1][-1][0], root_q=levels[2][-1][0],
        leaf_size=s, group_size=g, n_leaves=n_leaves,
        train={"steps": 0, "n_windows": n_windows, "epoch": 0, "note": "synthetic"})
    return SyntheticBlock(layout, prev, nxt, q, levels, sign_header(header, key), key, n_windows, bad)


def fresh_beacon(seed: bytes, i: int) -> bytes:
    """Trial ``i``'s beacon value (a hash, as unpredictable to the committed miner as any other)."""
    return hashlib.sha256(b"pogo/detection/beacon" + seed + i.to_bytes(8, "little")).digest()
