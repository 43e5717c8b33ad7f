"""The dataset byte rules (PROTOCOL sections 6 and 14): packed format, manifest, ``data_root``, split,
sealed evaluation shards. numpy (and pycryptodome, for the shards) only.

Packed format (``_write_packed`` is the only writer, ``read_packed`` the only reader). Version 1 holds
a public token stream; version 2 also carries sealed evaluation shards (spec/sealed.py)::

    offset 0   8 bytes   magic b"POGODATA"
    offset 8   uint32 LE format version (DATA_FORMAT_VERSION)
    offset 12  uint64 LE manifest length m (<= 1 MiB)
    offset 20  m bytes   manifest, canonical JSON (pogo_jax.spec.encoding.canonical)
               zero bytes up to the next multiple of 4096 (the data offset)
    data       n_bytes token bytes
    sealed     (version 2) E x (shard_bytes + 16) bytes: each shard's AES-256-GCM ciphertext and tag
    tokenizer  (token datasets) tokens.tokenizer_bytes bytes: the tokenizer file; the file ends exactly there

Manifest keys (exactly these): ``version``, ``n_bytes``, ``shard_size``, ``n_shards``,
``data_root`` (64 lowercase hex digits), ``train`` [start, end), ``eval`` [start, end), ``source``,
``n_files``, ``n_skipped``, in version 2 ``sealed`` (spec/sealed.py), and for a tokenized dataset
``tokens`` (below). No timestamps or absolute paths, so packing the same inputs twice gives the same bytes
(sealing draws fresh keys and positions).

Tokens. A byte dataset (no ``tokens`` key: every dataset before tokenizers, and the embedded corpus) stores
one byte per token, vocabulary 256. A tokenized dataset stores token ids little-endian, ``width`` bytes
each: 2 (uint16) when the vocabulary has at most 65,536 ids, else 4 (uint32). Its manifest's ``tokens`` is
``{"tokenizer": "byte-level-bpe", "vocab_size": V, "width": W, "tokenizer_sha256": hex,
"tokenizer_bytes": T, "text_bytes": {"train": a, "eval": b[, "sealed": [c0, c1, ...]]}}``: the tokenizer
file itself follows the sealed shards (so the manifest hash binds it and a verifier needs nothing else),
and ``text_bytes`` counts the UTF-8 bytes of the text each split and each sealed shard decodes from (for
bits per byte, pogo_jax.spec.units). Every size and offset in the manifest (``n_bytes``, ``shard_size``,
``train``, ``eval``, ``sealed.shard_bytes``) counts bytes of the stored stream and is a multiple of W;
``Dataset`` ranges count tokens.

``data_root`` (PROTOCOL section 6): the stored stream (ids as little-endian bytes) is cut into
``ceil(n_bytes / shard_size)`` shards of ``shard_size`` bytes, the last one zero-padded; leaf ``i`` =
shard ``i`` hashed with the ``POGO-DATA-v1`` header; the tree is the RFC 9162 tree of ``pogo_jax.spec.merkle``.

Split rule: ``eval_start = floor((n_bytes - ceil(eval_fraction * n_bytes)) / shard_size) * shard_size``;
train is ``[0, eval_start)``, eval/challenge is ``[eval_start, n_bytes)``. The eval split starts on a
shard boundary (a verifier can hold and prove just those shards) and holds at least ``eval_fraction``
of the bytes; a dataset whose train split would be empty is refused (use a smaller shard size).

Every consumer checks a data file against the *recorded* ``data_root`` and manifest hash by
recomputing them (``verify_against``), never against the file's own manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec import merkle as merkle_host
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int, hexbytes, parse_canonical
from pogo_jax.spec.sealed import Sealed, token_dtype

DATA_FORMAT_VERSION = 1  # public tokens only
SEALED_FORMAT_VERSION = 2  # public tokens and sealed evaluation shards (PROTOCOL 14)
MAGIC = b"POGODATA"
_HEADER = struct.Struct("<8sIQ")  # magic, version, manifest length
ALIGN = 4096
MAX_MANIFEST_BYTES = 1 << 20
MAX_SHARD_SIZE = 1 << 30
DEFAULT_SHARD_SIZE = 65536
DEFAULT_EVAL_FRACTION = 0.05
_MANIFEST_KEYS = {"version", "n_bytes", "shard_size", "n_shards", "data_root", "train", "eval", "source",
                  "n_files", "n_skipped"}
_TOKENS_KEYS = {"tokenizer", "vocab_size", "width", "tokenizer_sha256", "tokenizer_bytes", "text_bytes"}
TOKENIZER_KIND = "byte-level-bpe"
BYTE_VOCAB = 256
MAX_VOCAB = 1 << 32
MAX_TOKENIZER_BYTES = 1 << 26

Range = tuple[int, int]  # [start, end) offsets (bytes in the manifest, tokens in a Dataset)


def width_for(vocab_size: int) -> int:
    """Bytes per stored id: 2 (uint16) up to 65,536 ids, else 4 (uint32)."""
    if not 1 <= vocab_size <= MAX_VOCAB:
        raise UserError(f"a vocabulary of {vocab_size} ids is outside [1, 2**32]")
    return 2 if vocab_size <= 1 << 16 else 4


def stream_bytes(tokens: np.ndarray) -> np.ndarray:
    """The stored stream: uint8 as is, uint16/uint32 ids as their little-endian bytes (a view when possible)."""
    arr = np.ascontiguousarray(tokens).reshape(-1)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind != "u" or arr.dtype.itemsize not in (2, 4):
        raise ValueError(f"tokens must be uint8, uint16 or uint32, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=token_dtype(arr.dtype.itemsize)).view(np.uint8)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset. ``tokens`` is a read-only memmap of the whole stream (train + eval) as token ids
    (uint8 for a byte dataset, uint16/uint32 for a tokenized one); the ranges count tokens."""

    tokens: np.ndarray
    manifest: dict
    path: Path
    data_root: bytes
    train_range: Range
    eval_range: Range
    sealed: Sealed | None = None  # the sealed evaluation shards (format version 2)
    ciphers: np.ndarray | None = None  # their ciphertexts with tags, (E, shard_bytes + 16) uint8 memmap
    tokenizer: bytes | None = None  # the tokenizer file (tokenized datasets), checked against the manifest

    def cipher(self, index: int) -> bytes:
        """The stored ciphertext (with its tag) of sealed shard ``index``."""
        if self.sealed is None or self.ciphers is None or not 0 <= index < self.sealed.n:
            raise MalformedInput(f"{self.path}: no sealed shard {index}")
        return self.ciphers[index].tobytes()

    def open_shard(self, index: int, key: bytes) -> np.ndarray:
        """Shard ``index``'s plaintext under its released key, checked against the manifest (spec/sealed.py)."""
        return self.sealed.open(index, self.cipher(index), key)

    @property
    def n_bytes(self) -> int:
        """Bytes of the stored stream (tokens x width)."""
        return int(self.tokens.shape[0]) * self.width

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def token_info(self) -> dict | None:
        """The manifest's ``tokens`` section (None for a byte dataset)."""
        return self.manifest.get("tokens")

    @property
    def width(self) -> int:
        return 1 if self.token_info is None else int(self.token_info["width"])

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer can produce (256 for bytes); the model pads it (pogo_jax.config.resolve_vocab)."""
        return BYTE_VOCAB if self.token_info is None else int(self.token_info["vocab_size"])

    def text_bytes(self, part: str) -> int:
        """UTF-8 bytes of the text that split ``part`` ("train" or "eval") decodes from."""
        if self.token_info is None:
            lo, hi = self.train_range if part == "train" else self.eval_range
            return hi - lo
        return int(self.token_info["text_bytes"][part])

    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    @property
    def source(self) -> str:
        return str(self.manifest["source"])

    @property
    def manifest_hash(self) -> bytes:
        """SHA-256 of the canonical manifest: pins n_bytes and the split, which data_root alone does not."""
        return hashlib.sha256(canonical(self.manifest)).digest()


def compute_data_root(tokens: np.ndarray, shard_size: int) -> bytes:
    """Merkle root over ``shard_size``-byte shards of the stored stream (last one zero-padded), tag
    POGO-DATA-v1; uint16/uint32 ids are hashed as their little-endian bytes."""
    arr = stream_bytes(tokens)
    if shard_size <= 0:
        raise ValueError("shard_size must be positive")
    n = arr.shape[0]
    if n == 0:
        raise ValueError("cannot commit to an empty dataset")
    n_full = n // shard_size
    full = arr[: n_full * shard_size].reshape(n_full, shard_size)  # a view: no copy of the stream
    digests = merkle_host.leaf_hashes(merkle_host.TAG_DATA, full) if n_full else []
    if n % shard_size:
        last = np.zeros((1, shard_size), dtype=np.uint8)
        last[0, : n - n_full * shard_size] = arr[n_full * shard_size:]
        digests += merkle_host.leaf_hashes(merkle_host.TAG_DATA, last, first_index=n_full)
    return merkle_host.root(digests)


def split_ranges(n_bytes: int, shard_size: int, eval_fraction: float) -> tuple[Range, Range]:
    """The fixed train/eval split (rule in the module docstring); refuses an empty train split."""
    if not 0.0 < eval_fraction < 1.0:
        raise UserError(f"eval fraction must be in (0, 1), got {eval_fraction}")
    eval_len = math.ceil(eval_fraction * n_bytes)
    start = (n_bytes - eval_len) // shard_size * shard_size
    if n_bytes - eval_len < 1:
        raise UserError(f"dataset of {n_bytes} bytes is too small to split into train and eval parts")
    if start <= 0:
        raise UserError(
            f"dataset of {n_bytes} bytes is too small for shard size {shard_size}: the eval split starts on "
            f"a shard boundary and the train split would be empty; use a shard size of at most "
            f"{n_bytes - eval_len} (--shard-size / data.shard_size)")
    return (0, start), (start, n_bytes)


def make_manifest(n_bytes: int, shard_size: int, root: bytes, train: tuple[int, int], ev: tuple[int, int],
                  source: str, n_files: int, n_skipped: int, sealed: Sealed | None = None,
                  tokens: dict | None = None) -> dict[str, Any]:
    m = {"version": DATA_FORMAT_VERSION if sealed is None else SEALED_FORMAT_VERSION, "n_bytes": n_bytes,
         "shard_size": shard_size, "n_shards": -(-n_bytes // shard_size), "data_root": root.hex(),
         "train": list(train), "eval": list(ev), "source": source, "n_files": n_files, "n_skipped": n_skipped}
    if sealed is not None:
        m["sealed"] = sealed.to_obj()
    if tokens is not None:
        m["tokens"] = tokens
    return m


def _data_offset(manifest_len: int) -> int:
    return -(-(_HEADER.size + manifest_len) // ALIGN) * ALIGN


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_out(out: Path) -> None:
    """Refuse an unusable output path before any work is done."""
    out = out.expanduser()
    if out.is_dir():
        raise UserError(f"output '{out}' is a directory; give a file name such as {out / 'data.pogodata'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write '{out}': directory '{parent}' does not exist")


def _write_packed(out: Path, manifest: dict[str, Any], tokens: np.ndarray, ciphers: list[bytes] = (),
                  tokenizer: bytes = b"") -> None:
    """Write the packed file atomically: temp file in the same directory, fsync, ``os.replace``."""
    blob = canonical(manifest)
    if len(blob) > MAX_MANIFEST_BYTES:
        raise UserError(f"dataset manifest is {len(blob)} bytes, above the {MAX_MANIFEST_BYTES} limit")
    head = _HEADER.pack(MAGIC, manifest["version"], len(blob)) + blob
    head += b"\x00" * (_data_offset(len(blob)) - len(head))
    out = out.expanduser()
    _check_out(out)
    parent = out.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write '{out}': {e.strerror} (does its directory exist and is it "
                        f"writable?)") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide a shared dataset from other users
            f.write(head)
            f.write(memoryview(stream_bytes(tokens)))
            for c in ciphers:
                f.write(c)
            f.write(tokenizer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise UserError(f"cannot write '{out}': {e.strerror}") from None
        raise
    _fsync_dir(parent)


def _pair(obj: dict, key: str, what: str) -> tuple[int, int]:
    v = get_field(obj, key, list, what)
    if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise MalformedInput(f"{what}.{key}: expected [start, end] integers")
    return int(v[0]), int(v[1])


def _parse_tokens(obj: Any, sealed: bool, what: str) -> int:
    """Check a ``tokens`` section; returns its width."""
    exact_keys(obj, _TOKENS_KEYS, what)
    if get_field(obj, "tokenizer", str, what) != TOKENIZER_KIND:
        raise MalformedInput(f"{what}.tokenizer: only {TOKENIZER_KIND!r} is defined")
    v = get_int(obj, "vocab_size", what, 1, MAX_VOCAB)
    w = get_int(obj, "width", what)
    if w != width_for(v):
        raise MalformedInput(f"{what}.width: {w}, but a vocabulary of {v} ids is stored with width {width_for(v)}")
    hexbytes(obj["tokenizer_sha256"], f"{what}.tokenizer_sha256", 32)
    get_int(obj, "tokenizer_bytes", what, 1, MAX_TOKENIZER_BYTES)
    tb = get_field(obj, "text_bytes", dict, f"{what}")
    exact_keys(tb, {"train", "eval"} | ({"sealed"} if sealed else set()), f"{what}.text_bytes")
    get_int(tb, "train", f"{what}.text_bytes", 0, 2**62)
    get_int(tb, "eval", f"{what}.text_bytes", 0, 2**62)
    if sealed:
        xs = get_field(tb, "sealed", list, f"{what}.text_bytes")
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**62 for x in xs):
            raise MalformedInput(f"{what}.text_bytes.sealed: expected non-negative integers")
    return w


def manifest_width(manifest: dict) -> int:
    """Bytes per token id of a parsed manifest (1 for a byte dataset)."""
    return int(manifest["tokens"]["width"]) if "tokens" in manifest else 1


def parse_manifest(obj: Any, what: str) -> dict:
    """Check every manifest field and its consistency before anything trusts it."""
    version = get_int(obj, "version", what)
    if version not in (DATA_FORMAT_VERSION, SEALED_FORMAT_VERSION):
        raise MalformedInput(f"{what}: manifest version {version} is neither {DATA_FORMAT_VERSION} nor "
                             f"{SEALED_FORMAT_VERSION}")
    sealed = version == SEALED_FORMAT_VERSION
    exact_keys(obj, _MANIFEST_KEYS | ({"sealed"} if sealed else set()) | ({"tokens"} if "tokens" in obj else set()),
               what)
    w = _parse_tokens(obj["tokens"], sealed, f"{what}.tokens") if "tokens" in obj else 1
    if sealed:
        s_obj = Sealed.from_obj(obj["sealed"], f"{what}.sealed", w)
        if w > 1 and len(obj["tokens"]["text_bytes"]["sealed"]) != s_obj.n:
            raise MalformedInput(f"{what}.tokens.text_bytes.sealed: one count per sealed shard ({s_obj.n})")
    n = get_int(obj, "n_bytes", what, 1, 2**62)
    s = get_int(obj, "shard_size", what, 1, MAX_SHARD_SIZE)
    if n % w or s % w:
        raise MalformedInput(f"{what}: n_bytes {n} and shard_size {s} must be multiples of the token width {w}")
    if get_int(obj, "n_shards", what) != -(-n // s):
        raise MalformedInput(f"{what}: n_shards does not match n_bytes and shard_size")
    hexbytes(obj["data_root"], f"{what}.data_root", 32)
    train, ev = _pair(obj, "train", what), _pair(obj, "eval", what)
    e = ev[0]
    if not (train == (0, e) and ev == (e, n) and 0 < e < n and e % s == 0):
        raise MalformedInput(f"{what}: train {list(train)} / eval {list(ev)} do not split [0, {n}) at a "
                             f"shard boundary")
    get_field(obj, "source", str, what)
    get_int(obj, "n_files", what)
    get_int(obj, "n_skipped", what)
    return obj


def read_packed(source: Path | bytes, verify: bool) -> Dataset:
    """Open a packed file (or its bytes): check magic, version, sizes and bounds; memmap the tokens."""
    what = "data file" if isinstance(source, bytes) else f"data file '{source}'"
    hint = "make one with `pogo data pack PATH... --out FILE`"
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as f:
            size = len(source) if isinstance(source, bytes) else os.fstat(f.fileno()).st_size
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                raise MalformedInput(f"{what} is truncated or not a pogodata file ({size} bytes); {hint}")
            magic, version, mlen = _HEADER.unpack(head)
            if magic != MAGIC:
                raise MalformedInput(f"{what} is not a pogodata file (bad magic); {hint}")
            if version not in (DATA_FORMAT_VERSION, SEALED_FORMAT_VERSION):
                raise MalformedInput(f"{what} has pogodata format version {version}; this pogo reads versions "
                                     f"{DATA_FORMAT_VERSION} and {SEALED_FORMAT_VERSION}; repack it with "
                                     "`pogo data pack`")
            if mlen > MAX_MANIFEST_BYTES:
                raise MalformedInput(f"{what}: manifest length {mlen} exceeds {MAX_MANIFEST_BYTES}")
            offset = _data_offset(mlen)
            if size < offset:
                raise MalformedInput(f"{what} is truncated: {size} bytes, the header alone needs {offset}")
            blob = f.read(mlen)
            pad = f.read(offset - _HEADER.size - mlen)
    except FileNotFoundError:
        raise UserError(f"{what} not found; {hint}") from None
    except IsADirectoryError:
        raise UserError(f"{what} is a directory; pass the packed file made by `pogo data pack`") from None
    except OSError as e:
        raise UserError(f"cannot read {what}: {e.strerror}") from None
    obj = parse_canonical(blob, f"{what} manifest")
    if canonical(obj) != blob:
        raise MalformedInput(f"{what}: manifest is not in canonical encoding")
    if pad.count(0) != len(pad):
        raise MalformedInput(f"{what}: nonzero bytes in the header padding")
    manifest = parse_manifest(obj, f"{what} manifest")
    if manifest["version"] != version:
        raise MalformedInput(f"{what}: the file says format version {version}, its manifest {manifest['version']}")
    root = bytes.fromhex(manifest["data_root"])
    train, ev = _pair(manifest, "train", what), _pair(manifest, "eval", what)
    n = manifest["n_bytes"]
    sealed = sealed_of(manifest)
    extra = 0 if sealed is None else sealed.stored_bytes
    info = manifest.get("tokens")
    w, n_tok = manifest_width(manifest), (0 if info is None else info["tokenizer_bytes"])
    if size != offset + n + extra + n_tok:
        state = "truncated" if size < offset + n + extra + n_tok else "longer than its manifest says"
        raise MalformedInput(f"{what} is {state}: {size} bytes, expected {offset + n + extra + n_tok}")
    ciphers, tokenizer, dt = None, None, token_dtype(w)
    if isinstance(source, bytes):
        tokens, path = np.frombuffer(source, dtype=dt, count=n // w, offset=offset), Path("<bytes>")
        if sealed is not None:
            ciphers = np.frombuffer(source, dtype=np.uint8, count=extra, offset=offset + n).reshape(sealed.n, -1)
        if info is not None:
            tokenizer = source[offset + n + extra:]
    else:
        tokens, path = np.memmap(source, dtype=dt, mode="r", offset=offset, shape=(n // w,)), Path(source)
        if sealed is not None:
            ciphers = np.memmap(source, dtype=np.uint8, mode="r", offset=offset + n,
                                shape=(sealed.n, extra // sealed.n))
        if info is not None:
            with open(source, "rb") as f:
                f.seek(offset + n + extra)
                tokenizer = f.read(n_tok)
    if info is not None and hashlib.sha256(tokenizer).hexdigest() != info["tokenizer_sha256"]:
        raise MalformedInput(f"{what} is corrupt: its tokenizer file does not hash to the manifest's tokenizer_sha256")
    ds = Dataset(tokens=tokens, manifest=manifest, path=path, data_root=root,
                 train_range=(train[0] // w, train[1] // w), eval_range=(ev[0] // w, ev[1] // w), sealed=sealed,
                 ciphers=ciphers, tokenizer=tokenizer)
    if verify:
        got = compute_data_root(tokens, manifest["shard_size"])
        if got != root:
            raise MalformedInput(f"{what} is corrupt: its tokens hash to data_root {got.hex()}, the manifest "
                                 f"says {root.hex()}; repack or re-download it")
        check_ciphers(ds, what)
    return ds


def check_ciphers(ds: Dataset, what: str) -> None:
    """Every stored ciphertext hashes to the manifest's commitment (one pass over the sealed bytes)."""
    if ds.sealed is None:
        return
    for i in range(ds.sealed.n):
        try:
            ds.sealed.check_cipher(i, ds.cipher(i))
        except MalformedInput as e:
            raise MalformedInput(f"{what} is corrupt: {e}") from None


def manifest_hash(manifest: dict) -> bytes:
    """SHA-256 of the canonical manifest: pins n_bytes and the split, which data_root alone does not."""
    return hashlib.sha256(canonical(manifest)).digest()


def verify_against(ds: Dataset, data_root: bytes, expected_manifest_hash: bytes, what: str) -> None:
    """Recompute the file's data_root and manifest hash and compare them with the recorded ones."""
    if ds.manifest_hash != expected_manifest_hash:
        raise MalformedInput(f"{what}: manifest hash {ds.manifest_hash.hex()[:16]}... is not the recorded "
                             f"{expected_manifest_hash.hex()[:16]}...")
    got = compute_data_root(ds.tokens, ds.shard_size)
    if got != data_root:
        raise MalformedInput(f"{what}: tokens hash to data_root {got.hex()[:16]}..., the chain recorded "
                             f"{data_root.hex()[:16]}...")
    check_ciphers(ds, what)


def sealed_of(manifest: dict) -> Sealed | None:
    """The manifest's sealed shards, with its token width (None for a version 1, public-only dataset)."""
    return Sealed.from_obj(manifest["sealed"], "sealed", manifest_width(manifest)) if "sealed" in manifest else None


def check_chain_dataset(manifest: dict, seq_len: int, m_windows: int, what: str,
                        vocab_size: int | None = None) -> None:
    """A v3 chain judges rounds on sealed shards: refuse (one line, with the fix) a dataset without them or
    whose shards hold fewer than ``m_windows`` windows of ``seq_len``; with ``vocab_size`` (the chain
    model's), also one whose token ids would not fit the model's embedding."""
    if vocab_size is not None:
        v = BYTE_VOCAB if "tokens" not in manifest else manifest["tokens"]["vocab_size"]
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < v:
            raise MalformedInput(f"{what} has {v} token ids, the chain's model embeds {vocab_size!r}: pack the data "
                                 f"with the chain's tokenizer")
    s = sealed_of(manifest)
    if s is None:
        raise MalformedInput(f"{what} has no sealed evaluation shards, and a v3 chain judges every round on one: "
                             "seal it with `pogo data seal FILE --out SEALED --sealed-eval N --keys-out KEYS` "
                             "(or pack with --sealed-eval) and give KEYS to the beacon (`pogo beacon serve "
                             "--eval-keys KEYS`)")
    if s.n_windows(seq_len) < m_windows:
        raise MalformedInput(f"{what}: a sealed shard of {s.shard_bytes} bytes holds {s.n_windows(seq_len)} "
                             f"windows of {seq_len} tokens, the chain evaluates {m_windows}: reseal with "
                             f"--sealed-bytes {(m_windows * seq_len + 1) * s.width} or more")
