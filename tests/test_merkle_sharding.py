"""The same root on 1, 2, 4 and 8 CPU devices under data-, fsdp- and tensor-style partitioning."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from pogo_jax.commit import merkle

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
        c = merkle.commit(placed, S, G)
        assert c.root == want, f"seed={seed} devices={n_dev} style={style}"
        if n_dev > 1:  # the leaf hashes were computed spread over the mesh, not gathered on one device
            assert len(c.leaf_hashes.sharding.device_set) > 1
