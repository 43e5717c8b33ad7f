"""Merkle roots of one fixed input, so ``pogo report`` can compare backends bit for bit.

The input does not depend on ``--config``: a state drawn with numpy from a fixed seed (shapes
chosen to exercise padding, a one-value tensor and several leaves per tensor, values spread over
many binades and passed through the protocol flush), plus a fixed 4-bit update (random codes in
{-7..7}, exponents over the whole range [-126, 15], so the apply rule meets tiny, huge and
cancelling values). The update is applied on the device (``quant.apply_update``), the three
trees are committed on the device (``merkle.commit``/``commit_leaves``), and the same roots are
computed with the numpy + hashlib reference as a built-in cross-check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves

ROOTS_SEED = 20240607
ROOTS_SHAPES: dict[str, tuple[int, ...]] = {
    "a/kernel": (300, 257),  # 77100 values: 76 leaves, the last one padded
    "b/bias": (1000,),
    "c/conv": (64, 64, 3),
    "d/one": (1,),
    "e/wide": (2, 4096),
}
LEAF_SIZE, GROUP_SIZE = 1024, 64


def fixed_inputs() -> tuple[Layout, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(layout, theta_prev arrays, exps (n, S/G) int8, codes (n, S) int8), all from ``ROOTS_SEED``."""
    rng = np.random.default_rng(ROOTS_SEED)
    layout = Layout.from_shapes(ROOTS_SHAPES, LEAF_SIZE, GROUP_SIZE)
    theta = {}
    for t in layout.tensors:
        mag = np.exp2(rng.integers(-40, 20, size=t.size)).astype(np.float32)
        theta[t.path] = upd.flush((rng.standard_normal(t.size).astype(np.float32) * mag).reshape(t.shape))
    n, s, g = layout.n_leaves, LEAF_SIZE, GROUP_SIZE
    codes = rng.integers(-7, 8, size=(n, s)).astype(np.int8)
    exps = rng.integers(upd.E_MIN, upd.E_MAX + 1, size=(n, s // g)).astype(np.int8)
    valid = upd.valid_counts(layout)
    for i, v in enumerate(valid):
        codes[i, v:] = 0  # padding codes must be 0
        exps[i, -(-v // g):] = upd.E_MIN  # all-padding groups: exponent -126, as the quantizer writes
    return layout, theta, exps, codes


def host_roots() -> dict[str, str]:
    """The reference: numpy apply rule + hashlib Merkle trees."""
    layout, theta, exps, codes = fixed_inputs()
    prev = to_leaves(theta, layout)
    nxt = upd.apply_leaves(prev, exps, codes)
    wire = upd.pack_leaves(exps, codes)
    return {
        "root_prev": mh.root(mh.leaf_hashes(mh.TAG_PARAM, prev)).hex(),
        "root_next": mh.root(mh.leaf_hashes(mh.TAG_PARAM, nxt)).hex(),
        "root_q": mh.root(mh.leaf_hashes(mh.TAG_QUPD, wire)).hex(),
    }


def device_roots() -> dict[str, str]:
    """The same roots on the current jax backend: device apply rule, device packing and hashing."""
    import jax.numpy as jnp

    from pogo_jax.commit import merkle, quant

    layout, theta, exps, codes = fixed_inputs()
    s, g = LEAF_SIZE, GROUP_SIZE
    q_exps, q_codes = {}, {}
    for t in layout.tensors:
        rows = slice(t.first_leaf, t.first_leaf + t.n_leaves)
        q_exps[t.path] = jnp.asarray(exps[rows].reshape(-1))
        q_codes[t.path] = jnp.asarray(codes[rows].reshape(-1))
    q = quant.QuantizedUpdate(q_exps, q_codes)
    prev = {k: jnp.asarray(v) for k, v in theta.items()}
    nxt = quant.apply_update(prev, q, layout)
    packed = quant.pack_update(q, layout)
    return {
        "root_prev": merkle.commit(prev, s, g).root.hex(),
        "root_next": merkle.commit(nxt, s, g).root.hex(),
        "root_q": merkle.commit_leaves(packed, mh.TAG_QUPD, layout).root.hex(),
    }


def roots_record() -> dict[str, Any]:
    """``roots`` (device) plus a description of the input and the host cross-check."""
    dev = device_roots()
    ref = host_roots()
    return {
        "roots": dev,
        "roots_input": {"seed": ROOTS_SEED, "shapes": {k: list(v) for k, v in ROOTS_SHAPES.items()},
                        "leaf_size": LEAF_SIZE, "group_size": GROUP_SIZE,
                        "what": "numpy state (flushed) + fixed 4-bit update applied with the device rule"},
        "roots_match_host_reference": dev == ref,
    }


def theta_next_host() -> dict[str, np.ndarray]:
    """The reference theta_next as arrays (for tests)."""
    layout, theta, exps, codes = fixed_inputs()
    return from_leaves(upd.apply_leaves(to_leaves(theta, layout), exps, codes), layout)
