"""Build a chain's genesis record: the rules, model, layout, genesis state, dataset, beacon and keys.

Everything a verifier later re-derives (layout hash, data root and manifest, rules, window count)
is fixed here, in a record signed by the governance key, not in anything a miner sends. The state
is passed through the same bit-level flush as every committed state (no subnormal, no -0.0).
Takes numpy arrays, so it needs no jax; ``pogo init`` initializes the model and calls this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.spec import update as upd
from pogo_jax.spec.dataset import read_packed
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import PrivateKey, public_bytes
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.records import DataRef, Genesis, Participant, StateRef
from pogo_jax.spec.rules import ChainRules
from pogo_jax.spec.state import is_committable, state_bytes, state_root


def data_ref(path: str | Path, blob_sha: bytes) -> DataRef:
    ds = read_packed(Path(path), verify=True)
    return DataRef(ds.data_root, ds.manifest_hash, blob_sha, ds.manifest)


def build_genesis(*, rules: ChainRules, model: Mapping, arrays: Mapping[str, np.ndarray], data_file: str | Path,
                  governance: PrivateKey, node_key: bytes, beacon: Mapping, participants: list[Participant]
                  ) -> tuple[bytes, list[bytes]]:
    """The signed genesis record and the blobs it names (state npz bytes, packed dataset bytes)."""

    theta = {k: upd.flush(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
    if not is_committable(theta):
        raise UserError("the genesis state holds NaN or Inf")
    layout = Layout.from_arrays(theta, rules.leaf_size, rules.group_size)
    sb = state_bytes(theta)
    db = Path(data_file).read_bytes()
    g = Genesis(
        governance_key=public_bytes(governance), node_key=node_key,
        beacon_key=bytes.fromhex(beacon["key"]), beacon_anchor=bytes.fromhex(beacon["anchor"]),
        beacon_length=int(beacon["length"]), rules=rules, model=dict(model), layout=layout,
        state=StateRef(state_root(theta, layout), hashlib.sha256(sb).digest()),
        data=data_ref(data_file, hashlib.sha256(db).digest()), participants=tuple(participants))
    return seal(g, governance).to_bytes(), [sb, db]
