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
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pogo_jax.errors import MalformedInput, Rejected, UserError

log = logging.getLogger("pogo.http")

FORBIDDEN = {"BAD_SIGNATURE", "WRONG_SIGNER", "UNREGISTERED_MINER", "UNREGISTERED_VERIFIER", "SLASHED_MINER",
             "SLASHED_VERIFIER", "WRONG_NODE", "NOT_BOUND"}
NOT_FOUND = {"UNKNOWN_HEADER", "NOT_FOUND"}
TOO_MANY = {"UPLOADS_IN_FLIGHT"}
CLIENT_ERRORS = (MalformedInput, Rejected, UserError)
T = TypeVar("T")


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
    if isinstance(e, Evicted):
        busy = error(503, str(e), "BUSY")
        busy.headers["connection"] = "close"
        return busy
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
    two chunks. After ``grace_s``, every ``window_s`` seconds must bring ``min_rate * window_s`` bytes:
    a sliding window, not an average since the start, which let a client that sent a burst first hold
    its connection on a trickle for as long as the burst had bought (a 34 MB bundle body at 64 KiB/s:
    9 minutes). ``header_s``: the most time from the start of a body to the end of what its check
    needs (a candidate's or an epoch's signed record, a bundle's header, a whole JSON body), so an
    unchecked body holds its slot for that long at most. A body the node has refused is read on for
    ``drain_s`` at most, so a client still sending sees the answer and not a reset, but a refused client
    (one holding many connections at the pace floor) cannot keep one. Time is counted while the node
    waits for the client, never while it works on what it got."""

    idle_s: float = 20.0
    grace_s: float = 30.0
    min_rate: float = 64 * 1024
    drain_s: float = 10.0  # the longest a refused body is read on (then answered, and the connection closed)
    window_s: float = 10.0
    header_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.window_s <= self.grace_s:
            raise ValueError("BodyPace: window_s must be in (0, grace_s]")


def pace_of(request: Request) -> BodyPace:
    return getattr(request.app.state, "body_pace", None) or BodyPace()


async def paced(request: Request):  # noqa: ANN201 - async iterator of bytes
    """``request.stream()``, cut off (``TooSlow``, a 408) when the client stalls or trickles: after the grace
    period, the bytes of the last ``window_s`` seconds before each chunk must reach the floor, and a
    silence of ``window_s`` is a window with none (checked when it ends, not at the next chunk)."""
    pace = pace_of(request)
    need = pace.min_rate * pace.window_s
    it = request.stream().__aiter__()
    waited, got = 0.0, 0
    marks: deque[tuple[float, int]] = deque([(0.0, 0)])  # (client time, bytes got by then); [0]: before the window
    while True:
        timeout = min(pace.idle_s, pace.window_s) if waited >= pace.grace_s else pace.idle_s
        t = time.monotonic()
        try:
            chunk = await asyncio.wait_for(it.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if timeout >= pace.idle_s:
                raise TooSlow(f"no body bytes for {pace.idle_s:g} s: the upload is cut off") from None
            raise TooSlow(f"no body bytes for {timeout:g} s after the first {pace.grace_s:g} s: the upload is "
                          "cut off") from None
        waited += time.monotonic() - t
        if waited >= pace.grace_s:
            while len(marks) > 1 and marks[1][0] <= waited - pace.window_s:
                marks.popleft()
            if got - marks[0][1] < need:
                raise TooSlow(f"body arrives at {(got - marks[0][1]) / pace.window_s:,.0f} B/s over the last "
                              f"{pace.window_s:g} s, below the {pace.min_rate:,.0f} B/s this node accepts: the "
                              "upload is cut off")
        got += len(chunk)
        marks.append((waited, got))
        yield chunk


async def before_check(request: Request, aw: Awaitable[T]) -> T:
    """``aw``, the reading of what a body's check needs, cut off (``TooSlow``) after ``BodyPace.header_s``."""
    limit = pace_of(request).header_s
    try:
        async with asyncio.timeout(limit):
            return await aw
    except TimeoutError:
        raise TooSlow(f"the start of the body did not arrive within {limit:g} s: the upload is cut off") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes (never buffered beyond it) or takes longer
    than ``BodyPace.header_s`` (a body read whole is checked only once it is all here)."""
    check_length(request, limit)

    async def read() -> bytes:
        buf = bytearray()
        async for chunk in paced(request):
            buf += chunk
            if len(buf) > limit:
                raise TooLarge(f"body is larger than the {limit} bytes allowed here")
        return bytes(buf)

    return await before_check(request, read())


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
            except (TimeoutError, Evicted):  # out of time, or a newer request took this body's slot
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


# ------------------------------------------------------------------------------ admission
@dataclass(frozen=True)
class Admission:
    """How many requests the node serves at once (node policy, not a consensus rule). Every request holds
    one of ``max_requests`` slots while it runs. A POST also holds one of ``max_unchecked`` until its
    handler has checked what its body starts with (``checked``: a candidate's header, an epoch's
    governance signature, a bundle's recorded header) or, for a body read whole, until it ends; so
    unauthenticated bodies hold at most ``max_unchecked`` slots and the rest stay for GETs and for
    uploads past their check. A POST that finds every unchecked slot held takes the oldest one: that
    body is answered 503 ``BUSY`` (``Connection: close``) and the newcomer served. An honest client
    sends the few KiB its check needs at once and is checked within milliseconds, so an attacker who
    reopens connections as fast as they are cut must open ``max_unchecked`` of them within that time
    to crowd it out; without eviction, 64 reopened junk connections kept an honest bundle out for
    good (scripts/flood_bundles.py --reopen). A request over ``max_requests`` is 503 ``BUSY`` at
    once (clients retry 503). Uvicorn's own ``limit_concurrency`` (``max_connections``: open
    connections, idle keep-alive ones too) stays as a backstop for file descriptors only: when it was
    the only cap, 256 junk bodies held every slot and every other request was 503."""

    max_requests: int = 256
    max_unchecked: int = 64
    max_connections: int = 512


TICKET = "pogo.admission"


class Evicted(MalformedInput):
    """An unchecked body whose slot a newer request took (answered 503 ``BUSY``)."""


class _Ticket:
    """One request's place in ``Admit``: unchecked (in the eviction queue) until ``checked`` or evicted."""

    def __init__(self, gate: Admit, unchecked: bool) -> None:
        self.gate, self.unchecked = gate, unchecked
        self.evicted = asyncio.Event()

    def checked(self) -> None:
        """Out of the unchecked pool; a request evicted while its check ran (in a worker thread, not reading)
        passed it after all and goes on like any checked request."""
        if self.unchecked:
            self.unchecked = False
            del self.gate.queue[self]
        self.evicted.clear()

    def evict(self) -> None:
        self.unchecked = False
        del self.gate.queue[self]
        self.evicted.set()

    def receive(self, receive):  # noqa: ANN001, ANN201 - ASGI receive in, ASGI receive out
        """``receive`` that raises ``Evicted`` (at once, even while it waits for the client) once evicted."""
        async def wrapped() -> dict:
            if self.evicted.is_set():
                raise Evicted("the node took this unchecked body's slot for a newer request; retry")
            if not self.unchecked:
                return await receive()
            got = asyncio.ensure_future(receive())
            stop = asyncio.ensure_future(self.evicted.wait())
            try:
                await asyncio.wait({got, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not got.done():
                    got.cancel()
            if got.done() and not got.cancelled():
                return got.result()
            raise Evicted("the node took this unchecked body's slot for a newer request; retry")
        return wrapped


class Admit:
    """ASGI middleware enforcing ``Admission``; its state lives on the event loop (no lock needed)."""

    def __init__(self, app, policy: Admission | None = None) -> None:  # noqa: ANN001 - an ASGI app
        self.app, self.policy = app, policy or Admission()
        self.active = 0
        self.queue: dict[_Ticket, None] = {}  # unchecked requests, oldest first

    @property
    def unchecked(self) -> int:
        return len(self.queue)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        p, unchecked = self.policy, scope["method"] == "POST"
        if self.active >= p.max_requests or (unchecked and p.max_unchecked <= 0):
            busy = error(503, "the node is serving as many requests as it takes at once; retry", "BUSY")
            busy.headers["connection"] = "close"
            await busy(scope, receive, send)
            return
        ticket = _Ticket(self, unchecked)
        if unchecked:
            while len(self.queue) >= p.max_unchecked:
                next(iter(self.queue)).evict()
            self.queue[ticket] = None
        self.active += 1
        scope[TICKET] = ticket
        try:
            await self.app(scope, ticket.receive(receive), send)
        finally:
            self.active -= 1
            if ticket.unchecked:
                ticket.checked()


def checked(request: Request) -> None:
    """This request's body passed its check: it no longer counts against ``Admission.max_unchecked``."""
    ticket = request.scope.get(TICKET)
    if ticket is not None:
        ticket.checked()
