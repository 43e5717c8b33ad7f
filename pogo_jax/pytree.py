"""Canonical flat names of a parameter pytree: ``{"blocks/0/attn/qkv/kernel": array}`` (PROTOCOL section 1).

One function for every caller (the trainer, the committer, ``pogo commit`` on an arbitrary orbax tree), so a
name means the same tensor everywhere. jax is imported only for a nested tree; a flat dict needs nothing.
"""

from __future__ import annotations

from typing import Any


def _key_str(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def path_name(path: tuple) -> str:
    """A jax key path -> its canonical ``/``-joined name."""
    return "/".join(_key_str(k) for k in path)


def _is_variable(x: Any) -> bool:
    return type(x).__module__.startswith("flax") and "Variable" in {c.__name__ for c in type(x).__mro__}


def flatten_params(tree: Any) -> dict[str, Any]:
    """Any pytree (flat dict, nested dict, nnx.State, nnx.Module) -> {"a/b/c": array}.

    Flax NNX variables are unwrapped to their value, so ``nnx.state(model)`` and its pure dict
    give the same paths. A flat dict with string keys is returned as is.
    """
    if type(tree) is dict and all(
        isinstance(k, str) and hasattr(v, "shape") and not _is_variable(v) for k, v in tree.items()
    ):
        return dict(tree)
    import jax

    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_variable)
    out: dict[str, Any] = {}
    for path, leaf in leaves:
        if _is_variable(leaf):
            leaf = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        name = path_name(path)
        if name in out:
            raise ValueError(f"two parameters share the path {name!r}")
        out[name] = leaf
    return out
