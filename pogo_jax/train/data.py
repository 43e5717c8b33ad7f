"""Byte-level datasets: the packed ``.pogodata`` file, its ``data_root``, train batches, eval windows.

Tokens are bytes (vocab 256), so a dataset is one uint8 stream and nothing is downloaded at run time.
The embedded default corpus is the source of the running interpreter's standard library: every
``*.py`` below ``sysconfig.get_paths()["stdlib"]`` (skipping ``site-packages``, ``dist-packages`` and
``__pycache__``), ordered by relative POSIX path compared as UTF-8 bytes, concatenated as raw bytes
with no separator. It is built once and cached in ``$POGO_CACHE_DIR`` (default ``~/.cache/pogo-jax``)
as ``stdlib-<python version>.pogodata``. Different Python builds give different corpora and roots,
which is why ``check_data_root`` exists and why a chain can name a packed file instead.

The byte rules (packed format, manifest, ``data_root``, split) live in ``pogo_jax.spec.dataset``.

This module never imports jax.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import secrets
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pogo_jax.errors import UserError
from pogo_jax.spec import sealed as sealed_shards
from pogo_jax.spec.dataset import (  # noqa: F401 - the byte rules, re-exported for callers
    DATA_FORMAT_VERSION,
    DEFAULT_EVAL_FRACTION,
    DEFAULT_SHARD_SIZE,
    MAX_SHARD_SIZE,
    Dataset,
    _check_out,
    _write_packed,
    compute_data_root,
    make_manifest,
    manifest_hash,
    read_packed,
    split_ranges,
)
from pogo_jax.spec.encoding import hexbytes
from pogo_jax.spec.sealed import MAX_SEALED_BYTES, MAX_SEALED_SHARDS

if TYPE_CHECKING:
    from pogo_jax.config import DataConfig

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
DEFAULT_SEALED_BYTES = 65536  # a sealed shard: 511 windows of 128 tokens (small), 1023 of 64 (tiny)
Range = tuple[int, int]  # [start, end) byte offsets

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- root


# -------------------------------------------------------------------------------------- file format


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


@dataclass(frozen=True)
class SealSpec:
    """How many evaluation shards to seal (PROTOCOL 14), how large, and where their keys go."""

    n: int
    shard_bytes: int = DEFAULT_SEALED_BYTES
    keys_out: Path | None = None
    seed: bytes | None = None  # tests only: positions, keys and nonces from a seed (anyone with it can open them)

    def rand(self):  # noqa: ANN201 - callable(n) -> bytes
        return os.urandom if self.seed is None else sealed_shards.seeded_bytes(self.seed)

    def check(self) -> None:
        if not 1 <= self.n <= MAX_SEALED_SHARDS:
            raise UserError(f"--sealed-eval must be in [1, {MAX_SEALED_SHARDS}], got {self.n}")
        if not 2 <= self.shard_bytes <= MAX_SEALED_BYTES:
            raise UserError(f"--sealed-bytes must be in [2, {MAX_SEALED_BYTES}], got {self.shard_bytes}")
        if self.keys_out is None:
            raise UserError("sealing needs --keys-out FILE: the shard keys go to the beacon service and nobody else")
        if Path(self.keys_out).expanduser().exists():
            raise UserError(f"'{self.keys_out}' exists; keys files are never overwritten (choose another --keys-out)")
        _check_out(Path(self.keys_out))


def carve_sealed(arr: np.ndarray, spec: SealSpec) -> tuple[np.ndarray, list[bytes]]:
    """Take ``spec.n`` shards of ``spec.shard_bytes`` out of the stream at secret random aligned positions:
    the rest (in order) is the public stream, so the sealed text comes from the same corpus as the training
    text and nothing public says where it was."""
    slots = arr.shape[0] // spec.shard_bytes
    if spec.n * 4 > slots:
        raise UserError(f"a stream of {arr.shape[0]} bytes has {slots} slots of {spec.shard_bytes} bytes: too few "
                        f"to seal {spec.n} and keep three quarters public (use fewer or smaller sealed shards)")
    draw = secrets.SystemRandom() if spec.seed is None else random.Random(spec.seed)
    picked = sorted(draw.sample(range(slots), spec.n))
    keep = np.ones(arr.shape[0], dtype=bool)
    plains = []
    for k in picked:
        lo = k * spec.shard_bytes
        plains.append(arr[lo:lo + spec.shard_bytes].tobytes())
        keep[lo:lo + spec.shard_bytes] = False
    return arr[keep], plains


def _build(tokens: bytes | bytearray | np.ndarray, shard_size: int, eval_fraction: float, source: str, n_files: int,
           n_skipped: int, out: Path, seal_spec: SealSpec | None = None) -> Dataset:
    _check_split_args(shard_size, eval_fraction)
    if len(tokens) == 0:
        raise UserError(f"the dataset is empty ({source}); give non-empty text files")
    arr = np.frombuffer(tokens, dtype=np.uint8) if not isinstance(tokens, np.ndarray) else tokens
    sealed, ciphers, keys = None, [], []
    if seal_spec is not None:
        seal_spec.check()
        arr, plains = carve_sealed(arr, seal_spec)
        sealed, ciphers, keys = sealed_shards.seal(plains, seal_spec.shard_bytes, seal_spec.rand())
    train, ev = split_ranges(arr.shape[0], shard_size, eval_fraction)
    root = compute_data_root(arr, shard_size)
    manifest = make_manifest(arr.shape[0], shard_size, root, train, ev, source, n_files, n_skipped, sealed)
    _write_packed(out, manifest, arr, ciphers)
    if seal_spec is not None:
        try:
            sealed_shards.write_keys(seal_spec.keys_out, manifest_hash(manifest), keys)
        except BaseException:
            Path(out).unlink(missing_ok=True)  # a sealed file whose keys are lost can never be judged on
            raise
    return read_packed(out, verify=False)


def seal_dataset(src: str | Path, out: str | Path, spec: SealSpec) -> Dataset:
    """A sealed copy of a public (version 1) dataset: same split rules, some of its text sealed."""
    ds = read_packed(Path(src).expanduser(), verify=True)
    if ds.sealed is not None:
        raise UserError(f"'{src}' is already sealed ({ds.sealed.n} shards)")
    n, ev = ds.n_bytes, ds.eval_range
    frac = (ev[1] - ev[0]) / n
    return _build(np.asarray(ds.tokens), ds.shard_size, min(max(frac, 1e-6), 0.5), ds.source, ds.manifest["n_files"],
                  ds.manifest["n_skipped"], Path(out), spec)


def pack(paths: Sequence[str | Path], out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
         eval_fraction: float = DEFAULT_EVAL_FRACTION, seal_spec: SealSpec | None = None) -> Dataset:
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
    if seal_spec is not None:
        seal_spec.check()
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
    return _build(buf, shard_size, eval_fraction, f"packed: {n_files} {noun}", n_files, n_skipped, Path(out),
                  seal_spec)


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
            ds = read_packed(path, verify=True)  # ~30 MB of SHA-256: cheap, and catches bit rot
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
    return read_packed(Path(data_cfg.path).expanduser(), verify)


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
