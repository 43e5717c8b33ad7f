"""Verifier attestations (PROTOCOL 4.6): a signed verdict on one header.

Canonical JSON like the header; the verifier signs ``b"pogo/attest/v1" || 0x00 || SHA-256(encoding)``.
A reject whose reason is in ``OBJECTIVE_REASONS`` claims an objective fraud proof: the failing
opening is in the miner's own published bundle (``evidence`` = SHA-256 of the bundle bytes the
verifier checked), so anyone can re-run the light check. Finalization never slashes on that claim
alone: the ledger's ``fraud_confirmed`` flag is set only by a caller that re-ran the check itself.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from pogo_jax.errors import MalformedInput
from pogo_jax.spec.encoding import (
    canonical,
    exact_keys,
    f32hex,
    from_f32hex,
    get_field,
    get_int,
    hexbytes,
    parse_canonical,
)
from pogo_jax.spec.header import HEADER_VERSION, MAX_HEIGHT, check_chain_id
from pogo_jax.spec.keys import PrivateKey, public_bytes, sign, verify_signature

ATTEST_VERSION = HEADER_VERSION
ATTEST_DOMAIN = b"pogo/attest/v1"
MAX_ATTESTATION_BYTES = 1 << 12
VERDICTS = frozenset({"accept", "reject"})
TIERS = frozenset({"light", "full"})

# Reasons a light check proves from the miner's bundle alone (kept equal to verifier/light.py OBJECTIVE).
OBJECTIVE_REASONS: frozenset[str] = frozenset(
    {
        "BAD_PROOF",
        "APPLY_MISMATCH",
        "BAD_CODE",
        "BAD_EXPONENT",
        "BAD_PADDING",
        "BAD_LENGTH",
        "NONFINITE",
        "NONCANONICAL_STATE",
        "WRONG_CHALLENGE",
        "LAYOUT_MISMATCH",
        "BAD_SIGNATURE",
    }
)
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
_KEYS = {
    "version",
    "chain_id",
    "height",
    "header_hash",
    "verifier_key",
    "verdict",
    "tier",
    "reason",
    "loss_prev",
    "loss_next",
    "evidence",
}


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
    header_hash: bytes
    verifier_key: bytes
    verdict: str  # "accept" | "reject"
    tier: str  # "light" | "full"
    reason: str  # "OK" for accept, a reason code for reject
    loss_prev: float | None = None
    loss_next: float | None = None
    evidence: bytes | None = None  # SHA-256 of the bundle that was checked (objective rejects)

    def __post_init__(self) -> None:
        what = "attestation"
        if self.version != ATTEST_VERSION or isinstance(self.version, bool):
            raise MalformedInput(
                f"{what}: unsupported version {self.version!r} (this code reads version {ATTEST_VERSION})"
            )
        check_chain_id(self.chain_id, what)
        get_int({"height": self.height}, "height", what, 1, MAX_HEIGHT)
        for name in ("header_hash", "verifier_key"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 32:
                raise MalformedInput(f"{what}.{name}: expected 32 bytes")
        if self.evidence is not None and (not isinstance(self.evidence, bytes) or len(self.evidence) != 32):
            raise MalformedInput(f"{what}.evidence: expected 32 bytes or null")
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

    @property
    def objective(self) -> bool:
        """A light-tier reject that claims an objective fraud proof."""
        return self.verdict == "reject" and self.tier == "light" and self.reason in OBJECTIVE_REASONS

    def to_obj(self) -> dict:
        return {
            "version": self.version,
            "chain_id": self.chain_id,
            "height": self.height,
            "header_hash": self.header_hash.hex(),
            "verifier_key": self.verifier_key.hex(),
            "verdict": self.verdict,
            "tier": self.tier,
            "reason": self.reason,
            "loss_prev": None if self.loss_prev is None else f32hex(self.loss_prev),
            "loss_next": None if self.loss_next is None else f32hex(self.loss_next),
            "evidence": None if self.evidence is None else self.evidence.hex(),
        }

    @classmethod
    def from_obj(cls, obj: Any, what: str = "attestation") -> Attestation:
        if not isinstance(obj, dict):
            raise MalformedInput(f"{what}: expected an object")
        version = get_field(obj, "version", int, what)
        if version != ATTEST_VERSION:
            raise MalformedInput(
                f"{what}: unsupported version {version} (this code reads version {ATTEST_VERSION})"
            )
        exact_keys(obj, _KEYS, what)

        def loss(key: str) -> float | None:
            v = obj[key]
            return None if v is None else from_f32hex(v, f"{what}.{key}")

        return cls(
            version=version,
            chain_id=check_chain_id(obj["chain_id"], what),
            height=get_int(obj, "height", what, 1, MAX_HEIGHT),
            header_hash=hexbytes(obj["header_hash"], f"{what}.header_hash", 32),
            verifier_key=hexbytes(obj["verifier_key"], f"{what}.verifier_key", 32),
            verdict=get_field(obj, "verdict", str, what),
            tier=get_field(obj, "tier", str, what),
            reason=get_field(obj, "reason", str, what),
            loss_prev=loss("loss_prev"),
            loss_next=loss("loss_next"),
            evidence=None if obj["evidence"] is None else hexbytes(obj["evidence"], f"{what}.evidence", 32),
        )

    def encode(self) -> bytes:
        return canonical(self.to_obj())

    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


@dataclass(frozen=True)
class SignedAttestation:
    attestation: Attestation
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise MalformedInput("signed attestation: signature must be 64 bytes")

    def to_obj(self) -> dict:
        return {"attestation": self.attestation.to_obj(), "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any, what: str = "signed attestation") -> SignedAttestation:
        exact_keys(obj, {"attestation", "signature"}, what)
        return cls(
            Attestation.from_obj(obj["attestation"], f"{what}.attestation"),
            hexbytes(obj["signature"], f"{what}.signature", 64),
        )

    def to_bytes(self) -> bytes:
        return canonical(self.to_obj())

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedAttestation:
        return cls.from_obj(parse_canonical(data, "signed attestation", MAX_ATTESTATION_BYTES))

    def verify(self) -> bool:
        a = self.attestation
        return verify_signature(a.verifier_key, ATTEST_DOMAIN, a.hash(), self.signature)


def sign_attestation(att: Attestation, key: PrivateKey) -> SignedAttestation:
    """Sign ``att`` with ``key``; the key must be the attestation's ``verifier_key``."""
    if public_bytes(key) != att.verifier_key:
        raise ValueError("signing key does not match attestation.verifier_key")
    return SignedAttestation(att, sign(key, ATTEST_DOMAIN, att.hash()))
