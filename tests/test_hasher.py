"""Every lowering of the leaf hasher gives the bits of ``spec.merkle.leaf_hash`` (fresh random leaves,
edge sizes and indices), for row leaves and for sharded parameter states; ``auto`` picks by platform."""

from __future__ import annotations

import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from pogo_jax.commit import hasher, host_hash, sha256_np, sharded
from pogo_jax.spec import merkle as mh
from pogo_jax.spec.layout import Layout, to_leaves

IMPLS = hasher.available_impls()


def _seed() -> int:
    return int(np.random.SeedSequence().entropy % 2**32)


def _reference(tag: bytes, rows: np.ndarray, first: int) -> np.ndarray:
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    return np.frombuffer(b"".join(mh.leaf_hash(tag, first + i, raw[i].tobytes()) for i in range(len(raw))),
                         np.uint8).reshape(-1, 32)


def test_all_four_lowerings_are_available_here():
    assert set(IMPLS) == {"jnp", "pallas", "hashlib", "numpy"}


# (n leaves, words per leaf, first index): one leaf, odd counts, 4 KiB and 528-byte leaves, word counts
# that are not powers of two (one needing no extra padding block), indices crossing 2**32 and ending at 2**64
CASES = [
    (1, 1024, 0),
    (3, 132, 2**32 - 2),
    (7, 13, 2**64 - 7),
    (2, 1024, 2**64 - 2),
    (5, 100, 2**32 - 1),
    (1, 1, 2**64 - 1),
    (6, 16, 123_456_789),
]


@pytest.mark.parametrize("n,w,first", CASES)
def test_every_lowering_gives_identical_bits(n, w, first):
    seed = _seed()
    x = np.random.default_rng(seed).integers(0, 2**32, size=(n, w), dtype=np.uint32)
    want = _reference(mh.TAG_QUPD, x, first)
    for impl in IMPLS:
        got = hasher.leaf_hashes(x, mh.TAG_QUPD, first, impl=impl)
        assert got.dtype == np.uint8 and got.shape == (n, 32)
        assert np.array_equal(got, want), f"impl={impl} seed={seed} n={n} w={w} first={first}"
    as_bytes = x.view(np.uint8)  # (N, 4W) uint8 rows hash the same as their uint32 words
    assert np.array_equal(hasher.leaf_hashes(as_bytes, mh.TAG_QUPD, first, impl="hashlib"), want)
    assert np.array_equal(hasher.leaf_hashes(jax.numpy.asarray(as_bytes), mh.TAG_QUPD, first, impl="jnp"), want)


def test_hashlib_thread_pool_over_many_chunks_and_jax_input():
    seed = _seed()
    n = 3 * host_hash.CHUNK_ROWS["hashlib"] + 5  # several work items for the pool, a short last one
    x = np.random.default_rng(seed).integers(0, 2**32, size=(n, 1024), dtype=np.uint32)
    want = _reference(mh.TAG_PARAM, x, 40)
    assert np.array_equal(hasher.leaf_hashes(x, mh.TAG_PARAM, 40, impl="hashlib"), want), seed
    assert np.array_equal(hasher.leaf_hashes(jax.numpy.asarray(x), mh.TAG_PARAM, 40), want), seed
    jobs = host_hash.array_jobs(x, 1024, 40)
    idx, dig = host_hash.hash_jobs(jobs, mh.TAG_PARAM, "hashlib", threads=2)
    assert np.array_equal(idx, 40 + np.arange(n)) and np.array_equal(dig, want)


SHAPES = {
    "emb": (40, 64),  # rows over "data": 20 rows x 64 values, whole leaves
    "attn/qkv": (64, 768),  # column-parallel over "tensor": 192 values per row and shard = 3 leaves
    "attn/out": (256, 64),  # row-parallel over "tensor"
    "attn/b": (256,),  # over "tensor": one leaf per shard
    "mlp/w": (24, 96),  # over "tensor": 24 values per row and shard, leaves straddle shards
    "ln/scale": (64,),  # replicated: split over all 8 devices, hashed once
    "odd": (7, 9),  # replicated, padded last leaf
    "one": (),
    "empty": (0, 3),
}
SPECS = {
    "emb": P("data", None),
    "attn/qkv": P(None, "tensor"),
    "attn/out": P("tensor", None),
    "attn/b": P("tensor"),
    "mlp/w": P(None, "tensor"),
    "ln/scale": P(),
    "odd": P(),
    "one": P(),
    "empty": P(),
}


def _state(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {k: np.asarray(rng.standard_normal(s), dtype=np.float32).reshape(s) for k, s in SHAPES.items()}
    out["emb"][0, :3] = [-0.0, 3.4e38, -1e-42]  # bits, not values: -0.0 and a subnormal survive
    return out


def test_param_lowerings_identical_on_host_arrays_and_a_tensor_parallel_mesh():
    seed = _seed()
    arrays = _state(seed)
    layout = Layout.from_arrays(arrays, 64, 16)
    want = _reference(mh.TAG_PARAM, to_leaves(arrays, layout), 0)
    mesh = jax.make_mesh((2, 4), ("data", "tensor"), axis_types=(AxisType.Auto,) * 2)
    placed = {k: jax.device_put(v, NamedSharding(mesh, SPECS[k])) for k, v in arrays.items()}
    for impl in IMPLS:
        for state in (arrays, placed):
            got = hasher.param_leaf_hashes(state, layout, mh.TAG_PARAM, impl=impl)
            assert np.array_equal(got, want), f"impl={impl} seed={seed} sharded={state is placed}"


def test_auto_picks_by_platform_and_host_data_never_import_jax():
    x = np.zeros((2, 4), np.uint32)
    assert hasher.resolve_impl([x]) == "hashlib" and hasher.platform_of([x]) == "host"
    assert hasher.resolve_impl([jax.numpy.asarray(x)]) == "hashlib"  # CPU jax arrays: read in place
    assert hasher.AUTO["gpu"] == "pallas" and hasher.AUTO["tpu"] == "jnp"
    with pytest.raises(ValueError, match="impl"):
        hasher.resolve_impl([x], "schedule")
    code = (
        "import sys, numpy as np\n"
        "from pogo_jax.commit import merkle\n"
        "c = merkle.commit({'w': np.arange(5000, dtype=np.float32), 'b': np.ones(3, np.float32)})\n"
        "assert 'jax' not in sys.modules, 'jax imported'\n"
        "print(c.root.hex())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    arrays = {"w": np.arange(5000, dtype=np.float32), "b": np.ones(3, np.float32)}
    from pogo_jax.commit.merkle import host_commit

    assert out.stdout.strip() == host_commit(arrays)[0].hex()


def test_pallas_failure_falls_back_to_jnp_with_a_warning(monkeypatch):
    from pogo_jax.commit import pallas_sha256

    def broken(*args, **kwargs):
        raise NotImplementedError("no Triton lowering for this block shape")

    monkeypatch.setattr(pallas_sha256, "hash_rows", broken)
    monkeypatch.setattr(sharded, "_pallas_failed", set())
    sharded._program.cache_clear()  # programs traced earlier hold the real kernel
    x = np.random.default_rng(_seed()).integers(0, 2**32, size=(3, 24), dtype=np.uint32)
    segs = [sharded.Segment(x, 24, 5, 3)]
    with pytest.raises(NotImplementedError):
        sharded.digests(segs, mh.TAG_QUPD, "pallas")
    with pytest.warns(RuntimeWarning, match="jnp lowering"):
        idx, dig = sharded.digests(segs, mh.TAG_QUPD, "pallas", fallback=True)
    assert np.array_equal(idx, [5, 6, 7]) and np.array_equal(dig, _reference(mh.TAG_QUPD, x, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # remembered: the second call goes straight to jnp
        sharded.digests(segs, mh.TAG_QUPD, "pallas", fallback=True)
    sharded._program.cache_clear()


def test_numpy_compression_matches_fips_and_bad_inputs_are_refused():
    words = sha256_np.pad_message(b"abc")
    state = sha256_np._compress([np.full(1, v, np.uint32) for v in sha256_np.H0], [np.full(1, w) for w in words])
    assert sha256_np.digest_bytes(np.array([s[0] for s in state])).hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(ValueError, match="uint32"):
        hasher.leaf_hashes(np.zeros((2, 3), np.float32), mh.TAG_QUPD)
    with pytest.raises(ValueError, match="multiple of 4"):
        hasher.leaf_hashes(np.zeros((2, 3), np.uint8), mh.TAG_QUPD)
    with pytest.raises(ValueError, match="out of range"):
        hasher.leaf_hashes(np.zeros((2, 4), np.uint32), mh.TAG_QUPD, 2**64 - 1)
    with pytest.raises(ValueError, match="no leaves"):
        hasher.leaf_hashes(np.zeros((0, 4), np.uint32), mh.TAG_QUPD)
    with pytest.raises(ValueError, match="float32"):
        hasher.param_leaf_hashes({"x": np.zeros(3, np.float64)}, Layout.from_shapes({"x": (3,)}, 64, 16))


FORK_CHECK = """
import os, sys
import numpy as np
from pogo_jax.commit import host_hash, sha256_np
from pogo_jax.spec import merkle as mh

assert host_hash.fork_is_safe(), "a process without jax or threads"
first = 2**32 - 1000
rows = np.random.default_rng(int(sys.argv[1])).integers(0, 2**32, size=(2100, 1024), dtype=np.uint32)
want = np.frombuffer(b"".join(mh.leaf_hashes(mh.TAG_PARAM, rows, first)), np.uint8).reshape(-1, 32)
forks, real_fork = [], os.fork
os.fork = lambda: forks.append(1) or real_fork()
idx, got = host_hash.hash_jobs(host_hash.array_jobs(rows, 1024, first), mh.TAG_PARAM)  # 8.6 MB: auto forks
assert forks and np.array_equal(got, want) and np.array_equal(idx, first + np.arange(2100))

parent, prefix = os.getpid(), sha256_np.header_prefix(mh.TAG_PARAM)
def dies_in_child(p):
    if os.getpid() != parent:
        os._exit(3)
    return host_hash._hashlib_piece(p[0], p[1], prefix)
pieces = [(rows[i : i + 256].view(np.uint8).reshape(-1, 4096), first + np.arange(i, min(i + 256, 2100), dtype=np.uint64))
          for i in range(0, 2100, 256)]
assert b"".join(host_hash._forked(dies_in_child, pieces, 2)) == want.tobytes()  # its claims are redone here

done_in_child = []
def dies_after_two(p):  # the child's first two pieces are done and trusted, what it claimed next is redone
    if os.getpid() != parent:
        if len(done_in_child) == 2:
            os._exit(3)
        done_in_child.append(1)
    return host_hash._hashlib_piece(p[0], p[1], prefix)
assert b"".join(host_hash._forked(dies_after_two, pieces, 2)) == want.tobytes()

# the scratch buffer is left out of forks: a child of ours (or of any user code) that hashes maps its own
pid = os.fork()
if pid == 0:
    _, again = host_hash.hash_jobs(host_hash.array_jobs(rows, 1024, first), mh.TAG_PARAM, mode="serial")
    os._exit(0 if np.array_equal(again, want) else 1)
assert os.waitpid(pid, 0)[1] == 0, "a forked child could not hash with its parent's scratch gone"
assert "jax" not in sys.modules
print("ok")
"""


def test_forked_processes_where_safe_and_a_failed_child_share_is_redone():
    seed = _seed()
    out = subprocess.run([sys.executable, "-c", FORK_CHECK, str(seed)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", f"seed={seed}\n{out.stderr[-3000:]}"
    assert not host_hash.fork_is_safe()  # this process runs jax: the thread pool is used instead
