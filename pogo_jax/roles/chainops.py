"""The protocol roles that need no accelerator: beacon reveal, light attestation, finalization,
sync. Each one reads the ledger, re-derives what it can, and changes the ledger in one
transaction. ``pogo demo`` and the role commands (``pogo beacon``, ``pogo attest``, ...) call these.
No jax here: the full tier (``fullverify.py``) is imported only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pogo_jax.beacon import LocalHashChainBeacon
from pogo_jax.chain import ChainDir, apply_update_host, load_state, read_update, state_root, update_root
from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.ledger import Ledger
from pogo_jax.protocol.finalize import Outcome, Rules
from pogo_jax.roles.light import OBJECTIVE, LightResult, Policy, verify_light
from pogo_jax.spec.attestation import Attestation, sign_attestation
from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.header import SignedHeader
from pogo_jax.spec.layout import Layout


def chain_layout(ledger: Ledger) -> Layout:
    return Layout.from_manifest(ledger.meta()["layout"])


def chain_rules(ledger: Ledger) -> Rules:
    return Rules(**ledger.meta()["rules"])


def confirmed_root(ledger: Ledger, height: int) -> bytes:
    """Root of the state the block at ``height + 1`` extends (0 = genesis; an epoch started after
    ``height`` replaces the confirmed state there by its own initial state)."""
    return ledger.state_root_at(height)


def dataset_for(chain: ChainDir, ledger: Ledger, data_root: bytes):  # noqa: ANN201 - data.Dataset
    """The dataset a block committed to: the chain's own (epoch 0, from the chain config) or a
    fine-tuning epoch's packed file inside the chain directory; its root is checked."""
    from pogo_jax.config import DataConfig, config_from_dict
    from pogo_jax.train.data import check_data_root, load_dataset

    ep = next((e for e in reversed(ledger.epochs()) if e["data_root"] == data_root.hex()), None)
    if ep is None:
        ds = load_dataset(config_from_dict(ledger.meta()["config"]).data)
    else:
        ds = load_dataset(DataConfig(path=str(chain.root / ep["data_path"])))
    check_data_root(ds, data_root.hex(), "this block")
    return ds


def read_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path} does not exist")
    size = path.stat().st_size
    if size > (1 << 31):
        raise UserError(f"bundle {path} is {size} bytes: larger than any valid bundle")
    return Bundle.from_bytes(path.read_bytes())


def pending_block(ledger: Ledger, height: int | None = None) -> dict:
    """The block to work on: the given height, else the pending block right after the tip."""
    if height is None:
        height = ledger.tip()["height"] + 1
    blk = ledger.block(height=height)
    if blk is None:
        raise UserError(f"no block recorded at height {height} (run pogo mine first)")
    return blk


def reveal_beacon(chain: ChainDir, ledger: Ledger, height: int | None = None) -> bytes:
    """Reveal the beacon for a recorded header (never before: the ledger enforces the order)."""
    blk = pending_block(ledger, height)
    known = ledger.beacon(blk["header_hash"])
    if known is not None:
        return known
    # One fresh beacon index per recorded header (a slashed block's value is never reused).
    value = LocalHashChainBeacon(chain.beacon_dir).reveal(ledger.next_beacon_index())
    ledger.record_beacon(blk["header_hash"], value)
    return value


def policy_for(ledger: Ledger, header_hash: bytes) -> Policy:
    """Everything the verifier takes from the ledger rather than from the miner's bundle."""
    meta = ledger.meta()
    blk = ledger.block(header_hash=header_hash)
    if blk is None:
        raise UserError("the bundle's header is not recorded in this ledger (unknown block)")
    parent = ledger.block(height=blk["height"] - 1, status="confirmed") if blk["height"] > 1 else None
    beacon = ledger.beacon(header_hash)
    if beacon is None:
        raise UserError(f"no beacon revealed yet for block {blk['height']} (run pogo beacon)")
    pc = meta["config"]["pogo"]
    return Policy(
        k=pc["k_leaves"], m=pc["m_windows"], delta=pc["delta"], chain_id=meta["chain_id"], beacon=beacon,
        root_prev=ledger.state_root_at(blk["height"] - 1),
        parent_hash=bytes.fromhex(parent["header_hash"]) if parent else bytes(32),
        layout_hash=bytes.fromhex(meta["layout_hash"]), data_root=bytes.fromhex(blk["data_root"]),
        header_hash=header_hash,
    )


def light_verify(bundle: Bundle, ledger: Ledger | None, k: int, m: int | None, delta: float) -> LightResult:
    policy = policy_for(ledger, bundle.header.hash()) if ledger is not None else Policy(k=k, m=m, delta=delta)
    return verify_light(bundle, policy)


@dataclass(frozen=True)
class Verdict:
    accept: bool
    tier: str
    reason: str
    detail: str
    loss_prev: float | None = None
    loss_next: float | None = None


def attest(ledger: Ledger, key, bundle: Bundle, verdict: Verdict) -> bytes:
    """Sign the verdict (domain pogo/attest/v1) and record it; returns the signed bytes.

    A bundle whose signatures fail is not the miner's answer (anyone can corrupt a copy), so no
    verdict on it is signed: fetch the miner's own bundle instead."""
    from pogo_jax.spec.keys import public_bytes

    if not (bundle.signed_header.verify() and bundle.verify_signature()):
        raise UserError("the bundle's signatures do not verify: it is not the miner's answer; refusing to "
                        "attest on it (get the bundle the miner published)")
    h = bundle.header
    att = Attestation(
        version=1, chain_id=h.chain_id, height=h.height, header_hash=h.hash(), verifier_key=public_bytes(key),
        verdict="accept" if verdict.accept else "reject", tier=verdict.tier, reason=verdict.reason,
        loss_prev=verdict.loss_prev, loss_next=verdict.loss_next)
    signed = sign_attestation(att, key)
    ledger.add_attestation(signed)
    return signed.to_bytes()


def report_refused_header(chain: ChainDir, ledger: Ledger, height: int) -> str | None:
    """After the ledger refused the header published at ``height``: slash its miner if the fault
    is attributable (``Ledger.report_invalid_header``); None when it proves nothing."""
    from pogo_jax.chain import file_sha256

    hf, uf = chain.header_file(height), chain.update_file(height)
    if not hf.is_file():
        return None
    try:
        signed = SignedHeader.from_bytes(hf.read_bytes())
        digest = file_sha256(uf) if uf.is_file() else bytes(32)
        return ledger.report_invalid_header(signed, digest, str(uf), chain_rules(ledger))
    except UserError:
        return None


def finalize(chain: ChainDir, ledger: Ledger, height: int | None = None) -> Outcome:
    """Finalize per PROTOCOL 4.7. An objective reject is re-checked here on the published bundle
    (anyone can do it), so a verifier's word alone never slashes a miner."""
    blk = pending_block(ledger, height)
    hh = bytes.fromhex(blk["header_hash"])
    atts = ledger.attestations(hh)
    if any(a["verdict"] == "reject" and a["reason"] in OBJECTIVE for a in atts):
        bfile = chain.bundle_file(blk["height"])
        try:
            bundle = read_bundle(bfile) if bfile.is_file() else None
        except MalformedInput:
            bundle = None  # an unreadable file proves nothing about the miner
        if bundle is not None:
            res = light_verify(bundle, ledger, 0, 0, 0.0)
            if not res.accept and res.fraud_proof:
                ledger.set_fraud_confirmed(hh, f"{res.reason}: {res.detail}")
    return ledger.finalize(hh, chain_rules(ledger))


def sync(chain: ChainDir, ledger: Ledger, to_height: int | None = None,
         progress=None) -> tuple[dict[str, np.ndarray], bytes, int]:
    """Rebuild the confirmed state at ``to_height`` from genesis + confirmed updates, checking the
    genesis root and, per block, root_q of the update file and root_next of the result. Epochs are
    followed: where one was started after height h, its recorded initial state (root checked)
    replaces the state at h."""
    meta = ledger.meta()
    layout = Layout.from_manifest(meta["layout"])
    tip = ledger.tip()["height"]
    if to_height is None:
        to_height = tip
    if not 0 <= to_height <= tip:
        raise UserError(f"height {to_height} is not confirmed (confirmed tip is {tip})")
    starts = {e["after_height"]: e for e in ledger.epochs()}  # the last epoch started after a height wins

    def epoch_reset(h: int, theta: dict, root: bytes) -> tuple[dict, bytes]:
        if h not in starts:
            return theta, root
        ep = starts[h]
        theta = load_state(chain.root / ep["state_path"], layout)
        root = state_root(theta, layout)
        if root.hex() != ep["genesis_root"]:
            raise UserError(f"epoch {ep['epoch']}: initial state does not hash to its recorded root")
        return theta, root

    theta = load_state(chain.genesis, layout)
    root = state_root(theta, layout)
    if root.hex() != meta["genesis_root"]:
        raise UserError("genesis state does not hash to the chain's genesis root: refusing to sync")
    theta, root = epoch_reset(0, theta, root)
    for h in range(1, to_height + 1):
        blk = ledger.block(height=h, status="confirmed")
        header = SignedHeader.from_bytes(blk["header_bytes"]).header
        q = read_update(chain.update_file(h), layout)
        if update_root(q) != header.root_q:
            raise UserError(f"block {h}: update file does not match the header's root_q")
        if header.root_prev != root:
            raise UserError(f"block {h}: root_prev does not chain from block {h - 1}")
        theta = apply_update_host(theta, q, layout)
        root = state_root(theta, layout)
        if root != header.root_next:
            raise UserError(f"block {h}: rebuilt state does not hash to root_next")
        theta, root = epoch_reset(h, theta, root)
        if progress:
            progress(h, to_height)
    return theta, root, to_height
