"""A chain on subword tokens (issue 23): a byte-level BPE trained on a corpus, a uint16 dataset with sealed
shards of token ids, the real miner and two full verifiers on ``tiny``: a block is confirmed, every role
took the vocabulary from the dataset, and the chain's measurement converts to bits per byte with the
sealed shard's own byte count."""

from __future__ import annotations

from pathlib import Path

import pytest
from chainkit import keys_of, role_chain

from pogo_jax.config import load_config
from pogo_jax.roles.miner import Miner
from pogo_jax.roles.verify import Verifier
from pogo_jax.spec.dataset import read_packed
from pogo_jax.spec.units import bits_per_byte
from pogo_jax.train.data import SealSpec, pack, train_tokenizer

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_a_tiny_bpe_chain_confirms_a_block(tmp_path) -> None:
    corpus = [REPO / "pogo_jax" / "chain", REPO / "pogo_jax" / "spec", *sorted((REPO / "docs").glob("*.md"))]
    tok = tmp_path / "tok.json"
    train_tokenizer(corpus, 512, tok)
    m, seq = 32, 64
    data = tmp_path / "bpe.pogodata"
    pack(corpus, data, shard_size=4096, seal_spec=SealSpec(4, 2 * (m * seq + 1), keys_of(data), seed=b"bpe chain"),
         tokenizer=tok)
    ds = read_packed(data, verify=True)
    assert ds.width == 2 and ds.token_info["vocab_size"] <= 512
    cfg = load_config("tiny", ["miner.block_steps=20", f"chain.m_windows={m}", "chain.lcb_t=17/10",
                               "chain.k_leaves=16", f"data.path={data}"])
    rc = role_chain(tmp_path, cfg, "bpe", verifiers=("v0", "v1"), data=data)
    chain, client, clock = rc.chain, rc.client, rc.clock
    assert chain.state.genesis.model["vocab_size"] == 512  # padded from the dataset's ids, never the miner's choice
    miner = Miner(client, rc.keys["miner"], tmp_path / "miner", cfg)
    made = miner.make_candidate(miner.view.context())
    client.submit_candidate(made.header_bytes, made.update_path)
    clock.advance(cfg.chain.submit_window_ms)
    chain.tick()
    miner.view.refresh()
    client.submit_bundle(miner.prove(made))
    chain.tick()
    verifiers = [Verifier(client, rc.keys[v], tmp_path / v, "full") for v in ("v0", "v1")]
    for v in verifiers:
        verdict, _ = v.attest(made.hash)
        assert verdict.accept, verdict
    chain.tick()  # every verifier committed: the commit window closes
    for v in verifiers:
        v.view.refresh()
        v.reveal(made.hash)
    chain.tick()
    st = chain.state
    assert st.tip_height == 1 and st.history[-1].winner == made.hash
    c = st.history[-1].candidates[made.hash]
    shard = st.history[-1].shard
    n_tokens = m * seq + 1  # the shard: m windows of seq predicted tokens, one token of context first
    n_bytes = ds.token_info["text_bytes"]["sealed"][shard]
    bpb_prev = bits_per_byte(float(c.measurement.prev_mean), n_tokens, n_bytes)
    bpb_next = bits_per_byte(float(c.measurement.next_mean), n_tokens, n_bytes)
    assert 0 < bpb_next < bpb_prev  # the block lowered the loss in bits per byte of the sealed text too
    assert n_bytes > 1.5 * n_tokens  # a 512-id BPE: about two bytes a token (measured 1.97 to 2.4)
