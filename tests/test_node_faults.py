"""The node and the beacon as child processes, killed with SIGKILL at every phase boundary, in the middle of
an upload and in the middle of a ledger write: nothing recorded is lost, nothing half-written is served, and
the round goes on. The beacon down for a while: the round waits, then recovers. Loopback only, bounded."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest
from chainkit import Kit
from nodekit import Child

from pogo_jax.chain.audit import audit
from pogo_jax.chain.client import NodeClient
from pogo_jax.chain.http import frame
from pogo_jax.errors import UserError

pytestmark = pytest.mark.timeout(240)


class Net:
    def __init__(self, kit: Kit, beacon_port: int = 0) -> None:
        self.kit = kit
        self.beacon = Child("beacon", "serve", "--dir", str(kit.tmp / "beacon"), "--port", str(beacon_port))
        self.burl = self.beacon.wait_url()
        self.node: Child | None = None

    def start_node(self, env: dict | None = None) -> NodeClient:
        self.node = Child("node", "serve", "--dir", str(self.kit.tmp / "node"), "--port", "0", "--beacon", self.burl,
                          env=env)
        return self.kit.attach(self.node.wait_url())

    def stop(self) -> None:
        for c in (self.node, self.beacon):
            if c is not None:
                c.stop()


def wait_for(kit: Kit, cond, timeout: float = 30.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond(kit.st):
        assert time.monotonic() < end, f"timed out in phase {kit.st.round.phase}"
        time.sleep(0.1)


@pytest.fixture
def net(tmp_path):
    kit = Kit(tmp_path, submit_window_ms=800, prove_window_ms=8000, attest_window_ms=4000, reveal_window_ms=4000)
    kit.chain.close()
    n = Net(kit)
    yield n
    n.stop()


def test_kill_9_at_every_phase_boundary_loses_no_record(net: Net) -> None:
    kit = net.kit
    c = net.start_node()
    m = kit.make(0)
    c.submit_candidate(m.header_bytes, m.update)
    steps = [("candidate", lambda: None),
             ("reveal", lambda: wait_for(kit, lambda st: st.round.beacon is not None)),
             ("bundle", lambda: c.submit_bundle(kit.bundle(m))),
             ("commits", lambda: [c.submit_commit(kit.commit(votes[v])) for v in range(2)]),
             ("last commit", lambda: (c.submit_commit(kit.commit(votes[2])),
                                      wait_for(kit, lambda st: st.round.phase == "reveal"))),
             ("reveals", lambda: [c.submit_attestation(votes[v]) for v in range(2)])]
    votes: list[bytes] = []
    for name, act in steps:
        if name == "commits":
            votes = [kit.attest(v, m) for v in range(3)]
        act()
        seq = kit.st.seq
        net.node.kill9()
        c = net.start_node()
        assert kit.st.seq >= seq, f"lost entries after the kill at '{name}'"
    c.submit_attestation(votes[2])
    wait_for(kit, lambda st: st.tip_height == 1)
    rep = audit(c.entries(), c.tables(), c.blob)
    assert rep.clean, rep.differences


def test_kill_9_inside_a_ledger_write_and_during_an_upload(net: Net) -> None:
    kit = net.kit
    c = net.start_node(env={"POGO_TEST_KILL_IN_APPEND": "candidate"})
    m = kit.make(0)
    with pytest.raises(UserError):  # the node dies between writing the entry and committing it
        NodeClient(net.node.url, retries=0).submit_candidate(m.header_bytes, m.update)
    net.node.p.wait(10)
    assert net.node.p.returncode == -9
    c = net.start_node()
    assert kit.st.round.candidates == {} and kit.st.seq == 1  # rolled back whole: no entry, tables consistent
    # an upload cut off by a kill: only a temp file is left, removed at start, never served
    big = m.update

    def slow():  # noqa: ANN202
        yield frame(m.header_bytes)
        yield big[: len(big) // 2]
        time.sleep(30)
        yield big[len(big) // 2:]

    def upload() -> None:  # the node dies under it: the connection drop is expected
        with contextlib.suppress(httpx.TransportError):
            httpx.post(net.node.url + "/v1/candidates", content=slow(), timeout=60,
                       headers={"content-type": "application/octet-stream"})

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    tmp = kit.tmp / "node" / "blobs" / "tmp"
    end = time.monotonic() + 20
    while not any(tmp.iterdir()):
        assert time.monotonic() < end
        time.sleep(0.05)
    net.node.kill9()
    assert any(tmp.iterdir())
    c = net.start_node()
    assert not any(tmp.iterdir()) and kit.st.round.candidates == {}
    assert c.submit_candidate(m.header_bytes, m.update)["result"] == "admitted"
    assert kit.st.seq == 2


def test_the_beacon_down_for_a_while_the_round_waits_and_recovers(net: Net) -> None:
    kit = net.kit
    c = net.start_node()
    port = int(net.burl.rsplit(":", 1)[1])
    net.beacon.stop()
    m = kit.make(0)
    c.submit_candidate(m.header_bytes, m.update)
    wait_for(kit, lambda st: st.round.phase == "beacon")
    time.sleep(2.0)
    assert kit.st.round.phase == "beacon"  # no value yet: nothing can be proved, nothing is guessed
    net.beacon = Child("beacon", "serve", "--dir", str(kit.tmp / "beacon"), "--port", str(port))
    net.beacon.wait_url()
    wait_for(kit, lambda st: st.round.phase == "proof")
    c.submit_bundle(kit.bundle(m))
    votes = [kit.attest(v, m) for v in range(3)]
    for v in votes:
        c.submit_commit(kit.commit(v))
    wait_for(kit, lambda st: st.round.phase == "reveal")
    for v in votes:
        c.submit_attestation(v)
    wait_for(kit, lambda st: st.tip_height == 1)
