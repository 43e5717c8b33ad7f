"""A role's copy of a chain dataset: fetched from the node by the blob hash the log names, checked once.

The file is kept in the role's own work directory under its SHA-256. The first time, its
``data_root`` and manifest hash are recomputed and compared with the values the chain recorded
(PROTOCOL 6: never the file's own manifest); a marker named after the file's hash remembers that,
and every later load re-hashes the file so a changed file is checked again. No jax.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pogo_jax.errors import UserError
from pogo_jax.spec.dataset import Dataset, read_packed, verify_against
from pogo_jax.spec.records import DataRef


def _sha(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def chain_dataset(client, ref: DataRef, workdir: str | Path) -> Dataset:  # noqa: ANN001 - NodeClient/LocalClient
    d = Path(workdir) / "data"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{ref.blob.hex()}.pogodata"
    marker = d / f"{ref.blob.hex()}.verified"
    if not path.is_file() or _sha(path) != ref.blob:
        client.blob_to_file(ref.blob, path)
        marker.unlink(missing_ok=True)
    ds = read_packed(path, verify=False)
    want = f"{ref.data_root.hex()} {ref.manifest_hash.hex()}"
    if not (marker.is_file() and marker.read_text() == want):
        try:
            verify_against(ds, ref.data_root, ref.manifest_hash, f"dataset {ref.blob.hex()[:16]}...")
        except UserError:
            path.unlink(missing_ok=True)
            raise
        marker.write_text(want)
    return ds
