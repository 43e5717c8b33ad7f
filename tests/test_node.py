"""The chain node over HTTP (loopback, in-process uvicorn): the API, bad input, idempotency, streaming,
resumed downloads, and 32 concurrent clients. Every write is a signed object; a client's mistake is a
4xx with one line and changes nothing."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time

import httpx
import pytest
from chainkit import Kit, key, make_dataset
from nodekit import serve

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import NodeClient, Refused
from pogo_jax.chain.http import BodyPace, frame
from pogo_jax.chain.view import ChainView
from pogo_jax.spec.keys import public_bytes


def dump(kit: Kit) -> tuple:
    return [e.to_obj() for e in kit.chain.ledger.entries()], kit.chain.ledger.tables()


def _start_post(url: str, path: str, content_type: str, length: int, first: bytes) -> socket.socket:
    """A raw POST that announces ``length`` body bytes and sends only ``first`` (the test sends the rest)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\n"
              f"content-length: {length}\r\n\r\n".encode() + first)
    return s


def wait_for(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_round_over_http_and_the_explorer(tmp_path) -> None:
    kit = Kit(tmp_path)
    with serve(kit.chain) as url:
        c = NodeClient(url)
        m = kit.make(0)
        assert c.submit_candidate(m.header_bytes, m.update)["result"] == "admitted"
        assert c.submit_candidate(m.header_bytes, m.update)["result"] == "duplicate"  # a retry is taken once
        kit.clock.advance(kit.rules.submit_window_ms)
        wait_for(lambda: kit.st.round.phase == "proof")
        assert c.submit_bundle(kit.bundle(m))["result"] == "admitted"
        votes = [kit.attest(v, m) for v in range(3)]
        for a in votes:  # full votes: committed first ...
            assert c.submit_commit(kit.commit(a))["result"] == "admitted"
            assert c.submit_commit(kit.commit(a))["result"] == "duplicate"
        wait_for(lambda: kit.st.round.phase == "reveal")  # every verifier committed: the commit window closes
        for a in votes:  # ... then revealed
            assert c.submit_attestation(a)["result"] == "admitted"
            assert c.submit_attestation(a)["result"] == "duplicate"
        wait_for(lambda: kit.st.tip_height == 1)
        view = ChainView(c)
        assert view.state.stakes == kit.st.stakes and view.state.tip_hash == m.hash
        assert [e.kind for e in view.client.entries()].count("attestation") == 3
        page = httpx.get(url + "/").text
        assert "<td>1</td>" in page and "confirmed" in page and "<svg" in page
        rep = audit(c.entries(), c.tables(), c.blob)
        assert rep.clean, rep.differences


BAD = [
    ("post", "/v1/attestations", b"{not json", "application/json", 400),
    ("post", "/v1/attestations", b"{}", "text/plain", 415),
    ("post", "/v1/attestations", b"x" * (1 << 18), "application/json", 413),
    ("post", "/v1/commits", b"{not json", "application/json", 400),
    ("post", "/v1/commits", b"x" * (1 << 17), "application/json", 413),
    ("post", "/v1/governance/register", b'{"kind":"register"}', "application/json", 400),
    ("post", "/v1/bundles", b"POGOBNDL" + bytes(100), "application/octet-stream", 400),
    ("post", "/v1/candidates", b"\xff\xff\xff\x7f", "application/octet-stream", 413),
    ("post", "/v1/candidates", frame(b"{}"), "application/octet-stream", 400),
    ("get", "/v1/blobs/..%2F..%2Fetc%2Fpasswd", None, None, 404),
    ("get", "/v1/blobs/..passwd", None, None, 400),
    ("get", "/v1/blobs/" + "0" * 64, None, None, 404),
    ("get", "/v1/blobs/ab/../cd", None, None, 400),
    ("get", "/v1/log?from=-1", None, None, 400),
    ("get", "/v1/log?from=99999999999999999999", None, None, 400),  # past SQLite's 64-bit integers: was a 500
    ("get", "/v1/nothing", None, None, 404),
    ("delete", "/v1/blobs/" + "0" * 64, None, None, 405),
]


def test_bad_requests_are_4xx_with_one_line_and_change_nothing(tmp_path) -> None:
    kit = Kit(tmp_path)
    m = kit.make(0)
    kit.submit(m)
    before = dump(kit)
    stranger = key("stranger")
    with serve(kit.chain) as url:
        h = httpx.Client(base_url=url)
        for method, path, body, ctype, want in BAD:
            r = h.request(method, path, content=body, headers={"content-type": ctype} if ctype else {})
            assert r.status_code == want, (method, path, r.status_code, r.text)
            if want != 405:
                obj = r.json()
                assert "\n" not in obj["error"] and obj["error"], obj
        c = NodeClient(url, retries=0)
        wrong = kit.make(1)  # its update does not hash to root_q
        with pytest.raises(Refused) as e:
            c.submit_candidate(wrong.header_bytes, bytes(len(wrong.update)))
        assert e.value.status == 409 and e.value.code == "ROOT_Q_MISMATCH"
        rogue = kit.make(1, key_=stranger)  # signed by a key that is not registered
        with pytest.raises(Refused) as e:
            c.submit_candidate(rogue.header_bytes, rogue.update)
        assert e.value.status == 403
        from pogo_jax.spec.encoding import canonical
        from pogo_jax.spec.envelope import seal
        from pogo_jax.spec.records import Participant, Register

        reg = seal(Register(kit.chain_id, public_bytes(kit.gov), Participant(public_bytes(stranger), "miner",
                                                                                  "ok", 1)), kit.gov).to_obj()
        reg["body"]["participant"]["name"] = "../../etc"
        r = h.post("/v1/governance/register", content=canonical(reg), headers={"content-type": "application/json"})
        assert r.status_code == 400 and "names are" in r.json()["error"]
    assert dump(kit) == before


def test_blobs_stream_with_ranges_and_a_broken_download_resumes(tmp_path) -> None:
    kit = Kit(tmp_path)
    with serve(kit.chain) as url:
        c = NodeClient(url)
        ref = kit.st.genesis.data
        data = c.blob(ref.blob)
        assert hashlib.sha256(data).digest() == ref.blob
        r = httpx.get(f"{url}/v1/blobs/{ref.blob.hex()}", headers={"range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        assert httpx.get(f"{url}/v1/blobs/{ref.blob.hex()}", headers={"range": "bytes=9-3"}).status_code == 416
        out = tmp_path / "dl" / "data.pogodata"
        out.parent.mkdir()
        (out.parent / "data.pogodata.part").write_bytes(data[: len(data) // 3])  # what a killed client leaves
        got = []
        orig = c.http.stream

        def spy(method, path, **kw):  # noqa: ANN001, ANN003, ANN202
            got.append(kw.get("headers", {}).get("range"))
            return orig(method, path, **kw)

        c.http.stream = spy
        c.blob_to_file(ref.blob, out)
        assert got == [f"bytes={len(data) // 3}-"] and out.read_bytes() == data
        (out.parent / "data.pogodata.part").write_bytes(b"garbage" * 10)  # a wrong prefix is not trusted
        out.unlink()
        with pytest.raises(Exception, match="does not hash"):
            c.blob_to_file(ref.blob, out)


def test_32_concurrent_clients(tmp_path) -> None:
    """Verifiers polling, attesting and downloading a 64 MB blob at once for a bounded time: only the expected
    answers, no attestation lost, the ledger consistent."""
    big = make_dataset(tmp_path / "big.pogodata", n_bytes=64 << 20, shard=1 << 20, seed=3)
    kit = Kit(tmp_path / "k", n_verifiers=32, dataset=big)
    m = kit.make(0)
    kit.submit(m)
    kit.close_submit()
    kit.chain.submit_bundle(kit.bundle(m))
    kit.chain.tick()
    atts = [kit.attest(v, m) for v in range(32)]
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    with serve(kit.chain) as url:
        def client(i: int) -> None:
            h = httpx.Client(base_url=url, timeout=60)
            end = time.monotonic() + 8
            posted = False
            while time.monotonic() < end:
                try:
                    if not posted:
                        r = h.post("/v1/commits", content=kit.commit(atts[i]),
                                   headers={"content-type": "application/json"})
                        posted = r.status_code == 200
                    elif i % 4 == 0:
                        with h.stream("GET", f"/v1/blobs/{kit.st.genesis.data.blob.hex()}") as r:
                            n = sum(len(x) for x in r.iter_bytes(1 << 20))
                            if n != big.stat().st_size:
                                raise AssertionError(f"short download {n}")
                    else:
                        r = h.get("/v1/round" if i % 2 else "/v1/log", params={"from": 0})
                    with lock:
                        statuses.append(r.status_code)
                except Exception as e:  # noqa: BLE001 - every failure is recorded and fails the test
                    with lock:
                        errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(i,)) for i in range(32)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errors, errors[:3]
        assert set(statuses) <= {200}, sorted(set(statuses))
        wait_for(lambda: kit.st.round.phase == "reveal")
        for a in atts:
            assert httpx.post(url + "/v1/attestations", content=a, headers={"content-type": "application/json"},
                              timeout=30).status_code == 200
        wait_for(lambda: kit.st.tip_height == 1)
        votes = kit.st.history[-1].candidates[m.hash].votes
        assert len(votes) == 32
        rep = audit(kit.chain.ledger.entries(), kit.chain.ledger.tables(), kit.chain.fetch)
        assert rep.clean, rep.differences


def test_stalled_uploads_are_cut_off_and_free_their_connection_slots(tmp_path) -> None:
    """Slowloris: clients that start a body and never finish it held every connection slot of the node for
    as long as they liked (no deadline), so no miner could post a bundle and honest miners were slashed
    as withheld. Now a body that stalls longer than ``idle_s`` is answered 408 and its connection closed."""
    kit = Kit(tmp_path)
    pace = BodyPace(idle_s=1.0, grace_s=60.0, min_rate=1.0)
    with serve(kit.chain, limit_concurrency=4, body_pace=pace) as url:  # uvicorn serves limit - 1 at once
        socks = []
        for path in ("/v1/attestations", "/v1/bundles", "/v1/candidates"):
            kind = "application/json" if "att" in path else "application/octet-stream"
            socks.append(_start_post(url, path, kind, 1000, b"\x01\x00"))  # a start, then nothing
        time.sleep(0.3)
        assert httpx.get(url + "/v1/info").status_code == 503  # the attack: every slot is held
        t0 = time.monotonic()
        wait_for(lambda: httpx.get(url + "/v1/info").status_code == 200, timeout=15)
        assert time.monotonic() - t0 < 10
        for s in socks:
            head = s.recv(4096).split(b"\r\n")[0]
            assert b" 408 " in head, head
            s.close()
        assert kit.st.seq == 1  # nothing recorded


def test_a_miner_holds_at_most_two_uploads_and_every_ending_frees_its_slot(tmp_path) -> None:
    """One registered miner opened as many uploads of its (valid) header as the node had connection slots
    and never finished them: each held a slot and a temp file of a whole update, so no other miner could
    submit in the window and the attacker's own candidate was the round's only one. Now a miner has at
    most ``MAX_UPLOADS_PER_MINER`` uploads in flight (a third is 429 UPLOADS_IN_FLIGHT), other miners are
    unaffected, and a slot comes back however its upload ends (refused root, dropped, cut off)."""
    from pogo_jax.chain.chain import MAX_UPLOADS_PER_MINER
    from pogo_jax.errors import Rejected

    kit = Kit(tmp_path, n_miners=3)
    m0, m1, m2 = (kit.make(i) for i in range(3))
    tmp_files = lambda: sorted(kit.chain.blobs.tmp_dir.iterdir())  # noqa: E731

    # in process: the cap, and the slot given back by a refused root and by a drop
    held = [kit.chain.begin_candidate(m0.header_bytes) for _ in range(MAX_UPLOADS_PER_MINER)]
    with pytest.raises(Rejected) as e:
        kit.chain.begin_candidate(m0.header_bytes)
    assert e.value.code == "UPLOADS_IN_FLIGHT"
    held[0].write(bytes(len(m0.update)))  # the right length, the wrong bytes
    with pytest.raises(Rejected, match="ROOT_Q_MISMATCH"):
        kit.chain.finish_candidate(held[0])
    held[1].close()
    assert tmp_files() == []
    again = [kit.chain.begin_candidate(m0.header_bytes) for _ in range(MAX_UPLOADS_PER_MINER)]
    for cu in again:
        cu.close()
    assert kit.st.seq == 1  # nothing recorded yet

    # over HTTP: two stalled uploads of miner 0, cut off after idle_s
    pace = BodyPace(idle_s=1.5, grace_s=60.0, min_rate=1.0)
    with serve(kit.chain, body_pace=pace) as url:
        body = frame(m0.header_bytes) + m0.update
        socks = []
        for _ in range(MAX_UPLOADS_PER_MINER):
            socks.append(_start_post(url, "/v1/candidates", "application/octet-stream", len(body), body[: len(body) // 2]))
        wait_for(lambda: len(tmp_files()) == MAX_UPLOADS_PER_MINER, timeout=5)
        c = NodeClient(url)
        with pytest.raises(Refused) as e:
            c.submit_candidate(m0.header_bytes, m0.update)
        assert (e.value.status, e.value.code) == (429, "UPLOADS_IN_FLIGHT") and "\n" not in str(e.value)
        assert c.submit_candidate(m1.header_bytes, m1.update)["result"] == "admitted"  # others are not blocked
        wait_for(lambda: tmp_files() == [], timeout=10)  # the stalled two are cut off (408) ...
        for s in socks:
            assert b" 408 " in s.recv(4096).split(b"\r\n")[0]
            s.close()
        assert c.submit_candidate(m0.header_bytes, m0.update)["result"] == "admitted"  # ... and their slots free
        assert c.submit_candidate(m2.header_bytes, m2.update)["result"] == "admitted"
    assert kit.st.seq == 4


def test_a_refused_upload_is_answered_after_drain_s_and_gives_its_connection_back(tmp_path) -> None:
    """Found in review: a refused upload (here the 429 of a third upload) was answered only after the node
    had read the rest of its body, up to a whole update, and a client sending just above the pace floor
    kept its connection that long; one registered miner held every connection slot with two capped
    uploads and any number of refused ones, and no other miner could submit. Now a refused body is read
    on for ``drain_s`` at most, then answered with ``Connection: close``."""
    from pogo_jax.chain.chain import MAX_UPLOADS_PER_MINER

    kit = Kit(tmp_path, n_miners=2)
    m0, m1 = kit.make(0), kit.make(1)
    pace = BodyPace(idle_s=1.0, grace_s=60.0, min_rate=1.0, drain_s=0.5)  # the pace floor, scaled down
    stop = threading.Event()
    with serve(kit.chain, limit_concurrency=4, body_pace=pace) as url:  # uvicorn serves 3 at once
        body = frame(m0.header_bytes) + m0.update
        start = len(frame(m0.header_bytes)) + 8
        socks = []
        for _ in range(MAX_UPLOADS_PER_MINER + 1):  # two uploads that get slots, and one that gets 429
            socks.append(_start_post(url, "/v1/candidates", "application/octet-stream", len(body), body[:start]))
            time.sleep(0.2)

        def trickle() -> None:  # a byte per socket every 0.3 s: above the floor, never idle
            off = start
            while not stop.wait(0.3) and off < len(body) - 1:
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.sendall(body[off:off + 1])
                off += 1

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            wait_for(lambda: len(list(kit.chain.blobs.tmp_dir.iterdir())) == MAX_UPLOADS_PER_MINER, timeout=5)
            socks[-1].settimeout(5)
            t0 = time.monotonic()
            answer = socks[-1].recv(65536)
            while not answer.endswith(b"}"):
                more = socks[-1].recv(65536)
                if not more:
                    break
                answer += more
            head = answer.split(b"\r\n\r\n")[0].lower()
            assert b" 429 " in head.split(b"\r\n")[0] and b"connection: close" in head, answer[:300]
            assert b"UPLOADS_IN_FLIGHT" in answer and time.monotonic() - t0 < 5
            wait_for(lambda: socks[-1].recv(1) == b"", timeout=5)  # and the node hung up: its slot is free
            r = httpx.post(url + "/v1/candidates", content=frame(m1.header_bytes) + m1.update,
                           headers={"content-type": "application/octet-stream"}, timeout=10)
            assert r.status_code == 200 and r.json()["result"] == "admitted", r.text  # another miner submits
        finally:
            stop.set()
            t.join(5)
            for s in socks:
                s.close()
    assert kit.st.seq == 2


def test_a_request_cancelled_while_its_header_is_checked_leaks_no_slot(tmp_path) -> None:
    """Found in review: ``begin_candidate`` ran in a worker thread outside the handler's ``finally``, and a
    request cancelled meanwhile (a plain ``task.cancel()``, which anyio does not hold back: the thread
    runs on) left its slot and temp file behind; two such cancels locked the miner out until a restart.
    Now whichever side finishes last closes the upload. (Under uvicorn only a shutdown cancels a handler.)"""
    import asyncio

    from pogo_jax.chain.chain import MAX_UPLOADS_PER_MINER
    from pogo_jax.chain.node import make_app

    kit = Kit(tmp_path, n_miners=1)
    m0 = kit.make(0)
    chain = kit.chain
    real, finished = chain.begin_candidate, []

    def slow_begin(header_bytes: bytes):  # noqa: ANN202 - the real check on a busy node
        time.sleep(0.4)
        out = real(header_bytes)
        finished.append(out)
        return out

    chain.begin_candidate = slow_begin
    app = make_app(chain, tick_every=3600)
    body = frame(m0.header_bytes) + m0.update[:100]

    async def one_cancelled_request() -> None:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": True}
            await asyncio.Event().wait()  # the rest of the body never comes
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            pass

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/candidates", "raw_path": b"/v1/candidates", "query_string": b"",
                 "root_path": "", "headers": [(b"content-type", b"application/octet-stream"), (b"host", b"x")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(0.15)  # the header is being checked in the worker thread
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    for i in range(MAX_UPLOADS_PER_MINER + 1):
        asyncio.run(one_cancelled_request())
        wait_for(lambda: len(finished) == i + 1, timeout=5)  # noqa: B023
    chain.begin_candidate = real
    wait_for(lambda: list(chain.blobs.tmp_dir.iterdir()) == [], timeout=5)  # every temp file is gone
    for cu in [chain.begin_candidate(m0.header_bytes) for _ in range(MAX_UPLOADS_PER_MINER)]:
        cu.close()  # and every slot came back
