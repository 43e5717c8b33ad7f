"""The same root on 1, 2, 4 and 8 CPU devices under data-, fsdp- and tensor-style partitioning, and
tensors hashed in their own sharding: no all-gather of the model in the compiled commit."""

from __future__ import annotations

import math
import re

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from pogo_jax.commit import merkle, sharded
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.merkle import TAG_PARAM

S, G = 64, 16
SHAPES = {
    "emb": (40, 24),
    "blk/0/w": (24, 48),
    "blk/0/b": (48,),
    "blk/1/w": (24, 48),
    "ln": (),
    "odd": (7, 9),
}


def _params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {k: np.asarray(rng.standard_normal(s), dtype=np.float32).reshape(s) for k, s in SHAPES.items()}
    out["emb"][0, :3] = [-0.0, 3.4e38, -1e-42]
    return out


def _spec(style: str, shape: tuple[int, ...], mesh) -> P:
    """data: replicated; fsdp: first dim over every axis; tensor: last dim over 'model'."""
    names = mesh.axis_names
    size = mesh.devices.size
    if style == "data" or not shape:
        return P()
    if style == "fsdp":
        return P(names) if shape[0] % size == 0 else P()
    m = mesh.shape["model"]
    return P(*([None] * (len(shape) - 1)), "model") if shape[-1] % m == 0 else P()


@pytest.mark.parametrize("n_dev", [1, 2, 4, 8])
def test_root_is_identical_on_every_mesh_and_partitioning(n_dev):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    arrays = _params(seed)
    want, _ = merkle.host_commit(arrays, S, G)
    devs = jax.devices()[:n_dev]
    model = 2 if n_dev >= 2 else 1
    mesh = jax.make_mesh((n_dev // model, model), ("data", "model"), axis_types=(AxisType.Auto,) * 2, devices=devs)
    for style in ("data", "fsdp", "tensor"):
        placed = {k: jax.device_put(v, NamedSharding(mesh, _spec(style, v.shape, mesh))) for k, v in arrays.items()}
        for impl in ("auto", "jnp"):
            c = merkle.commit(placed, S, G, impl=impl)
            assert c.root == want, f"seed={seed} devices={n_dev} style={style} impl={impl}"


# ---------------------------------------------------------------- hashed in place: the compiled program

COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter",
               "collective-broadcast", "ragged-all-to-all")
_OP = re.compile(r"=\s*(\(?[^=]*?\)?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_SHAPE = re.compile(r"[a-z0-9]+\[([0-9,]*)\]")


def collectives(hlo: str) -> list[tuple[str, int]]:
    """(op, elements in its result) for every collective instruction of compiled HLO text."""
    out = []
    for m in _OP.finditer(hlo):
        dims = [math.prod(int(d) for d in g.split(",") if d) for g in _SHAPE.findall(m.group(1))]
        out.append((m.group(2), sum(dims)))
    return out


def _tp_state(shapes, specs, mesh, seed):
    rng = np.random.default_rng(seed)
    arrays = {k: np.asarray(rng.standard_normal(s), dtype=np.float32).reshape(s) for k, s in shapes.items()}
    placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in arrays.items()}
    layout = Layout.from_shapes(shapes, S, G)
    segs = [sharded.Segment(placed[t.path], S, t.first_leaf, t.n_leaves) for t in layout.tensors if t.n_leaves]
    return arrays, placed, segs


TP_SHAPES = {
    "blk/attn/qkv": (64, 768),  # column-parallel: 192 values per row and shard = 3 whole leaves
    "blk/attn/out": (256, 64),  # row-parallel
    "blk/attn/b": (256,),
    "blk/mlp/up": (64, 512),  # 2-D: rows over "data", columns over "tensor"
    "blk/ln": (64,),  # replicated: each device hashes 1/8 of it
    "emb": (100, 64),
}
TP_SPECS = {
    "blk/attn/qkv": P(None, "tensor"),
    "blk/attn/out": P("tensor", None),
    "blk/attn/b": P("tensor"),
    "blk/mlp/up": P("data", "tensor"),
    "blk/ln": P(),
    "emb": P("data", None),
}


@pytest.mark.parametrize("impl", ["jnp", "pallas"])
def test_tensor_parallel_kernels_are_hashed_in_place_without_collectives(impl):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    mesh = jax.make_mesh((2, 4), ("data", "tensor"), axis_types=(AxisType.Auto,) * 2)
    arrays, placed, segs = _tp_state(TP_SHAPES, TP_SPECS, mesh, seed)
    hlo = sharded.lower(segs, TAG_PARAM, impl).compile().as_text()
    assert "all-gather" not in hlo
    assert collectives(hlo) == [], collectives(hlo)  # every leaf lies whole on the device that holds it
    assert merkle.commit(placed, S, G, impl=impl).root == merkle.host_commit(arrays, S, G)[0], seed
    words, _, _, valid = sharded.run(segs, TAG_PARAM, impl)
    assert len(words.sharding.device_set) == 8  # the digests were computed on all eight devices
    assert int(np.asarray(valid).sum()) == Layout.from_shapes(TP_SHAPES, S, G).n_leaves  # each leaf once


def test_only_tensors_whose_leaves_straddle_shards_move():
    seed = int(np.random.SeedSequence().entropy % 2**32)
    mesh = jax.make_mesh((2, 4), ("data", "tensor"), axis_types=(AxisType.Auto,) * 2)
    shapes = dict(TP_SHAPES, **{"blk/mlp/down": (24, 96)})  # 24 values per row and shard: leaves straddle
    specs = dict(TP_SPECS, **{"blk/mlp/down": P(None, "tensor")})
    arrays, placed, segs = _tp_state(shapes, specs, mesh, seed)
    ops = collectives(sharded.lower(segs, TAG_PARAM, "jnp").compile().as_text())
    assert ops and "all-gather" not in {op for op, _ in ops}, ops
    moved = sum(n for _, n in ops)
    assert moved <= 2 * math.prod(shapes["blk/mlp/down"]), ops  # that tensor's words, not the model's
    assert moved < sum(math.prod(s) for s in shapes.values()) // 8
    assert merkle.commit(placed, S, G, impl="jnp").root == merkle.host_commit(arrays, S, G)[0], seed
