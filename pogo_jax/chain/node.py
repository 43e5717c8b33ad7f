"""The chain node over HTTP: one process owning the ledger and blob store, serving the v1 API.

Starlette on uvicorn (see the README for why). The handlers only frame bytes and map errors: every
rule is ``Chain``'s. Writes are signed objects, re-checked inside one transaction; large blobs
stream both ways with bounded memory (uploads go to a temp file hashed as they arrive, downloads are
read in 1 MiB chunks and honour ``Range`` so clients resume); a background ticker moves rounds
forward on the node's clock and asks the beacon service for each round's value.

    GET  /                      read-only explorer (rounds, candidates, verdicts, stakes, loss plot)
    GET  /v1/info               chain id, genesis hash, node key, tip, open round
    GET  /v1/log?from=N&limit=M the signed log (canonical JSON), N onwards
    GET  /v1/tables             the node's derived tables (what ``pogo audit`` compares)
    GET  /v1/round              the open round: phase, deadlines, candidates
    GET  /v1/rounds/{h}/{a}     any round by height and attempt: phase, outcome, candidates and their blobs
    GET  /v1/blobs/{sha256}     a stored blob (404 while it is a candidate's update in an open submission window)
    POST /v1/candidates         u32le len | signed header | update bytes      (application/octet-stream)
    POST /v1/bundles            bundle bytes                                   (application/octet-stream)
    POST /v1/attestations       signed attestation                             (application/json)
    POST /v1/governance/register  signed registration                         (application/json)
    POST /v1/governance/epochs  u32le len | signed epoch | u64le len | dataset | u64le len | state (or 0)
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pogo_jax.chain.blobs import check_sha
from pogo_jax.chain.chain import MAX_EPOCH_BLOB, MAX_HEADER_BYTES, Accepted, BundleUpload, CandidateUpload, Chain
from pogo_jax.chain.explorer import render
from pogo_jax.chain.http import (
    CLIENT_ERRORS,
    Admission,
    Admit,
    BodyPace,
    Framed,
    TooLarge,
    before_check,
    check_length,
    checked,
    client_error,
    error,
    guarded,
    read_body,
    want_type,
)
from pogo_jax.errors import MalformedInput
from pogo_jax.spec.attestation import MAX_ATTESTATION_BYTES
from pogo_jax.spec.bundle import FIXED_BYTES, Bundle
from pogo_jax.spec.encoding import canonical
from pogo_jax.spec.state import update_size

log = logging.getLogger("pogo.node")
MAX_JSON = 1 << 16
MAX_LOG_PAGE = 2000


def _accepted(acc: Accepted) -> JSONResponse:
    if acc.result == "evidence":
        return JSONResponse({"error": "recorded as evidence against its signer (a second header for this round, "
                                      "or an update already recorded): the signer was slashed",
                             "code": "SLASHED_EVIDENCE", **acc.to_obj()}, status_code=409)
    return JSONResponse(acc.to_obj(), status_code=200)


def _round_view(chain: Chain) -> dict:
    st = chain.state
    r, rules = st.round, st.rules
    deadline = None
    if r.phase == "submit" and r.first_at is not None:
        deadline = r.first_at + rules.submit_window_ms
    elif r.phase == "proof":
        deadline = r.reveal_at + rules.prove_window_ms
    elif r.phase == "commit":
        deadline = r.proof_close_at + rules.attest_window_ms
    elif r.phase == "reveal":
        deadline = r.commit_close_at + rules.reveal_window_ms
    sealed = r.data.manifest.get("sealed")
    return {"height": r.height, "round": r.round, "phase": r.phase, "opened_at": r.opened_at, "deadline": deadline,
            "now": chain.clock(), "beacon": None if r.beacon is None else r.beacon.hex(), "shard": r.shard,
            "shards_left": (len(sealed["shards"]) - st.shards_used.get(r.data.manifest_hash, 0)) if sealed else 0,
            "candidates": [{"header_hash": h.hex(), "miner": c.miner.hex(), "bundle": c.bundle_sha256 is not None,
                            "votes": len(c.votes), "commits": len(c.commits)} for h, c in r.candidates.items()]}


STREAM_BATCH = 1 << 20  # bytes gathered from the server's chunks (64 KiB each) before one worker-thread hop


async def _stream_into(chunks, write, discard=None) -> None:  # noqa: ANN001 - async iterator, callables
    """``write`` the chunks in a worker thread, about 1 MiB at a time, one batch after the other, then
    ``discard`` on any failure. Measured on a 64 MB upload: a hop per server chunk cost more than the
    leaf hashing it fed, and overlapping the write of one batch with the read of the next was 20%
    slower (the two threads fight for the GIL)."""
    batch: list[bytes] = []
    size = 0

    def flush(parts: list[bytes]) -> None:
        for part in parts:
            write(part)

    try:
        async for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= STREAM_BATCH:
                await run_in_threadpool(flush, batch)
                batch, size = [], 0
        if batch:
            await run_in_threadpool(flush, batch)
    except BaseException:
        if discard is not None:
            discard()
        raise


async def _finish_upload(fr: Framed, begun, finish: Callable[[object], Accepted]) -> Response:  # noqa: ANN001
    """Stream the rest of the body into ``begun`` (a candidate's or a bundle's upload), then ``finish(begun)`` in a
    worker thread, which closes it however it ends; a request cancelled before ``finish`` began closes it here,
    so its slot and temp file always come back."""
    started = _Handoff()

    def run() -> Accepted | None:
        if not started.deliver(True):
            return None  # cancelled before this began: the request has closed the upload
        return finish(begun)

    try:
        await _stream_into(fr.chunks(), begun.write)
        return _accepted(await run_in_threadpool(run))
    except BaseException:
        if started.abandon() is None:  # the upload never reached finish: the slot must come back
            begun.close()
        raise


class _Handoff:
    """What a worker thread makes for a request that may be cancelled while it waits (anyio does not
    hold a plain ``task.cancel()`` back; the thread runs on): ``deliver`` hands it over unless the request
    was abandoned, and then the thread cleans it up; ``abandon`` takes back what was delivered, and then
    the request cleans it up. Either way exactly one side does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: object = None
        self._abandoned = False

    def deliver(self, item: object) -> bool:
        with self._lock:
            if self._abandoned:
                return False
            self._item = item
            return True

    def abandon(self) -> object:
        with self._lock:
            self._abandoned = True
            item, self._item = self._item, None
            return item


def _bundle_claim(request: Request) -> tuple[bytes, bytes] | None:
    """The body SHA-256 and miner signature a bundle upload announces in its headers (checked by the chain)."""
    sha, sig = request.headers.get("x-pogo-bundle-sha256"), request.headers.get("x-pogo-bundle-signature")
    if sha is None or sig is None:
        return None
    try:
        out = bytes.fromhex(sha), bytes.fromhex(sig)
    except ValueError:
        raise MalformedInput("x-pogo-bundle-sha256 and x-pogo-bundle-signature are hex") from None
    if len(out[0]) != 32 or len(out[1]) != 64:
        raise MalformedInput("x-pogo-bundle-sha256 is 32 bytes and x-pogo-bundle-signature 64, hex")
    return out


def make_app(chain: Chain, tick_every: float = 0.1, body_pace: BodyPace | None = None,
             admission: Admission | None = None) -> Starlette:
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(tick_every):
            try:
                chain.tick()
            except Exception:  # a bug must not kill the node; it is logged and the next tick retries
                log.exception("tick failed")

    @contextlib.asynccontextmanager
    async def lifespan(app):  # noqa: ANN001, ANN202
        t = threading.Thread(target=ticker, name="pogo-ticker", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=5)

    async def info(request: Request) -> JSONResponse:
        with chain.lock:
            st = chain.state
            return JSONResponse({"version": 1, "chain_id": st.genesis.chain_id, "genesis_hash": st.genesis_hash.hex(),
                                 "node_key": st.genesis.node_key.hex(), "seq": st.seq, "tip_height": st.tip_height,
                                 "tip_hash": st.tip_hash.hex(), "round": _round_view(chain)})

    async def get_log(request: Request) -> Response:
        try:
            start = int(request.query_params.get("from", "0"))
            limit = min(int(request.query_params.get("limit", str(MAX_LOG_PAGE))), MAX_LOG_PAGE)
        except ValueError:
            raise MalformedInput("from and limit are integers") from None
        if not (0 <= start < 2**63 and limit >= 1):  # SQLite integers are 64-bit signed
            raise MalformedInput("from must be in [0, 2**63) and limit >= 1")
        entries = await run_in_threadpool(chain.ledger.entries, start, limit)
        body = canonical({"entries": [e.to_obj() for e in entries]})
        return Response(body, media_type="application/json")

    async def tables(request: Request) -> JSONResponse:
        t = await run_in_threadpool(chain.ledger.tables)
        return JSONResponse({k: [list(r) for r in v] for k, v in t.items()})

    async def get_round(request: Request) -> JSONResponse:
        with chain.lock:
            return JSONResponse(_round_view(chain))

    async def get_past_round(request: Request) -> JSONResponse:
        try:
            key = (int(request.path_params["height"]), int(request.path_params["round"]))
        except ValueError:
            raise MalformedInput("height and round are integers") from None
        with chain.lock:
            st = chain.state
            r = next((x for x in [*st.history, st.round] if (x.height, x.round) == key), None)
            if r is None:
                return error(404, f"no round ({key[0]}, {key[1]}) on this chain", "NOT_FOUND")
            return JSONResponse({
                "height": r.height, "round": r.round, "phase": r.phase, "opened_at": r.opened_at,
                "finalized_at": r.finalized_at, "winner": None if r.winner is None else r.winner.hex(),
                "beacon": None if r.beacon is None else r.beacon.hex(),
                "candidates": [{"header_hash": h.hex(), "miner": c.miner.hex(), "status": c.status, "reason": c.reason,
                                "update_sha256": c.update_sha256.hex() if r.phase != "submit" else None,
                                "bundle_sha256": None if c.bundle_sha256 is None else c.bundle_sha256.hex(),
                                "reward": c.reward, "votes": len(c.votes)} for h, c in r.candidates.items()]})

    async def get_blob(request: Request) -> Response:
        sha = check_sha(request.path_params["sha"])
        if not chain.visible(sha):
            return error(404, "no such blob (or not public yet)", "NOT_FOUND")
        size = chain.blobs.size(sha)
        start, end, status = 0, size, 200
        rng = request.headers.get("range")
        if rng:
            try:
                unit, _, spec = rng.partition("=")
                a, _, b = spec.partition("-")
                start = int(a)
                end = int(b) + 1 if b else size
                if unit.strip() != "bytes" or not 0 <= start < end <= size:
                    raise ValueError
            except ValueError:
                return error(416, f"bad range {rng[:40]!r} for a blob of {size} bytes", "BAD_RANGE")
            status = 206
        headers = {"content-length": str(end - start), "accept-ranges": "bytes", "x-pogo-sha256": sha.hex()}
        if status == 206:
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=headers, media_type="application/octet-stream")
        return StreamingResponse(chain.blobs.read(sha, start, end), status_code=status, headers=headers,
                                 media_type="application/octet-stream")

    async def post_candidate(request: Request) -> Response:
        want_type(request, "application/octet-stream")
        fr = Framed(request)

        async def first() -> bytes:
            n = await fr.u32("signed header")
            if n > MAX_HEADER_BYTES:
                raise TooLarge(f"signed header of {n} bytes is larger than {MAX_HEADER_BYTES}")
            return await fr.exact(n, "signed header")

        header = await before_check(request, first())
        size = update_size(chain.state.genesis.layout)
        made = _Handoff()

        def begin() -> Accepted | CandidateUpload:
            b = chain.begin_candidate(header)
            if isinstance(b, CandidateUpload) and not made.deliver(b):
                b.close()  # this request was cancelled while its header was checked: free the slot here
            return b

        try:
            begun = await run_in_threadpool(begin)
        except CLIENT_ERRORS as e:  # read (and drop) some of the rest, so the client sees this answer
            return await fr.refuse(size, client_error(e))
        except BaseException:
            if (left := made.abandon()) is not None:
                left.close()
            raise
        if isinstance(begun, Accepted):
            return await fr.refuse(size, _accepted(begun))
        checked(request)  # a registered miner's header for the open round: no longer an unchecked body
        return await _finish_upload(fr, begun, chain.finish_candidate)

    async def post_bundle(request: Request) -> Response:
        """Like a candidate: the bundle's header is checked from its first bytes (``Bundle.peek_size``, at most
        about 64 KiB, never a leaf byte) before the rest is read, then the rest streams into a temp file."""
        want_type(request, "application/octet-stream")
        limit = chain.max_bundle_bytes()
        check_length(request, limit)
        fr = Framed(request)
        fixed = await before_check(request, fr.exact(FIXED_BYTES, "bundle's fixed part"))
        made = _Handoff()

        claim = _bundle_claim(request)

        def begin(prefix: bytes) -> BundleUpload:
            b = chain.begin_bundle(prefix, claim)
            if not made.deliver(b):
                b.close()  # this request was cancelled while its header was checked: free the slot here
            return b

        try:
            n = Bundle.peek_size(fixed, MAX_HEADER_BYTES)
            prefix = fixed + await before_check(request, fr.exact(n - FIXED_BYTES, "bundle's metadata"))
            begun = await run_in_threadpool(begin, prefix)
        except CLIENT_ERRORS as e:  # read (and drop) some of the rest, so the client sees this answer
            return await fr.refuse(limit, client_error(e))
        except BaseException:
            if (left := made.abandon()) is not None:
                left.close()
            raise
        if begun.upload is not None:
            checked(request)  # names a candidate that may take it: no longer an unchecked body
        return await _finish_upload(fr, begun, chain.finish_bundle)

    async def post_attestation(request: Request) -> Response:
        want_type(request, "application/json")
        data = await read_body(request, MAX_ATTESTATION_BYTES)
        return _accepted(await run_in_threadpool(chain.submit_attestation, data))

    async def post_commit(request: Request) -> Response:
        want_type(request, "application/json")
        data = await read_body(request, MAX_JSON)
        return _accepted(await run_in_threadpool(chain.submit_commit, data))

    async def post_register(request: Request) -> Response:
        want_type(request, "application/json")
        data = await read_body(request, MAX_JSON)
        return _accepted(await run_in_threadpool(chain.submit_register, data))

    async def post_epoch(request: Request) -> Response:
        want_type(request, "application/octet-stream")
        fr = Framed(request)

        async def first() -> bytes:
            n = await fr.u32("signed epoch record")
            if n > 1 << 20:
                raise TooLarge("epoch record too large")
            return await fr.exact(n, "signed epoch record")

        record = await before_check(request, first())
        try:
            await run_in_threadpool(chain.check_epoch, record)
        except CLIENT_ERRORS as e:
            return await fr.refuse(1 << 30, client_error(e))
        checked(request)  # signed by the governance key
        ups = []
        try:
            for what in ("dataset", "state"):
                size = await fr.u64(what)
                if size > MAX_EPOCH_BLOB:
                    raise TooLarge(f"{what} of {size} bytes is too large")
                if what == "state" and size == 0:
                    ups.append(None)
                    continue
                up = chain.blobs.upload(size)
                ups.append(up)
                await _stream_into(fr.chunks(size), up.write)
        except BaseException:
            for up in ups:
                if up is not None:
                    up.discard()
            raise
        return _accepted(await run_in_threadpool(chain.finish_epoch, record, ups[0], ups[1]))

    async def explorer(request: Request) -> HTMLResponse:
        """The page: a snapshot under the chain lock, then the templating without it, both off the event loop
        (explorer.render). ``?page=N``: older rounds; ``?refresh=0``: no auto-reload."""
        q = request.query_params
        try:
            page = int(q.get("page", "1"))
        except ValueError:
            page = 0
        if not 1 <= page < 2**31 or q.get("refresh", "1") not in ("0", "1"):
            return HTMLResponse("page is a positive integer and refresh is 0 or 1", status_code=400)
        html = await run_in_threadpool(render, chain, page, q.get("refresh", "1") == "1")
        return HTMLResponse(html)

    async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, exc.detail or "not found", "NOT_FOUND" if exc.status_code == 404 else "HTTP")

    routes = [
        Route("/", explorer),
        Route("/v1/info", guarded(info)),
        Route("/v1/log", guarded(get_log)),
        Route("/v1/tables", guarded(tables)),
        Route("/v1/round", guarded(get_round)),
        Route("/v1/rounds/{height}/{round}", guarded(get_past_round)),
        Route("/v1/blobs/{sha}", guarded(get_blob), methods=["GET", "HEAD"]),
        Route("/v1/candidates", guarded(post_candidate), methods=["POST"]),
        Route("/v1/bundles", guarded(post_bundle), methods=["POST"]),
        Route("/v1/attestations", guarded(post_attestation), methods=["POST"]),
        Route("/v1/commits", guarded(post_commit), methods=["POST"]),
        Route("/v1/governance/register", guarded(post_register), methods=["POST"]),
        Route("/v1/governance/epochs", guarded(post_epoch), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found},
                    middleware=[Middleware(Admit, policy=admission or Admission())])
    app.state.body_pace = body_pace or BodyPace()
    return app


def serve(directory: str | Path, host: str, port: int, beacon_url: str | None, tick_every: float = 0.1,
          ready_file: str | None = None, admission: Admission | None = None) -> None:
    """Run the node until interrupted (``pogo node serve``)."""
    import uvicorn

    from pogo_jax.chain.client import BeaconClient

    chain = Chain(directory)
    if beacon_url:
        bc = BeaconClient(beacon_url)
        bc.bind(chain)
        chain.beacon = bc
    admission = admission or Admission()
    app = make_app(chain, tick_every, admission=admission)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            limit_concurrency=admission.max_connections, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    _announce(server, ready_file, f"node for chain {chain.state.genesis.chain_id}", chain)
    try:
        server.run()
    finally:
        chain.close()


def _announce(server, ready_file: str | None, what: str, chain: Chain | None = None) -> None:  # noqa: ANN001
    """Print the address once uvicorn listens (and write it to ``ready_file`` for the demo and tests)."""

    orig = server.startup

    async def startup(sockets=None):  # noqa: ANN001, ANN202
        await orig(sockets=sockets)
        addrs = [s.getsockname() for srv in server.servers for s in srv.sockets]
        host, port = addrs[0][:2]
        url = f"http://{host}:{port}"
        print(f"{what} listening on {url}", file=sys.stderr, flush=True)
        if ready_file:
            from pogo_jax.fsutil import atomic_write_bytes

            atomic_write_bytes(ready_file, url.encode())

    server.startup = startup
