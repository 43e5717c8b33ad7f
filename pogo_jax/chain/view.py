"""``ChainView``: a role's own replica of the chain, rebuilt from the signed log it fetches.

A miner or verifier never takes the node's word for the tip, the round, the beacon or the window
count: it fetches the log entries it has not seen, runs each through ``ChainState.apply`` (every
signature, hash link and rule re-checked) and derives its ``BlockContext`` from that state. Blobs
are fetched by the hash the log names and checked before use (``NodeClient.blob``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pogo_jax.chain.history import StateCache, confirmed_state
from pogo_jax.chain.log import Entry
from pogo_jax.chain.recheck import recheck
from pogo_jax.chain.state import ChainState, sealed_annotation
from pogo_jax.chain.witness import Witness
from pogo_jax.errors import MalformedInput, NodeFault, Rejected, UserError
from pogo_jax.spec.context import BlockContext
from pogo_jax.spec.records import read_record

log = logging.getLogger(__name__)


class ChainView:
    _fault: NodeFault | None = None  # set once a replay failed half-way: every later refresh raises it

    def __init__(self, client, expect_chain_id: str | None = None, dataset=None) -> None:  # noqa: ANN001
        """``client``: a NodeClient or LocalClient. ``dataset(ref)``, if given, opens a recorded dataset (the
        roles that hold it: miners and full verifiers), so the node's word on whether a round's sealed shard
        opened is re-derived here too."""
        self.client = client
        self.state = ChainState()
        self.cache = StateCache()
        self.dataset = dataset
        self.hashes: list[bytes] = []  # every entry hash, by seq: what receipts and the last head are checked on
        self.witness: Witness | None = None
        self.refresh()
        if expect_chain_id is not None and self.state.genesis.chain_id != expect_chain_id:
            raise UserError(f"{client.url} serves chain {self.state.genesis.chain_id!r}, not {expect_chain_id!r}")

    def refresh(self) -> int:
        """Fetch and apply new entries; returns how many. A ``finalize`` entry's re-checks of objective
        claims are re-done here from the stored bytes first: they decide who is slashed, so a role never
        takes them from the node (one that lies about them is a ``NodeFault``)."""
        began = time.monotonic()
        if self._fault is not None:  # a replay that failed half-way: the state is not trusted any more
            raise self._fault
        try:
            new = self.client.entries(self.state.seq)
        except NodeFault:
            raise
        except (Rejected, MalformedInput) as err:  # it refused to serve its log, or served one that does not parse
            raise NodeFault(f"the node's log cannot be read ({err}): the node is faulty") from None
        except UserError:  # the node unreachable: nothing was applied, the next refresh retries
            raise
        except Exception as err:  # noqa: BLE001 - any other failure reading its log is the node's
            log.debug("reading the node's log failed", exc_info=True)
            raise NodeFault(f"the node's log cannot be read ({type(err).__name__}: {str(err)[:200]}): the node "
                            "is faulty") from None
        for e in new:
            self._apply(e)
            self.hashes.append(e.hash)
        if self.state.genesis is None:
            raise UserError(f"{self.client.url} serves an empty log")
        if self.witness is not None:
            self.witness.check_log(self.hashes, began)
        return len(new)

    def _apply(self, e: Entry) -> None:
        """One entry through the rules (its node-signed claims re-done first); whatever goes wrong is the node's
        fault, reported as one ``NodeFault`` line naming the entry. A failure of a type the rules never raise
        (a bug here, or a record the rules failed to refuse) names its type and makes the view stop trusting
        its half-applied state; its traceback is logged at debug level."""
        try:
            if e.kind == "finalize" and self.state.genesis is not None:
                self._recheck(e)
            if e.kind == "reveal" and self.dataset is not None and self.state.genesis is not None:
                self._check_sealed(e)
            self.state.apply(e)
        except NodeFault:
            raise
        except (Rejected, MalformedInput) as err:  # the state is unchanged: apply refuses before it acts
            raise NodeFault(f"log entry {e.seq} ({e.kind}) breaks the chain rules ({err}): the node is faulty "
                            "(run pogo audit)") from None
        except UserError:  # the node unreachable in a re-check: nothing was applied
            raise
        except Exception as err:  # noqa: BLE001 - reported, with its type, as the node's fault
            log.debug("replay of log entry %d failed", e.seq, exc_info=True)
            self._fault = NodeFault(f"log entry {e.seq} ({e.kind}): replay failed ({type(err).__name__}: "
                                    f"{str(err)[:200]}): the node is faulty (run pogo audit)")
            raise self._fault from None

    def attach(self, witness: Witness) -> None:
        """Keep receipts and the last head in ``witness`` (the role's directory): every write through this
        view's client is receipted, and every refresh checks the log against them (docs/protocol.md section 22)."""
        g = self.state.genesis
        witness.bind(g.chain_id, g.node_key)
        self.witness = witness
        self.client.witness = witness
        witness.check_log(self.hashes, time.monotonic())

    def _recheck(self, e: Entry) -> None:
        self.state.check_finalize(e)  # exactly the round's claims, before any is re-done
        for x in read_record(e.record, "finalize").body.rechecks:
            try:
                mine = recheck(self.state, x.header_hash, x.tier, self.fetch, self.cache)
            except (Rejected, MalformedInput) as err:
                raise NodeFault(f"log entry {e.seq}: cannot re-check the {x.tier} claim on candidate "
                                f"{x.header_hash.hex()[:16]}... from the bytes the node serves ({err})") from None
            if mine.fails != x.fails:
                raise NodeFault(f"log entry {e.seq}: the node says the {x.tier} claim on candidate "
                                f"{x.header_hash.hex()[:16]}... {'holds' if x.fails else 'fails'}, the stored bytes "
                                f"say otherwise ({mine.reason}): the node is faulty (run pogo audit)")

    def _check_sealed(self, e: Entry) -> None:
        try:
            want = sealed_annotation(self.state, read_record(e.record, "reveal").body, self.dataset)
        except (Rejected, MalformedInput) as err:
            raise NodeFault(f"log entry {e.seq}: cannot check the round's sealed shard ({err})") from None
        if want != e.extra:
            raise NodeFault(f"log entry {e.seq}: the node says the round's sealed shard gives {e.extra}, the dataset "
                            f"and the released key give {want}: the node is faulty (run pogo audit)")

    def fetch(self, sha: bytes) -> bytes:
        return self.client.blob(sha)

    def context(self, header_hash: bytes | None = None) -> BlockContext:
        return self.state.context(header_hash)

    def confirmed(self, height: int | None = None, progress=None):  # noqa: ANN001, ANN201 - StateCache
        """The confirmed state at ``height`` (default: the tip), rebuilt from genesis and the updates."""
        st = self.state
        height = st.tip_height if height is None else height
        try:
            return confirmed_state(st, height, self.fetch, self.cache, progress)
        except Rejected as err:
            if err.code == "NOT_CONFIRMED":  # the caller asked for a height the chain has not confirmed
                raise
            raise NodeFault(f"the confirmed state at height {height} cannot be rebuilt from the bytes the node "
                            f"serves ({err}): the node is faulty (run pogo audit)") from None
        except NodeFault:
            raise
        except MalformedInput as err:
            raise NodeFault(f"the confirmed state at height {height} cannot be rebuilt from the bytes the node "
                            f"serves ({err}): the node is faulty (run pogo audit)") from None
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - reported, with its type, as the node's fault
            log.debug("rebuilding the confirmed state at height %d failed", height, exc_info=True)
            raise NodeFault(f"the confirmed state at height {height} cannot be rebuilt ({type(err).__name__}: "
                            f"{str(err)[:200]}): the node is faulty (run pogo audit)") from None

    def wait(self, done: Callable[[ChainState], bool], timeout: float, poll: float = 0.25,
             what: str = "the chain") -> ChainState:
        """Poll until ``done(state)``; a clear error after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            self.refresh()
            if done(self.state):
                return self.state
            if time.monotonic() > end:
                raise UserError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)
