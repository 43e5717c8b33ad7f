"""The beacon as its own HTTP service (``pogo beacon serve``): its secret never leaves this process.

    GET  /v1/info     the anchor, the beacon's public key, its length, the chain and node it serves
    POST /v1/bind     {"binding": {"chain_id", "node_key"}, "signature"}: the node proves its key
    POST /v1/reveal   {"entries": [...]}: the node's log from this beacon's head (genesis at first) through its
                      signed submit Close, the last entry -> the signed Reveal (or a 4xx)
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pogo_jax.chain.beacon import BeaconService
from pogo_jax.chain.client import BIND_DOMAIN
from pogo_jax.chain.http import guarded, read_body, want_type
from pogo_jax.chain.log import read_entries
from pogo_jax.chain.node import _announce
from pogo_jax.errors import MalformedInput, Rejected
from pogo_jax.spec.encoding import canonical, exact_keys, get_field, hexbytes, parse_canonical
from pogo_jax.spec.keys import verify_signature

MAX_REVEAL_REQUEST = 64 << 20  # a round's log entries (full votes are the bulk: ~10 KB each)


def make_app(service: BeaconService, pinned_node_key: bytes | None = None) -> Starlette:
    lock = threading.Lock()

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(service.info())

    async def bind(request: Request) -> JSONResponse:
        want_type(request, "application/json")
        obj = parse_canonical(await read_body(request, 4096), "binding")
        exact_keys(obj, {"binding", "signature"}, "binding")
        b = get_field(obj, "binding", dict, "binding")
        exact_keys(b, {"chain_id", "node_key"}, "binding.binding")
        node_key = hexbytes(b["node_key"], "binding.node_key", 32)
        if pinned_node_key is not None and node_key != pinned_node_key:
            raise Rejected("WRONG_NODE", "this beacon is pinned to another node key")
        if not verify_signature(node_key, BIND_DOMAIN, canonical(b), hexbytes(obj["signature"], "signature", 64)):
            raise Rejected("BAD_SIGNATURE", "the binding is not signed by the node key it names")
        with lock:
            service.bind(get_field(b, "chain_id", str, "binding"), node_key)
        return JSONResponse({"bound": service.binding})

    async def reveal(request: Request) -> Response:
        want_type(request, "application/json")
        data = await read_body(request, MAX_REVEAL_REQUEST)

        def run() -> bytes:
            log = read_entries(data)  # {"entries": [...]}, each entry's hash re-checked
            if not log:
                raise MalformedInput("a reveal request carries the log through the submit close")
            with lock:
                return service.reveal(log[-1].record, log)

        return Response(await run_in_threadpool(run), media_type="application/json")

    return Starlette(routes=[Route("/v1/info", guarded(info)), Route("/v1/bind", guarded(bind), methods=["POST"]),
                             Route("/v1/reveal", guarded(reveal), methods=["POST"])])


def serve(directory: str | Path, host: str, port: int, length: int, node_key: bytes | None = None,
          ready_file: str | None = None, eval_keys: list[Path] = ()) -> None:

    import uvicorn

    service = BeaconService.open_or_create(directory, length)
    for f in eval_keys:
        service.add_keys(f)
    print(f"beacon anchor {service.anchor.hex()} key {service.public.hex()} ({service.length} values, "
          f"{len(service.reveals)} revealed)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(make_app(service, node_key), host=host, port=port, log_level="warning",
                                           access_log=False))
    _announce(server, ready_file, "beacon")
    server.run()
