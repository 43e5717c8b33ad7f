"""Byte-level datasets: the packed ``.pogodata`` file, its ``data_root``, train batches, eval windows.

Tokens are bytes (vocab 256), so a dataset is one uint8 stream and nothing is downloaded at run time.
The embedded default corpus is the source of the running interpreter's standard library: every
``*.py`` below ``sysconfig.get_paths()["stdlib"]`` (skipping ``site-packages``, ``dist-packages`` and
``__pycache__``), ordered by relative POSIX path compared as UTF-8 bytes, concatenated as raw bytes
with no separator. It is built once and cached in ``$POGO_CACHE_DIR`` (default ``~/.cache/pogo-jax``)
as ``stdlib-<python version>.pogodata``. Different Python builds give different corpora and roots,
which is why ``check_data_root`` exists and why a chain can name a packed file instead.

Packed format (version 1; ``_write_packed`` is the only writer, ``_read_packed`` the only reader)::

    offset 0   8 bytes   magic b"POGODATA"
    offset 8   uint32 LE format version (DATA_FORMAT_VERSION)
    offset 12  uint64 LE manifest length m (<= 1 MiB)
    offset 20  m bytes   manifest, canonical JSON (pogo_jax.spec.encoding.canonical)
               zero bytes up to the next multiple of 4096 (the data offset)
    data       n_bytes token bytes; the file ends exactly there

Manifest keys (exactly these): ``version``, ``n_bytes``, ``shard_size``, ``n_shards``,
``data_root`` (64 lowercase hex digits), ``train`` [start, end), ``eval`` [start, end), ``source``,
``n_files``, ``n_skipped``. No timestamps or absolute paths, so packing the same inputs twice gives
the same bytes.

``data_root`` (PROTOCOL section 6): the stream is cut into ``ceil(n_bytes / shard_size)`` shards of
``shard_size`` bytes, the last one zero-padded; leaf ``i`` = shard ``i`` hashed with the
``POGO-DATA-v1`` header; the tree is the RFC 9162 tree of ``pogo_jax.spec.merkle``.

Split rule: ``eval_start = floor((n_bytes - ceil(eval_fraction * n_bytes)) / shard_size) * shard_size``;
train is ``[0, eval_start)``, eval/challenge is ``[eval_start, n_bytes)``. The eval split starts on a
shard boundary (a verifier can hold and prove just those shards) and holds at least ``eval_fraction``
of the bytes; a dataset whose train split would be empty is refused (use a smaller shard size).

This module never imports jax.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import platform
import struct
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pogo_jax.errors import MalformedInput, UserError
from pogo_jax.spec import merkle as merkle_host
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, get_int, hexbytes, parse_canonical

if TYPE_CHECKING:
    from pogo_jax.config import DataConfig

DATA_FORMAT_VERSION = 1
MAGIC = b"POGODATA"
_HEADER = struct.Struct("<8sIQ")  # magic, version, manifest length
ALIGN = 4096
MAX_MANIFEST_BYTES = 1 << 20
MAX_SHARD_SIZE = 1 << 30
DEFAULT_SHARD_SIZE = 65536
DEFAULT_EVAL_FRACTION = 0.05
_MANIFEST_KEYS = {"version", "n_bytes", "shard_size", "n_shards", "data_root", "train", "eval", "source",
                  "n_files", "n_skipped"}
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
Range = tuple[int, int]  # [start, end) byte offsets

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset. ``tokens`` is a read-only memmap of the whole stream (train + eval)."""

    tokens: np.ndarray
    manifest: dict
    path: Path
    data_root: bytes
    train_range: Range
    eval_range: Range

    @property
    def n_bytes(self) -> int:
        return int(self.tokens.shape[0])

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


# ---------------------------------------------------------------------------------------------- root


def compute_data_root(tokens: np.ndarray, shard_size: int) -> bytes:
    """Merkle root over ``shard_size``-byte shards (last one zero-padded), tag POGO-DATA-v1."""
    arr = np.ascontiguousarray(tokens).reshape(-1)
    if arr.dtype != np.uint8:
        raise ValueError(f"tokens must be uint8, got {arr.dtype}")
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


# -------------------------------------------------------------------------------------- file format


def _manifest(n_bytes: int, shard_size: int, root: bytes, train: tuple[int, int], ev: tuple[int, int],
              source: str, n_files: int, n_skipped: int) -> dict[str, Any]:
    return {"version": DATA_FORMAT_VERSION, "n_bytes": n_bytes, "shard_size": shard_size,
            "n_shards": -(-n_bytes // shard_size), "data_root": root.hex(), "train": list(train),
            "eval": list(ev), "source": source, "n_files": n_files, "n_skipped": n_skipped}


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


def _write_packed(out: Path, manifest: dict[str, Any], tokens: np.ndarray) -> None:
    """Write the packed file atomically: temp file in the same directory, fsync, ``os.replace``."""
    blob = canonical(manifest)
    if len(blob) > MAX_MANIFEST_BYTES:
        raise UserError(f"dataset manifest is {len(blob)} bytes, above the {MAX_MANIFEST_BYTES} limit")
    head = _HEADER.pack(MAGIC, DATA_FORMAT_VERSION, len(blob)) + blob
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
            f.write(memoryview(np.ascontiguousarray(tokens, dtype=np.uint8)))
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


def _parse_manifest(obj: Any, what: str) -> tuple[dict, bytes, tuple[int, int], tuple[int, int]]:
    """Check every manifest field and its consistency before anything trusts it."""
    exact_keys(obj, _MANIFEST_KEYS, what)
    if get_int(obj, "version", what) != DATA_FORMAT_VERSION:
        raise MalformedInput(f"{what}: manifest version {obj['version']} != {DATA_FORMAT_VERSION}")
    n = get_int(obj, "n_bytes", what, 1, 2**62)
    s = get_int(obj, "shard_size", what, 1, MAX_SHARD_SIZE)
    if get_int(obj, "n_shards", what) != -(-n // s):
        raise MalformedInput(f"{what}: n_shards does not match n_bytes and shard_size")
    root = hexbytes(obj["data_root"], f"{what}.data_root", 32)
    train, ev = _pair(obj, "train", what), _pair(obj, "eval", what)
    e = ev[0]
    if not (train == (0, e) and ev == (e, n) and 0 < e < n and e % s == 0):
        raise MalformedInput(f"{what}: train {list(train)} / eval {list(ev)} do not split [0, {n}) at a "
                             f"shard boundary")
    get_field(obj, "source", str, what)
    get_int(obj, "n_files", what)
    get_int(obj, "n_skipped", what)
    return obj, root, train, ev


def _read_packed(path: Path, verify: bool) -> Dataset:
    """Open a packed file: check magic, version, sizes and bounds; memmap the tokens."""
    what = f"data file '{path}'"
    hint = "make one with `pogo data pack PATH... --out FILE`"
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                raise MalformedInput(f"{what} is truncated or not a pogodata file ({size} bytes); {hint}")
            magic, version, mlen = _HEADER.unpack(head)
            if magic != MAGIC:
                raise MalformedInput(f"{what} is not a pogodata file (bad magic); {hint}")
            if version != DATA_FORMAT_VERSION:
                raise MalformedInput(f"{what} has pogodata format version {version}; this pogo reads version "
                                     f"{DATA_FORMAT_VERSION}; repack it with `pogo data pack`")
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
    manifest, root, train, ev = _parse_manifest(obj, f"{what} manifest")
    n = manifest["n_bytes"]
    if size != offset + n:
        state = "truncated" if size < offset + n else "longer than its manifest says"
        raise MalformedInput(f"{what} is {state}: {size} bytes, expected {offset + n}")
    tokens = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(n,))
    ds = Dataset(tokens=tokens, manifest=manifest, path=Path(path), data_root=root, train_range=train,
                 eval_range=ev)
    if verify:
        got = compute_data_root(tokens, manifest["shard_size"])
        if got != root:
            raise MalformedInput(f"{what} is corrupt: its tokens hash to data_root {got.hex()}, the manifest "
                                 f"says {root.hex()}; repack or re-download it")
    return ds


# ------------------------------------------------------------------------------------------- gather


def _sort_key(rel: str) -> bytes:
    return rel.encode("utf-8", "surrogateescape")


def _walk(root: Path, suffix: str | None, skip_hidden: bool) -> list[tuple[str, Path]]:
    """All files below ``root`` as (relative POSIX path, path), sorted by the path's UTF-8 bytes."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not (skip_hidden and d.startswith("."))]
        for name in filenames:
            if (suffix and not name.endswith(suffix)) or (skip_hidden and name.startswith(".")):
                continue
            p = Path(dirpath, name)
            found.append((p.relative_to(root).as_posix(), p))
    found.sort(key=lambda t: _sort_key(t[0]))
    return found


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_split_args(shard_size: int, eval_fraction: float) -> None:
    if not 0 < shard_size <= MAX_SHARD_SIZE:
        raise UserError(f"shard size must be in [1, {MAX_SHARD_SIZE}], got {shard_size}")
    if not 0.0 < eval_fraction < 1.0:
        raise UserError(f"eval fraction must be in (0, 1), got {eval_fraction}")


def _build(tokens: bytes | bytearray, shard_size: int, eval_fraction: float, source: str, n_files: int,
           n_skipped: int, out: Path) -> Dataset:
    _check_split_args(shard_size, eval_fraction)
    if len(tokens) == 0:
        raise UserError(f"the dataset is empty ({source}); give non-empty text files")
    arr = np.frombuffer(tokens, dtype=np.uint8)
    train, ev = split_ranges(arr.shape[0], shard_size, eval_fraction)
    root = compute_data_root(arr, shard_size)
    _write_packed(out, _manifest(arr.shape[0], shard_size, root, train, ev, source, n_files, n_skipped), arr)
    return _read_packed(out, verify=False)


def pack(paths: Sequence[str | Path], out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
         eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Dataset:
    """Pack text files and directories into one ``.pogodata`` file.

    Order: the arguments as given; each directory recursively by relative POSIX path (UTF-8 bytes),
    skipping hidden entries and ``__pycache__``/``site-packages``. A file is included once (first
    occurrence). Files with a NUL byte or invalid UTF-8 are skipped and counted; files inside a
    directory that cannot be read are skipped too, while a named path that is missing or unreadable
    is an error. Nothing is written unless the whole pack succeeds.
    """
    if not paths:
        raise UserError("nothing to pack: give at least one file or directory")
    _check_split_args(shard_size, eval_fraction)
    _check_out(Path(out))
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += [f for _, f in _walk(p, None, skip_hidden=True)]
        elif p.is_file():
            files.append(p)
        elif p.exists() or p.is_symlink():
            raise UserError(f"'{p}' is neither a regular file nor a directory")
        else:
            raise UserError(f"'{p}' does not exist; give text files or directories to pack")
    buf = bytearray()
    seen: set[Path] = set()
    n_files = n_skipped = 0
    for f in files:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            data = f.read_bytes()
        except OSError as e:
            if any(f == Path(q) for q in paths):
                raise UserError(f"cannot read '{f}': {e.strerror}") from None
            n_skipped += 1
            continue
        if not _is_text(data):
            n_skipped += 1
            continue
        buf += data
        n_files += 1
    if n_files == 0:
        raise UserError(f"no readable text files in {', '.join(map(str, paths))} "
                        f"({n_skipped} binary or undecodable skipped)")
    noun = "file" if n_files == 1 else "files"
    return _build(buf, shard_size, eval_fraction, f"packed: {n_files} {noun}", n_files, n_skipped, Path(out))


# ---------------------------------------------------------------------------------- embedded corpus


def cache_dir() -> Path:
    return Path(os.environ.get("POGO_CACHE_DIR") or "~/.cache/pogo-jax").expanduser()


def stdlib_files() -> list[tuple[str, Path]]:
    """The embedded corpus's files in order: (relative POSIX path, path) of every stdlib ``*.py``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return _walk(root, ".py", skip_hidden=False)


def stdlib_cache_path(shard_size: int = DEFAULT_SHARD_SIZE,
                      eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Path:
    """Cache file name: Python version, plus the split parameters when they are not the defaults."""
    name = f"stdlib-{platform.python_version()}"
    if (shard_size, eval_fraction) != (DEFAULT_SHARD_SIZE, DEFAULT_EVAL_FRACTION):
        name += f"-s{shard_size}-e{eval_fraction!r}"
    return cache_dir() / f"{name}.pogodata"


def build_stdlib(out: Path, shard_size: int = DEFAULT_SHARD_SIZE,
                 eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Dataset:
    """Build the embedded corpus (raw bytes of every stdlib ``*.py``) into ``out``."""
    buf = bytearray()
    n_files = 0
    for _, p in stdlib_files():
        try:
            buf += p.read_bytes()
        except OSError as e:
            raise UserError(f"cannot read standard-library file '{p}': {e.strerror}; pack a dataset with "
                            f"`pogo data pack` and pass it as data.path") from None
        n_files += 1
    source = f"python-stdlib {platform.python_version()} ({n_files} files)"
    return _build(buf, shard_size, eval_fraction, source, n_files, 0, out)


def _load_stdlib(shard_size: int, eval_fraction: float) -> Dataset:
    """Load the cached corpus; a missing, corrupt, truncated or mismatched cache is rebuilt."""
    path = stdlib_cache_path(shard_size, eval_fraction)
    if path.exists():
        try:
            ds = _read_packed(path, verify=True)  # ~30 MB of SHA-256: cheap, and catches bit rot
            want = split_ranges(ds.n_bytes, shard_size, eval_fraction)
            if ds.shard_size == shard_size and (ds.train_range, ds.eval_range) == want and \
                    ds.source.startswith(f"python-stdlib {platform.python_version()} "):
                return ds
            log.warning("data cache %s was built with other parameters; rebuilding", path)
        except UserError as e:
            log.warning("data cache unusable (%s); rebuilding", e)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the data cache directory '{path.parent}': {e.strerror}; "
                        f"set POGO_CACHE_DIR to a writable directory") from None
    return build_stdlib(path, shard_size, eval_fraction)


def load_dataset(data_cfg: DataConfig, verify: bool = False) -> Dataset:
    """``data_cfg.path == ""``: the embedded corpus (built and cached on first use); else a packed file.

    For a packed file its manifest is authoritative (``data_cfg.shard_size``/``eval_fraction`` only
    shape the embedded corpus). ``verify=True`` recomputes ``data_root`` and refuses a mismatch.
    """
    if data_cfg.path == "":
        return _load_stdlib(data_cfg.shard_size, data_cfg.eval_fraction)
    return _read_packed(Path(data_cfg.path).expanduser(), verify)


# ------------------------------------------------------------------------------------------ windows


def _check_sizes(seq_len: int, batch_size: int = 1) -> None:
    if seq_len <= 0 or batch_size <= 0:
        raise UserError(f"seq_len ({seq_len}) and batch size ({batch_size}) must be positive")


def _gather(ds: Dataset, starts: np.ndarray, seq_len: int) -> np.ndarray:
    base = ds.tokens.view(np.ndarray)  # plain array view: fancy indexing returns an ordinary ndarray
    return base[starts.astype(np.int64)[:, None] + np.arange(seq_len + 1, dtype=np.int64)[None, :]]


def train_starts(ds: Dataset, seed: int, step: int, batch_size: int, seq_len: int) -> np.ndarray:
    """Window starts of ``train_batch``: Philox keyed by (seed, step), uniform over the train split."""
    _check_sizes(seq_len, batch_size)
    if not (0 <= seed < 2**64 and 0 <= step < 2**64):
        raise UserError(f"seed ({seed}) and step ({step}) must be in [0, 2**64)")
    lo, hi = ds.train_range
    last = hi - (seq_len + 1)  # last start whose window stays inside the train split
    if last < lo:
        raise UserError(f"seq_len {seq_len} is too large for the train split of {hi - lo} bytes "
                        f"({ds.source}); lower model.seq_len or use a larger dataset")
    rng = np.random.Generator(np.random.Philox(key=np.array([seed, step], dtype=np.uint64)))
    return rng.integers(lo, last, size=batch_size, endpoint=True, dtype=np.int64)


def train_batch(ds: Dataset, seed: int, step: int, batch_size: int, seq_len: int) -> np.ndarray:
    """(batch_size, seq_len + 1) uint8 windows from the train split; a pure function of (seed, step)."""
    return _gather(ds, train_starts(ds, seed, step, batch_size, seq_len), seq_len)


def n_eval_windows(ds: Dataset, seq_len: int) -> int:
    """How many eval windows fit: window i covers [eval_start + i*seq_len, ... + seq_len + 1)."""
    _check_sizes(seq_len)
    lo, hi = ds.eval_range
    n = (hi - lo - 1) // seq_len if hi - lo >= seq_len + 1 else 0
    if n == 0:
        raise UserError(f"seq_len {seq_len} is too large for the eval split of {hi - lo} bytes "
                        f"({ds.source}); lower model.seq_len or raise the eval fraction")
    return n


def eval_windows(ds: Dataset, indices: Iterable[int], seq_len: int) -> np.ndarray:
    """(len(indices), seq_len + 1) uint8: eval window i starts at eval_start + i * seq_len."""
    n = n_eval_windows(ds, seq_len)
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise UserError(f"eval window index {bad[0]} outside [0, {n}) for seq_len {seq_len}")
    starts = ds.eval_range[0] + np.asarray(idx, dtype=np.int64) * seq_len
    return _gather(ds, starts, seq_len)


# ------------------------------------------------------------------------------------------- checks


def check_data_root(ds: Dataset, expected_hex: str, what: str) -> None:
    """Refuse, with one line naming both roots, a dataset that is not the one ``what`` committed to."""
    expected = hexbytes(str(expected_hex).lower(), f"expected data_root for {what}", 32)
    if expected != ds.data_root:
        raise UserError(
            f"data root mismatch for {what}: this machine's dataset ({ds.source}, {ds.path}) has root "
            f"{ds.data_root.hex()}, the chain expects {expected.hex()}; the embedded corpus depends on the "
            f"Python version: pack the chain's data with `pogo data pack` or pass --data FILE")


def file_sha256(path: str | Path) -> bytes:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (packed datasets, published updates)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()
