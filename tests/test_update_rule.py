"""PROTOCOL section 3: the wire format and the apply rule, numpy reference vs jnp on device, bit for bit.

``make_random_case`` and ``make_edge_case`` are shared with tests/test_update_gpu.py so the GPU
check runs on exactly these inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pogo_jax.errors import Rejected
from pogo_jax.spec import update as U
from pogo_jax.spec.layout import Layout, from_leaves, to_leaves

S, G = 1024, 64
F32_MIN_NORMAL = np.float32(2.0**-126)
F32_MAX = np.finfo(np.float32).max


def bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def make_random_case(seed: int, n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (theta, exps, codes) leaves that exercise rounding, ties, cancellation and underflow.

    theta is a valid committed state (normal or +0.0, finite); a third of the values sit near the
    group's step ``2**e`` so the add rounds, ties, cancels or underflows.
    """
    rng = np.random.default_rng(seed)
    exps = rng.integers(U.E_MIN, U.E_MAX + 1, size=(n, S // G)).astype(np.int8)
    exps[0, :8] = U.E_MIN  # the underflow region
    exps[0, 8:12] = U.E_MAX
    codes = rng.integers(-7, 8, size=(n, S)).astype(np.int8)
    e = np.repeat(exps.astype(np.int32), G, axis=1)
    kind = rng.integers(0, 4, size=(n, S))
    mant = rng.integers(1 << 23, 1 << 24, size=(n, S)).astype(np.float64)
    shift = rng.integers(-3, 28, size=(n, S))
    near = np.ldexp(mant, e + shift - 23)  # within ~2**27 steps of the group's 2**e
    wide = rng.standard_normal((n, S)) * np.exp(rng.uniform(-40, 40, size=(n, S)))
    cancel = -codes.astype(np.float64) * np.ldexp(1.0, e)
    small = rng.integers(1, 16, size=(n, S)).astype(np.float64)
    tiny = np.ldexp(small, -126 - rng.integers(0, 3, size=(n, S)))
    theta = np.select([kind == 0, kind == 1, kind == 2], [near, wide, cancel], tiny)
    theta *= np.where(rng.random((n, S)) < 0.5, -1.0, 1.0)
    with np.errstate(over="ignore"):
        theta = theta.astype(np.float32)
    theta = np.clip(theta, -F32_MAX, F32_MAX)
    return U.flush(theta), exps, codes


def make_edge_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One leaf per named edge case (each group of 64 values is one case)."""
    theta = np.zeros((1, S), dtype=np.float32)
    exps = np.full((1, S // G), -126, dtype=np.int8)
    codes = np.zeros((1, S), dtype=np.int8)
    names = []

    def case(name: str, t: list[float], e: int, c: list[int]) -> None:
        g = len(names)
        names.append(name)
        exps[0, g] = e
        theta[0, g * G : g * G + len(t)] = np.asarray(t, dtype=np.float32)
        codes[0, g * G : g * G + len(c)] = c

    m = float(F32_MIN_NORMAL)
    case("underflow to subnormal -> +0.0", [1.5 * m, -1.5 * m, 1.25 * m, 2 * m], -126, [-1, 1, -1, -1])
    case("exact cancellation", [3 * 2.0**-5, -3 * 2.0**-5, 7 * 2.0**15, -7 * 2.0**-126], -5, [-3, 3, 0, 0])
    case("cancellation at e=15 and e=-126", [7 * 2.0**15, -7 * 2.0**15], 15, [-7, 7])
    case("-0.0 inputs", [-0.0, -0.0, -0.0, -0.0], 0, [0, 1, -1, 7])
    case("e = -126, codes +-7", [1.0, -1.0, m, -m, 0.0], -126, [7, -7, 7, -7, -7])
    case("e = 15, codes +-7", [1.0, -1.0, 2.0**40, -(2.0**40), 0.0], 15, [7, -7, 7, -7, 7])
    case("ties to even", [1.0, 1.0 + 2.0**-23, -1.0, 3.0], -24, [1, 1, -1, 1])
    case("largest finite stays finite", [float(F32_MAX), -float(F32_MAX), float(F32_MAX)], 15, [7, -7, -7])
    case("all zero codes, wide theta", [2.0**100, -(2.0**-100), 1e30, 123.456], 3, [0, 0, 0, 0])
    return theta, exps, codes, names


def device_apply(theta: np.ndarray, exps: np.ndarray, codes: np.ndarray, sharded: bool = False) -> np.ndarray:
    """Run ``quant.apply_update`` (jitted) on leaf-shaped inputs viewed as one (n, S) tensor."""
    import jax

    from pogo_jax.commit import quant

    n = theta.shape[0]
    layout = Layout.from_shapes({"w": (n, S)}, S, G)
    q = quant.QuantizedUpdate({"w": exps.reshape(-1)}, {"w": codes.reshape(-1)})
    params = {"w": theta}
    if sharded:
        from jax.sharding import AxisType, NamedSharding, PartitionSpec

        mesh = jax.make_mesh((2, 4), ("a", "b"), axis_types=(AxisType.Auto,) * 2)
        params = {"w": jax.device_put(theta, NamedSharding(mesh, PartitionSpec("a", "b")))}
    out = jax.jit(lambda p, q: quant.apply_update(p, q, layout))(params, q)["w"]
    if sharded:
        assert out.sharding.is_equivalent_to(params["w"].sharding, 2)
    return np.asarray(out)


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sharded", [False, True])
def test_device_matches_numpy_on_random_inputs(sharded):
    seed = int.from_bytes(os.urandom(4), "little")
    theta, exps, codes = make_random_case(seed, n=8)
    want = U.apply_leaves(theta, exps, codes)
    got = device_apply(theta, exps, codes, sharded)
    diff = np.flatnonzero(bits(got) != bits(want))
    assert diff.size == 0, f"seed={seed}: {diff.size} values differ, first at {diff[:5]}"
    # the case really exercises what it claims
    assert (bits(want) == 0).sum() > 50, f"seed={seed}: too few flushed/cancelled results"
    assert not (bits(want) & np.uint32(0x7F800000) == 0)[bits(want) != 0].any()  # no subnormal, no -0.0


def test_device_matches_numpy_on_edge_cases():
    theta, exps, codes, names = make_edge_case()
    want = U.apply_leaves(theta, exps, codes)
    got = device_apply(theta, exps, codes)
    for g, name in enumerate(names):
        sl = slice(g * G, (g + 1) * G)
        assert np.array_equal(bits(got[0, sl]), bits(want[0, sl])), name
    w = want[0]
    m = 2.0**-126
    assert bits(w[0:3]).tolist() == [0, 0, 0] and w[3] == m  # 0.5, 0.25 * 2^-126 flushed; 2^-126 kept
    assert bits(w[G : G + 2]).tolist() == [0, 0]  # +0.0, never -0.0
    assert bits(w[2 * G : 2 * G + 2]).tolist() == [0, 0]
    assert bits(w[3 * G : 3 * G + 4]).tolist() == [0, 0x3F800000, 0xBF800000, 0x40E00000]  # -0.0+0 -> +0.0
    assert w[4 * G] == 1.0 and w[4 * G + 2] == 8 * m and bits(w[4 * G + 3 : 4 * G + 4])[0] != 0
    assert w[5 * G + 4] == 7 * 2.0**15
    assert w[6 * G] == 1.0 and w[6 * G + 1] == 1.0 + 2.0**-22 and w[6 * G + 2] == -1.0  # RNE ties
    assert w[7 * G] == F32_MAX and w[7 * G + 1] == -F32_MAX  # |d| <= 7*2^15 cannot overflow a finite theta


def test_inputs_that_are_not_valid_states_still_agree():
    """Subnormal and -0.0 inputs (never in a committed state) give the same bits everywhere too."""
    rng = np.random.default_rng(7)
    theta = (rng.integers(1, 1 << 23, size=(1, S)).astype(np.uint32)).view(np.float32).copy()  # subnormals
    theta[0, ::2] *= -1
    exps = np.full((1, S // G), -126, dtype=np.int8)
    codes = rng.integers(-7, 8, size=(1, S)).astype(np.int8)
    want = U.apply_leaves(theta, exps, codes)
    # a subnormal theta counts as +0.0
    assert np.array_equal(bits(want), bits(U.dequantize_leaves(exps, codes)))
    assert np.array_equal(bits(device_apply(theta, exps, codes)), bits(want))


def test_nonfinite_rejected():
    theta, exps, codes, _ = make_edge_case()
    for bad in (np.inf, -np.inf, np.nan):
        t = theta.copy()
        t[0, 100] = bad
        with pytest.raises(Rejected) as ei:
            U.apply_leaves(t, exps, codes)
        assert ei.value.code == "NONFINITE"
        import jax.numpy as jnp

        from pogo_jax.commit import quant

        assert not bool(quant.all_finite({"w": jnp.asarray(device_apply(t, exps, codes))}))


def test_fma_contraction_cannot_change_bits():
    """openxla/xla#41579: XLA may fuse ``theta + c * 2**e`` into an FMA. Because ``c * 2**e`` is exact,
    fused, separately rounded and numpy results are identical; for general products they are not."""
    import jax
    import jax.numpy as jnp

    from pogo_jax.commit import quant

    seed = int.from_bytes(os.urandom(4), "little")
    theta, exps, codes = make_random_case(seed, n=4)
    theta, c = theta.reshape(-1), codes.reshape(-1)
    e = np.repeat(exps.astype(np.int32), G, axis=1).reshape(-1)

    fused = jax.jit(lambda t, c, e: quant.flush(t + c.astype(jnp.float32) * quant.pow2(e)))
    d_dev = np.asarray(jax.jit(lambda c, e: c.astype(jnp.float32) * quant.pow2(e))(c, e))
    split = jax.jit(lambda t, d: quant.flush(t + d))
    host = U.apply_leaves(theta[None], exps.reshape(1, -1), codes.reshape(1, -1))[0]
    # FMA emulated on the host: exact product in float64, one rounding of the sum (double rounding
    # of a float32 sum via float64 is innocuous, 53 >= 2*24 + 2), then flush
    exact = theta.astype(np.float64) + c.astype(np.float64) * np.ldexp(1.0, e)
    emulated = U.flush(exact.astype(np.float32))
    for name, got in [("fused", np.asarray(fused(theta, c, e))), ("split", np.asarray(split(theta, d_dev))),
                      ("fma-emulated", emulated)]:
        diff = np.flatnonzero(bits(got) != bits(host))
        assert diff.size == 0, f"seed={seed}: {name} differs from numpy at {diff[:5]}"

    # control: with a general (inexact) product the fused and the separately rounded results differ,
    # so the check above would catch a format whose product were not exact
    rng = np.random.default_rng(seed)
    a, b, t = (rng.standard_normal(4096).astype(np.float32) for _ in range(3))
    sep = a * b + t
    fma = (a.astype(np.float64) * b + t).astype(np.float32)
    assert (bits(sep) != bits(fma)).sum() > 100
    dev = np.asarray(jax.jit(lambda a, b, t: a * b + t)(a, b, t))
    print(f"XLA {jax.default_backend()} contracts a*b+c into FMA: {np.array_equal(bits(dev), bits(fma))}")


# --------------------------------------------------------------------------------------------
# wire format


def test_leaf_bytes():
    assert U.update_leaf_bytes(1024, 64) == 528
    assert U.update_leaf_bytes(8, 4) == 6
    with pytest.raises(ValueError):
        U.update_leaf_bytes(100, 64)


def test_golden_bytes():
    """S=8, G=4: exponents [-3, 15], codes [1,-1,7,-7, 0,2,-2,3] -> fixed bytes."""
    exps = np.array([[-3, 15]], dtype=np.int8)
    codes = np.array([[1, -1, 7, -7, 0, 2, -2, 3]], dtype=np.int8)
    buf = U.pack_leaves(exps, codes)
    assert bytes(buf[0]).hex() == "fd0f" + "f1" + "97" + "20" + "3e"
    e2, c2 = U.unpack_leaves(bytes(buf[0]), 8, 4)
    assert e2.tolist() == exps.tolist() and c2.tolist() == codes.tolist()
    theta = np.array([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    out = U.apply_leaves(theta, e2, c2)
    assert out.tolist() == [[1.125, 0.875, 0.875, -0.875, 1.0, 65536.0, -65536.0, 98304.0]]


def test_pack_unpack_roundtrip_random():
    seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    exps = rng.integers(U.E_MIN, U.E_MAX + 1, size=(5, S // G)).astype(np.int8)
    codes = rng.integers(-7, 8, size=(5, S)).astype(np.int8)
    buf = U.pack_leaves(exps, codes)
    assert buf.shape == (5, 528) and buf.dtype == np.uint8
    for src in (buf, buf.tobytes()):
        e2, c2 = U.unpack_leaves(src, S, G)
        assert np.array_equal(e2, exps) and np.array_equal(c2, codes), f"seed={seed}"
    # low nibble first, two's complement
    assert np.array_equal(buf[:, 16:] & 0x0F, codes[:, 0::2].view(np.uint8) & 0x0F)
    assert np.array_equal(buf[:, 16:] >> 4, codes[:, 1::2].view(np.uint8) & 0x0F)


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda b: b.__setitem__((0, 20), 0x8F), "BAD_CODE"),  # high nibble -8
        (lambda b: b.__setitem__((1, 30), 0x38), "BAD_CODE"),  # low nibble -8
        (lambda b: b.__setitem__((0, 3), np.int8(-127).view(np.uint8)), "BAD_EXPONENT"),
        (lambda b: b.__setitem__((2, 15), 16), "BAD_EXPONENT"),
    ],
)
def test_malformed_rejected(mutate, code):
    rng = np.random.default_rng(1)
    exps = rng.integers(-20, 5, size=(3, S // G)).astype(np.int8)
    codes = rng.integers(-7, 8, size=(3, S)).astype(np.int8)
    buf = U.pack_leaves(exps, codes)
    mutate(buf)
    with pytest.raises(Rejected) as ei:
        U.unpack_leaves(buf, S, G)
    assert ei.value.code == code and ei.value.detail


def test_wrong_length_rejected():
    buf = U.pack_leaves(np.zeros((2, S // G), np.int8), np.zeros((2, S), np.int8)).tobytes()
    for bad in (buf[:-1], buf + b"\x00", b"", buf[:527]):
        with pytest.raises(Rejected) as ei:
            U.unpack_leaves(bad, S, G)
        assert ei.value.code == "BAD_LENGTH"
    with pytest.raises(Rejected):
        U.unpack_leaves(np.zeros((2, 527), np.uint8), S, G)
    with pytest.raises(Rejected) as ei:
        U.apply_leaf_bytes(b"\x00" * (4 * S), buf, S, G, S)  # two leaves where one is expected
    assert ei.value.code == "BAD_LENGTH"


def test_padding():
    layout = Layout.from_shapes({"a/w": (3, 500), "b": (3,)}, S, G)
    valid = U.valid_counts(layout)
    assert valid.tolist() == [1024, 476, 3]
    codes = np.zeros((3, S), np.int8)
    codes[1, :476] = 7
    codes[2, :3] = -7
    U.check_padding(codes, valid)
    for leaf, pos in [(1, 476), (2, 3), (2, 1023)]:
        bad = codes.copy()
        bad[leaf, pos] = 1
        with pytest.raises(Rejected) as ei:
            U.check_padding(bad, valid)
        assert ei.value.code == "BAD_PADDING"
    # padding stays +0.0 through apply, on host and device
    rng = np.random.default_rng(3)
    arrays = {"a/w": rng.standard_normal((3, 500)).astype(np.float32), "b": np.ones(3, np.float32)}
    exps = np.full((3, S // G), -4, np.int8)
    out = U.apply_leaves(to_leaves(arrays, layout), exps, codes)
    assert not bits(out[1, 476:]).any() and not bits(out[2, 3:]).any()
    assert np.array_equal(from_leaves(out, layout)["b"], np.full(3, 1.0 - 7 / 16, np.float32))


def test_apply_leaf_bytes_single_opening():
    theta, exps, codes = make_random_case(11, n=1)
    codes[0, 1000:] = 0
    theta[0, 1000:] = 0.0
    want = U.apply_leaves(theta, exps, codes)
    got = U.apply_leaf_bytes(theta.astype("<f4").tobytes(), U.pack_leaves(exps, codes).tobytes(), S, G, 1000)
    assert got == want.astype("<f4").tobytes()
    with pytest.raises(Rejected) as ei:
        U.apply_leaf_bytes(theta.tobytes(), U.pack_leaves(exps, codes).tobytes(), S, G, 999)
    assert ei.value.code == "BAD_PADDING"  # code at 999 is in the padding of a 999-value leaf
    t2 = theta.copy()
    t2[0, 1010] = 1.0  # garbage in theta_prev padding
    with pytest.raises(Rejected) as ei:
        U.apply_leaf_bytes(t2.tobytes(), U.pack_leaves(exps, codes).tobytes(), S, G, 1000)
    assert ei.value.code == "BAD_PADDING"
    with pytest.raises(Rejected) as ei:
        U.apply_leaf_bytes(theta.tobytes()[:-4], U.pack_leaves(exps, codes).tobytes(), S, G, 1000)
    assert ei.value.code == "BAD_LENGTH"


def test_flush_by_bits():
    x = np.array([-0.0, 0.0, 1e-45, -1e-45, 1.1754942e-38, 2.0**-126, -(2.0**-126), np.inf, np.nan, -1.0],
                 dtype=np.float32)
    y = U.flush(x)
    assert bits(y[:5]).tolist() == [0] * 5
    assert bits(y[5:]).tolist() == bits(x[5:]).tolist()


def test_update_module_does_not_import_jax():
    code = "import sys, pogo_jax.spec.update; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
