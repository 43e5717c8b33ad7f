"""HTTP plumbing shared by the node and the beacon service: bounded bodies, one-line errors, framing.

A client's mistake is a 4xx with one JSON line ``{"error": "...", "code": "..."}``, never a 500 or a
traceback: malformed bytes 400, a wrong signer 403, an unknown thing 404, a conflict with the chain's
state 409, too large 413, the wrong content type 415, a body sent too slowly 408.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pogo_jax.errors import MalformedInput, Rejected, UserError

log = logging.getLogger("pogo.http")

FORBIDDEN = {"BAD_SIGNATURE", "WRONG_SIGNER", "UNREGISTERED_MINER", "UNREGISTERED_VERIFIER", "SLASHED_MINER",
             "SLASHED_VERIFIER", "WRONG_NODE", "NOT_BOUND"}
NOT_FOUND = {"UNKNOWN_HEADER", "NOT_FOUND"}
TOO_MANY = {"UPLOADS_IN_FLIGHT"}
CLIENT_ERRORS = (MalformedInput, Rejected, UserError)


class TooLarge(MalformedInput):
    pass


class WrongType(MalformedInput):
    pass


def error(status: int, message: str, code: str = "BAD_REQUEST") -> JSONResponse:
    line = " ".join(str(message).split())[:400]
    return JSONResponse({"error": line, "code": code}, status_code=status)


def client_error(e: Exception) -> JSONResponse:
    if isinstance(e, TooLarge):
        return error(413, str(e), "TOO_LARGE")
    if isinstance(e, WrongType):
        return error(415, str(e), "WRONG_CONTENT_TYPE")
    if isinstance(e, TooSlow):
        return error(408, str(e), "TOO_SLOW")
    if isinstance(e, Rejected):
        status = 403 if e.code in FORBIDDEN else 404 if e.code in NOT_FOUND else 429 if e.code in TOO_MANY else 409
        return error(status, f"{e.code}: {e.detail}", e.code)
    return error(400, str(e), "MALFORMED")


def guarded(handler):  # noqa: ANN001, ANN201 - a Starlette endpoint
    """The endpoint with every client mistake turned into its one-line 4xx (never a 500)."""
    async def run(request: Request):  # noqa: ANN202
        try:
            return await handler(request)
        except CLIENT_ERRORS as e:
            return client_error(e)
    return run


def want_type(request: Request, *types: str) -> None:
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got not in types:
        raise WrongType(f"content type must be {' or '.join(types)}, got {got or 'none'!r}")


def check_length(request: Request, limit: int) -> None:
    n = request.headers.get("content-length")
    if n is not None:
        try:
            size = int(n)
        except ValueError:
            raise MalformedInput("Content-Length is not a number") from None
        if size > limit:
            raise TooLarge(f"body of {size} bytes is larger than the {limit} allowed here")


class TooSlow(MalformedInput):
    pass


@dataclass(frozen=True)
class BodyPace:
    """How slowly a client may send a body before the node hangs up (slowloris: an unauthenticated client
    that holds every connection slot by never finishing its upload). ``idle_s``: the most time between
    two chunks; after ``grace_s``, the body must average ``min_rate`` bytes/s. A body the node has
    refused is read on for ``drain_s`` at most, so a client still sending sees the answer and not a
    reset, but a refused client (one holding many connections at the pace floor) cannot keep one."""

    idle_s: float = 20.0
    grace_s: float = 30.0
    min_rate: float = 64 * 1024
    drain_s: float = 10.0  # the longest a refused body is read on (then answered, and the connection closed)


def pace_of(request: Request) -> BodyPace:
    return getattr(request.app.state, "body_pace", None) or BodyPace()


async def paced(request: Request):  # noqa: ANN201 - async iterator of bytes
    """``request.stream()``, cut off (``TooSlow``, a 408) when the client stalls or trickles."""
    pace = pace_of(request)
    it = request.stream().__aiter__()
    t0, got = time.monotonic(), 0
    while True:
        try:
            chunk = await asyncio.wait_for(it.__anext__(), pace.idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise TooSlow(f"no body bytes for {pace.idle_s:g} s: the upload is cut off") from None
        got += len(chunk)
        elapsed = time.monotonic() - t0
        if elapsed > pace.grace_s and got < pace.min_rate * elapsed:
            raise TooSlow(f"body arrives at {got / elapsed:,.0f} B/s, below the {pace.min_rate:,.0f} B/s "
                          "this node accepts: the upload is cut off")
        yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (never buffered beyond it)."""
    check_length(request, limit)
    buf = bytearray()
    async for chunk in paced(request):
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(f"body is larger than the {limit} bytes allowed here")
    return bytes(buf)


class Framed:
    """Reads a framed body: length-prefixed parts first, then the rest as a stream."""

    def __init__(self, request: Request) -> None:
        self._it = paced(request).__aiter__()
        self._drain_s = pace_of(request).drain_s
        self._buf = bytearray()
        self._done = False

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._done:
            try:
                self._buf += await self._it.__anext__()
            except StopAsyncIteration:
                self._done = True

    async def exact(self, n: int, what: str) -> bytes:
        await self._fill(n)
        if len(self._buf) < n:
            raise MalformedInput(f"body ends inside the {what}")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def u32(self, what: str) -> int:
        return struct.unpack("<I", await self.exact(4, f"{what} length"))[0]

    async def u64(self, what: str) -> int:
        return struct.unpack("<Q", await self.exact(8, f"{what} length"))[0]

    async def drain(self, limit: int, seconds: float) -> bool:
        """Read and discard up to ``limit`` more bytes, for ``seconds`` at most; True when the body ended
        (else the answer must close the connection: the rest of the body is never read)."""
        left = limit - len(self._buf)
        self._buf.clear()
        deadline = time.monotonic() + seconds
        while left > 0 and not self._done:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
            try:
                left -= len(await asyncio.wait_for(self._it.__anext__(), wait))
            except StopAsyncIteration:
                self._done = True
            except TimeoutError:
                return False
        return self._done

    async def refuse(self, limit: int, answer: Response) -> Response:
        """``answer`` to a body the node will not take, after ``drain`` (``BodyPace.drain_s``)."""
        if not await self.drain(limit, self._drain_s):
            answer.headers["connection"] = "close"
        return answer

    async def chunks(self, n: int | None = None):  # noqa: ANN201 - async iterator of bytes
        """The next ``n`` bytes (or everything left) as chunks."""
        left = n
        while left is None or left > 0:
            if not self._buf:  # the common case: pass the server's chunk on without copying it
                try:
                    chunk = await self._it.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    break
                if left is None or len(chunk) <= left:
                    if left is not None:
                        left -= len(chunk)
                    if chunk:
                        yield chunk
                    continue
                self._buf += chunk
            take = len(self._buf) if left is None else min(left, len(self._buf))
            out = bytes(self._buf[:take])
            del self._buf[:take]
            if left is not None:
                left -= take
            yield out
        if left:
            raise MalformedInput("body ends before the announced length")


def frame(*parts: bytes, lengths: str = "I") -> bytes:
    """Client side of the framing: each part prefixed by its length (u32 or u64 per ``lengths``)."""
    out = b""
    for p, L in zip(parts, lengths * len(parts), strict=False):
        out += struct.pack("<" + L, len(p)) + p
    return out
