"""Clients of the node and of the beacon: the only way a role talks to the chain.

``NodeClient`` speaks HTTP (httpx): it retries with backoff on connection errors, time-outs and
502/503/504, resumes an interrupted blob download with ``Range``, shows a progress bar for large
transfers, and checks every fetched blob against the SHA-256 it asked for before returning it. A 4xx
is the node refusing: it becomes ``Refused`` (a ``Rejected`` with the node's code and one line).
``LocalClient`` offers the same methods over an in-process ``Chain`` (tests, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from pogo_jax.chain.http import frame
from pogo_jax.chain.log import Entry, read_entries
from pogo_jax.errors import MalformedInput, Rejected, UserError
from pogo_jax.fsutil import atomic_write_bytes
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.keys import sign

RETRY_STATUS = {502, 503, 504}
CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 8 << 20


class Refused(Rejected):
    """The node (or beacon) refused a request with a 4xx; ``status`` is the HTTP status."""

    def __init__(self, status: int, code: str, detail: str, answer: dict | None = None) -> None:
        super().__init__(code, detail)
        self.status = status
        self.answer = answer or {}  # the whole JSON answer (a 409 for evidence carries the entry's receipt)


def _progress(total: int, what: str, enabled: bool | None):  # noqa: ANN202 - a callable(n) and a closer
    show = (total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()) if enabled is None else enabled
    if not show:
        return (lambda n: None), (lambda: None)
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    p = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                 transient=True)
    p.start()
    task = p.add_task(what, total=total)
    return (lambda n: p.advance(task, n)), p.stop


class _Http:
    def __init__(self, url: str, timeout: float = 30.0, retries: int = 8, backoff: float = 0.25) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"{url!r} is not an http:// URL")
        self.url = url.rstrip("/")
        self.retries, self.backoff = retries, backoff
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw) -> httpx.Response:  # noqa: ANN003
        """``content`` may be a function that returns a fresh body per attempt (a streamed body cannot be
        sent twice), so a retry after a broken connection sends the whole body again."""
        delay = self.backoff
        body = kw.pop("content", None)
        for attempt in range(self.retries + 1):
            try:
                r = self.http.request(method, path, content=body() if callable(body) else body, **kw)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                if attempt == self.retries:
                    raise UserError(f"cannot reach {self.url} ({type(e).__name__}: {str(e)[:80]}); is it running?") \
                        from None
            else:
                if r.status_code not in RETRY_STATUS or attempt == self.retries:
                    return self._check(r)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code < 400:
            return r
        obj: dict = {}
        try:
            obj = r.json()
            code, msg = str(obj.get("code", "HTTP")), str(obj.get("error", r.text))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            obj, code, msg = {}, "HTTP", r.text[:200]
        if r.status_code >= 500:
            raise UserError(f"{self.url} failed: HTTP {r.status_code} {msg[:200]}")
        raise Refused(r.status_code, code, msg.removeprefix(f"{code}: "), obj if isinstance(obj, dict) else {})


MAX_MEMORY_BLOB = 1 << 32  # the most NodeClient.blob holds in memory


class NodeClient(_Http):
    def info(self) -> dict:
        return self.request("GET", "/v1/info").json()

    def round(self) -> dict:
        return self.request("GET", "/v1/round").json()

    def tables(self) -> dict[str, list[tuple]]:
        return {k: [tuple(r) for r in v] for k, v in self.request("GET", "/v1/tables").json().items()}

    def entries(self, start: int = 0) -> list[Entry]:
        out: list[Entry] = []
        while True:
            page = read_entries(self.request("GET", "/v1/log", params={"from": start + len(out)}).content)
            if not page:
                return out
            if page[0].seq != start + len(out):  # a node that repeats pages would keep a reader looping
                raise MalformedInput(f"asked for the log from entry {start + len(out)}, the node served it from "
                                     f"{page[0].seq}")
            out += page

    def blob(self, sha: bytes, progress: bool | None = None, max_bytes: int = MAX_MEMORY_BLOB) -> bytes:
        """A blob's bytes, checked against ``sha`` (resumes a broken transfer). Held in memory, so a blob
        the node announces larger than ``max_bytes`` is refused before a byte is read (``blob_to_file``
        streams any size to disk)."""
        buf = bytearray()
        for chunk in self._blob_chunks(sha, 0, progress, max_bytes):
            buf += chunk
        data = bytes(buf)
        if hashlib.sha256(data).digest() != sha:
            raise UserError(f"blob {sha.hex()[:16]}... from {self.url} does not hash to its name: refusing it")
        return data

    def blob_to_file(self, sha: bytes, path: str | Path, progress: bool | None = None) -> Path:
        """Download into ``path`` via ``path.part`` (kept across a crash, so the next call resumes)."""
        path = Path(path)
        if path.is_file() and _file_sha(path) == sha:
            return path
        part = path.with_name(path.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        if part.exists():  # what an interrupted download left: hashed again, then continued from its end
            with open(part, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        have = part.stat().st_size if part.exists() else 0
        with open(part, "ab") as f:
            for chunk in self._blob_chunks(sha, have, progress):
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if h.digest() != sha:
            part.unlink()
            raise UserError(f"blob {sha.hex()[:16]}... from {self.url} does not hash to its name: refusing it")
        os.replace(part, path)
        return path

    def _blob_chunks(self, sha: bytes, start: int, progress: bool | None,
                     max_bytes: int | None = None) -> Iterator[bytes]:
        head = self.request("HEAD", f"/v1/blobs/{sha.hex()}")
        try:
            total = int(head.headers["content-length"])
        except (KeyError, ValueError):
            raise UserError(f"{self.url} announces no length for blob {sha.hex()[:16]}...") from None
        if max_bytes is not None and total > max_bytes:
            raise UserError(f"{self.url} announces blob {sha.hex()[:16]}... as {total:,} bytes, more than the "
                            f"{max_bytes:,} this client holds in memory: refusing it")
        tick, done = _progress(total, f"blob {sha.hex()[:12]}", progress)
        tick(start)
        got = start
        failures = 0
        try:
            while got < total:
                try:
                    headers = {"range": f"bytes={got}-"} if got else {}
                    with self.http.stream("GET", f"/v1/blobs/{sha.hex()}", headers=headers) as r:
                        self._check(r)
                        for chunk in r.iter_raw():
                            got += len(chunk)
                            if got > total:
                                raise UserError(f"{self.url} sends more of blob {sha.hex()[:16]}... than the "
                                                f"{total:,} bytes it announced: refusing it")
                            tick(len(chunk))
                            yield chunk
                except (httpx.TransportError, httpx.TimeoutException):
                    failures += 1
                    if failures > self.retries:
                        raise UserError(f"download of blob {sha.hex()[:16]}... from {self.url} keeps failing") \
                            from None
                    time.sleep(min(self.backoff * 2 ** failures, 5.0))
        finally:
            done()

    witness = None  # a chain.witness.Witness once a role attaches one: it keeps the receipts

    def _post(self, path: str, content, ctype: str, kind: str = "", sent: bytes = b"",  # noqa: ANN001
              headers: dict | None = None) -> dict:
        try:
            out = self.request("POST", path, content=content, headers={"content-type": ctype, **(headers or {})}).json()
        except Refused as e:
            if e.code == "SLASHED_EVIDENCE" and self.witness is not None and e.answer.get("receipt"):
                self.witness.take(kind, sent, e.answer)  # evidence is a write the node signed for too
            raise
        if self.witness is not None and kind:
            self.witness.take(kind, sent, out)
        return out

    def submit_candidate(self, header_bytes: bytes, update: bytes | Path, progress: bool | None = None) -> dict:
        size = len(update) if isinstance(update, bytes) else Path(update).stat().st_size
        tick, done = _progress(size, "update upload", progress)

        def body() -> Iterator[bytes]:
            yield frame(header_bytes)
            if isinstance(update, bytes):
                for i in range(0, len(update), CHUNK):
                    tick(min(CHUNK, len(update) - i))
                    yield update[i:i + CHUNK]
            else:
                with open(update, "rb") as f:
                    while chunk := f.read(CHUNK):
                        tick(len(chunk))
                        yield chunk

        try:
            content = body if size >= PROGRESS_MIN_BYTES else b"".join(body())
            return self._post("/v1/candidates", content, "application/octet-stream", "candidate", header_bytes)
        finally:
            done()

    def submit_bundle(self, data: bytes) -> dict:
        """The bundle, announced by its body's SHA-256 and the miner's signature (its last 64 bytes): the node
        gives a candidate's one upload slot only to an upload that the miner signed."""
        claim = {"x-pogo-bundle-sha256": hashlib.sha256(data[:-64]).hexdigest(),
                 "x-pogo-bundle-signature": data[-64:].hex()}
        return self._post("/v1/bundles", data, "application/octet-stream", "bundle", data, claim)

    def submit_attestation(self, data: bytes) -> dict:
        return self._post("/v1/attestations", data, "application/json", "attestation", data)

    def submit_commit(self, data: bytes) -> dict:
        return self._post("/v1/commits", data, "application/json", "commit", data)

    def submit_register(self, data: bytes) -> dict:
        return self._post("/v1/governance/register", data, "application/json", "register", data)

    def submit_epoch(self, record: bytes, data_file: Path, state: bytes | None) -> dict:
        def body() -> Iterator[bytes]:
            yield frame(record)
            yield struct.pack("<Q", Path(data_file).stat().st_size)
            with open(data_file, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
            yield struct.pack("<Q", len(state or b""))
            if state:
                yield state

        return self._post("/v1/governance/epochs", body, "application/octet-stream", "epoch", record)


def _file_sha(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.digest()


class LocalClient:
    """``NodeClient``'s methods over an in-process ``Chain`` (no network, same bytes)."""

    def __init__(self, chain) -> None:  # noqa: ANN001
        self.chain = chain
        self.url = f"local:{chain.dir}"

    def close(self) -> None:
        pass

    def info(self) -> dict:
        st = self.chain.state
        return {"chain_id": st.genesis.chain_id, "seq": st.seq, "tip_height": st.tip_height}

    def entries(self, start: int = 0) -> list[Entry]:
        return self.chain.ledger.entries(start)

    def tables(self) -> dict[str, list[tuple]]:
        return self.chain.ledger.tables()

    def blob(self, sha: bytes, progress: bool | None = None) -> bytes:
        if not self.chain.visible(sha):
            raise Refused(404, "NOT_FOUND", "no such blob (or not public yet)")
        return self.chain.blobs.get(sha)

    def blob_to_file(self, sha: bytes, path: str | Path, progress: bool | None = None) -> Path:
        atomic_write_bytes(path, self.blob(sha))
        return Path(path)

    witness = None  # as NodeClient.witness

    def _wrap(self, kind: str, sent: bytes, fn, *args):  # noqa: ANN001, ANN002, ANN202
        out = fn(*args).to_obj()
        if self.witness is not None and out.get("receipt"):
            self.witness.take(kind, sent, out)
        if out["result"] == "evidence":
            raise Refused(409, "SLASHED_EVIDENCE", "recorded as evidence against its signer", out)
        return out

    def submit_candidate(self, header_bytes: bytes, update: bytes | Path, progress: bool | None = None) -> dict:
        data = update if isinstance(update, bytes) else Path(update).read_bytes()
        return self._wrap("candidate", header_bytes, self.chain.submit_candidate, header_bytes, [data])

    def submit_bundle(self, data: bytes) -> dict:
        return self._wrap("bundle", data, self.chain.submit_bundle, data)

    def submit_attestation(self, data: bytes) -> dict:
        return self._wrap("attestation", data, self.chain.submit_attestation, data)

    def submit_commit(self, data: bytes) -> dict:
        return self._wrap("commit", data, self.chain.submit_commit, data)

    def submit_register(self, data: bytes) -> dict:
        return self._wrap("register", data, self.chain.submit_register, data)

    def submit_epoch(self, record: bytes, data_file: Path, state: bytes | None) -> dict:
        return self._wrap("epoch", record, self.chain.submit_epoch, record, [Path(data_file).read_bytes()],
                          None if state is None else [state])


class BeaconClient(_Http):
    """The node's side of the beacon service."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        super().__init__(url, timeout, retries=2)

    def info(self) -> dict:
        return self.request("GET", "/v1/info").json()

    def bind(self, chain) -> None:  # noqa: ANN001 - a Chain
        """Bind the beacon to this chain and node key (proved by a signature over the binding)."""
        g = chain.state.genesis
        msg = canonical({"chain_id": g.chain_id, "node_key": g.node_key.hex()})
        info = self.info()
        if info["key"] != g.beacon_key.hex() or info["anchor"] != g.beacon_anchor.hex():
            raise UserError(f"the beacon at {self.url} is not the one this chain's genesis names")
        self.request("POST", "/v1/bind", content=canonical({"binding": json.loads(msg),
                                                             "signature": sign(chain.key, BIND_DOMAIN, msg).hex()}),
                     headers={"content-type": "application/json"})

    def reveal(self, close_bytes: bytes, log: list[Entry]) -> bytes:
        """The beacon's signed reveal against the close that ends ``log`` (see ``BeaconService.reveal``)."""
        if not log or log[-1].record != close_bytes:
            raise ValueError("the log segment must end with the close entry")
        return self.request("POST", "/v1/reveal", content=canonical({"entries": [e.to_obj() for e in log]}),
                            headers={"content-type": "application/json"}).content


BIND_DOMAIN = b"pogo/beacon/bind/v1"
