"""Bundle uploads handled like candidates (issue 22, found in review): the node read a whole ``POST /v1/bundles``
body into memory (up to ``max_bundle_bytes``: 34 MB on gpt2-124m) before it looked at the header, and the pace
rule was an average since the start, so a burst bought a long hold; 250 unauthenticated connections took the
node from 56 MB to 1,119 MB, and 256 held every connection slot until the honest miner's bundle failed and its
candidate ended ``withheld``. Now the header is checked from the bundle's first bytes before any leaf byte is
read, only one upload per candidate streams (to a temp file), the pace is a sliding window, and unchecked bodies
hold at most ``Admission.max_unchecked`` of the node's request slots."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import threading
import time

import httpx
import psutil
import pytest
from chainkit import Kit
from nodekit import serve

from pogo_jax.chain.chain import MAX_HEADER_BYTES
from pogo_jax.chain.client import NodeClient, Refused
from pogo_jax.chain.http import Admission, BodyPace
from pogo_jax.errors import MalformedInput
from pogo_jax.spec.bundle import FIXED_BYTES, Bundle

OCTETS = "application/octet-stream"


def wait_for(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def claim_of(bundle: bytes) -> str:
    """The headers a bundle upload announces itself with: its body's SHA-256 and the miner's signature."""
    return (f"x-pogo-bundle-sha256: {hashlib.sha256(bundle[:-64]).hexdigest()}\r\n"
            f"x-pogo-bundle-signature: {bundle[-64:].hex()}\r\n")


def start_post(url: str, length: int, first: bytes, path: str = "/v1/bundles", claim: bytes | None = None) \
        -> socket.socket:
    """A raw POST announcing ``length`` body bytes that sends only ``first`` (the test sends the rest, or not);
    ``claim``: the bundle whose hash and signature it announces (as the miner's client does)."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    extra = claim_of(claim) if claim is not None else ""
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {OCTETS}\r\ncontent-length: {length}\r\n{extra}"
              "\r\n".encode() + first)
    return s


def answer(s: socket.socket, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Status, JSON body and raw head of the node's answer on ``s``."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        more = s.recv(65536)
        assert more, f"connection closed without an answer: {buf[:200]!r}"
        buf += more
    head, body = buf.split(b"\r\n\r\n", 1)
    n = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < n:
        more = s.recv(65536)
        assert more, "connection closed inside the answer"
        body += more
    return int(head.split(b" ")[1]), json.loads(body[:n]), head.lower()


def tmp_files(kit: Kit) -> list:
    return sorted(kit.chain.blobs.tmp_dir.iterdir())


def foreign(kit: Kit, real: bytes, made) -> bytes:  # noqa: ANN001 - chainkit.Made
    """``real`` with its header replaced by ``made``'s (no candidate of this chain), signed by its miner."""
    b = dataclasses.replace(Bundle.from_bytes(real), signed_header=made.signed)
    return b.signed(kit.miners[made.miner]).to_bytes()


def proof_round(tmp_path, n_miners: int = 2) -> tuple[Kit, list]:  # noqa: ANN001
    """A chain whose open round is in its proof window with one candidate per miner, none bundled yet."""
    kit = Kit(tmp_path, n_miners=n_miners)
    made = [kit.make(i) for i in range(n_miners)]
    for m in made:
        kit.submit(m)
    kit.close_submit()
    assert kit.st.round.phase == "proof"
    return kit, made


def test_the_header_is_read_from_the_first_bytes_and_never_a_leaf_byte(tmp_path) -> None:
    """``peek_size`` never reaches the leaf data, and ``header_from_prefix`` finds the header in exactly that
    prefix and refuses any prefix that cuts it (the node then waits for more or refuses the body)."""
    kit, (m, _) = proof_round(tmp_path)
    data = kit.bundle(m)
    jlen = int.from_bytes(data[12:20], "little")
    n = Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)
    assert n <= FIXED_BYTES + jlen  # metadata only: the leaf data starts at 28 + J
    assert Bundle.header_from_prefix(data[:n]).to_bytes() == m.header_bytes == Bundle.peek_header(data).to_bytes()
    end = data.index(m.header_bytes) + len(m.header_bytes)
    assert Bundle.header_from_prefix(data[:end]).to_bytes() == m.header_bytes  # the header's last byte suffices
    for cut in (FIXED_BYTES + 5, end - 1, end - len(m.header_bytes) // 2):
        with pytest.raises(MalformedInput):
            Bundle.header_from_prefix(data[:cut])
    spaced = data[:end - 1] + b" " + data[end - 1:]  # not canonical: refused, as the full reader would
    with pytest.raises(MalformedInput):
        Bundle.header_from_prefix(spaced[:n + 1])
    for junk in (b"POGOBNDX" + data[8:n], data[:8] + b"\x09\x00\x00\x00" + data[12:n],
                 data[:12] + (1 << 40).to_bytes(8, "little") + data[20:n]):
        with pytest.raises(MalformedInput):
            Bundle.peek_size(junk[:FIXED_BYTES])


def test_a_bundle_that_cannot_be_taken_is_refused_from_its_first_bytes(tmp_path) -> None:
    """(a) Unknown header, a candidate of a past round, a closed proof window, junk: each is answered while the
    client has sent only the bundle's first bytes (the fixed part and the metadata up to its header) and has
    megabytes unsent; no temp file, no blob, nothing recorded."""
    kit = Kit(tmp_path, n_miners=2)
    old = kit.make(0)
    kit.run_round([old])  # round 1: confirmed, its bundle stored
    assert kit.st.tip_height == 1
    m, late = kit.make(0), kit.make(1)
    kit.submit(m)
    kit.submit(late)
    kit.close_submit()
    stranger = kit.make(1)  # a header no chain recorded
    old_bundle, m_bundle, late_bundle = kit.bundle(old), kit.bundle(m), kit.bundle(late)
    stranger_bundle = foreign(kit, m_bundle, stranger)
    pace = BodyPace(drain_s=0.3)
    with serve(kit.chain, body_pace=pace) as url:
        limit = kit.chain.max_bundle_bytes()
        blobs_before = sorted(kit.chain.blobs.all())

        def refused(data: bytes) -> tuple[int, str]:
            seq = kit.st.seq
            first = data[:Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)]
            s = start_post(url, limit, first)
            t0 = time.monotonic()
            try:
                status, obj, head = answer(s, timeout=5)
            finally:
                s.close()
            assert time.monotonic() - t0 < 3 and b"connection: close" in head
            assert limit - len(first) > 4_000_000  # the client still had MBs to send
            assert "\n" not in obj["error"] and tmp_files(kit) == [] and kit.st.seq == seq
            assert sorted(kit.chain.blobs.all()) == blobs_before
            return status, obj["code"]

        assert refused(stranger_bundle) == (404, "UNKNOWN_HEADER")
        assert refused(old_bundle) == (404, "UNKNOWN_HEADER")  # a candidate, but of a past round
        s = start_post(url, limit, b"NOTABNDL" + bytes(12))  # junk: refused from its first 20 bytes
        status, obj, _ = answer(s, timeout=5)
        s.close()
        assert (status, obj["code"]) == (400, "MALFORMED") and "bad magic" in obj["error"]

        c = NodeClient(url, retries=0)
        assert c.submit_bundle(m_bundle)["result"] == "admitted"
        kit.clock.advance(kit.rules.prove_window_ms)
        wait_for(lambda: kit.st.round.phase != "proof")  # the proof window closes without late's bundle
        blobs_before = sorted(kit.chain.blobs.all())
        assert refused(late_bundle) == (409, "WINDOW_CLOSED")


def test_one_upload_per_candidate_and_a_retry_is_compared_not_stored(tmp_path) -> None:
    """(b) A second upload for a candidate while one is in flight is 429 ``UPLOADS_IN_FLIGHT`` (the header is
    public: without the cap anyone could open any number of temp files of ``max_bundle_bytes``); other
    candidates are unaffected; once the first ends its retry is ``duplicate`` and another bundle
    ``BUNDLE_FIXED``, both compared with the stored file as they arrive, never written."""
    kit, (m0, m1) = proof_round(tmp_path)
    b0, b1 = kit.bundle(m0), kit.bundle(m1)
    with serve(kit.chain) as url:
        first = start_post(url, len(b0), b0[:len(b0) // 2], claim=b0)
        wait_for(lambda: len(tmp_files(kit)) == 1, timeout=5)
        c = NodeClient(url, retries=0)
        with pytest.raises(Refused) as e:
            c.submit_bundle(b0)
        assert (e.value.status, e.value.code) == (429, "UPLOADS_IN_FLIGHT")
        assert c.submit_bundle(b1)["result"] == "admitted"  # another candidate's upload is not blocked
        first.sendall(b0[len(b0) // 2:])
        status, obj, _ = answer(first)
        first.close()
        assert status == 200 and obj["result"] == "admitted"
        assert c.submit_bundle(b0)["result"] == "duplicate"  # a retry after a lost answer
        with pytest.raises(Refused) as e:
            c.submit_bundle(kit.bundle(m0, losses=(2.0, 1.25)))  # a second, differently signed answer
        assert (e.value.status, e.value.code) == (409, "BUNDLE_FIXED")
        assert tmp_files(kit) == []
    assert kit.chain.blobs.get(kit.st.find(m0.hash)[1].bundle_sha256) == b0
    assert [e.kind for e in kit.chain.ledger.entries()].count("bundle") == 2


def test_a_burst_then_a_trickle_is_cut_off_by_the_sliding_window(tmp_path) -> None:
    """(c) A client sends 1 MB at once, then 500 bytes every 0.1 s: the old rule (an average since the start)
    kept it for 1 MB / 64 KiB/s = 16 s; the sliding window cuts it off (408) within a second of the grace
    period, the candidate's upload slot comes back and its miner's real bundle gets in."""
    kit, (m, _) = proof_round(tmp_path)
    data = kit.bundle(m)
    pace = BodyPace(idle_s=5.0, grace_s=0.5, window_s=0.5, min_rate=64 * 1024, drain_s=0.3)
    with serve(kit.chain, body_pace=pace) as url:
        n = Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)
        burst = data[:n] + os.urandom(1 << 20)
        t0 = time.monotonic()
        s = start_post(url, kit.chain.max_bundle_bytes(), burst, claim=data)  # the miner's own broken client
        sent, cut = len(burst), None
        s.setblocking(False)
        while cut is None and time.monotonic() - t0 < 10:
            time.sleep(0.1)
            try:
                head = s.recv(4096)
                cut = time.monotonic() - t0
                assert b" 408 " in head.split(b"\r\n")[0] and b"TOO_SLOW" in head, head[:300]
            except BlockingIOError:
                s.send(b"\0" * 500)
                sent += 500
        s.close()
        assert cut is not None and cut < 3.0, cut
        assert sent / cut > 4 * pace.min_rate  # the average since the start was far above the floor
        wait_for(lambda: tmp_files(kit) == [], timeout=5)
        assert NodeClient(url, retries=0).submit_bundle(data)["result"] == "admitted"


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def test_junk_bodies_neither_grow_the_node_nor_keep_an_honest_bundle_out(tmp_path) -> None:
    """(d) 40 unauthenticated connections (20 stalled inside a bundle's metadata, 20 pushing megabytes of junk
    and fake-header bundles) hold bodies open on the node: the honest miner's real bundle is admitted in its
    proof window, a GET is answered, and the node (this process) grows by a few MB, not by the 40 x 4.3 MB
    the old handler buffered before it looked at the header."""
    kit, (m, other) = proof_round(tmp_path)
    data = kit.bundle(m)
    fake = foreign(kit, data, kit.make(1))  # a well-formed bundle whose header no chain recorded
    with serve(kit.chain) as url:
        limit = kit.chain.max_bundle_bytes()
        junk = os.urandom(1 << 20)
        base = rss_mb()
        peak = [base]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stalled = [start_post(url, limit, fake[:FIXED_BYTES + 40]) for _ in range(20)]
        pushers = [start_post(url, limit, (fake[:4096] if i % 2 else b"")) for i in range(20)]
        for s in pushers:
            s.setblocking(False)
        pushed = [0] * len(pushers)
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:  # push junk as fast as the node takes it
                for i, s in enumerate(pushers):
                    left = limit - 4096 - pushed[i]
                    with contextlib.suppress(OSError):  # would block, or refused and closed by the node
                        if left > 0:
                            pushed[i] += s.send(junk[:left])
            assert httpx.get(url + "/v1/info", timeout=5).status_code == 200
            c = NodeClient(url, retries=2)
            assert c.submit_bundle(data)["result"] == "admitted"
            assert kit.st.round.candidates[m.hash].bundle_sha256 is not None
            grown = max(peak[0], rss_mb()) - base
        finally:
            stop.set()
            sampler.join()
            for s in stalled + pushers:
                s.close()
        assert sum(pushed) > 20e6, sum(pushed)  # the junk side did push tens of MB at the node
        assert grown < 30, f"the node grew by {grown:.1f} MB under 40 junk bodies"


def test_unchecked_bodies_hold_at_most_their_share_of_slots(tmp_path) -> None:
    """Admission: with ``max_unchecked`` = 4, four bodies stalled before their check hold every unchecked slot.
    A new POST takes the oldest one's slot (that body is answered 503 ``BUSY`` at once) and the honest bundle
    behind it is admitted; GETs and an upload past its check are served throughout; the other stalled
    bodies lose their slots after ``header_s`` (408) although they never went ``idle_s`` without a byte.
    Without the eviction, junk reopened as fast as it was cut held the unchecked slots for good."""
    kit, (m, other) = proof_round(tmp_path)
    data = kit.bundle(m)
    pace = BodyPace(idle_s=5.0, header_s=1.5)
    admission = Admission(max_requests=8, max_unchecked=4)
    with serve(kit.chain, body_pace=pace, admission=admission) as url:
        n = Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)
        checked = start_post(url, len(data), data[:n + 100], claim=data)  # past its check: holds no unchecked slot
        wait_for(lambda: len(tmp_files(kit)) == 1, timeout=5)
        stalled = []
        for i in range(4):
            stalled.append(start_post(url, 10_000, data[:FIXED_BYTES + i]))
            time.sleep(0.1)
        time.sleep(0.2)
        t0 = time.monotonic()
        c = NodeClient(url, retries=0)
        assert c.submit_bundle(kit.bundle(other))["result"] == "admitted" and time.monotonic() - t0 < 1
        status, obj, head = answer(stalled[0], timeout=2)  # the oldest stalled body gave its slot up
        assert (status, obj["code"]) == (503, "BUSY") and b"connection: close" in head
        assert httpx.get(url + "/v1/round", timeout=5).status_code == 200
        for i, s in enumerate(stalled[1:], 1):  # one more byte: not idle for idle_s, but no header yet
            s.sendall(data[FIXED_BYTES + i:FIXED_BYTES + i + 1])
        for s in stalled[1:]:
            status, obj, _ = answer(s, timeout=5)
            assert (status, obj["code"]) == (408, "TOO_SLOW")
        assert time.monotonic() - t0 < 3
        for s in stalled:
            s.close()
        checked.sendall(data[n + 100:])
        assert answer(checked)[1]["result"] == "admitted"
        checked.close()
    assert [e.kind for e in kit.chain.ledger.entries()].count("bundle") == 2


def test_a_copied_header_cannot_hold_the_miners_upload_slot(tmp_path) -> None:
    """A candidate's header is public, and it has one upload slot: without the signed claim anyone could copy
    the header and hold the slot at the minimum rate until the proof window closes (the miner then ends
    ``withheld``). An upload must announce the body's hash with the miner's signature of it before the node
    gives it the slot; a copy without it, or with a made-up one, is refused at once, and a claim that the body
    then contradicts is refused at the end."""
    kit, (m, _) = proof_round(tmp_path)
    data = kit.bundle(m)
    n = Bundle.peek_size(data[:FIXED_BYTES], MAX_HEADER_BYTES)
    other = kit.bundle(m, losses=(2.0, 1.25))  # signed by the miner, but not what it announced
    # a refused body is read on for drain_s before the answer: short here, the client sends no more
    with serve(kit.chain, body_pace=BodyPace(drain_s=0.5)) as url:
        for claim in (None, data[:-64] + os.urandom(64)):
            s = start_post(url, len(data), data[:n], claim=claim)
            status, obj, _ = answer(s)
            s.close()
            assert (status, obj["code"]) == (403, "BAD_SIGNATURE"), obj
        assert tmp_files(kit) == []
        s = start_post(url, len(other), other[:n], claim=data)
        s.sendall(other[n:])
        status, obj, _ = answer(s)
        s.close()
        assert status == 400 and "announced" in obj["error"], obj
        held = start_post(url, len(data), data[:n])  # the copier holds the connection open, unclaimed
        assert NodeClient(url, retries=0).submit_bundle(data)["result"] == "admitted"  # the miner gets in
        held.close()
