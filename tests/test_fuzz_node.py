"""Fuzz everything that replays a node's log with a lying node: ``pogo audit``, the roles' ``ChainView`` and the
CLI paths ``pogo audit`` / ``pogo chain`` / ``pogo sync`` over HTTP.

A small real chain (two rounds: a withheld candidate, light and full objective claims re-checked in a
``Finalize``, a registration) is built once; each case serves a mutated copy of its log, tables and blobs. A
mutation inside a node record (``Close``, ``Finalize``, the bundle note, the annotations in ``extra``) is
re-signed with the node key, and every later node record is re-signed to follow the edited log (a reveal
naming a re-signed submit close is re-signed with the beacon key), so signatures and hash links pass and the
chain rules must catch it: rechecks naming a withheld or unknown candidate, a wrong tier, flipped results,
closes naming unknown candidates, a reveal for the wrong close, extras of the wrong type, entries reordered,
duplicated, dropped or truncated, entries with fields of the wrong type (as a tampered ledger holds them),
missing or swapped blobs, tables of the wrong shape, and raw JSON the HTTP client must refuse.

Every outcome must be clean: an ``AuditReport`` (a difference names the entry), a ``NodeFault`` (one line),
or for the CLI exit 0, 1 (audit differences) or 2 with one ``error:`` line; never a traceback. Seeded
(``POGO_FUZZ_SEED``, printed on failure with the case number); ``POGO_FUZZ_N`` runs more cases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from chainkit import Kit

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import Refused
from pogo_jax.chain.log import GENESIS_PREV, Entry
from pogo_jax.chain.recheck import recheck
from pogo_jax.chain.state import BundleNote, replay
from pogo_jax.chain.view import ChainView
from pogo_jax.cli import main
from pogo_jax.errors import MalformedInput, NodeFault, Rejected, UserError
from pogo_jax.spec.attestation import read_signed_attestation
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.envelope import Signed, seal
from pogo_jax.spec.header import read_signed_header
from pogo_jax.spec.keys import public_bytes
from pogo_jax.spec.records import Recheck, read_record

N = int(os.environ.get("POGO_FUZZ_N", "200"))
MAX_SECONDS = None if "POGO_FUZZ_N" in os.environ else 20.0  # on a loaded machine the suite's run stops early
CLI_EVERY = 16  # one case in this many also goes through the three CLI commands over HTTP


@dataclass
class Base:
    entries: list[Entry]
    tables: dict[str, list[tuple]]
    blobs: dict[bytes, bytes]
    node_key: object
    beacon_key: object
    withheld: bytes  # a candidate that never got a bundle
    bundled: bytes  # a candidate with a bundle and two objective claims against it
    tmp: Path


def _blob_shas(entries: list[Entry]) -> list[bytes]:
    out = []
    for e in entries:
        if e.kind == "genesis":
            g = read_record(e.record, "genesis").body
            out += [g.state.blob, g.data.blob]
        elif e.kind == "candidate" and e.extra:
            out.append(bytes.fromhex(e.extra["update_sha256"]))
        elif e.kind == "bundle":
            out.append(BundleNote.from_bytes(e.record).sha256)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    tmp = tmp_path_factory.mktemp("fuzz_node")
    k = Kit(tmp / "chain", n_miners=2, n_verifiers=4)
    m0, m1 = k.make(0), k.make(1)
    k.submit(m0)
    k.submit(m1)
    k.close_submit()
    k.chain.submit_bundle(k.bundle(m0))  # m1 withholds
    k.clock.advance(k.rules.prove_window_ms)
    k.chain.tick()
    k.vote(0, m0)
    k.vote(1, m0)
    k.vote(2, m0, "reject", "light", "BAD_PROOF", None)  # false objective claims: the finalizer re-checks both
    k.vote(3, m0, "reject", "full", "ROOT_NEXT_MISMATCH", None)
    k.settle()
    k.register("late-verifier", "verifier")
    k.run_round([k.make(1)], {(1, 2): None, (1, 3): None})  # the two false claimants were barred
    st = k.st
    assert st.tip_height == 2 and st.history[0].candidates[m1.hash].status == "withheld"
    entries = k.chain.ledger.entries()
    fin = read_record(next(e for e in entries if e.kind == "finalize").record, "finalize").body
    assert [(x.header_hash, x.tier) for x in fin.rechecks] == [(m0.hash, "light"), (m0.hash, "full")]
    blobs = {sha: k.chain.fetch(sha) for sha in _blob_shas(entries)}
    b = Base(entries, k.chain.ledger.tables(), blobs, k.node_key, k.beacon.key, m1.hash, m0.hash, tmp)
    rep = audit(b.entries, b.tables, Fake(b.entries, b.blobs).raw_fetch)
    assert rep.clean and rep.rechecks == 2, rep.differences
    k.chain.close()
    return b


# ------------------------------------------------------------------------------------------ serving


class Fake:
    """What a node serves: entries, blobs (a ``NodeClient``-like client checks each blob's hash, like the real
    one), and for ``audit`` a raw ``fetch`` that does not (a tampered blob store)."""

    def __init__(self, entries: list, blobs: dict[bytes, bytes]) -> None:
        self._entries, self.blobs, self.url = entries, blobs, "fake:"

    def entries(self, start: int = 0) -> list:
        return list(self._entries[start:])

    def blob(self, sha: bytes, progress: bool | None = None) -> bytes:
        if sha not in self.blobs:
            raise Refused(404, "NOT_FOUND", "no such blob")
        data = self.blobs[sha]
        if hashlib.sha256(data).digest() != sha:
            raise UserError(f"blob {sha.hex()[:16]}... does not hash to its name: refusing it")
        return data

    def raw_fetch(self, sha: bytes) -> bytes:
        if sha not in self.blobs:
            raise FileNotFoundError(f"no blob {sha.hex()[:16]}")
        return self.blobs[sha]


class Served:
    """The bytes the loopback node serves now (swapped per case)."""

    log: bytes = b'{"entries":[]}'
    tables: bytes = b"{}"
    blobs: dict[bytes, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass

    def _send(self, body: bytes, status: int = 200, head: bool = False, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        u = urlparse(self.path)
        if u.path == "/v1/log":
            start = int(parse_qs(u.query).get("from", ["0"])[0])
            self._send(Served.log if start == 0 else b'{"entries":[]}', head=head)
        elif u.path == "/v1/tables":
            self._send(Served.tables, head=head)
        elif u.path.startswith("/v1/blobs/"):
            try:
                data = Served.blobs[bytes.fromhex(u.path.rsplit("/", 1)[1])]
            except (KeyError, ValueError):
                self._send(b'{"code":"NOT_FOUND","error":"no such blob"}', 404, head)
                return
            rng = self.headers.get("range")
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
            self._send(data[start:], 206 if rng else 200, head, "application/octet-stream")
        else:
            self._send(b'{"code":"NOT_FOUND","error":"no route"}', 404, head)

    def do_GET(self) -> None:  # noqa: N802
        self._route(False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(True)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def serve(entries: list, tables, blobs: dict[bytes, bytes]) -> None:
    Served.log = canonical({"entries": [e.to_obj() for e in entries]})
    Served.tables = json.dumps(tables).encode()
    Served.blobs = blobs


# ------------------------------------------------------------------------------------------ the log, edited


@dataclass
class Spec:
    kind: str
    at: int
    record: bytes
    extra: object
    seq: int | None = None  # None: its place in the list


def specs_of(entries: list[Entry]) -> list[Spec]:
    return [Spec(e.kind, e.at, e.record, e.extra) for e in entries]


def chain_up(b: Base, specs: list[Spec]) -> list[Entry]:
    """Entries hash-linked in list order; every node record re-signed to follow its new predecessor, and a
    reveal whose submit close was re-signed re-signed by the beacon, so only the rules can refuse them."""
    out: list[Entry] = []
    prev, renamed = GENESIS_PREV, {}
    node_pub, beacon_pub = public_bytes(b.node_key), public_bytes(b.beacon_key)
    for i, s in enumerate(specs):
        rec = s.record
        try:
            if s.kind in ("close", "finalize"):
                sg = read_record(rec, s.kind)
                if sg.body.node_key == node_pub and sg.verify():
                    new = seal(dataclasses.replace(sg.body, prev=prev), b.node_key)
                    renamed[sg.hash] = new.hash
                    rec = new.to_bytes()
            elif s.kind == "reveal":
                sg = read_record(rec, "reveal")
                if sg.body.close in renamed and sg.body.beacon_key == beacon_pub and sg.verify():
                    rec = seal(dataclasses.replace(sg.body, close=renamed[sg.body.close]), b.beacon_key).to_bytes()
        except MalformedInput:
            pass
        try:
            e = Entry.make(i if s.seq is None else s.seq, s.at, s.kind, rec, s.extra, prev)
        except MalformedInput:  # an extra no entry can hash (a number out of range): a hash that cannot match
            e = Entry(i if s.seq is None else s.seq, s.at, s.kind, rec, s.extra, prev, bytes(32))
        out.append(e)
        prev = e.hash
    return out


class NoTarget(Exception):
    """An earlier edit of this case left no record for this mutator to edit."""


def _reads(s: Spec) -> bool:
    """Whether the entry's record still reads as its kind (an earlier edit may have broken it)."""
    read = {"bundle": BundleNote.from_bytes, "candidate": read_signed_header,
            "attestation": read_signed_attestation}.get(s.kind, lambda r: read_record(r, s.kind))
    try:
        read(s.record)
    except MalformedInput:
        return False
    return True


def _pick(rng: random.Random, specs: list[Spec], *kinds: str) -> int:
    """An entry of one of ``kinds`` whose record still reads as its kind."""
    idx = [i for i, s in enumerate(specs) if s.kind in kinds and _reads(s)]
    if not idx:
        raise NoTarget
    return rng.choice(idx)


def _edit(b: Base, rng: random.Random, spec: Spec, **changes) -> None:
    """Replace fields of a signed record's body; re-signed by its signer (the node or the beacon), or, one time
    in eight, left with its old signature."""
    sg = read_record(spec.record, spec.kind)
    body = dataclasses.replace(sg.body, **changes)
    if rng.random() < 1 / 8:
        spec.record = Signed(body, sg.signature).to_bytes()
    else:
        spec.record = seal(body, b.beacon_key if spec.kind == "reveal" else b.node_key).to_bytes()


def _hashes(b: Base, rng: random.Random) -> bytes:
    return rng.choice([b.withheld, b.bundled, rng.randbytes(32), bytes(32)])


def m_finalize(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    i = _pick(rng, specs, "finalize")
    f = read_record(specs[i].record, "finalize").body
    rc = list(f.rechecks)
    what = rng.choice(["add", "tier", "fails", "drop", "dup", "reorder", "reason", "round", "at", "empty"])
    if what == "add":
        rc.insert(rng.randrange(len(rc) + 1), Recheck(_hashes(b, rng), rng.choice(["light", "full"]),
                                                     rng.random() < 0.5, "BAD_PROOF"))
    elif what == "tier" and rc:
        j = rng.randrange(len(rc))
        rc[j] = dataclasses.replace(rc[j], tier="full" if rc[j].tier == "light" else "light")
    elif what == "fails" and rc:
        j = rng.randrange(len(rc))
        rc[j] = dataclasses.replace(rc[j], fails=not rc[j].fails)
    elif what == "drop" and rc:
        rc.pop(rng.randrange(len(rc)))
    elif what == "dup" and rc:
        rc.append(rng.choice(rc))
    elif what == "reorder":
        rc.reverse()
    elif what == "reason" and rc:
        j = rng.randrange(len(rc))
        rc[j] = dataclasses.replace(rc[j], reason=rng.choice(["OK", "BAD_PROOF", "ROOT_NEXT_MISMATCH", "X"]))
    elif what == "empty":
        rc = []
    changes: dict = {"rechecks": tuple(rc)}
    if what == "round":
        changes[rng.choice(["height", "round"])] = rng.choice([1, 2, 3, f.height + 1])
    if what == "at":
        changes["at"] = max(0, f.at + rng.choice([-20_000, -1, 1, 20_000]))
        if rng.random() < 0.5:
            specs[i].at = changes["at"]
    _edit(b, rng, specs[i], **changes)
    return f"finalize[{i}]:{what}"


def m_close(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    i = _pick(rng, specs, "close")
    c = read_record(specs[i].record, "close").body
    cands = list(c.candidates)
    what = rng.choice(["add", "drop", "reorder", "window", "data", "shard", "round", "at"])
    changes: dict = {}
    if what == "add":
        cands.insert(rng.randrange(len(cands) + 1), _hashes(b, rng))
    elif what == "drop" and cands:
        cands.pop(rng.randrange(len(cands)))
    elif what == "reorder":
        cands.reverse()
    elif what == "window":
        changes["window"] = rng.choice([w for w in ("submit", "proof", "commit") if w != c.window])
    elif what == "data":
        changes["data"] = rng.randbytes(32)
    elif what == "shard":
        changes["shard"] = rng.choice([0, 1, 2, 15, 16, 1000])
    elif what == "round":
        changes[rng.choice(["height", "round"])] = rng.choice([1, 2, 3])
    elif what == "at":
        changes["at"] = max(0, c.at + rng.choice([-20_000, -1, 1, 20_000]))
        specs[i].at = changes["at"]
    _edit(b, rng, specs[i], candidates=tuple(cands), **changes)
    return f"close[{i}]:{what}"


def m_reveal(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    i = _pick(rng, specs, "reveal")
    v = read_record(specs[i].record, "reveal").body
    closes = [read_record(s.record, "close").hash for s in specs if s.kind == "close" and _reads(s)]
    what = rng.choice(["close", "index", "value", "shard", "key", "data", "round", "at"])
    changes: dict = {
        "close": {"close": rng.choice(closes + [rng.randbytes(32)])},
        "index": {"index": rng.choice([1, 2, 3, v.index + 1, 256])},
        "value": {"value": rng.randbytes(32)},
        "shard": {"shard": rng.choice([0, 1, 5, 16])},
        "key": {"shard_key": rng.choice([None, rng.randbytes(32)])},
        "data": {"data": rng.randbytes(32)},
        "round": {rng.choice(["height", "round"]): rng.choice([1, 2, 3])},
        "at": {"at": max(0, v.at + rng.choice([-20_000, 20_000]))},
    }[what]
    _edit(b, rng, specs[i], **changes)
    return f"reveal[{i}]:{what}"


WEIRD = [None, 0, -1, 2**70, "", "zz", "00" * 32, [], {}, [1, 2], {"a": 1}, True, "OK", "BAD_SHARD", "NO_KEY"]


def m_extra(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    i = _pick(rng, specs, *rng.choice([("candidate",), ("reveal",), ("close", "finalize", "bundle", "commit")]))
    s = specs[i]
    what = rng.choice(["value", "drop", "add", "replace", "sha"])
    extra = dict(s.extra) if isinstance(s.extra, dict) else {}
    if what == "value" and extra:
        extra[rng.choice(list(extra))] = rng.choice(WEIRD)
    elif what == "drop" and extra:
        extra.pop(rng.choice(list(extra)))
    elif what == "add":
        extra[rng.choice(["update_sha256", "sealed", "x"])] = rng.choice(WEIRD)
    elif what == "sha":
        extra["update_sha256"] = rng.choice(list(b.blobs)).hex()
    else:
        extra = rng.choice([{}, {"sealed": "OK"}, {"update_sha256": b.withheld.hex()}])
    s.extra = extra
    return f"extra[{i}:{s.kind}]:{what}"


def m_note(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    i = _pick(rng, specs, "bundle")
    n = BundleNote.from_bytes(specs[i].record)
    what = rng.choice(["header", "sha", "size", "loss"])
    changes = {"header": {"header_hash": _hashes(b, rng)}, "sha": {"sha256": rng.choice(list(b.blobs))},
               "size": {"size": rng.choice([1, n.size + 1, 1 << 40])},
               "loss": {"loss_next": n.loss_next + 1.0}}[what]
    specs[i].record = dataclasses.replace(n, **changes).to_bytes()
    return f"note[{i}]:{what}"


def m_structure(b: Base, rng: random.Random, specs: list[Spec]) -> str:
    what = rng.choice(["swap", "move", "dup", "drop", "truncate", "kind", "at", "seq", "garbage"])
    i = rng.randrange(1, len(specs))
    if what == "swap":
        j = min(i + 1, len(specs) - 1) if rng.random() < 0.5 else rng.randrange(1, len(specs))
        specs[i], specs[j] = specs[j], specs[i]
    elif what == "move":
        specs.insert(rng.randrange(1, len(specs)), specs.pop(i))
    elif what == "dup":
        specs.insert(rng.randrange(i, len(specs) + 1), dataclasses.replace(specs[i]))
    elif what == "drop":
        specs.pop(i)
    elif what == "truncate":
        del specs[i:]
    elif what == "kind":
        specs[i].kind = rng.choice(["genesis", "register", "epoch", "candidate", "close", "reveal", "bundle",
                                    "commit", "attestation", "finalize", "nonsense"])
    elif what == "at":
        specs[i].at = max(0, specs[i].at + rng.choice([-10**6, -1, 1, 10**6]))
    elif what == "seq":
        specs[i].seq = rng.choice([0, i - 1, i + 1, 2**40])
    else:
        r = specs[i].record
        specs[i].record = rng.choice([r[: rng.randrange(len(r))], r + b" ", b"{}", b"null", rng.randbytes(40),
                                      r.replace(b'"', b"'", 1)])
    return f"log[{i}]:{what}"


def m_blob(b: Base, rng: random.Random, blobs: dict[bytes, bytes]) -> str:
    sha = rng.choice(list(blobs))
    what = rng.choice(["missing", "other", "truncated", "empty"])
    if what == "missing":
        del blobs[sha]
    elif what == "other":
        blobs[sha] = blobs[rng.choice(list(blobs))]
    elif what == "truncated":
        blobs[sha] = blobs[sha][: len(blobs[sha]) // 2]
    else:
        blobs[sha] = b""
    return f"blob:{what}"


def m_tables(b: Base, rng: random.Random, tables: dict) -> tuple[str, object]:
    t = rng.choice(list(tables))
    what = rng.choice(["cell", "row", "table", "missing", "top", "extra"])
    tables = {k: [list(r) for r in v] for k, v in tables.items()}
    if what == "cell" and tables[t]:
        row = rng.choice(tables[t])
        row[rng.randrange(len(row))] = rng.choice(WEIRD)
    elif what == "row":
        tables[t].append(rng.choice([1, "row", None, {"a": 1}, [], [[1]]]))
    elif what == "table":
        tables[t] = rng.choice([{}, "rows", None, 5, [[]]])
    elif what == "missing":
        del tables[t]
    elif what == "extra":
        tables["nonsense"] = [[1]]
    else:
        return "tables:top", rng.choice([[], "tables", 1, [[1, 2]]])  # (None: tables not read, not compared)
    return f"tables[{t}]:{what}", tables


def m_fields(b: Base, rng: random.Random, entries: list[Entry]) -> tuple[str, list]:
    """An entry with fields of the wrong type, as a tampered ledger file can hold them (no JSON in between)."""
    i = rng.randrange(len(entries))
    name = rng.choice(["seq", "at", "kind", "record", "extra", "prev", "hash"])
    e = dataclasses.replace(entries[i], **{name: rng.choice([None, -1, 2**70, "x", b"x", [], {"a": 1.5}, 1.5])})
    return f"fields[{i}].{name}", [*entries[:i], e, *entries[i + 1:]]


def m_raw(rng: random.Random, log: bytes) -> tuple[str, bytes]:
    """The served log's JSON itself edited (the HTTP client must refuse it as the node's fault)."""
    obj = json.loads(log)
    what = rng.choice(["field", "top", "cut", "entry", "bytes"])
    if what == "field" and obj["entries"]:
        e = rng.choice(obj["entries"])
        e[rng.choice(list(e))] = rng.choice([*WEIRD, "\u00e9", 1.5, "x" * 100])
    elif what == "top":
        obj = rng.choice([[], {"entries": {}}, {"entries": None}, {"entries": [1]}, {}, "log"])
    elif what == "entry" and obj["entries"]:
        obj["entries"][rng.randrange(len(obj["entries"]))] = rng.choice([[], None, {}, "e"])
    elif what == "cut":
        return "raw:cut", log[: rng.randrange(len(log))]
    elif what == "bytes":
        return "raw:bytes", rng.randbytes(64)
    return f"raw:{what}", json.dumps(obj).encode()


# ------------------------------------------------------------------------------------------ one case


@dataclass
class Case:
    what: list[str]
    entries: list
    tables: object
    blobs: dict[bytes, bytes]
    raw_log: bytes | None = None
    raw_tables: bytes | None = None


def make_case(b: Base, rng: random.Random) -> Case:
    specs = specs_of(b.entries)
    blobs = dict(b.blobs)
    tables: object = b.tables
    what: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        m = rng.choices([m_finalize, m_close, m_reveal, m_extra, m_note, m_structure, m_blob, m_tables],
                        weights=[6, 4, 3, 3, 2, 4, 2, 2])[0]
        if m is m_blob:
            what.append(m_blob(b, rng, blobs))
        elif m is m_tables:
            w, tables = m_tables(b, rng, b.tables)  # one table edit per case (the last one drawn)
            what.append(w)
        else:
            with contextlib.suppress(NoTarget):
                what.append(m(b, rng, specs))
    entries: list = chain_up(b, specs)
    if rng.random() < 0.05:
        w, entries = m_fields(b, rng, entries)
        what.append(w)
    return Case(what, entries, tables, blobs)


def check_audit(case: Case) -> object:
    rep = audit(case.entries, case.tables, Fake(case.entries, case.blobs).raw_fetch)
    assert isinstance(rep.differences, list) and all(isinstance(d, str) and "\n" not in d for d in rep.differences)
    return rep


def check_view(case: Case) -> UserError | None:
    """The roles' view: built (and the confirmed state rebuilt, as ``pogo sync`` does), or one-line UserError."""
    try:
        view = ChainView(Fake(case.entries, case.blobs))
        view.confirmed()
    except UserError as e:  # NodeFault, or (from the client) a blob whose bytes do not hash to its name
        assert "\n" not in str(e), str(e)
        return e
    return None


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def check_cli(case: Case, url: str, tmp: Path, rng: random.Random) -> None:
    try:
        serve(case.entries, case.tables, case.blobs)
    except Exception:  # noqa: BLE001 - fields no JSON can carry (a tampered ledger's): serve an empty log
        serve([], case.tables, case.blobs)
    if rng.random() < 0.3:
        w, Served.log = m_raw(rng, Served.log)
        case.what.append(w)
    if rng.random() < 0.1:
        Served.tables = rng.choice([b"[", b"null", b"[1,2]", b'{"rounds": 5}', rng.randbytes(16)])
        case.what.append("raw:tables")
    for argv in (["audit", url], ["chain", "--node", url, "--json"], ["sync", "--node", url, "--out",
                                                                        str(tmp / "synced.npz")]):
        rc, out, err = run_cli(argv)
        assert "Traceback" not in out + err, (argv[0], err)
        assert rc in ((0, 1, 2) if argv[0] == "audit" else (0, 2)), (argv[0], rc, err)
        if rc == 2:
            assert err.count("\n") == 1 and err.startswith("error: "), (argv[0], err)
        else:
            assert err == "", (argv[0], err)
        if argv[0] == "audit" and rc == 1:
            assert "DIFFERENCE: " in out, out


def run_case(b: Base, seed: int, i: int, url: str | None):  # noqa: ANN201 - the AuditReport
    rng = random.Random(f"{seed}:{i}")
    case = make_case(b, rng)
    rep = check_audit(case)
    fault = check_view(case)
    if any("breaks the chain rules" in d or "replay failed" in d for d in rep.differences):
        assert fault is not None, ("audit found a rule broken, the view did not", rep.differences)
    if url is not None:
        check_cli(case, url, b.tmp, rng)
    return rep


def test_fuzz_a_lying_node_is_a_difference_or_a_node_fault_never_a_traceback(base: Base, server: str) -> None:
    seed = int(os.environ.get("POGO_FUZZ_SEED", str(time.time_ns() % 2**32)))
    outcomes = {"clean": 0, "difference": 0}
    t0 = time.monotonic()
    done = 0
    for i in range(N):
        if MAX_SECONDS is not None and i >= 50 and time.monotonic() - t0 > MAX_SECONDS:
            break
        done += 1
        try:
            rep = run_case(base, seed, i, server if i % CLI_EVERY == 0 else None)
        except BaseException as e:
            raise AssertionError(f"POGO_FUZZ_SEED={seed} case {i}: {type(e).__name__}: {e}") from e
        outcomes["clean" if rep.clean else "difference"] += 1
    print(f"seed {seed}: {done} cases in {time.monotonic() - t0:.1f} s, {outcomes}")
    assert outcomes["difference"] > done // 2  # the mutations reach the rules (most change what the log implies)


# ------------------------------------------------------------------------------------------ named cases


def _withheld_in_finalize(b: Base) -> list[Entry]:
    specs = specs_of(b.entries)
    i = next(j for j, s in enumerate(specs) if s.kind == "finalize")
    sg = read_record(specs[i].record, "finalize")
    rc = (*sg.body.rechecks, Recheck(b.withheld, "light", True, "BAD_PROOF"))
    specs[i].record = seal(dataclasses.replace(sg.body, rechecks=rc), b.node_key).to_bytes()
    return chain_up(b, specs)


def test_a_resigned_finalize_naming_a_withheld_candidate(base: Base, server: str) -> None:
    """The reviewer's case: a node-signed Finalize whose re-checks name a candidate that never got a bundle. Every
    path printed ``AttributeError: 'NoneType' object has no attribute 'hex'`` and exited 1 (the audit's
    "difference" code, for a crash). Now the rules refuse the record before anything is re-checked."""
    entries = _withheld_in_finalize(base)
    seq = next(e.seq for e in entries if e.kind == "finalize")
    rep = audit(entries, base.tables, Fake(entries, base.blobs).raw_fetch)
    assert rep.differences[0].startswith(f"entry {seq} (finalize) breaks the chain rules: BAD_FINALIZE"), rep.differences
    with pytest.raises(NodeFault, match=f"log entry {seq} \\(finalize\\) breaks the chain rules.*BAD_FINALIZE"):
        ChainView(Fake(entries, base.blobs))
    with pytest.raises(Rejected, match="BAD_FINALIZE"):
        replay(entries)
    serve(entries, base.tables, base.blobs)
    rc, out, err = run_cli(["audit", server])
    assert rc == 1 and err == "" and f"DIFFERENCE: entry {seq} (finalize) breaks the chain rules" in out, (out, err)
    for argv in (["chain", "--node", server, "--json"], ["sync", "--node", server, "--out", str(base.tmp / "x.npz")]):
        rc, out, err = run_cli(argv)
        assert rc == 2 and out == "" and err.count("\n") == 1, (argv, out, err)
        assert err.startswith(f"error: log entry {seq} (finalize) breaks the chain rules"), err
    serve(base.entries, base.tables, base.blobs)
    assert run_cli(["audit", server])[0] == 0  # the honest log, served the same way, audits clean


def test_a_recheck_of_a_withheld_candidate_or_a_wrong_root_is_rejected(base: Base) -> None:
    """``recheck`` itself refuses what it cannot re-check (it raised AttributeError and RuntimeError)."""
    st = replay(base.entries)
    fetch = Fake(base.entries, base.blobs).blob
    with pytest.raises(Rejected, match="NO_BUNDLE"):
        recheck(st, base.withheld, "light", fetch)
    with pytest.raises(Rejected, match="UNKNOWN_HEADER"):
        recheck(st, bytes(32), "full", fetch)
    assert recheck(st, base.bundled, "full", fetch).reason == "OK"
    st.find(base.bundled)[0].root_prev = bytes(32)  # a round whose recorded root is not the confirmed state's
    with pytest.raises(Rejected, match="ROOT_MISMATCH"):
        recheck(st, base.bundled, "full", fetch)


def test_a_bug_in_the_replay_is_named_by_its_type_and_the_view_stops_trusting_its_state(base: Base, monkeypatch,
                                                                                        caplog) -> None:
    """An exception type the rules never raise (a bug, or a record they failed to refuse) is still one line, with
    its type, and its traceback only at debug level; a view whose state may be half-applied refuses to go on."""
    from pogo_jax.chain.state import ChainState

    def boom(self, entry):  # noqa: ANN001, ANN202
        raise TypeError("unexpected")

    monkeypatch.setattr(ChainState, "_apply_bundle", boom)
    rep = audit(base.entries, base.tables, Fake(base.entries, base.blobs).raw_fetch)
    seq = next(e.seq for e in base.entries if e.kind == "bundle")
    assert rep.differences == [f"entry {seq} (bundle): replay failed (TypeError: unexpected)"]
    caplog.set_level("DEBUG", logger="pogo_jax.chain.view")
    client = Fake(base.entries, base.blobs)
    with pytest.raises(NodeFault, match=f"log entry {seq} \\(bundle\\): replay failed \\(TypeError: unexpected\\)"):
        ChainView(client)
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
    view = ChainView.__new__(ChainView)
    view.client, view.state, view.cache, view.dataset = client, ChainState(), None, None
    view.hashes, view.witness = [], None
    with pytest.raises(NodeFault):
        view.refresh()
    monkeypatch.undo()
    with pytest.raises(NodeFault, match="TypeError"):  # sticky: the half-applied state is never used again
        view.refresh()


@pytest.mark.parametrize("change", [{"fails": True}, {"reason": "BAD_PROOF"}])
def test_a_resigned_finalize_with_another_recheck_result_is_a_difference(base: Base, change: dict) -> None:
    """The node signs a re-check result its stored bytes do not give: a difference in ``pogo audit`` (the result
    and its reason both); a ``NodeFault`` in the roles' view when the result decides a slash."""
    specs = specs_of(base.entries)
    i = next(j for j, s in enumerate(specs) if s.kind == "finalize")
    sg = read_record(specs[i].record, "finalize")
    rc = (dataclasses.replace(sg.body.rechecks[0], **change), *sg.body.rechecks[1:])
    specs[i].record = seal(dataclasses.replace(sg.body, rechecks=rc), base.node_key).to_bytes()
    entries = chain_up(base, specs)
    rep = audit(entries, base.tables, Fake(entries, base.blobs).raw_fetch)
    assert any(d.startswith(f"entry {i}: the node's light re-check of") for d in rep.differences), rep.differences
    if "fails" in change:
        with pytest.raises(NodeFault, match=f"log entry {i}: the node says the light claim"):
            ChainView(Fake(entries, base.blobs))
