"""Verifier attestations (PROTOCOL 4.4, v2): a signed verdict on one candidate of one round.

Canonical JSON in the generic envelope (spec/envelope.py), signed under ``pogo/attest/v1``.
``evidence`` is required: the SHA-256 of the bundle the verifier checked, which the chain only
accepts when it equals the bundle hash it recorded, so a verdict can never refer to other bytes.

A reject is *objective* when its reason is one anyone can re-check from stored bytes: every light
failure of the miner's signed bundle, and a full-tier rebuild failure (the update and the confirmed
state are both on the chain). Whoever finalizes re-checks each objective claim itself; a claim that
does not re-check slashes the verifier that signed it. Light accepts certify consistency only and
never count for the loss.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import exact_keys, f32hex, from_f32hex, get_field, get_int, hexbytes
from pogo_jax.spec.envelope import Signed, seal
from pogo_jax.spec.header import MAX_HEIGHT, MAX_ROUND, check_chain_id
from pogo_jax.spec.keys import PrivateKey

ATTEST_VERSION = 2
ATTEST_DOMAIN = b"pogo/attest/v1"
MAX_ATTESTATION_BYTES = 1 << 12
VERDICTS = frozenset({"accept", "reject"})
TIERS = frozenset({"light", "full"})

# Light-tier reasons that the miner's own signed bundle proves (re-run the light check to see).
OBJECTIVE_LIGHT: frozenset[str] = frozenset({
    "BAD_PROOF", "APPLY_MISMATCH", "BAD_CODE", "BAD_EXPONENT", "BAD_PADDING", "BAD_LENGTH", "NONFINITE",
    "NONCANONICAL_STATE", "WRONG_CHALLENGE", "LAYOUT_MISMATCH", "WRONG_PARENT", "WRONG_DATA",
    "BEACON_MISMATCH", "UNKNOWN_HEADER", "BAD_VERSION",
})
# Full-tier reasons that the stored update and the confirmed state prove (rebuild to see). Not
# ROOT_Q_MISMATCH or BAD_LENGTH: the node admits a candidate only with an update of the right length that
# hashes to root_q, so a stored update failing either is the node's doing, never the miner's.
OBJECTIVE_FULL: frozenset[str] = frozenset({
    "ROOT_NEXT_MISMATCH", "BAD_CODE", "BAD_EXPONENT", "BAD_PADDING", "NONFINITE", "NONCANONICAL_STATE",
})
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
_KEYS = {"version", "chain_id", "height", "round", "header_hash", "verifier_key", "verdict", "tier", "reason",
         "loss_prev", "loss_next", "evidence"}


def _f32(x: float | None, what: str) -> float | None:
    """Round a loss to float32 now, so an attestation equals its own decoding."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise MalformedInput(f"{what}: expected a finite float or null")
    try:
        return struct.unpack(">f", struct.pack(">f", float(x)))[0]
    except OverflowError:
        raise MalformedInput(f"{what}: {x} overflows float32") from None


@dataclass(frozen=True)
class Attestation:
    version: int
    chain_id: str
    height: int
    round: int
    header_hash: bytes
    verifier_key: bytes
    verdict: str  # "accept" | "reject"
    tier: str  # "light" | "full"
    reason: str  # "OK" for accept, a reason code for reject
    evidence: bytes  # SHA-256 of the bundle that was checked (must equal the recorded one)
    loss_prev: float | None = None
    loss_next: float | None = None

    KIND: ClassVar[str] = "attestation"
    DOMAIN: ClassVar[bytes] = ATTEST_DOMAIN

    def __post_init__(self) -> None:
        what = "attestation"
        if self.version != ATTEST_VERSION or isinstance(self.version, bool):
            raise MalformedInput(f"{what}: unsupported version {self.version!r} (this code reads {ATTEST_VERSION})")
        check_chain_id(self.chain_id, what)
        get_int({"height": self.height}, "height", what, 1, MAX_HEIGHT)
        get_int({"round": self.round}, "round", what, 1, MAX_ROUND)
        for name in ("header_hash", "verifier_key", "evidence"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 32:
                raise MalformedInput(f"{what}.{name}: expected 32 bytes")
        if self.verdict not in VERDICTS:
            raise MalformedInput(f"{what}.verdict: expected 'accept' or 'reject', got {self.verdict!r}")
        if self.tier not in TIERS:
            raise MalformedInput(f"{what}.tier: expected 'light' or 'full', got {self.tier!r}")
        if not isinstance(self.reason, str) or not _REASON.fullmatch(self.reason):
            raise MalformedInput(f"{what}.reason: expected an UPPER_SNAKE reason code")
        if (self.verdict == "accept") != (self.reason == "OK"):
            raise MalformedInput(f"{what}.reason: 'OK' goes with accept and only with accept")
        object.__setattr__(self, "loss_prev", _f32(self.loss_prev, f"{what}.loss_prev"))
        object.__setattr__(self, "loss_next", _f32(self.loss_next, f"{what}.loss_next"))
        if self.tier == "full" and self.verdict == "accept" and (self.loss_prev is None or self.loss_next is None):
            raise MalformedInput(f"{what}: a full-tier accept carries both measured losses")

    @property
    def signer(self) -> bytes:
        return self.verifier_key

    @property
    def objective(self) -> bool:
        """A reject whose claim anyone can re-check from stored bytes."""
        if self.verdict != "reject":
            return False
        return self.reason in (OBJECTIVE_LIGHT if self.tier == "light" else OBJECTIVE_FULL)

    def to_obj(self) -> dict:
        return {
            "version": self.version, "chain_id": self.chain_id, "height": self.height, "round": self.round,
            "header_hash": self.header_hash.hex(), "verifier_key": self.verifier_key.hex(),
            "verdict": self.verdict, "tier": self.tier, "reason": self.reason, "evidence": self.evidence.hex(),
            "loss_prev": None if self.loss_prev is None else f32hex(self.loss_prev),
            "loss_next": None if self.loss_next is None else f32hex(self.loss_next),
        }

    @classmethod
    def from_obj(cls, obj: Any, what: str = "attestation") -> Attestation:
        if not isinstance(obj, dict):
            raise MalformedInput(f"{what}: expected an object")
        version = get_field(obj, "version", int, what)
        if version != ATTEST_VERSION:
            raise MalformedInput(f"{what}: unsupported version {version} (this code reads {ATTEST_VERSION})")
        exact_keys(obj, _KEYS, what)

        def loss(key: str) -> float | None:
            v = obj[key]
            return None if v is None else from_f32hex(v, f"{what}.{key}")

        return cls(
            version=version, chain_id=check_chain_id(obj["chain_id"], what),
            height=get_int(obj, "height", what, 1, MAX_HEIGHT), round=get_int(obj, "round", what, 1, MAX_ROUND),
            header_hash=hexbytes(obj["header_hash"], f"{what}.header_hash", 32),
            verifier_key=hexbytes(obj["verifier_key"], f"{what}.verifier_key", 32),
            verdict=get_field(obj, "verdict", str, what), tier=get_field(obj, "tier", str, what),
            reason=get_field(obj, "reason", str, what), evidence=hexbytes(obj["evidence"], f"{what}.evidence", 32),
            loss_prev=loss("loss_prev"), loss_next=loss("loss_next"))


SignedAttestation = Signed[Attestation]


def read_signed_attestation(data: bytes) -> SignedAttestation:
    return Signed.read(data, Attestation, MAX_ATTESTATION_BYTES)


def sign_attestation(att: Attestation, key: PrivateKey) -> SignedAttestation:
    """Sign ``att`` with ``key``; the key must be the attestation's ``verifier_key``."""
    return seal(att, key)
