"""Mesh construction, logical->mesh rules, and the same training on 1-device / DP / FSDP+TP meshes."""

from __future__ import annotations

import random

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from pogo_jax.config import MeshConfig, load_config
from pogo_jax.errors import UserError
from pogo_jax.train import data, sharding
from pogo_jax.train.step import Trainer


def test_make_mesh_sizes_and_errors():
    assert jax.device_count() == 8
    assert dict(sharding.make_mesh(MeshConfig()).shape) == {"data": 8, "fsdp": 1, "tensor": 1}
    assert dict(sharding.make_mesh(MeshConfig(data=-1, fsdp=2, tensor=2)).shape) == {
        "data": 2,
        "fsdp": 2,
        "tensor": 2,
    }
    one = sharding.make_mesh(MeshConfig(data=1), devices=jax.devices()[:1])
    assert one.devices.size == 1
    with pytest.raises(UserError, match="does not divide"):
        sharding.make_mesh(MeshConfig(data=-1, fsdp=3))
    with pytest.raises(UserError, match="uses 4 devices but 8"):
        sharding.make_mesh(MeshConfig(data=2, fsdp=2, tensor=1))
    with pytest.raises(UserError, match="at most one -1"):
        sharding.make_mesh(MeshConfig(data=-1, fsdp=-1))


def test_logical_rules():
    rules = MeshConfig().rule_map()
    mesh = sharding.make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    assert sharding.logical_to_spec(("embed", "mlp"), rules, mesh, (64, 256)) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(("batch", None), rules) == P(("data", "fsdp"), None)
    # a dimension the mesh axis does not divide is replicated, never unevenly sharded
    assert sharding.logical_to_spec(("embed", "mlp"), rules, mesh, (63, 256)) == P(None, "tensor")
    # a mesh axis is used at most once per array
    assert sharding.logical_to_spec(("mlp", "heads"), rules, mesh, (8, 8)) == P("tensor", None)
    with pytest.raises(UserError, match="no entry for logical axis 'nope'"):
        sharding.logical_to_spec(("nope",), rules)
    with pytest.raises(UserError, match="unknown mesh axis 'model'"):
        sharding.logical_to_spec(("embed",), rules | {"embed": "model"})


MESHES = {
    "1dev": (MeshConfig(data=1), 1),
    "data8": (MeshConfig(data=8), 8),
    "fsdp4_tp2": (MeshConfig(data=1, fsdp=4, tensor=2), 8),
    "dp2_fsdp2_tp2": (MeshConfig(data=2, fsdp=2, tensor=2), 8),
}


def test_meshes_train_the_same():
    seed = random.randrange(2**31)
    base = load_config("tiny", [f"train.seed={seed}"])  # 1 layer below: compile time is most of the test
    ds = data.load_dataset(base.data)
    results = {}
    for name, (mcfg, n) in MESHES.items():
        cfg = load_config(
            "tiny",
            [
                f"train.seed={seed}",
                "model.n_layers=1",
                f"mesh.data={mcfg.data}",
                f"mesh.fsdp={mcfg.fsdp}",
                f"mesh.tensor={mcfg.tensor}",
            ],
        )
        trainer = Trainer(cfg, sharding.make_mesh(cfg.mesh, devices=jax.devices()[:n]))
        losses = [m["loss"] for m in trainer.train_steps(ds, 4)]
        params = {k: np.asarray(v) for k, v in trainer.params().items()}
        results[name] = (losses, params, trainer)
    ref_losses, ref_params, _ = results["1dev"]
    assert ref_losses[-1] < ref_losses[0], f"seed={seed}: {ref_losses}"
    for name, (losses, params, _) in results.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, err_msg=f"{name} seed={seed}")
        for k in ref_params:
            np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-3, atol=2e-5, err_msg=f"{name} {k} {seed}")
    # the sharded runs really were sharded: an FSDP+TP kernel lives in 8 distinct pieces
    tr = results["fsdp4_tp2"][2]
    kernel = tr.state["params"]["blocks"][0]["mlp"]["fc"]["kernel"]
    assert kernel.sharding.spec == P("fsdp", "tensor")
    assert kernel.addressable_shards[0].data.shape == (64 // 4, 256 // 2)
    mu = jax.tree.leaves(tr.state["opt_state"])  # Adam moments follow the param shardings
    assert any(getattr(x, "sharding", None) is not None and x.sharding.spec == P("fsdp", "tensor") for x in mu)


def test_batch_not_dividing_mesh_is_a_user_error():
    cfg = load_config("tiny", ["train.batch_size=4", "optim.grad_accum=1"])
    with pytest.raises(UserError, match="multiple of the 8 devices"):
        Trainer(cfg, sharding.make_mesh(cfg.mesh))
