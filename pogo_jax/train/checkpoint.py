"""Training checkpoints: orbax ``CheckpointManager`` with a pytree item and a JSON metadata item.

Layout under ``DIR/checkpoints/<step>/``: ``state`` (params + optimizer state, sharded, written by
every process) and ``meta`` (JSON: config, model hash, step, data position, free-form extras). A
run refuses, before writing anything, to resume from a checkpoint whose model config differs or
whose stored dtypes do not match (StandardRestore would silently cast them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from pogo_jax.errors import UserError

STATE = "state"
META = "meta"


def open_manager(directory: str | Path, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
    """A manager over ``directory`` keeping the last ``keep`` checkpoints (async saves)."""
    directory = Path(directory).absolute()
    if directory.exists() and not directory.is_dir():
        raise UserError(f"checkpoint path '{directory}' is a file; choose another --out directory")
    options = ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=create)
    handlers = {STATE: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def latest_step(mngr: ocp.CheckpointManager) -> int | None:
    return mngr.latest_step()


def read_metadata(mngr: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """The JSON metadata of one checkpoint (no arrays are read)."""
    try:
        out = mngr.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))
    except Exception as e:  # orbax raises many kinds for unreadable directories
        raise UserError(
            f"checkpoint step {step} in '{mngr.directory}' is unreadable ({type(e).__name__}); "
            "delete it or choose another --out directory"
        ) from None
    meta = out[META]
    if not isinstance(meta, dict):
        raise UserError(f"checkpoint step {step} in '{mngr.directory}' has no metadata; choose another --out")
    return meta


def check_compatible(meta: dict[str, Any], model_hash: str, directory: str | Path) -> None:
    """UserError when a checkpoint was written for another model architecture."""
    if meta.get("model_hash") != model_hash:
        theirs = meta.get("config", {}).get("model", {})
        raise UserError(
            f"checkpoint in '{directory}' is from another model config ({_short(theirs)}); use a new --out "
            "directory or the same [model] settings"
        )


def _short(model: dict[str, Any]) -> str:
    keys = ("d_model", "n_layers", "n_heads", "d_ff", "seq_len", "vocab_size")
    return ", ".join(f"{k}={model[k]}" for k in keys if k in model) or "unknown model"


def save(
    mngr: ocp.CheckpointManager, step: int, state: Any, metadata: dict[str, Any], force: bool = True
) -> None:
    """Start an async save of ``state`` (pytree of jax.Arrays) with ``metadata`` at ``step``."""
    mngr.save(
        step,
        args=ocp.args.Composite(**{STATE: ocp.args.StandardSave(state), META: ocp.args.JsonSave(metadata)}),
        force=force,
    )


def _check_dtypes(mngr: ocp.CheckpointManager, step: int, target: Any) -> None:
    try:
        stored = mngr.item_metadata(step)[STATE]
    except Exception:  # metadata API differs across orbax versions: the shape check below still runs
        return
    if stored is None:
        return
    tree = getattr(stored, "tree", stored)
    try:
        pairs = zip(jax.tree.leaves(tree), jax.tree.leaves(target), strict=True)
        for s, t in pairs:
            if getattr(s, "dtype", t.dtype) != t.dtype or tuple(getattr(s, "shape", t.shape)) != tuple(
                t.shape
            ):
                raise UserError(
                    f"checkpoint step {step} in '{mngr.directory}' stores {s.dtype}{tuple(s.shape)} "
                    f"where the model needs {t.dtype}{tuple(t.shape)}; use another --out directory"
                )
    except ValueError:
        raise UserError(
            f"checkpoint step {step} in '{mngr.directory}' has another state structure "
            "(other optimizer or model); use another --out directory"
        ) from None


def restore(mngr: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restore the state onto ``target`` (ShapeDtypeStructs carrying shardings), dtypes checked first."""
    _check_dtypes(mngr, step, target)
    try:
        out = mngr.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(target)}))
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"cannot restore checkpoint step {step} from '{mngr.directory}': "
            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    return out[STATE]


def abstract_target(abstract_state: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs with shardings attached: orbax restores each shard where it belongs."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
    )
