"""The proof bundle: the miner's answer to one block's challenge (PROTOCOL 4.4). No jax.

One file, one writer (``Bundle.to_bytes``) and one reader (``Bundle.from_bytes``), side by side:

    offset 0   8 bytes   magic b"POGOBNDL"
    offset 8   u32 LE    format version (2)
    offset 12  u64 LE    J = length of the metadata
    offset 20  J bytes   metadata: canonical JSON (protocol/encoding.py), see ``_META_KEYS``
    20+J       u64 LE    D = length of the leaf data
    28+J       D bytes   for each opening in order: theta_prev leaf (4*S bytes), theta_next leaf
                         (4*S bytes), update leaf (S/G + S/2 bytes); D must equal k * (8*S + S/G + S/2)
    28+J+D     64 bytes  Ed25519 signature of the miner (the header's miner_key) over
                         b"pogo/bundle/v1" || 0x00 || chain id (32 bytes, the header's) ||
                         SHA-256(every byte before the signature)
    end                  nothing may follow

The metadata carries the signed header, the round's beacon value, the layout manifest, the opened
indices with their three audit paths (hex), the round's evaluation windows and the miner's reported
losses on them. The verifier re-derives the challenge and the windows itself from the chain; the
indices here only say what the miner answered.
Every size is checked against limits before anything is allocated.

Why the miner signs the whole bundle (not only the header): a light-tier fraud proof slashes the
miner, so the failing opening must provably come from the miner. Without the signature anyone
could publish a corrupted copy of an honest bundle and have its miner slashed; with it, a bundle
whose signature fails proves nothing about anyone and is refused (BAD_SIGNATURE, no slashing),
and any other change to a signed bundle (losses, windows, a leaf byte) breaks the signature.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, replace

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
from pogo_jax.spec.envelope import Signed
from pogo_jax.spec.header import Header, SignedHeader
from pogo_jax.spec.keys import PrivateKey, public_bytes, sign, verify_signature
from pogo_jax.spec.layout import Layout

MAGIC = b"POGOBNDL"
BUNDLE_VERSION = 2
BUNDLE_DOMAIN = b"pogo/bundle/v1"
SIG_BYTES = 64
MAX_META_BYTES = 64 << 20
MAX_DATA_BYTES = 1 << 31
MAX_OPENINGS = 1 << 20
MAX_WINDOWS = 1 << 16
MAX_PATH = 64
FIXED_BYTES = 20  # magic, version, metadata length: what says how much of the rest to read
PEEK_HEADER_BYTES = 1 << 16  # the largest signed header a chain records (chain.MAX_HEADER_BYTES)
# canonical metadata has sorted keys, so a bundle's metadata always starts with these three fields
_PEEK_LEAD = re.compile(rb'\{"beacon":"[0-9a-f]{64}","format":"pogo-bundle","header":')
_PEEK_LEAD_BYTES = len(b'{"beacon":"') + 64 + len(b'","format":"pogo-bundle","header":')
_META_KEYS = {"format", "header", "beacon", "layout", "openings", "windows", "losses"}
_OPEN_KEYS = {"index", "path_prev", "path_next", "path_q"}


@dataclass(frozen=True)
class LeafOpening:
    """One challenged leaf opened in all three trees."""

    index: int
    prev: bytes  # 4*S bytes, float32 little-endian
    next: bytes  # 4*S bytes
    update: bytes  # S/G + S/2 bytes (wire format)
    path_prev: tuple[bytes, ...]
    path_next: tuple[bytes, ...]
    path_q: tuple[bytes, ...]


@dataclass(frozen=True)
class Bundle:
    signed_header: SignedHeader
    beacon: bytes
    layout: Layout
    openings: tuple[LeafOpening, ...]
    windows: tuple[int, ...]
    loss_prev: float
    loss_next: float
    signature: bytes = b""  # the miner's signature over body_bytes(); empty until ``signed``

    @property
    def header(self) -> Header:
        return self.signed_header.body

    @property
    def header_hash(self) -> bytes:
        return self.signed_header.hash

    def sha256(self) -> bytes:
        """The bundle's identity on the chain: SHA-256 of its file bytes (attestations name it)."""
        return hashlib.sha256(self.to_bytes()).digest()

    def signed(self, key: PrivateKey) -> Bundle:
        """This bundle signed by ``key``, which must be the header's miner key."""
        if public_bytes(key) != self.header.miner_key:
            raise ValueError("signing key does not match the header's miner_key")
        return replace(self, signature=sign(key, BUNDLE_DOMAIN, self._message()))

    def verify_signature(self) -> bool:
        """True iff ``signature`` is the header miner key's signature over this bundle's body (the
        reader accepts only canonical metadata, so the body is exactly the bytes that were read)."""
        return verify_signature(self.header.miner_key, BUNDLE_DOMAIN, self._message(), self.signature)

    @staticmethod
    def claim_valid(header: Signed, body_sha256: bytes, signature: bytes) -> bool:
        """Is ``signature`` the header miner's signature of a bundle body hashing to ``body_sha256``? Checked
        before a body is received, so only the miner can hold its candidate's upload slot."""
        return len(body_sha256) == 32 and verify_signature(
            header.body.miner_key, BUNDLE_DOMAIN, bytes.fromhex(header.body.chain_id) + body_sha256, signature)

    def _message(self) -> bytes:
        """``chain id || SHA-256(body)``: signed for the header's chain only (PROTOCOL 13)."""
        return bytes.fromhex(self.header.chain_id) + hashlib.sha256(self.body_bytes()).digest()

    def to_bytes(self) -> bytes:
        if len(self.signature) != SIG_BYTES:
            raise ValueError("bundle is not signed: call Bundle.signed(miner_key) first")
        return self.body_bytes() + self.signature

    def body_bytes(self) -> bytes:
        """Everything the signature covers (the file without its last 64 bytes)."""
        meta = {
            "format": "pogo-bundle",
            "header": self.signed_header.to_obj(),
            "beacon": self.beacon.hex(),
            "layout": self.layout.manifest(),
            "openings": [
                {"index": o.index, "path_prev": [h.hex() for h in o.path_prev],
                 "path_next": [h.hex() for h in o.path_next], "path_q": [h.hex() for h in o.path_q]}
                for o in self.openings
            ],
            "windows": list(self.windows),
            "losses": {"prev": f32hex(self.loss_prev), "next": f32hex(self.loss_next)},
        }
        js = canonical(meta)
        data = b"".join(o.prev + o.next + o.update for o in self.openings)
        return (MAGIC + struct.pack("<I", BUNDLE_VERSION) + struct.pack("<Q", len(js)) + js
                + struct.pack("<Q", len(data)) + data)

    @classmethod
    def peek_header(cls, buf: bytes) -> SignedHeader:
        """The signed header of a bundle from its metadata alone: what a node checks (is there such a
        candidate, is its proof window open) before it parses the openings or stores a byte."""
        meta, _ = _metadata(buf, "proof bundle")
        return Signed.from_obj(get_field(meta, "header", dict, "proof bundle"), Header, "proof bundle.header")

    @staticmethod
    def peek_size(first: bytes, max_header: int = PEEK_HEADER_BYTES) -> int:
        """From a bundle's first ``FIXED_BYTES``: how many leading bytes ``header_from_prefix`` needs (the
        fixed part and the metadata up to the end of a header of at most ``max_header`` bytes, never a
        byte of leaf data). Refuses a bad magic, version or metadata length at once."""
        what = "proof bundle"
        if len(first) < FIXED_BYTES or first[:8] != MAGIC:
            raise MalformedInput(f"{what}: not a pogo proof bundle (bad magic)")
        (version,) = struct.unpack_from("<I", first, 8)
        if version != BUNDLE_VERSION:
            raise MalformedInput(f"{what}: unsupported version {version} (this verifier reads {BUNDLE_VERSION})")
        (jlen,) = struct.unpack_from("<Q", first, 12)
        if jlen > MAX_META_BYTES:
            raise MalformedInput(f"{what}: metadata length {jlen} is above the limit of {MAX_META_BYTES}")
        return FIXED_BYTES + min(jlen, _PEEK_LEAD_BYTES + max_header + 1)

    @staticmethod
    def header_from_prefix(prefix: bytes) -> SignedHeader:
        """The signed header of a bundle from its first bytes alone (``peek_size`` of them): what a node
        checks before it reads or stores any leaf byte. Canonical metadata has sorted keys, so the
        header is its third field, after the beacon and the format; its bytes must be exactly the
        header envelope's canonical bytes (``from_bytes`` later checks the whole file)."""
        what = "proof bundle"
        Bundle.peek_size(prefix[:FIXED_BYTES])
        meta = bytes(prefix[FIXED_BYTES:])
        if not _PEEK_LEAD.match(meta):
            raise MalformedInput(f"{what}: metadata does not start with the beacon, format and header fields "
                                 "of canonical bundle metadata")
        start = _PEEK_LEAD_BYTES
        try:  # latin-1: one character per byte, so the decoder's offsets are byte offsets
            obj, end = json.JSONDecoder().raw_decode(meta.decode("latin-1"), start)
            exact = canonical(obj) == meta[start:end]
        except (ValueError, TypeError, RecursionError):
            exact = False
        if not exact or not isinstance(obj, dict):
            raise MalformedInput(f"{what}: the metadata's header is not a canonical JSON object that ends within "
                                 f"the first {len(prefix)} bytes")
        return Signed.from_obj(obj, Header, f"{what}.header")

    @classmethod
    def from_bytes(cls, buf: bytes) -> Bundle:
        """Parse and bound-check a bundle. Raises MalformedInput (exit 2) on any format error."""
        what = "proof bundle"
        meta, jlen = _metadata(buf, what)
        (dlen,) = struct.unpack_from("<Q", buf, 20 + jlen)
        data_off = 28 + jlen
        if dlen > MAX_DATA_BYTES or data_off + dlen + SIG_BYTES != len(buf):
            raise MalformedInput(f"{what}: leaf data length {dlen} does not match the file size {len(buf)} "
                                 "(truncated or extended)")
        exact_keys(meta, _META_KEYS, what)
        if meta["format"] != "pogo-bundle":
            raise MalformedInput(f"{what}: format field is not 'pogo-bundle'")
        signed = Signed.from_obj(get_field(meta, "header", dict, what), Header, f"{what}.header")
        beacon = hexbytes(meta["beacon"], f"{what}.beacon", 32)
        layout = Layout.from_manifest(get_field(meta, "layout", dict, what))
        s, g = layout.leaf_size, layout.group_size
        leaf_f32 = 4 * s
        leaf_q = s // g + s // 2
        per = 2 * leaf_f32 + leaf_q
        opens = get_field(meta, "openings", list, what)
        if len(opens) > MAX_OPENINGS:
            raise MalformedInput(f"{what}: too many openings ({len(opens)})")
        if dlen != per * len(opens):
            raise MalformedInput(f"{what}: leaf data is {dlen} bytes, expected {len(opens)} x {per}")
        openings = []
        for i, o in enumerate(opens):
            ow = f"{what}.openings[{i}]"
            exact_keys(o, _OPEN_KEYS, ow)
            idx = get_int(o, "index", ow, 0, 2**63 - 1)
            paths = []
            for key in ("path_prev", "path_next", "path_q"):
                p = get_field(o, key, list, ow)
                if len(p) > MAX_PATH:
                    raise MalformedInput(f"{ow}.{key}: path longer than {MAX_PATH}")
                paths.append(tuple(hexbytes(h, f"{ow}.{key}", 32) for h in p))
            off = data_off + i * per
            openings.append(LeafOpening(
                idx, bytes(buf[off : off + leaf_f32]), bytes(buf[off + leaf_f32 : off + 2 * leaf_f32]),
                bytes(buf[off + 2 * leaf_f32 : off + per]), *paths))
        windows = get_field(meta, "windows", list, what)
        if len(windows) > MAX_WINDOWS or not all(
                isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**63 for w in windows):
            raise MalformedInput(f"{what}.windows: expected a list of non-negative integers")
        losses = get_field(meta, "losses", dict, what)
        exact_keys(losses, {"prev", "next"}, f"{what}.losses")
        return cls(signed, beacon, layout, tuple(openings), tuple(windows),
                   from_f32hex(losses["prev"], f"{what}.losses.prev"),
                   from_f32hex(losses["next"], f"{what}.losses.next"), bytes(buf[len(buf) - SIG_BYTES:]))


def _metadata(buf: bytes, what: str) -> tuple[dict, int]:
    """The bundle's magic, version and canonical metadata, bound-checked: (metadata, its length)."""
    if len(buf) < 28 + SIG_BYTES or buf[:8] != MAGIC:
        raise MalformedInput(f"{what}: not a pogo proof bundle (bad magic or shorter than 92 bytes)")
    (version,) = struct.unpack_from("<I", buf, 8)
    if version != BUNDLE_VERSION:
        raise MalformedInput(f"{what}: unsupported version {version} (this verifier reads {BUNDLE_VERSION})")
    (jlen,) = struct.unpack_from("<Q", buf, 12)
    if jlen > MAX_META_BYTES or 20 + jlen + 8 + SIG_BYTES > len(buf):
        raise MalformedInput(f"{what}: metadata length {jlen} exceeds the file (truncated?)")
    try:
        meta = parse_canonical(bytes(buf[20 : 20 + jlen]), f"{what} metadata", MAX_META_BYTES)
    except ValueError as e:  # e.g. an integer longer than Python's int-parsing digit limit
        raise MalformedInput(f"{what} metadata: {str(e)[:80]}") from None
    try:
        is_canonical = canonical(meta) == bytes(buf[20 : 20 + jlen])
    except (TypeError, ValueError):
        is_canonical = False
    if not is_canonical:  # one encoding per content: the signature and evidence hashes cover these bytes
        raise MalformedInput(f"{what}: metadata is not canonical JSON (sorted keys, no whitespace)")
    if not isinstance(meta, dict):
        raise MalformedInput(f"{what}: metadata is not an object")
    return meta, jlen
