"""Test kit: a real chain (ledger, blob store, beacon service, rules) on a synthetic model, in-process.

No training and no jax: the state is a few random float32 tensors, a candidate's update is random
4-bit codes applied by the host rule, and a verifier's losses are whatever the test says, because
the chain only ever sees signed bytes. A fake clock drives the windows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from pogo_jax.chain.beacon import BeaconService
from pogo_jax.chain.chain import Chain
from pogo_jax.chain.genesis import build_genesis
from pogo_jax.chain.history import confirmed_state
from pogo_jax.config import padded_vocab
from pogo_jax.data.tokenizer import _byte_of_char, parse_tokenizer
from pogo_jax.spec import merkle as mh
from pogo_jax.spec import update as upd
from pogo_jax.spec.attestation import ATTEST_VERSION, Attestation, sign_attestation
from pogo_jax.spec.bundle import Bundle, LeafOpening
from pogo_jax.spec.dataset import read_packed, width_for
from pogo_jax.spec.envelope import seal
from pogo_jax.spec.header import Header, sign_header
from pogo_jax.spec.keys import key_from_seed, public_bytes
from pogo_jax.spec.layout import to_leaves
from pogo_jax.spec.records import Participant, Register, VoteCommit
from pogo_jax.spec.rules import ChainRules
from pogo_jax.spec.verdict import mean, own_verdict
from pogo_jax.train.data import SealSpec, _build

SHAPES = {"a/w": (40, 100), "b": (300,), "c/k": (7, 64)}
S, G = 256, 64


class FakeClock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def key(name: str):
    return key_from_seed(hashlib.sha256(b"chainkit " + name.encode()).digest())


def synthetic_tokenizer(vocab: int) -> bytes:
    """A valid byte-level BPE tokenizer file of ``vocab`` ids: the 256 bytes, then merge j = token j // 256
    followed by byte j % 256 (two-byte tokens, then three-byte ones past 65,792 ids)."""
    chars = [c for c, _ in sorted(_byte_of_char().items(), key=lambda kv: kv[1])]
    toks = list(chars)
    merges = []
    for j in range(vocab - 256):
        a, b = toks[j // 256], chars[j % 256]
        toks.append(a + b)
        merges.append(f"{a} {b}")
    vocab_map = {t: i for i, t in enumerate(toks)}
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    obj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": bl, "post_processor": None, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab_map, "merges": merges}}
    return json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")


def make_dataset(path: Path, n_bytes: int = 200_000, shard: int = 4096, seed: int = 0, sealed: int = 16,
                 sealed_bytes: int = 1024, vocab: int | None = None) -> Path:
    """A synthetic dataset with ``sealed`` evaluation shards; their keys go to ``path`` + ``.keys``. With
    ``vocab`` a tokenized one: random ids below ``vocab`` (n_bytes / width of them), a synthetic tokenizer."""
    rng = np.random.default_rng(seed)
    spec = SealSpec(sealed, sealed_bytes, path.with_name(path.name + ".keys"), seed=b"chainkit %d" % seed) \
        if sealed else None
    if vocab is None:
        tokens = rng.integers(32, 127, size=n_bytes, dtype=np.uint8)
        _build(tokens, shard, 0.1, "synthetic", 1, 0, path, spec)
    else:
        tok = parse_tokenizer(synthetic_tokenizer(vocab))
        ids = rng.integers(0, vocab, size=n_bytes // width_for(vocab), dtype=np.int64)
        _build(ids, shard, 0.1, "synthetic", 1, 0, path, spec, tok)
    return path


def _model_of(data_file: Path) -> dict:
    """The genesis model: seq_len 16, and a tokenized dataset's padded vocabulary."""
    tokens = read_packed(data_file, verify=False).token_info
    return {"seq_len": 16} | ({} if tokens is None else {"vocab_size": padded_vocab(tokens["vocab_size"])})


def keys_of(path: Path) -> Path:
    return path.with_name(path.name + ".keys")


def flat_losses(pair, m: int):  # noqa: ANN001, ANN201
    """Per-window losses from a (prev, next) pair of floats (the same on every window) or of sequences."""
    if pair is None:
        return None, None
    lp, ln = pair
    expand = (lambda x: tuple(float(x) for _ in range(m))) if not isinstance(lp, list | tuple) else tuple
    return expand(lp), expand(ln)


@dataclass
class Made:
    """A candidate as its miner holds it."""

    miner: int
    signed: object
    header_bytes: bytes
    update: bytes
    prev_leaves: np.ndarray
    next_leaves: np.ndarray
    q: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def hash(self) -> bytes:
        return self.signed.hash


class Kit:
    def __init__(self, tmp: Path, n_miners: int = 2, n_verifiers: int = 3, stake: int = 1000,
                 dataset: Path | None = None, **rule_overrides):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.clock = FakeClock()
        defaults = dict(name="pogo-test", leaf_size=S, group_size=G, k_leaves=8, m_windows=4,
                        submit_window_ms=10_000, prove_window_ms=10_000, attest_window_ms=10_000,
                        reveal_window_ms=10_000, delta=Fraction(1, 100), loss_tolerance=Fraction(1, 100))
        defaults.update(rule_overrides)
        self.rules = ChainRules(**defaults)
        self.gov, self.node_key = key("governance"), key("node")
        self.miners = [key(f"miner{i}") for i in range(n_miners)]
        self.verifiers = [key(f"verifier{i}") for i in range(n_verifiers)]
        self.beacon = BeaconService.create(self.tmp / "beacon", length=256,
                                           secret=hashlib.sha256(b"chainkit beacon").digest(), clock=self.clock)
        rng = np.random.default_rng(1)
        arrays = {k: rng.normal(0, 0.02, size=s).astype(np.float32) for k, s in SHAPES.items()}
        parts = [Participant(public_bytes(k), "miner", f"miner{i}", stake) for i, k in enumerate(self.miners)]
        parts += [Participant(public_bytes(k), "verifier", f"verifier{i}", stake) for i, k in enumerate(self.verifiers)]
        info = self.beacon.info()
        data_file = dataset or make_dataset(self.tmp / "data.pogodata")
        if keys_of(data_file).is_file():
            self.beacon.add_keys(keys_of(data_file))
        genesis, blobs = build_genesis(
            rules=self.rules, model=_model_of(data_file), arrays=arrays, data_file=data_file,
            governance=self.gov, node_key=public_bytes(self.node_key), beacon=info, participants=parts)
        self.chain = Chain.create(self.tmp / "node", genesis, blobs, self.node_key, self.clock, self.beacon)
        self.chain_id = self.chain.state.genesis.chain_id
        self.beacon.bind(self.chain_id, public_bytes(self.node_key))
        self.rng = np.random.default_rng(7)
        self.votes: dict[tuple[bytes, bytes], bytes] = {}  # (header hash, verifier) -> committed, unrevealed vote

    view = None  # set by ``attach``: then the kit reads the chain through HTTP like any role

    @property
    def st(self):  # noqa: ANN201
        if self.view is not None:
            self.view.refresh()
            return self.view.state
        return self.chain.state

    def fetch(self, sha: bytes) -> bytes:
        return self.view.fetch(sha) if self.view is not None else self.chain.fetch(sha)

    def attach(self, url: str):  # noqa: ANN201 - the NodeClient
        """Read the chain from a node at ``url`` (a child process) from now on."""
        from pogo_jax.chain.client import NodeClient
        from pogo_jax.chain.view import ChainView

        self.view = ChainView(NodeClient(url, retries=20, backoff=0.1))
        return self.view.client

    @property
    def layout(self):  # noqa: ANN201
        return self.st.genesis.layout

    def register(self, name: str, role: str, stake: int = 1000):  # noqa: ANN201 - the new key
        k = key(name)
        rec = seal(Register(self.chain_id, public_bytes(self.gov), Participant(public_bytes(k), role, name, stake)),
                   self.gov)
        self.chain.submit_register(rec.to_bytes())
        return k

    def tip_leaves(self) -> np.ndarray:
        st = self.st
        arrays = confirmed_state(st, st.tip_height, self.fetch).arrays
        return to_leaves(arrays, self.layout)

    def make(self, miner: int, *, scale: int = -12, q: np.ndarray | None = None, tamper_rows=(), key_=None,
             header_changes: dict | None = None, prev_leaves: np.ndarray | None = None) -> Made:
        """A consistent candidate from the round's tip (random codes at exponent ``scale``), optionally with
        ``tamper_rows`` of theta_next changed after the update (an inconsistent commitment)."""
        lay, r = self.layout, self.st.round
        prev = self.tip_leaves() if prev_leaves is None else prev_leaves
        if q is None:
            n = lay.n_leaves
            exps = np.full((n, S // G), scale, dtype=np.int8)
            codes = self.rng.integers(-7, 8, size=(n, S), dtype=np.int8)
            codes[np.arange(S)[None, :] >= upd.valid_counts(lay)[:, None]] = 0
            q = upd.pack_leaves(exps, codes)
        exps, codes = upd.unpack_leaves(q, S, G)
        nxt = upd.apply_leaves(prev, exps, codes)
        for row in tamper_rows:
            nxt = nxt.copy()
            nxt.view(np.uint32)[row, 0] ^= 1
        k = key_ or self.miners[miner]
        fields = dict(version=3, chain_id=self.chain_id, height=r.height, round=r.round,
                      parent_hash=r.parent_hash, miner_key=public_bytes(k), layout_hash=lay.layout_hash(),
                      data_root=r.data.data_root, root_prev=mh.root(mh.leaf_hashes(mh.TAG_PARAM, prev)),
                      root_next=mh.root(mh.leaf_hashes(mh.TAG_PARAM, nxt)), root_q=mh.root(mh.leaf_hashes(mh.TAG_QUPD, q)),
                      leaf_size=S, group_size=G, n_leaves=lay.n_leaves, train={"steps": 1})
        fields.update(header_changes or {})
        signed = sign_header(Header(**fields), k)
        return Made(miner, signed, signed.to_bytes(), q.tobytes(), prev, nxt, q)

    def submit(self, made: Made, update: bytes | None = None):  # noqa: ANN201
        data = made.update if update is None else update
        return self.chain.submit_candidate(made.header_bytes, [data[i:i + 4096] for i in range(0, len(data), 4096)])

    def bundle(self, made: Made, *, beacon: bytes | None = None, windows=None, losses=(2.0, 1.5), key_=None,
               mutate=None) -> bytes:
        ctx = self.st.context(made.hash)
        beacon = ctx.beacon if beacon is None else beacon
        from pogo_jax.spec.challenge import challenge_leaves

        idx = challenge_leaves(made.hash, beacon, self.layout.n_leaves, self.rules.k_leaves)
        lv = [mh.tree_levels(mh.leaf_hashes(t, a)) for t, a in ((mh.TAG_PARAM, made.prev_leaves),
                                                               (mh.TAG_PARAM, made.next_leaves), (mh.TAG_QUPD, made.q))]
        ops = tuple(LeafOpening(i, made.prev_leaves[i].tobytes(), made.next_leaves[i].tobytes(), made.q[i].tobytes(),
                                *(tuple(mh.audit_path(x, i)) for x in lv)) for i in idx)
        if mutate is not None:
            ops = mutate(ops)
        b = Bundle(made.signed, beacon, self.layout, ops, ctx.windows if windows is None else tuple(windows),
                   losses[0], losses[1])
        return b.signed(key_ or self.miners[made.miner]).to_bytes()

    def attest(self, v: int, made_or_hash, verdict: str = "accept", tier: str = "full", reason: str | None = None,
               losses=(2.0, 1.5), evidence: bytes | None = None, key_=None, salt: bytes | None = None) -> bytes:
        """A signed vote. A full one carries per-window losses (``losses``: a pair of floats, the same on every
        window, or of sequences) and, unless ``reason`` says otherwise, the reason its numbers imply."""
        hh = made_or_hash if isinstance(made_or_hash, bytes) else made_or_hash.hash
        ctx = self.st.context(hh)
        k = key_ or self.verifiers[v]
        m = len(ctx.windows)
        lp, ln = flat_losses(losses, m) if tier == "full" else (None, None)
        if reason is None:
            if tier == "full" and lp is not None:
                reported = self.st.find(hh)[1].reported or (mean(lp), mean(ln))
                reason = own_verdict(lp, ln, reported, self.rules.delta, self.rules.lcb_t, self.rules.loss_tolerance)
            else:
                reason = "OK" if verdict == "accept" else "BAD_PROOF"
        verdict = "accept" if reason == "OK" else "reject"
        a = Attestation(version=ATTEST_VERSION, chain_id=self.chain_id, height=ctx.height, round=ctx.round, header_hash=hh,
                        verifier_key=public_bytes(k), verdict=verdict, tier=tier, reason=reason,
                        evidence=ctx.bundle_sha256 if evidence is None else evidence,
                        salt=(salt or hashlib.sha256(b"salt" + hh + public_bytes(k)).digest()) if tier == "full" else None,
                        losses_prev=lp, losses_next=ln, bundle_entry=ctx.bundle_entry or bytes(32))
        return sign_attestation(a, k).to_bytes()

    def commit(self, vote: bytes, key_=None) -> bytes:
        """The signed commitment to a full vote."""
        from pogo_jax.spec.attestation import read_signed_attestation

        a = read_signed_attestation(vote).body
        k = key_ or next(x for x in self.verifiers if public_bytes(x) == a.verifier_key)
        return seal(VoteCommit(a.chain_id, a.height, a.round, a.header_hash, a.verifier_key,
                               read_signed_attestation(vote).hash), k).to_bytes()

    def vote(self, v: int, made_or_hash, *args, key_=None, **kw):  # noqa: ANN002, ANN003, ANN201
        """Cast a vote as a verifier would: a light one posted at once, a full one committed (kept to reveal)."""
        vote = self.attest(v, made_or_hash, *args, key_=key_, **kw)
        from pogo_jax.spec.attestation import read_signed_attestation

        a = read_signed_attestation(vote).body
        if a.tier == "light":
            return self.chain.submit_attestation(vote)
        acc = self.chain.submit_commit(self.commit(vote, key_=key_))
        self.votes[(a.header_hash, a.verifier_key)] = vote
        return acc

    def close_commits(self) -> None:
        """Let the commit window close (early if everyone voted), so full votes can be revealed."""
        self.chain.tick()
        if self.st.round.phase == "commit":
            self.clock.advance(self.rules.attest_window_ms)
            self.chain.tick()

    def reveal_all(self, skip=()) -> None:  # noqa: ANN001
        """Reveal every kept full vote (but those of the verifier keys in ``skip``)."""
        for (hh, vk), vote in list(self.votes.items()):
            if vk in skip:
                continue
            self.chain.submit_attestation(vote)
            del self.votes[(hh, vk)]

    def vote_all(self, made_or_hash, verifiers=None, **kw) -> None:  # noqa: ANN001
        """Every verifier (or those given) casts the default full vote, then the round is settled."""
        for v in range(len(self.verifiers)) if verifiers is None else verifiers:
            self.vote(v, made_or_hash, **kw)
        self.settle()

    def settle(self, skip=()) -> None:  # noqa: ANN001
        """Close the commit window, reveal the kept full votes (but ``skip``'s), close the reveal window."""
        self.close_commits()
        self.reveal_all(skip)
        self.finish()

    def finish(self) -> None:
        """Close the reveal window (early if every commitment is revealed) and finalize."""
        self.chain.tick()
        if self.st.round.phase == "reveal":
            self.clock.advance(self.rules.reveal_window_ms)
            self.chain.tick()

    def stake(self, k) -> int:  # noqa: ANN001
        return self.st.stakes[public_bytes(k)]

    def close_submit(self) -> None:
        self.clock.advance(self.rules.submit_window_ms)
        self.chain.tick()

    def run_round(self, mades: list[Made], votes=None, bundles=True) -> None:
        """Submit ``mades`` (already made), close, prove, all verifiers full-accept (or ``votes``), finalize."""
        for m in mades:
            self.submit(m)
        self.close_submit()
        assert self.st.round.phase == "proof", self.st.round.phase
        if bundles:
            for m in mades:  # the miner reports what its full votes measure (the chain holds it to them)
                accepts = [spec[3] for (mi, _), spec in (votes or {}).items()
                           if mi == m.miner and spec and spec[1] == "full" and spec[3]]
                lp, ln = flat_losses(accepts[0], self.rules.m_windows) if accepts else ((2.0,), (1.5,))
                self.chain.submit_bundle(self.bundle(m, losses=(float(mean(lp)), float(mean(ln)))))
        self.chain.tick()
        for m in mades:
            for v in range(len(self.verifiers)):
                spec = (votes or {}).get((m.miner, v), ("accept", "full", None, (2.0, 1.5)))
                if spec is None:
                    continue
                verdict, tier, reason, losses = spec
                self.vote(v, m, verdict, tier, reason, losses)
        self.close_commits()
        self.reveal_all()
        self.finish()


@dataclass
class RoleChain:
    """An in-process chain for the real roles (``Miner``, ``Verifier``): node, client, clock and keys."""

    chain: Chain
    client: object
    clock: FakeClock
    keys: dict


def sealed_corpus(out_dir: Path, n: int = 64, shard_bytes: int = 1 << 16, seed: bytes = b"chainkit corpus") -> Path:
    """The embedded corpus with ``n`` sealed evaluation shards (keys beside it, see ``keys_of``), drawn from
    ``seed`` so a test sees the same shards every run."""
    from pogo_jax.config import DataConfig
    from pogo_jax.train.data import load_dataset, seal_dataset

    out = Path(out_dir) / "stdlib-sealed.pogodata"
    if not out.is_file():
        seal_dataset(load_dataset(DataConfig()).path, out, SealSpec(n, shard_bytes, keys_of(out), seed=seed))
    return out


def role_chain(tmp: Path, cfg, name: str, miners: tuple[str, ...] = ("miner",), verifiers: tuple[str, ...] = (),  # noqa: ANN001
               beacon_length: int = 16, secret: bytes | None = None, data: Path | None = None) -> RoleChain:
    """A chain from ``cfg`` with 1000 stake for each named miner and verifier (keys ``key(f"{name} {who}")``),
    its beacon bound to the node and served in-process, on ``data`` (a sealed dataset; default: the embedded
    corpus sealed into ``tmp``)."""
    import dataclasses

    from pogo_jax.chain.client import LocalClient
    from pogo_jax.roles.governance import create_chain

    data = data or sealed_corpus(tmp)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(data)))
    clock = FakeClock()
    beacon = BeaconService.create(tmp / "beacon", length=beacon_length, secret=secret, clock=clock)
    beacon.add_keys(keys_of(data))
    keys = {who: key(f"{name} {who}") for who in (*miners, *verifiers)}
    parts = [Participant(public_bytes(keys[who]), role, who, 1000)
             for role, names in (("miner", miners), ("verifier", verifiers)) for who in names]
    node = key(f"{name} node")
    chain = create_chain(tmp / "node", cfg, key(f"{name} gov"), node, beacon.info(), parts, clock=clock)
    chain.beacon = beacon
    beacon.bind(chain.state.genesis.chain_id, public_bytes(node))
    return RoleChain(chain, LocalClient(chain), clock, keys)
