"""Verifier attestations (PROTOCOL 4.4, 15-16; v3): a signed verdict on one candidate of one round.

Canonical JSON in the generic envelope (spec/envelope.py), signed under ``pogo/attest/v1`` for one
chain. ``evidence`` is required: the SHA-256 of the bundle the verifier checked, which the chain only
accepts when it equals the bundle hash it recorded, so a verdict can never refer to other bytes.

A *full* vote carries its own per-window losses of ``theta_prev`` and ``theta_next`` on the round's
windows (``losses_prev``, ``losses_next``, float32) and 32 random ``salt`` bytes: it is committed first
(``VoteCommit`` names this record's hash, which the salt makes unguessable) and revealed after the
commit window closes, so nobody can copy another verifier's numbers. Its reason is what its own numbers
imply (``spec.verdict.own_verdict``). Only a full reject whose claim is objective (a rebuild failure)
carries no losses.

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
from pogo_jax.spec.verdict import MEASURED_REASONS

ATTEST_VERSION = 4  # v4: votes name the log entry of the bundle they judged (docs/protocol.md section 22)
ATTEST_DOMAIN = b"pogo/attest/v1"
MAX_WINDOWS = 4096  # = spec.rules.MAX_WINDOWS
MAX_ATTESTATION_BYTES = (1 << 12) + 2 * 12 * MAX_WINDOWS  # two f32hex values a window, quotes and commas
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
         "losses_prev", "losses_next", "evidence", "salt", "bundle_entry"}


def _f32(x: float, what: str) -> float:
    """Round a loss to float32 now, so an attestation equals its own decoding."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise MalformedInput(f"{what}: expected a finite float")
    try:
        v = struct.unpack(">f", struct.pack(">f", float(x)))[0]
    except OverflowError:
        raise MalformedInput(f"{what}: {x} overflows float32") from None
    if not math.isfinite(v):
        raise MalformedInput(f"{what}: {x} overflows float32")
    return v


def _losses(xs, what: str) -> tuple[float, ...] | None:  # noqa: ANN001
    if xs is None:
        return None
    if not isinstance(xs, tuple | list) or not 1 <= len(xs) <= MAX_WINDOWS:
        raise MalformedInput(f"{what}: expected 1 to {MAX_WINDOWS} losses or null")
    return tuple(_f32(x, f"{what}[{i}]") for i, x in enumerate(xs))


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
    salt: bytes | None = None  # full votes: 32 random bytes, so the commitment to this record hides it
    losses_prev: tuple[float, ...] | None = None  # full votes: own per-window L(theta_prev), float32
    losses_next: tuple[float, ...] | None = None
    # hash of the log entry that recorded the bundle: a node that drops that entry orphans every signed vote
    bundle_entry: bytes | None = None

    KIND: ClassVar[str] = "attestation"
    DOMAIN: ClassVar[bytes] = ATTEST_DOMAIN

    def __post_init__(self) -> None:
        what = "attestation"
        if self.version != ATTEST_VERSION or isinstance(self.version, bool):
            raise MalformedInput(f"{what}: unsupported version {self.version!r} (this code reads {ATTEST_VERSION})")
        check_chain_id(self.chain_id, what)
        get_int({"height": self.height}, "height", what, 1, MAX_HEIGHT)
        get_int({"round": self.round}, "round", what, 1, MAX_ROUND)
        for name in ("header_hash", "verifier_key", "evidence", "bundle_entry"):
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
        object.__setattr__(self, "losses_prev", _losses(self.losses_prev, f"{what}.losses_prev"))
        object.__setattr__(self, "losses_next", _losses(self.losses_next, f"{what}.losses_next"))
        measured = self.losses_prev is not None or self.losses_next is not None
        if self.tier == "light":
            if measured or self.salt is not None:
                raise MalformedInput(f"{what}: a light vote carries no losses and no salt")
            return
        if not isinstance(self.salt, bytes) or len(self.salt) != 32:
            raise MalformedInput(f"{what}.salt: a full vote carries 32 salt bytes (it is committed before revealed)")
        if self.objective:
            if measured:
                raise MalformedInput(f"{what}: an objective full reject carries no losses")
            return
        if self.losses_prev is None or self.losses_next is None or len(self.losses_prev) != len(self.losses_next):
            raise MalformedInput(f"{what}: a full vote carries its per-window losses of both states")
        if self.reason not in MEASURED_REASONS:
            raise MalformedInput(f"{what}.reason: a measured full vote says one of {', '.join(MEASURED_REASONS)}")

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
            "bundle_entry": self.bundle_entry.hex(),
            "salt": None if self.salt is None else self.salt.hex(),
            "losses_prev": None if self.losses_prev is None else [f32hex(x) for x in self.losses_prev],
            "losses_next": None if self.losses_next is None else [f32hex(x) for x in self.losses_next],
        }

    @property
    def measured(self) -> bool:
        """A full vote with per-window losses (what the chain's measurement is made of)."""
        return self.losses_prev is not None

    @classmethod
    def from_obj(cls, obj: Any, what: str = "attestation") -> Attestation:
        if not isinstance(obj, dict):
            raise MalformedInput(f"{what}: expected an object")
        version = get_field(obj, "version", int, what)
        if version != ATTEST_VERSION:
            raise MalformedInput(f"{what}: unsupported version {version} (this code reads {ATTEST_VERSION})")
        exact_keys(obj, _KEYS, what)

        def losses(key: str) -> tuple[float, ...] | None:
            v = obj[key]
            if v is None:
                return None
            if not isinstance(v, list) or len(v) > MAX_WINDOWS:
                raise MalformedInput(f"{what}.{key}: expected a list of at most {MAX_WINDOWS} f32hex values")
            return tuple(from_f32hex(x, f"{what}.{key}[{i}]") for i, x in enumerate(v))

        return cls(
            version=version, chain_id=check_chain_id(obj["chain_id"], what),
            height=get_int(obj, "height", what, 1, MAX_HEIGHT), round=get_int(obj, "round", what, 1, MAX_ROUND),
            header_hash=hexbytes(obj["header_hash"], f"{what}.header_hash", 32),
            verifier_key=hexbytes(obj["verifier_key"], f"{what}.verifier_key", 32),
            verdict=get_field(obj, "verdict", str, what), tier=get_field(obj, "tier", str, what),
            reason=get_field(obj, "reason", str, what), evidence=hexbytes(obj["evidence"], f"{what}.evidence", 32),
            salt=None if obj["salt"] is None else hexbytes(obj["salt"], f"{what}.salt", 32),
            bundle_entry=hexbytes(obj["bundle_entry"], f"{what}.bundle_entry", 32),
            losses_prev=losses("losses_prev"), losses_next=losses("losses_next"))


SignedAttestation = Signed[Attestation]


def read_signed_attestation(data: bytes) -> SignedAttestation:
    return Signed.read(data, Attestation, MAX_ATTESTATION_BYTES)


def sign_attestation(att: Attestation, key: PrivateKey) -> SignedAttestation:
    """Sign ``att`` with ``key``; the key must be the attestation's ``verifier_key``."""
    return seal(att, key)
