"""Corpus importers: the formats researchers keep, streamed one file (or one batch of records) at a time.

- a text file (any name not below): its UTF-8 text; one with a NUL byte or invalid UTF-8 is skipped;
- ``*.jsonl``: one JSON object per line, its string field ``text_field``; bad lines are counted and skipped;
- ``*.parquet``: column ``text_field`` (string), read in record batches through pyarrow (an optional
  dependency, imported only here: ``pip install 'pogo-jax[parquet]'``);
- ``*.bin`` named on the command line: nanoGPT's flat uint16 little-endian ids, which need the tokenizer
  that made them (every id below its vocabulary). Inside a directory a ``.bin`` is skipped as binary.

Order: the arguments as given; each directory recursively by relative POSIX path (UTF-8 bytes), skipping
hidden entries and ``__pycache__``/``site-packages``; a file is read once. Every skipped file or record
batch gets one line through ``on_skip`` saying why. A named path that is missing or unreadable, an odd-length
``.bin`` or an out-of-range id is an error. No jax; numpy, stdlib, pyarrow only when a Parquet file is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pogo_jax.errors import UserError

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_BIN_CHUNK = 1 << 20  # ids per read of a .bin
_BATCH_ROWS = 1024  # Parquet rows per batch
Item = str | np.ndarray  # a document's text, or a chunk of ids (from a .bin)
OnSkip = Callable[[Path, str], None]


def sort_key(rel: str) -> bytes:
    return rel.encode("utf-8", "surrogateescape")


def walk(root: Path, suffix: str | None, skip_hidden: bool) -> list[tuple[str, Path]]:
    """All files below ``root`` as (relative POSIX path, path), sorted by the path's UTF-8 bytes."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not (skip_hidden and d.startswith("."))]
        for name in filenames:
            if (suffix and not name.endswith(suffix)) or (skip_hidden and name.startswith(".")):
                continue
            p = Path(dirpath, name)
            found.append((p.relative_to(root).as_posix(), p))
    found.sort(key=lambda t: sort_key(t[0]))
    return found


def is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Entry:
    path: Path
    named: bool  # given on the command line (errors are fatal), not found inside a directory (skipped)

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def collect(paths: Sequence[str | Path]) -> list[Entry]:
    """The files to read, in order, each once."""
    if not paths:
        raise UserError("nothing to read: give at least one file or directory")
    out: list[Entry] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = [Entry(f, False) for _, f in walk(p, None, skip_hidden=True)]
        elif p.is_file():
            found = [Entry(p, True)]
        elif p.exists() or p.is_symlink():
            raise UserError(f"'{p}' is neither a regular file nor a directory")
        else:
            raise UserError(f"'{p}' does not exist; give text, .jsonl, .parquet or .bin files or directories")
        for e in found:
            key = e.path.resolve()
            if key not in seen:
                seen.add(key)
                out.append(e)
    return out


@dataclass
class Counts:
    files: int = 0  # files that gave at least one document
    skipped: int = 0  # files skipped whole


class Reader:
    """Streams the documents (or id chunks) of ``entries``; ``counts`` holds what was read and skipped."""

    def __init__(self, entries: Sequence[Entry], text_field: str = "text", vocab_size: int | None = None,
                 on_skip: OnSkip | None = None, on_progress: Callable[[int], None] | None = None,
                 allow_ids: bool = True) -> None:
        self.entries, self.field, self.vocab = list(entries), text_field, vocab_size
        self.on_skip = on_skip or (lambda p, why: None)
        self.on_progress = on_progress or (lambda n: None)
        self.allow_ids = allow_ids
        self.counts = Counts()

    def _skip(self, e: Entry, why: str) -> None:
        self.counts.skipped += 1
        self.on_skip(e.path, why)

    def __iter__(self) -> Iterator[Item]:
        for e in self.entries:
            name = e.path.name
            if name.endswith(".bin") and e.named:
                got = self._bin(e)
            elif name.endswith(".jsonl"):
                got = self._jsonl(e)
            elif name.endswith(".parquet"):
                got = self._parquet(e)
            else:
                got = self._text(e)
            n = 0
            for item in got:
                n += 1
                yield item
            if n:
                self.counts.files += 1
            self.on_progress(e.size)

    def _read(self, e: Entry) -> bytes | None:
        try:
            return e.path.read_bytes()
        except OSError as err:
            if e.named:
                raise UserError(f"cannot read '{e.path}': {err.strerror}") from None
            self._skip(e, f"unreadable ({err.strerror})")
            return None

    def _text(self, e: Entry) -> Iterator[Item]:
        data = self._read(e)
        if data is None:
            return
        if not is_text(data):
            self._skip(e, "binary or not UTF-8 text")
            return
        yield data.decode("utf-8")  # an empty text file still counts as read (byte datasets always did)

    def _records(self, e: Entry, values: Iterable[object], want: str, unit: str, why: str) -> Iterator[Item]:
        """The string ``values`` of one JSONL or Parquet file (its records' text field), counting those that are
        not strings (or hold NUL): a file without one good record is skipped, bad records are reported."""
        good = bad = 0
        for text in values:
            if not isinstance(text, str) or "\x00" in text:
                bad += 1
                continue
            good += 1
            if text:
                yield text
        if good == 0:
            self._skip(e, f"no {want} {self.field!r} ({bad} bad {unit})")
        elif bad:
            self.on_skip(e.path, f"{bad} of {good + bad} {unit} skipped: {why} {self.field!r}")

    def _jsonl(self, e: Entry) -> Iterator[Item]:
        try:
            f = open(e.path, "rb")  # noqa: SIM115 - closed below; lines are streamed
        except OSError as err:
            if e.named:
                raise UserError(f"cannot read '{e.path}': {err.strerror}") from None
            self._skip(e, f"unreadable ({err.strerror})")
            return
        def values() -> Iterator[object]:
            with f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        rec = None
                    yield rec.get(self.field) if isinstance(rec, dict) else None

        yield from self._records(e, values(), "JSON line with a string field", "lines", "not JSON or no string field")

    def _parquet(self, e: Entry) -> Iterator[Item]:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading Parquet needs pyarrow: pip install 'pogo-jax[parquet]'") from None
        try:
            pf = pq.ParquetFile(e.path)
            names = pf.schema_arrow.names
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
            why = f"not a readable Parquet file ({str(err).splitlines()[0][:120]})"
            if e.named:
                raise UserError(f"'{e.path}' is {why}") from None
            self._skip(e, why)
            return
        if self.field not in names:
            self._skip(e, f"no column {self.field!r} (columns: {', '.join(names[:8])}); pass --text-field")
            return
        values = (text for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=[self.field])
                  for text in batch.column(0).to_pylist())
        yield from self._records(e, values, "string value in column", "rows", "not a string in column")

    def _bin(self, e: Entry) -> Iterator[Item]:
        if not self.allow_ids:
            self._skip(e, "token ids, not text")
            return
        if self.vocab is None:
            raise UserError(f"'{e.path}' holds token ids (nanoGPT .bin): name the tokenizer that made them with "
                            "--tokenizer tok.json")
        size = e.size
        if size % 2:
            raise UserError(f"'{e.path}' has {size} bytes, an odd length: not a .bin of uint16 ids")
        if size == 0:
            self._skip(e, "empty")
            return
        ids = np.memmap(e.path, dtype="<u2", mode="r")
        for lo in range(0, ids.shape[0], _BIN_CHUNK):
            chunk = np.asarray(ids[lo:lo + _BIN_CHUNK])
            if int(chunk.max()) >= self.vocab:
                at = int(np.argmax(chunk >= self.vocab))
                raise UserError(f"'{e.path}': id {int(chunk[at])} (at position {lo + at}) is not below the "
                                f"tokenizer's {self.vocab} ids; name the tokenizer that made this file")
            yield chunk
