"""Device mesh and the single mapping from logical axis names to mesh axes.

The model names every Param dimension logically (``embed``, ``mlp``, ``vocab`` ...); ``cfg.mesh.rules``
says which mesh axis (``data``, ``fsdp``, ``tensor``, a list of them, or ``""`` for replicated) each
name lives on. This module turns those names into ``NamedSharding``s; nothing else in the code base
mentions a mesh axis for a parameter. A dimension that a mesh axis does not divide is replicated
instead (tiny models on big meshes keep working; the big configs divide evenly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from pogo_jax.config import MeshConfig
from pogo_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")


def mesh_shape(mesh_cfg: MeshConfig, n_devices: int) -> tuple[int, int, int]:
    """Resolve -1 ("the rest") and check that the sizes use exactly ``n_devices`` devices."""
    sizes = [mesh_cfg.data, mesh_cfg.fsdp, mesh_cfg.tensor]
    spec = "x".join(f"{n}={s}" for n, s in zip(MESH_AXES, sizes, strict=True))
    if any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1:
        raise UserError(f"mesh sizes {spec} are invalid: use positive sizes and at most one -1 (the rest)")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if n_devices % known:
            raise UserError(
                f"mesh {spec} does not divide the {n_devices} devices; "
                f"choose sizes whose product divides {n_devices} (e.g. --set mesh.fsdp=1)"
            )
        sizes[sizes.index(-1)] = n_devices // known
    elif known != n_devices:
        raise UserError(
            f"mesh {spec} uses {known} devices but {n_devices} are present; "
            "make the product equal the device count or set one axis to -1"
        )
    return sizes[0], sizes[1], sizes[2]


def make_mesh(mesh_cfg: MeshConfig, devices: Sequence[Any] | None = None) -> Mesh:
    """A ("data", "fsdp", "tensor") mesh over ``devices`` (default: all global devices)."""
    devs = list(devices) if devices is not None else jax.devices()
    shape = mesh_shape(mesh_cfg, len(devs))
    kwargs = {} if devices is None else {"devices": devs}
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, **kwargs)


def _rule_axes(rules: dict[str, Any], name: str) -> tuple[str, ...]:
    if name not in rules:
        raise UserError(f"mesh.rules has no entry for logical axis '{name}'; add one (\"\" = replicated)")
    value = rules[name]
    axes = (value,) if isinstance(value, str) else tuple(value or ())
    axes = tuple(a for a in axes if a)
    bad = [a for a in axes if a not in MESH_AXES]
    if bad:
        raise UserError(
            f"mesh.rules maps '{name}' to unknown mesh axis '{bad[0]}' (use {', '.join(MESH_AXES)})"
        )
    return axes


def logical_to_spec(
    names: Sequence[str | None],
    rules: dict[str, Any],
    mesh: Mesh | None = None,
    shape: Sequence[int] | None = None,
) -> PartitionSpec:
    """Logical names of each dimension -> PartitionSpec over mesh axes.

    A mesh axis is used at most once per array; with ``mesh`` and ``shape`` given, a dimension
    that is not divisible by its mesh axes' total size is replicated.
    """
    used: set[str] = set()
    out: list[Any] = []
    for i, name in enumerate(names):
        axes = () if name is None else _rule_axes(rules, name)
        axes = tuple(a for a in axes if a not in used)
        if axes and mesh is not None and shape is not None:
            size = math.prod(mesh.shape[a] for a in axes)
            if shape[i] % size:
                axes = ()
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)


def tree_shardings(abstract_state, mesh: Mesh, rules: dict[str, Any]):
    """NamedSharding for every Variable of an (abstract) nnx.State, as a pure nested dict."""
    from flax import nnx

    def one(var):
        names = var.get_metadata().get("out_sharding") or (None,) * len(var.shape)
        return NamedSharding(mesh, logical_to_spec(names, rules, mesh, var.shape))

    return nnx.to_pure_dict(jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable)))


def batch_sharding(mesh: Mesh, rules: dict[str, Any], ndim: int = 2) -> NamedSharding:
    """Token batches: the leading (batch) dimension over the rules' ``batch`` axes, the rest replicated."""
    return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (ndim - 1), rules))


def batch_divisor(mesh: Mesh, rules: dict[str, Any]) -> int:
    """How many ways a batch is split: per-step (micro)batches must be a multiple of this."""
    return math.prod(mesh.shape[a] for a in _rule_axes(rules, "batch"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def put_global(host_array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Place an array that every process holds in full onto ``sharding`` (multi-host safe).

    Each process copies only the slices its addressable devices own, so the same call works on
    one CPU, one GPU, or every host of a TPU pod.
    """
    arr = np.asarray(host_array)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])
