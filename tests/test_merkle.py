"""Commitments (every lowering) == host reference == an independent recursive RFC 9162 written here;
openings verify and every tampering is rejected; digests stored once and opened from; worked example
golden values (docs/merkle.md)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from pogo_jax.commit import device, merkle, sha256
from pogo_jax.spec import merkle as mh
from pogo_jax.spec.layout import Layout, to_leaves
from pogo_jax.spec.merkle import Opening, verify_openings

S, G = 64, 16  # small leaves keep the compiled programs small; the code is the same for S=1024


# ---------------------------------------------------------------- independent reference


def ref_leaf(tag: bytes, i: int, data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + tag + bytes(55 - len(tag)) + struct.pack("<Q", i) + data).digest()


def ref_mth(d: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, recursively."""
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)  # largest power of two < n
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_root(flat: dict[str, np.ndarray], s: int, tag: bytes = mh.TAG_PARAM) -> bytes:
    leaves: list[bytes] = []
    for name in sorted(flat, key=lambda k: k.encode()):
        raw = np.ascontiguousarray(flat[name], dtype="<f4").tobytes()
        for off in range(0, len(raw), 4 * s):
            leaves.append(raw[off : off + 4 * s].ljust(4 * s, b"\x00"))
    return ref_mth([ref_leaf(tag, i, b) for i, b in enumerate(leaves)])


def nest(flat: dict[str, np.ndarray]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        d = out
        *heads, last = path.split("/")
        for h in heads:
            d = d.setdefault(h, {})
        d[last] = v
    return out


SPECIAL = np.array([-0.0, 0.0, 3.4e38, -3.4e38, np.inf, 1e-45, -1e-40], np.float32)
NAN_PAYLOAD = np.array([0x7FC12345, 0xFFBFFFFF], np.uint32).view(np.float32)  # bits must survive


def random_flat(rng: np.random.Generator, n_tensors: int) -> dict[str, np.ndarray]:
    shapes = [(), (0,), (0, 3), (1,), (S,), (S + 1,), (3, 7), (5, 2 * S - 3), (4, 4, 9), (2 * S,)]
    flat = {}
    for i in range(n_tensors):
        shape = shapes[rng.integers(len(shapes))] if rng.random() < 0.7 else (int(rng.integers(1, 4 * S)),)
        a = np.asarray(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4), dtype=np.float32).reshape(shape)
        if a.size:
            pick = rng.random(a.shape) < 0.2
            a[pick] = rng.choice(np.concatenate([SPECIAL, NAN_PAYLOAD]), size=int(pick.sum()))
        flat[f"blk{rng.integers(3)}/t{i}/{'kernel' if rng.random() < 0.5 else 'b'}"] = a
    if sum(a.size for a in flat.values()) == 0:
        flat["z/one"] = np.float32(rng.standard_normal()).reshape(())
    return flat


def dev_hex(words) -> bytes:
    return sha256.digest_bytes(np.asarray(words))


# ---------------------------------------------------------------- roots


@pytest.mark.parametrize("n_tensors,impl", [(1, "auto"), (5, "jnp"), (23, "auto"), (23, "jnp")])
def test_device_host_and_recursive_reference_agree_on_random_pytrees(n_tensors, impl):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    flat = random_flat(np.random.default_rng(seed), n_tensors)
    want = ref_root(flat, S)
    host, layout = merkle.host_commit(flat, S, G)
    c = merkle.commit(nest({k: jnp.asarray(v) for k, v in flat.items()}), S, G, impl=impl)
    assert host == want, f"seed={seed}"
    assert c.root == want, f"seed={seed}"
    assert c.n_leaves == layout.n_leaves == c.digests.shape[0]
    assert c.layout == layout and c.layout_hash == layout.layout_hash()
    assert c.levels[-1][0] == c.root and c.levels[0] == [bytes(d) for d in c.digests]


def test_single_leaf_and_odd_leaf_counts():
    one = {"x": np.float32(-0.0).reshape(())}  # one leaf: the root is that leaf's hash
    c = merkle.commit({"x": jnp.asarray(one["x"])}, S, G)
    assert c.root == ref_leaf(mh.TAG_PARAM, 0, struct.pack("<f", -0.0) + bytes(4 * S - 4)) == ref_root(one, S)
    rng = np.random.default_rng(7)
    for n_leaves in (3, 5, 7):  # odd counts exercise the carried (never duplicated) last node
        flat = {
            "w": rng.standard_normal(n_leaves * S - 5).astype(np.float32),
            "e": np.zeros((0,), np.float32),
        }
        c = merkle.commit(flat, S, G)
        assert c.root == ref_root(flat, S) == merkle.host_commit(flat, S, G)[0]
        if n_leaves > 3:  # 5 and 7 share the device tree program (bucket 8); same root from the digests
            words = np.stack([sha256.digest_words(bytes(d)) for d in c.digests])
            assert dev_hex(device.tree_root(jnp.asarray(words))) == c.root


def test_device_tree_root_matches_reference_for_every_n_in_a_bucket():
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    digests = [rng.bytes(32) for _ in range(16)]
    words = np.stack([sha256.digest_words(d) for d in digests])
    for n in (1, 9, 10, 11, 13, 16):  # one compiled program serves every n in (8, 16]
        assert dev_hex(device.tree_root(jnp.asarray(words[:n]))) == ref_mth(digests[:n]) == mh.root(digests[:n])


def test_commit_leaves_update_tree_uint8_and_uint32_inputs():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    raw = np.random.default_rng(seed).integers(0, 256, size=(7, 528), dtype=np.uint8)
    want = ref_mth([ref_leaf(mh.TAG_QUPD, i, raw[i].tobytes()) for i in range(7)])
    assert merkle.commit_leaves(raw, mh.TAG_QUPD).root == want, seed
    assert merkle.commit_leaves(jnp.asarray(raw), mh.TAG_QUPD).root == want, seed
    assert merkle.commit_leaves(raw.view("<u4"), mh.TAG_QUPD).root == want, seed
    assert merkle.commit_leaves(raw, mh.TAG_PARAM).root != want  # domain tag changes every leaf


def test_nnx_state_paths_and_bad_inputs():
    from flax import nnx

    model = nnx.Linear(3, 70, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    flat = merkle.flatten_params(state)
    assert set(flat) == {"bias", "kernel"}
    assert merkle.flatten_params(nnx.to_pure_dict(state)).keys() == flat.keys()
    host = merkle.host_commit({k: np.asarray(v) for k, v in flat.items()}, S, G)[0]
    assert merkle.commit(state, S, G).root == host
    with pytest.raises(ValueError, match="float32"):
        merkle.commit({"x": jnp.ones((3,), jnp.bfloat16)}, S, G)
    with pytest.raises(ValueError, match="empty"):
        merkle.commit({"x": jnp.ones((0,), jnp.float32)}, S, G)


# ---------------------------------------------------------------- openings


def _host_tree(n: int, leaf_len: int, tag: bytes, seed: int):
    rng = np.random.default_rng(seed)
    leaves = [rng.bytes(leaf_len) for _ in range(n)]
    digests = [mh.leaf_hash(tag, i, b) for i, b in enumerate(leaves)]
    levels = mh.tree_levels(digests)
    ops = [Opening(i, n, leaves[i], tuple(mh.audit_path(levels, i))) for i in range(n)]
    return levels[-1][0], ops


def _flip(b: bytes, bit: int) -> bytes:
    a = bytearray(b)
    a[bit // 8] ^= 1 << (bit % 8)
    return bytes(a)


@pytest.mark.parametrize("n", [1, 2, 11, 64, 100])
def test_every_opening_verifies_and_every_flip_is_rejected(n):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    tag, leaf_len = mh.TAG_PARAM, 4 * S
    root, ops = _host_tree(n, leaf_len, tag, seed)
    assert verify_openings(root, tag, ops, n, leaf_len) == (True, "OK"), seed
    for op in ops[:: max(1, n // 9)]:
        assert verify_openings(root, tag, [op], n, leaf_len) == (True, "OK")
        assert mh.verify_inclusion(root, mh.leaf_hash(tag, op.index, op.leaf), op.index, n, list(op.path))
        bad = [op.__class__(op.index, op.n, _flip(op.leaf, int(rng.integers(8 * leaf_len))), op.path)]
        assert verify_openings(root, tag, bad, n, leaf_len) == (False, "BAD_PROOF"), seed
        for k in range(len(op.path)):
            path = list(op.path)
            path[k] = _flip(path[k], int(rng.integers(256)))
            assert verify_openings(root, tag, [Opening(op.index, n, op.leaf, tuple(path))], n, leaf_len)[0] is False
        for bit in range(8):
            ok, why = verify_openings(root, tag, [Opening(op.index ^ (1 << bit), n, op.leaf, op.path)], n, leaf_len)
            assert not ok and why in ("BAD_PROOF", "INDEX_OUT_OF_RANGE", "BAD_PATH_LENGTH"), (seed, bit, why)
            ok, why = verify_openings(root, tag, [Opening(op.index, n ^ (1 << bit), op.leaf, op.path)], n, leaf_len)
            assert (ok, why) == (False, "N_MISMATCH")
        for bit in (0, 7, 255):
            assert verify_openings(_flip(root, bit), tag, [op], n, leaf_len) == (False, "BAD_PROOF")
    last = ops[-1]
    assert verify_openings(root, tag, [Opening(n, n, last.leaf, last.path)], n, leaf_len)[1] == "INDEX_OUT_OF_RANGE"
    assert verify_openings(root, tag, [Opening(-1, n, last.leaf, last.path)], n, leaf_len)[1] == "INDEX_OUT_OF_RANGE"
    assert verify_openings(root, tag, [ops[0], ops[0]], n, leaf_len)[1] == "DUPLICATE_INDEX"
    assert (
        verify_openings(root, tag, [Opening(0, n, ops[0].leaf[:-1], ops[0].path)], n, leaf_len)[1] == "BAD_LEAF_LENGTH"
    )
    assert (
        verify_openings(root, tag, [Opening(0, n, ops[0].leaf, ops[0].path + (root,))], n, leaf_len)[1]
        == "BAD_PATH_LENGTH"
    )


def test_proofs_do_not_cross_trees_and_malformed_input_never_raises():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    p_root, p_ops = _host_tree(9, 64, mh.TAG_PARAM, seed)
    q_root, q_ops = _host_tree(9, 64, mh.TAG_QUPD, seed)  # same bytes, other tree
    assert verify_openings(q_root, mh.TAG_QUPD, q_ops, 9, 64) == (True, "OK")
    assert verify_openings(p_root, mh.TAG_PARAM, p_ops, 9, 64) == (True, "OK")
    assert p_root != q_root and [o.leaf for o in p_ops] == [o.leaf for o in q_ops]  # same bytes, other tag
    assert verify_openings(p_root, mh.TAG_PARAM, q_ops, 9, 64) == (False, "BAD_PROOF")
    assert verify_openings(p_root, mh.TAG_QUPD, q_ops, 9, 64) == (False, "BAD_PROOF")
    assert verify_openings(q_root, mh.TAG_PARAM, p_ops, 9, 64) == (False, "BAD_PROOF")
    junk = [
        None,
        3,
        Opening("0", 9, b"", ()),
        Opening(0, 9, "x" * 64, ()),
        Opening(0, 9, bytes(64), None),
        Opening(0, 9, bytes(64), (1, 2, 3, 4)),
        Opening(0, True, bytes(64), ()),
    ]
    for j in junk:
        ok, why = verify_openings(p_root, mh.TAG_PARAM, [j], 9, 64)
        assert ok is False and why in (
            "BAD_PROOF",
            "INDEX_OUT_OF_RANGE",
            "BAD_LEAF_LENGTH",
            "BAD_PATH_LENGTH",
            "N_MISMATCH",
        ), j
    assert verify_openings(b"short", mh.TAG_PARAM, p_ops, 9, 64) == (False, "BAD_PROOF")
    assert verify_openings(p_root, mh.TAG_PARAM, p_ops, 0, 64)[0] is False
    assert verify_openings(p_root, mh.TAG_PARAM, 5, 9, 64) == (False, "BAD_PROOF")


def test_device_open_matches_and_verifies_on_host():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    flat = {"a": rng.standard_normal((3, 5 * S - 7)).astype(np.float32), "b": np.float32(2.0).reshape(())}
    c = merkle.commit(flat, S, G)
    # a challenge's order, not sorted, with the last tensor's leaf between two of the first tensor's
    first = rng.choice(c.n_leaves - 1, size=5, replace=False).tolist()
    idx = [first[0], c.n_leaves - 1, *first[1:]]
    ops = merkle.open(flat, c, idx)
    assert [o.index for o in ops] == idx  # openings come back in the order asked (callers zip them)
    assert verify_openings(c.root, mh.TAG_PARAM, ops, c.n_leaves, 4 * S) == (True, "OK"), seed
    leaves = np.concatenate([flat["a"].reshape(-1), np.zeros(7 * 3, np.float32)]).reshape(-1, S)
    for o in ops:
        if o.index < leaves.shape[0]:
            assert o.leaf == leaves[o.index].tobytes()
    with pytest.raises(ValueError, match="outside"):
        merkle.open(flat, c, [c.n_leaves])
    other = dict(flat, b=np.float32(3.0).reshape(()))
    with pytest.raises(ValueError, match="does not match"):
        merkle.open(other, c, [c.n_leaves - 1])
    raw = rng.integers(0, 256, size=(5, 528), dtype=np.uint8)
    cq = merkle.commit_leaves(raw, mh.TAG_QUPD)
    qops = merkle.open(raw, cq, [4, 0])
    assert qops[0].leaf == raw[4].tobytes()
    assert verify_openings(cq.root, mh.TAG_QUPD, qops, 5, 528) == (True, "OK")


# ---------------------------------------------------------------- golden worked example (docs/merkle.md)

GOLDEN = {
    "layout_hash": "a265e9f490d3128b650ccb28f71aed28c13f9bf3bf01b3ca9949445d4a406232",
    "leaves": [
        "28639a9b6546289acfeba70620e342cbdfa4df8b103aada3d152be87e5765a31",
        "05e0ee3573cdb7d3c5739ddef604aa81b9f22f50105ec29ea7cdf4777bdbaf27",
        "f6e3a089ad77c10a00e1291662dbc54ad01c919609f5ea5068c1989a02497332",
        "85e160326fdbe596658991ffaa311bd19adc61d3934ef3ad6f2f45bd8728c0e5",
    ],
    "root": "fb4679bb1efc1ed478b73a8eaf2a5f231096986cc658d9d0c94649e0dfccc516",
}


def worked_example() -> dict[str, np.ndarray]:
    return {
        "b": np.array([1.0, -2.5, 3.0e38], np.float32),
        "a/w": (np.arange(3000, dtype=np.float32).reshape(2, 1500) - 1500) / 8,
    }


def test_worked_example_golden_values():
    arrays = worked_example()
    root, layout = merkle.host_commit(arrays)
    assert layout.layout_hash().hex() == GOLDEN["layout_hash"]
    assert [t.path for t in layout.tensors] == ["a/w", "b"] and layout.n_leaves == 4
    raw_aw = arrays["a/w"].astype("<f4").tobytes()
    leaves = [
        raw_aw[0:4096],
        raw_aw[4096:8192],
        raw_aw[8192:].ljust(4096, b"\x00"),
        arrays["b"].astype("<f4").tobytes().ljust(4096, b"\x00"),
    ]
    hashes = [ref_leaf(mh.TAG_PARAM, i, b) for i, b in enumerate(leaves)]
    assert [h.hex() for h in hashes] == GOLDEN["leaves"]
    assert ref_mth(hashes).hex() == root.hex() == GOLDEN["root"]
    assert merkle.commit(arrays).root.hex() == GOLDEN["root"]  # S=1024: the 4 KiB device program


# ---------------------------------------------------------------- import hygiene and CLI


def test_verifier_and_host_commit_do_not_import_jax():
    code = (
        "import sys, numpy as np\n"
        "from pogo_jax.spec.merkle import verify_openings\n"
        "from pogo_jax.commit.merkle import host_commit\n"
        "r, _ = host_commit({'x': np.ones(3, np.float32)})\n"
        "assert 'jax' not in sys.modules, 'jax imported'\n"
        "print(r.hex())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ref_root({"x": np.ones(3, np.float32)}, 1024).hex()


def test_cli_device_and_host_print_the_same_root(tmp_path, capsys):
    from pogo_jax.cli import main

    arrays = worked_example()
    path = tmp_path / "p.npz"
    np.savez(path, **arrays)
    outs = []
    for extra in ([], ["--host"]):
        assert main(["commit", str(path), *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["root"] == outs[1]["root"] == GOLDEN["root"]
    assert outs[0]["layout_hash"] == GOLDEN["layout_hash"] and outs[0]["n_leaves"] == 4
    assert outs[1]["backend"] == "host" and outs[1]["impl"] == "reference"
    assert outs[0]["backend"] == "cpu" and outs[0]["impl"] == "hashlib"  # an .npz is numpy: hashed on the host
    np.savez(tmp_path / "i.npz", x=np.arange(3))
    np.savez(tmp_path / "o.npz", x=np.array([{}], dtype=object))
    np.savez(tmp_path / "e.npz")
    for bad in ["i.npz", "o.npz", "e.npz", "missing.npz"]:
        assert main(["commit", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert main(["commit", str(path), "--leaf-size", "100"]) == 2


def test_cli_reads_an_orbax_checkpoint(tmp_path, capsys):
    import orbax.checkpoint as ocp

    from pogo_jax.cli import main

    arrays = worked_example()
    state = {"params": merkle_nested(arrays), "opt": {"count": jnp.zeros((), jnp.int32)}}
    mgr = ocp.CheckpointManager(tmp_path / "ck")
    mgr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    mgr.wait_until_finished()
    assert main(["commit", str(tmp_path / "ck")]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == GOLDEN["root"]


def merkle_nested(flat):
    return nest({k: jnp.asarray(v) for k, v in flat.items()})


def test_layout_manifest_roundtrip_for_commitment():
    c_layout = Layout.from_arrays(worked_example())
    assert Layout.from_manifest(json.loads(json.dumps(c_layout.manifest()))) == c_layout


def test_commit_open_verify_param_openings_round_trip():
    """The public API end to end: commit(params) -> open(...) -> verify_param_openings(root, layout, ...)."""
    import numpy as np

    from pogo_jax.commit import merkle
    from pogo_jax.spec.merkle import Opening, verify_param_openings

    rng = np.random.default_rng()
    params = {"a/w": rng.standard_normal((33, 70)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    c = merkle.commit(params)
    idx = [int(i) for i in rng.choice(c.n_leaves, size=2, replace=False)]
    ops = merkle.open(params, c, idx)
    assert verify_param_openings(c.root, c.layout, ops) == (True, "OK")
    bad = Opening(ops[0].index, ops[0].n, bytes([ops[0].leaf[0] ^ 1]) + ops[0].leaf[1:], ops[0].path)
    assert verify_param_openings(c.root, c.layout, [bad]) == (False, "BAD_PROOF")


# ---------------------------------------------------------------- hash once: stored digests


def _ref_openings(tag: bytes, leaves: list[bytes], idx: list[int]) -> list[Opening]:
    """Openings built only from the spec's host tree (an independent path to the same objects)."""
    digests = [mh.leaf_hash(tag, i, b) for i, b in enumerate(leaves)]
    return mh.make_openings(digests, {i: leaves[i] for i in idx})


def _no_hashing(monkeypatch) -> None:
    from pogo_jax.commit import hasher, host_hash, sharded

    def refuse(*args, **kwargs):
        raise AssertionError("the state was hashed again")

    for mod, name in [(hasher, "leaf_hashes"), (hasher, "param_leaf_hashes"), (host_hash, "hash_jobs"),
                      (sharded, "digests"), (merkle.hasher, "leaf_hashes"), (merkle.hasher, "param_leaf_hashes")]:
        monkeypatch.setattr(mod, name, refuse)


def test_openings_from_stored_digests_equal_the_reference_and_never_rehash(tmp_path, monkeypatch):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    flat = {"a": rng.standard_normal((3, 5 * S - 7)).astype(np.float32), "b": np.float32(2.0).reshape(())}
    c = merkle.commit(flat, S, G)
    leaves = [r.tobytes() for r in to_leaves(flat, c.layout)]
    idx = sorted(rng.choice(c.n_leaves, size=5, replace=False).tolist()) + [c.n_leaves - 1]
    idx = sorted(set(idx))
    want = _ref_openings(mh.TAG_PARAM, leaves, idx)
    raw = rng.integers(0, 256, size=(9, 528), dtype=np.uint8)
    cq = merkle.commit_leaves(raw, mh.TAG_QUPD)
    qwant = _ref_openings(mh.TAG_QUPD, [r.tobytes() for r in raw], [0, 8, 3])
    pc, qc = c.save(tmp_path / "p.npy"), cq.save(tmp_path / "q.npy")
    device_state = {k: jnp.asarray(v) for k, v in flat.items()}

    _no_hashing(monkeypatch)
    loaded = merkle.Commitment.load(pc, c.root, mh.TAG_PARAM, c.layout)
    assert loaded.root == c.root and np.array_equal(loaded.digests, c.digests)
    assert merkle.open_from_digests(flat, loaded, idx) == want, seed
    assert merkle.open(device_state, loaded, idx) == want, seed  # the old name, CPU arrays read in place
    monkeypatch.setattr(merkle, "_on_host", lambda a: not hasattr(a, "addressable_shards"))
    assert merkle.open_from_digests(device_state, loaded, idx) == want, seed  # device gather of k rows
    assert merkle.open_from_digests(jnp.asarray(raw), merkle.Commitment.load(qc, cq.root, mh.TAG_QUPD),
                                    [0, 8, 3]) == qwant
    assert merkle.open_from_digests(raw, cq, [0, 8, 3]) == qwant
    assert verify_openings(c.root, mh.TAG_PARAM, want, c.n_leaves, 4 * S) == (True, "OK")
    other = dict(flat, b=np.float32(3.0).reshape(()))
    with pytest.raises(ValueError, match="does not match"):
        merkle.open_from_digests(other, loaded, [c.n_leaves - 1])


def test_stored_digests_are_refused_when_they_do_not_give_the_root(tmp_path):
    rng = np.random.default_rng()
    c = merkle.commit({"w": rng.standard_normal(7 * S).astype(np.float32)}, S, G)
    path = c.save(tmp_path / "d.npy")
    with pytest.raises(ValueError, match="root"):
        merkle.Commitment.load(path, bytes(32), mh.TAG_PARAM, c.layout)
    d = np.load(path)
    d[3, 5] ^= 1
    np.save(tmp_path / "flip.npy", d)
    with pytest.raises(ValueError, match="root"):
        merkle.Commitment.load(tmp_path / "flip.npy", c.root, mh.TAG_PARAM, c.layout)
    np.save(tmp_path / "short.npy", np.load(path)[:-1])
    with pytest.raises(ValueError, match="layout"):
        merkle.Commitment.load(tmp_path / "short.npy", c.root, mh.TAG_PARAM, c.layout)
    np.save(tmp_path / "obj.npy", np.array([{}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "f32.npy", np.zeros((7, 32), np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    for bad in ("obj.npy", "f32.npy", "junk.npy", "missing.npy"):
        with pytest.raises(ValueError):
            merkle.Commitment.load(tmp_path / bad, c.root, mh.TAG_PARAM)
    with pytest.raises(ValueError):
        merkle.Commitment(c.root, c.layout, c.n_leaves, c.digests[:-1], mh.TAG_PARAM)
    assert not c.digests.flags.writeable
