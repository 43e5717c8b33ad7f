"""The governance role: create a chain (genesis), register participants, start fine-tuning epochs.

Only the governance key named in the genesis record can sign these records; miners cannot start
epochs. An epoch names its dataset (and optionally a new initial state) by roots and blob hashes,
uploads them with the record, and takes effect at the next round that opens after it is recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from pogo_jax.chain.chain import Chain
from pogo_jax.chain.genesis import build_genesis, data_ref
from pogo_jax.config import Config, resolve_vocab
from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec import update as upd
from pogo_jax.spec.dataset import check_chain_dataset
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.keys import PrivateKey, public_bytes
from pogo_jax.spec.layout import Layout
from pogo_jax.spec.records import Epoch, Participant, Register, StateRef
from pogo_jax.spec.state import State, is_committable, state_bytes, state_root
from pogo_jax.train.data import load_dataset


def genesis_params(cfg: Config) -> State:
    """Initialize the model from ``cfg.train.seed`` and flush it (PROTOCOL 3: genesis included)."""
    from flax import nnx

    from pogo_jax.train.model import GPT, param_dict

    model = GPT(cfg.model, rngs=nnx.Rngs(cfg.train.seed))
    return {k: upd.flush(np.asarray(v, dtype=np.float32)) for k, v in param_dict(model).items()}


def chain_data_file(cfg: Config) -> Path:
    """The packed file of the chain's dataset: ``data.path``, or the embedded corpus's cache file."""

    return Path(load_dataset(cfg.data).path)


def create_chain(node_dir: str | Path, cfg: Config, governance: PrivateKey, node_key: PrivateKey, beacon: dict,
                 participants: list[Participant], arrays: State | None = None, clock=None):  # noqa: ANN001, ANN201
    """Write a new chain directory (ledger with the genesis record, blob store, node key)."""

    data = chain_data_file(cfg)
    ref = data_ref(data, b"\0" * 32)
    tokens = ref.manifest.get("tokens")
    cfg, _ = resolve_vocab(cfg, 256 if tokens is None else tokens["vocab_size"], tokens is not None)
    try:
        check_chain_dataset(ref.manifest, cfg.model.seq_len, cfg.chain.m_windows, f"dataset {data}",
                            cfg.model.vocab_size)
    except MalformedInput as e:
        raise UserError(str(e)) from None
    theta = genesis_params(cfg) if arrays is None else arrays
    genesis, blobs = build_genesis(rules=cfg.chain, model=dataclasses.asdict(cfg.model), arrays=theta, data_file=data,
                                   governance=governance, node_key=public_bytes(node_key), beacon=beacon,
                                   participants=participants)
    return Chain.create(node_dir, genesis, blobs, node_key, **({} if clock is None else {"clock": clock}))


def register_record(chain_id: str, governance: PrivateKey, key: bytes, role: str, name: str, stake: int) -> bytes:
    body = Register(chain_id, public_bytes(governance), Participant(key, role, name, stake))
    return seal(body, governance).to_bytes()


def epoch_record(view, governance: PrivateKey, data_file: str | Path,  # noqa: ANN001 - ChainView
                 init_state: State | None) -> tuple[bytes, bytes | None]:
    """The signed epoch record and the initial state's npz bytes (None to keep the confirmed state)."""
    st = view.state
    layout = st.genesis.layout
    ref = data_ref(data_file, hashlib.sha256(Path(data_file).read_bytes()).digest())
    try:
        check_chain_dataset(ref.manifest, st.seq_len(), st.rules.m_windows, f"dataset {data_file}",
                            st.genesis.model.get("vocab_size", 256))
    except MalformedInput as e:
        raise UserError(str(e)) from None
    sref, sb = None, None
    if init_state is not None:
        theta = {k: upd.flush(np.asarray(v, dtype=np.float32)) for k, v in init_state.items()}
        if not is_committable(theta):
            raise UserError("the initial state holds NaN or Inf")
        if Layout.from_arrays(theta, layout.leaf_size, layout.group_size).layout_hash() != layout.layout_hash():
            raise UserError("the initial state's tensors differ from the chain's layout (fine-tuning keeps the model's "
                            "shapes; start a new chain for another architecture)")
        sb = state_bytes(theta)
        sref = StateRef(state_root(theta, layout), hashlib.sha256(sb).digest())
    body = Epoch(st.genesis.chain_id, public_bytes(governance), len(st.epochs) + 1, ref, sref)
    return seal(body, governance).to_bytes(), sb
