"""Datasets: the packed ``.pogodata`` file, its ``data_root``, train batches, eval windows.

The dataset chooses the tokens, never the miner: a byte dataset (vocab 256, one uint8 stream; the default
and the embedded corpus) or a tokenized one (``pack(..., tokenizer=tok.json)``: byte-level BPE ids stored
as uint16 or uint32, the tokenizer file inside; pogo_jax.data.tokenizer). Batches and windows are ids of
the dataset's width. Nothing is downloaded at run time.

The embedded default corpus is the source of the running interpreter's standard library: every ``*.py`` below
``sysconfig.get_paths()["stdlib"]`` (skipping ``site-packages``, ``dist-packages`` and ``__pycache__``),
ordered by relative POSIX path compared as UTF-8 bytes, concatenated as raw bytes with no separator. It is
built once and cached in ``$POGO_CACHE_DIR`` (default ``~/.cache/pogo-jax``) as ``stdlib-<python
version>.pogodata``. Different Python builds give different corpora and roots, which is why
``check_data_root`` exists and why a chain can name a packed file instead.

The byte rules (packed format, manifest, ``data_root``, split) live in ``pogo_jax.spec.dataset``.

This module never imports jax.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import secrets
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pogo_jax.data import importers
from pogo_jax.data.tokenizer import Encoder, TokenInfo, load_tokenizer, parse_tokenizer
from pogo_jax.errors import UserError
from pogo_jax.spec import sealed as sealed_shards
from pogo_jax.spec.dataset import (  # noqa: F401 - the byte rules, re-exported for callers
    DATA_FORMAT_VERSION,
    DEFAULT_EVAL_FRACTION,
    DEFAULT_SHARD_SIZE,
    MAX_SHARD_SIZE,
    TOKENIZER_KIND,
    Dataset,
    _check_out,
    _write_packed,
    compute_data_root,
    make_manifest,
    manifest_hash,
    read_packed,
    split_ranges,
    stream_bytes,
    width_for,
)
from pogo_jax.spec.encoding import hexbytes
from pogo_jax.spec.sealed import MAX_SEALED_BYTES, MAX_SEALED_SHARDS

if TYPE_CHECKING:
    from pogo_jax.config import DataConfig

DEFAULT_SEALED_BYTES = 65536  # a sealed shard: 511 windows of 128 tokens (small), 1023 of 64 (tiny)
Range = tuple[int, int]  # [start, end) token offsets

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- root


# -------------------------------------------------------------------------------------- file format


# ------------------------------------------------------------------------------------------- gather


_walk = importers.walk  # the embedded corpus and the importers share one file order


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


def carve_sealed(arr: np.ndarray, spec: SealSpec, width: int = 1) -> tuple[np.ndarray, list[bytes]]:
    """Take ``spec.n`` shards of ``spec.shard_bytes`` (``shard_bytes / width`` tokens) out of the stream at
    secret random aligned positions: the rest (in order) is the public stream, so the sealed text comes from
    the same corpus as the training text and nothing public says where it was. Plaintexts are the shards'
    stored (little-endian) bytes."""
    size = spec.shard_bytes // width
    slots = arr.shape[0] // size
    if spec.n * 4 > slots:
        raise UserError(f"a stream of {arr.shape[0]} tokens has {slots} slots of {size} tokens: too few "
                        f"to seal {spec.n} and keep three quarters public (use fewer or smaller sealed shards)")
    draw = secrets.SystemRandom() if spec.seed is None else random.Random(spec.seed)
    picked = sorted(draw.sample(range(slots), spec.n))
    keep = np.ones(arr.shape[0], dtype=bool)
    plains = []
    for k in picked:
        lo = k * size
        plains.append(stream_bytes(arr[lo:lo + size]).tobytes())
        keep[lo:lo + size] = False
    return arr[keep], plains


def _tokens_section(arr: np.ndarray, tok: TokenInfo, train_end: int, plains: Sequence[bytes]) -> dict:
    """The manifest's ``tokens``: tokenizer hash and size, width, and the text bytes of each split/shard."""
    dt = sealed_shards.token_dtype(width_for(tok.vocab_size))
    tb = {"train": tok.text_bytes(arr[:train_end]), "eval": tok.text_bytes(arr[train_end:])}
    if plains:
        tb["sealed"] = [tok.text_bytes(np.frombuffer(p, dtype=dt)) for p in plains]
    return {"tokenizer": TOKENIZER_KIND, "vocab_size": tok.vocab_size, "width": width_for(tok.vocab_size),
            "tokenizer_sha256": tok.sha256.hex(), "tokenizer_bytes": len(tok.blob), "text_bytes": tb}


def _build(tokens: bytes | bytearray | np.ndarray, shard_size: int, eval_fraction: float, source: str, n_files: int,
           n_skipped: int, out: Path, seal_spec: SealSpec | None = None, tok: TokenInfo | None = None) -> Dataset:
    """Write a dataset from its whole token stream: bytes (``tok`` None) or ids of ``tok``'s vocabulary."""
    _check_split_args(shard_size, eval_fraction)
    if len(tokens) == 0:
        raise UserError(f"the dataset is empty ({source}); give non-empty text files")
    arr = np.frombuffer(tokens, dtype=np.uint8) if not isinstance(tokens, np.ndarray) else tokens
    width = 1
    if tok is not None:
        width = width_for(tok.vocab_size)
        if shard_size % width or (seal_spec is not None and seal_spec.shard_bytes % width):
            raise UserError(f"--shard-size and --sealed-bytes must be multiples of the token width: {width} bytes "
                            f"for a vocabulary of {tok.vocab_size} ids")
        if int(arr.max()) >= tok.vocab_size or (arr.dtype.kind == "i" and int(arr.min()) < 0):
            raise UserError(f"token ids outside the tokenizer's [0, {tok.vocab_size})")
        arr = np.asarray(arr, dtype=sealed_shards.token_dtype(width))
    elif arr.dtype != np.uint8:
        raise UserError(f"a byte dataset holds uint8, got {arr.dtype} (token ids need a tokenizer)")
    sealed, ciphers, keys, plains = None, [], [], []
    if seal_spec is not None:
        seal_spec.check()
        arr, plains = carve_sealed(arr, seal_spec, width)
        sealed, ciphers, keys = sealed_shards.seal(plains, seal_spec.shard_bytes, seal_spec.rand(), width)
    n_bytes = arr.shape[0] * width
    train, ev = split_ranges(n_bytes, shard_size, eval_fraction)
    root = compute_data_root(arr, shard_size)
    section = None if tok is None else _tokens_section(arr, tok, train[1] // width, plains)
    manifest = make_manifest(n_bytes, shard_size, root, train, ev, source, n_files, n_skipped, sealed, section)
    _write_packed(out, manifest, arr, ciphers, b"" if tok is None else tok.blob)
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
    n, ev = ds.n_tokens, ds.eval_range
    frac = (ev[1] - ev[0]) / n
    tok = None if ds.tokenizer is None else parse_tokenizer(ds.tokenizer, f"the tokenizer inside '{src}'")
    return _build(np.asarray(ds.tokens), ds.shard_size, min(max(frac, 1e-6), 0.5), ds.source, ds.manifest["n_files"],
                  ds.manifest["n_skipped"], Path(out), spec, tok)


class _Spool:
    """The token stream on disk while it is made (a temp file beside the output): the corpus is read one
    file or record batch at a time and never held whole in memory."""

    def __init__(self, out: Path, dtype: np.dtype) -> None:
        try:
            fd, self.path = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".stream")
        except OSError as e:
            raise UserError(f"cannot write beside '{out}': {e.strerror}") from None
        self.f, self.dtype, self.n = os.fdopen(fd, "wb"), np.dtype(dtype), 0

    def add(self, ids: np.ndarray) -> None:
        self.f.write(memoryview(np.ascontiguousarray(ids, dtype=self.dtype)))
        self.n += int(ids.shape[0])

    def array(self) -> np.ndarray:
        self.f.close()
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n,)) if self.n else \
            np.zeros(0, self.dtype)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _log_skip(path: Path, why: str) -> None:
    log.warning("skipped %s: %s", path, why)


_ENCODE_CHARS = 1 << 23  # text buffered per tokenizer call (about 8 MB)


def _counting(entries: Sequence, on_progress: Callable[[int, int], None] | None) -> Callable[[int], None]:
    """A reader's progress callback: bytes read so far, out of the inputs' total, passed to ``on_progress``."""
    total, done = sum(e.size for e in entries), [0]

    def progress(n: int) -> None:
        done[0] += n
        if on_progress is not None:
            on_progress(done[0], total)

    return progress


def pack(paths: Sequence[str | Path], out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
         eval_fraction: float = DEFAULT_EVAL_FRACTION, seal_spec: SealSpec | None = None,
         tokenizer: str | Path | None = None, text_field: str = "text",
         on_skip: Callable[[Path, str], None] | None = None,
         on_progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Pack a corpus into one ``.pogodata`` file: bytes, or with ``tokenizer`` (a byte-level BPE file) ids.

    Inputs and their order are pogo_jax.data.importers's (text files and directories, JSONL, Parquet, and
    with a tokenizer nanoGPT ``.bin`` ids); documents are concatenated with no separator. Files that are
    binary, undecodable or unreadable inside a directory are skipped, counted and reported through
    ``on_skip`` (default: a log warning); a named path that is missing or unreadable is an error.
    ``on_progress(done, total)`` counts input bytes. Nothing is written unless the whole pack succeeds.
    """
    if not paths:
        raise UserError("nothing to pack: give at least one file or directory")
    _check_split_args(shard_size, eval_fraction)
    out = Path(out).expanduser()
    _check_out(out)
    if seal_spec is not None:
        seal_spec.check()
    tok = None if tokenizer is None else load_tokenizer(tokenizer)
    encoder = None if tok is None else Encoder(tok, f"tokenizer file '{tokenizer}'")
    entries = importers.collect(paths)
    progress = _counting(entries, on_progress)
    reader = importers.Reader(entries, text_field, None if tok is None else tok.vocab_size, on_skip or _log_skip,
                              progress)
    spool = _Spool(out, np.uint8 if tok is None else sealed_shards.token_dtype(width_for(tok.vocab_size)))
    try:
        pending: list[str] = []
        chars = 0
        for item in reader:
            if isinstance(item, np.ndarray):  # ids from a .bin: what came before keeps its order
                spool.add(encoder.encode(pending))
                pending, chars = [], 0
                spool.add(item)
            elif encoder is None:
                spool.add(np.frombuffer(item.encode("utf-8"), dtype=np.uint8))
            else:
                pending.append(item)
                chars += len(item)
                if chars >= _ENCODE_CHARS:
                    spool.add(encoder.encode(pending))
                    pending, chars = [], 0
        if encoder is not None:
            spool.add(encoder.encode(pending))
        n_files, n_skipped = reader.counts.files, reader.counts.skipped
        if n_files == 0:
            raise UserError(f"no readable text files in {', '.join(map(str, paths))} ({n_skipped} skipped: binary, "
                            "undecodable, unreadable or without the text field)")
        noun = "file" if n_files == 1 else "files"
        return _build(spool.array(), shard_size, eval_fraction, f"packed: {n_files} {noun}", n_files, n_skipped, out,
                      seal_spec, tok)
    finally:
        spool.close()


def train_tokenizer(paths: Sequence[str | Path], vocab: int, out: str | Path, text_field: str = "text",
                    on_skip: Callable[[Path, str], None] | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> TokenInfo:
    """Train a byte-level BPE on a corpus read as ``pack`` reads it (``.bin`` id files are skipped)."""
    from pogo_jax.data.tokenizer import train_tokenizer as train

    entries = importers.collect(paths)
    reader = importers.Reader(entries, text_field, None, on_skip or _log_skip, _counting(entries, on_progress),
                              allow_ids=False)
    return train(iter(reader), vocab, out)


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
        raise UserError(f"seq_len {seq_len} is too large for the train split of {hi - lo} tokens "
                        f"({ds.source}); lower model.seq_len or use a larger dataset")
    rng = np.random.Generator(np.random.Philox(key=np.array([seed, step], dtype=np.uint64)))
    return rng.integers(lo, last, size=batch_size, endpoint=True, dtype=np.int64)


def train_batch(ds: Dataset, seed: int, step: int, batch_size: int, seq_len: int) -> np.ndarray:
    """(batch_size, seq_len + 1) token ids (the dataset's dtype) from the train split; a pure function of
    (seed, step)."""
    return _gather(ds, train_starts(ds, seed, step, batch_size, seq_len), seq_len)


def n_eval_windows(ds: Dataset, seq_len: int) -> int:
    """How many eval windows fit: window i covers [eval_start + i*seq_len, ... + seq_len + 1)."""
    _check_sizes(seq_len)
    lo, hi = ds.eval_range
    n = (hi - lo - 1) // seq_len if hi - lo >= seq_len + 1 else 0
    if n == 0:
        raise UserError(f"seq_len {seq_len} is too large for the eval split of {hi - lo} tokens "
                        f"({ds.source}); lower model.seq_len or raise the eval fraction")
    return n


def eval_windows(ds: Dataset, indices: Iterable[int], seq_len: int) -> np.ndarray:
    """(len(indices), seq_len + 1) token ids: eval window i starts at eval_start + i * seq_len."""
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
