"""Sealed evaluation shards (PROTOCOL 14): the data a round is judged on, unreadable until its window closes.

A sealed dataset carries, after its public token stream, ``E`` shards of ``shard_bytes`` bytes each
encrypted with AES-256-GCM under a key of its own (pycryptodome). The manifest commits to every shard::

    "sealed": {"cipher": "AES-256-GCM", "shard_bytes": B,
               "shards": [{"nonce": 12 bytes hex, "key_hash": hex, "plain_sha256": hex, "cipher_sha256": hex}]}

``key_hash = SHA-256("pogo/sealed-key/v1" || key)`` lets anyone check a released key without the data;
``plain_sha256`` pins what the shard decrypts to (AES-GCM alone does not commit to one key, so the
plaintext hash is checked too); ``cipher_sha256`` covers the 16-byte tag appended to the ciphertext.
The additional data of shard ``i`` is ``"pogo/sealed/v1" || uint32_le(i)``, so shards cannot be swapped.

The keys live only in the *keys file* (``write_keys``), which goes to the beacon service and nobody
else; the beacon releases shard ``i``'s key with the beacon value of the ``i``-th round judged on this
dataset. A shard's plaintext is token ids, little-endian, ``width`` bytes each (1 for byte datasets; the
manifest's ``tokens`` section gives 2 or 4 for a tokenized one); window ``j`` of a shard covers its tokens
``[j * seq_len, j * seq_len + seq_len + 1)``. Numpy and pycryptodome only.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from Crypto.Cipher import AES

from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec.encoding import exact_keys, get_field, get_int, hexbytes

CIPHER = "AES-256-GCM"
TAG_BYTES = 16
NONCE_BYTES = 12
KEY_DOMAIN = b"pogo/sealed-key/v1"
AAD_DOMAIN = b"pogo/sealed/v1"
MAX_SEALED_SHARDS = 4096  # the manifest stays well under its 1 MiB cap (about 260 bytes a shard)
MAX_SEALED_BYTES = 1 << 26
KEYS_KIND = "pogo-eval-keys"


def key_hash(key: bytes) -> bytes:
    return hashlib.sha256(KEY_DOMAIN + key).digest()


def _aad(index: int) -> bytes:
    return AAD_DOMAIN + struct.pack("<I", index)


@dataclass(frozen=True)
class ShardEntry:
    nonce: bytes
    key_hash: bytes
    plain_sha256: bytes
    cipher_sha256: bytes

    def to_obj(self) -> dict:
        return {"nonce": self.nonce.hex(), "key_hash": self.key_hash.hex(), "plain_sha256": self.plain_sha256.hex(),
                "cipher_sha256": self.cipher_sha256.hex()}

    @classmethod
    def from_obj(cls, obj: Any, what: str) -> ShardEntry:
        exact_keys(obj, {"nonce", "key_hash", "plain_sha256", "cipher_sha256"}, what)
        return cls(hexbytes(obj["nonce"], f"{what}.nonce", NONCE_BYTES),
                   hexbytes(obj["key_hash"], f"{what}.key_hash", 32),
                   hexbytes(obj["plain_sha256"], f"{what}.plain_sha256", 32),
                   hexbytes(obj["cipher_sha256"], f"{what}.cipher_sha256", 32))


@dataclass(frozen=True)
class Sealed:
    """The manifest's ``sealed`` section, parsed."""

    shard_bytes: int
    shards: tuple[ShardEntry, ...]
    width: int = 1  # bytes per token id (not serialized: the manifest's ``tokens`` section says it)

    @property
    def n(self) -> int:
        return len(self.shards)

    @property
    def stored_bytes(self) -> int:
        """Bytes the ciphertexts take in the file (each shard plus its tag)."""
        return self.n * (self.shard_bytes + TAG_BYTES)

    def to_obj(self) -> dict:
        return {"cipher": CIPHER, "shard_bytes": self.shard_bytes, "shards": [s.to_obj() for s in self.shards]}

    @property
    def shard_tokens(self) -> int:
        return self.shard_bytes // self.width

    @classmethod
    def from_obj(cls, obj: Any, what: str, width: int = 1) -> Sealed:
        exact_keys(obj, {"cipher", "shard_bytes", "shards"}, what)
        if get_field(obj, "cipher", str, what) != CIPHER:
            raise MalformedInput(f"{what}.cipher: only {CIPHER} is defined")
        shards = get_field(obj, "shards", list, what)
        if not 1 <= len(shards) <= MAX_SEALED_SHARDS:
            raise MalformedInput(f"{what}.shards: between 1 and {MAX_SEALED_SHARDS} shards")
        size = get_int(obj, "shard_bytes", what, 2, MAX_SEALED_BYTES)
        if size % width or size // width < 2:
            raise MalformedInput(f"{what}.shard_bytes: {size} is not a whole number (>= 2) of {width}-byte tokens")
        return cls(size, tuple(ShardEntry.from_obj(s, f"{what}.shards[{i}]") for i, s in enumerate(shards)), width)

    def n_windows(self, seq_len: int) -> int:
        """Evaluation windows one shard holds for a model of ``seq_len`` (windows count tokens)."""
        n = self.shard_tokens
        return (n - 1) // seq_len if seq_len > 0 and n > seq_len else 0

    def check_cipher(self, index: int, cipher: bytes) -> None:
        if hashlib.sha256(cipher).digest() != self.shards[index].cipher_sha256:
            raise MalformedInput(f"sealed shard {index}: its ciphertext does not hash to the manifest's")

    def open(self, index: int, cipher: bytes, key: bytes) -> np.ndarray:
        """The plaintext of shard ``index`` as token ids (uint8, or little-endian uint16/uint32), checked against
        the key hash and the plaintext hash; MalformedInput for a wrong key, a forged ciphertext or a plaintext
        the manifest did not commit to."""
        if not 0 <= index < self.n:
            raise MalformedInput(f"sealed shard {index} does not exist (the dataset has {self.n})")
        e = self.shards[index]
        if not isinstance(key, bytes) or len(key) != 32 or key_hash(key) != e.key_hash:
            raise MalformedInput(f"sealed shard {index}: the released key is not the one the manifest committed to")
        if len(cipher) != self.shard_bytes + TAG_BYTES:
            raise MalformedInput(f"sealed shard {index}: ciphertext of {len(cipher)} bytes, expected "
                                 f"{self.shard_bytes + TAG_BYTES}")
        c = AES.new(key, AES.MODE_GCM, nonce=e.nonce)
        c.update(_aad(index))
        try:
            plain = c.decrypt_and_verify(cipher[:-TAG_BYTES], cipher[-TAG_BYTES:])
        except ValueError:
            raise MalformedInput(f"sealed shard {index}: the ciphertext does not authenticate under its key") from None
        if hashlib.sha256(plain).digest() != e.plain_sha256:
            raise MalformedInput(f"sealed shard {index}: decrypts to bytes the manifest did not commit to")
        return np.frombuffer(plain, dtype=token_dtype(self.width))


def token_dtype(width: int) -> np.dtype:
    """The stored id type: uint8 (bytes), or little-endian uint16 / uint32 (PROTOCOL 14, dataset ``tokens``)."""
    if width not in (1, 2, 4):
        raise ValueError(f"token width {width} is not 1, 2 or 4")
    return np.dtype(np.uint8) if width == 1 else np.dtype(f"<u{width}")


def seal(plains: Sequence[bytes], shard_bytes: int, rand=os.urandom,  # noqa: ANN001
         width: int = 1) -> tuple[Sealed, list[bytes], list[bytes]]:
    """Encrypt each plaintext (all ``shard_bytes`` long) under a fresh random key: the manifest section,
    the ciphertexts (tag appended) and the keys, in shard order. ``rand(n)`` gives the key and nonce bytes
    (``os.urandom``; tests pass a seeded stream to pin golden bytes)."""
    entries, ciphers, keys = [], [], []
    for i, p in enumerate(plains):
        if len(p) != shard_bytes:
            raise ValueError("every sealed shard has shard_bytes bytes")
        key, nonce = rand(32), rand(NONCE_BYTES)
        c = AES.new(key, AES.MODE_GCM, nonce=nonce)
        c.update(_aad(i))
        ct, tag = c.encrypt_and_digest(bytes(p))
        blob = ct + tag
        entries.append(ShardEntry(nonce, key_hash(key), hashlib.sha256(p).digest(), hashlib.sha256(blob).digest()))
        ciphers.append(blob)
        keys.append(key)
    return Sealed(shard_bytes, tuple(entries), width), ciphers, keys


def seeded_bytes(seed: bytes):  # noqa: ANN201 - callable(n) -> bytes
    """A deterministic byte stream from ``seed`` (SHA-256 in counter mode), for reproducible test datasets only:
    whoever knows the seed knows every key, so a real chain never uses it."""
    counter = [0]

    def rand(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(b"pogo/test-seal/v1" + seed + counter[0].to_bytes(8, "little")).digest()
            counter[0] += 1
        return out[:n]

    return rand


def windows_of(plain: np.ndarray, indices: Iterable[int], seq_len: int) -> np.ndarray:
    """(len(indices), seq_len + 1) windows of a shard's token ids (its dtype): window j starts at j * seq_len."""
    n = (plain.shape[0] - 1) // seq_len
    idx = np.asarray([int(i) for i in indices], dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise MalformedInput(f"evaluation window outside the shard's {n} windows")
    return plain[idx[:, None] * seq_len + np.arange(seq_len + 1, dtype=np.int64)[None, :]]


# ------------------------------------------------------------------------------------ keys file


def write_keys(path: Path, manifest_hash: bytes, keys: Sequence[bytes]) -> None:
    """The keys file for the beacon service (mode 0600, never overwritten): it alone can open the shards."""
    from pogo_jax.spec.keys import write_secret_file

    path = Path(path).expanduser()
    if path.exists():
        raise UserError(f"'{path}' exists; keys files are never overwritten (choose another --keys-out)")
    obj = {"version": 1, "kind": KEYS_KIND, "manifest_hash": manifest_hash.hex(), "keys": [k.hex() for k in keys]}
    try:
        write_secret_file(path, json.dumps(obj, sort_keys=True).encode() + b"\n")
    except OSError as e:
        raise UserError(f"cannot write the keys file '{path}': {e.strerror}") from None


@dataclass(frozen=True)
class EvalKeys:
    manifest_hash: bytes
    keys: tuple[bytes, ...]


def read_keys(path: Path | str) -> EvalKeys:
    what = f"eval keys file '{path}'"
    try:
        obj = json.loads(Path(path).expanduser().read_text())
    except FileNotFoundError:
        raise UserError(f"{what} not found (`pogo data pack --sealed-eval N --keys-out FILE` writes one)") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise UserError(f"{what} is not readable JSON") from None
    try:
        exact_keys(obj, {"version", "kind", "manifest_hash", "keys"}, what)
        if obj["version"] != 1 or obj["kind"] != KEYS_KIND:
            raise MalformedInput(f"{what}: not a version 1 {KEYS_KIND} file")
        keys = get_field(obj, "keys", list, what)
        if not 1 <= len(keys) <= MAX_SEALED_SHARDS:
            raise MalformedInput(f"{what}: between 1 and {MAX_SEALED_SHARDS} keys")
        return EvalKeys(hexbytes(obj["manifest_hash"], f"{what}.manifest_hash", 32),
                        tuple(hexbytes(k, f"{what}.keys[{i}]", 32) for i, k in enumerate(keys)))
    except MalformedInput as e:
        raise UserError(str(e)) from None
