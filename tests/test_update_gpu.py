"""GPU bit-exactness of ``quant.apply_update`` against the numpy rule, on the CPU test's inputs.

NVIDIA GPUs keep subnormals while XLA:CPU flushes them, and XLA may contract the multiply-add
into an FMA on either; the rule must still give numpy's bits. Run on a GPU machine with
``POGO_TEST_PLATFORMS=cuda,cpu pytest -m gpu tests/test_update_gpu.py`` (skipped without a GPU).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_update_rule import G, S, make_edge_case, make_random_case

from pogo_jax.spec import update as U

pytestmark = pytest.mark.gpu


def gpu_apply(theta: np.ndarray, exps: np.ndarray, codes: np.ndarray) -> np.ndarray:
    import jax

    from pogo_jax.commit import quant
    from pogo_jax.spec.layout import Layout

    gpu = jax.devices("gpu")[0]
    layout = Layout.from_shapes({"w": (theta.shape[0], S)}, S, G)
    q = quant.QuantizedUpdate({"w": jax.device_put(exps.reshape(-1), gpu)},
                              {"w": jax.device_put(codes.reshape(-1), gpu)})
    out = quant.apply_update({"w": jax.device_put(theta, gpu)}, q, layout)["w"]
    assert out.devices() == {gpu}
    return np.asarray(out)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345])
def test_gpu_matches_numpy_random(seed):
    theta, exps, codes = make_random_case(seed, n=8)
    want = U.apply_leaves(theta, exps, codes).view(np.uint32)
    got = gpu_apply(theta, exps, codes).view(np.uint32)
    diff = np.flatnonzero(got != want)
    assert diff.size == 0, f"seed={seed}: {diff.size} values differ, first at {diff[:5]}"


def test_gpu_matches_numpy_edge_cases():
    theta, exps, codes, names = make_edge_case()
    want = U.apply_leaves(theta, exps, codes).view(np.uint32)
    got = gpu_apply(theta, exps, codes).view(np.uint32)
    for g, name in enumerate(names):
        assert np.array_equal(got[0, g * G : (g + 1) * G], want[0, g * G : (g + 1) * G]), name


def test_gpu_subnormal_inputs_agree():
    """Operands that are not valid states (subnormals, -0.0): the input flush makes the GPU agree."""
    rng = np.random.default_rng(7)
    theta = rng.integers(1, 1 << 23, size=(1, S)).astype(np.uint32).view(np.float32).copy()
    theta[0, ::2] *= -1
    theta[0, 1::4] = -0.0
    exps = np.full((1, S // G), -126, dtype=np.int8)
    codes = rng.integers(-7, 8, size=(1, S)).astype(np.int8)
    want = U.apply_leaves(theta, exps, codes).view(np.uint32)
    assert np.array_equal(gpu_apply(theta, exps, codes).view(np.uint32), want)
