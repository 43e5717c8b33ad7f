"""pogo bench / report / costs: documented fields, cross-backend root check, cost arithmetic, bad input."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from pogo_jax.cli import main

BENCH_FIELDS = [
    "schema", "config", "backend", "device_kind", "jax_version", "command", "param_count", "n_leaves",
    "train.pogo_disabled.tokens_per_s", "train.pogo_disabled.mfu_vs_measured_matmul",
    "train.pogo_enabled.tokens_per_s", "train.pogo_enabled.mfu_vs_measured_matmul",
    "block.train_s", "block.quantize_s", "block.commit_s", "block.prove_s", "block.pogo_overhead_s",
    "block.pogo_overhead_fraction", "block.full_verify_s", "block.full_verify_fraction_of_mining",
    "block.light_verify_s", "block.bundle_bytes", "merkle.leaf_hash_GBps", "merkle.commit_s",
    "block.full_verify_parts_s.rebuild", "block.full_verify_parts_s.loss",  # read by pogo costs
    "proof.k", "proof.proof_bytes_binary", "proof.bundle_bytes_measured", "light_verify_s", "full_verify_s",
    "roots.root_prev", "roots.root_next", "roots.root_q", "chain.finalize.no_claims.seconds_median",
    "chain.finalize.claims.seconds_median", "chain.audit.seconds_per_block", "chain.audit.fraction_of_full_verification",
]


def _get(obj, path):
    for part in path.split("."):
        obj = obj[part]
    return obj


@pytest.fixture(scope="module")
def bench_json(device_suite_dry_run):
    """``pogo bench --config tiny --quick`` as the device suite's dry run ran it (one run serves both)."""
    _, out = device_suite_dry_run
    path = out / "bench_cpu.json"
    assert path.is_file(), f"the device suite's bench step wrote nothing: {(out / 'suite.log').read_text()[-3000:]}"
    return path


def test_bench_quick_writes_documented_fields(bench_json):
    res = json.loads(bench_json.read_text())
    for f in BENCH_FIELDS:
        v = _get(res, f)
        assert v is not None, f
        if isinstance(v, float):
            assert math.isfinite(v) and v >= 0, (f, v)
    assert res["schema"] == "pogo-bench-v1" and res["quick"] is True
    assert res["command"].startswith("pogo bench")
    assert res["block"]["outcome"] == "confirmed" and res["block"]["all_blocks_confirmed"]
    assert res["train"]["pogo_enabled"]["tokens_per_s"] < res["block"]["tokens_per_block"] / res["block"]["train_s"]
    assert res["block"]["loss_next"] < res["block"]["loss_prev"]
    # 64 of tiny's 134 leaves, depth 8: 64 * (8 * 1024 + 528) + 3 * 64 * 8 * 32
    assert res["n_leaves"] == 134 and res["proof"]["proof_bytes_binary"] == 607_232
    assert res["proof"]["bundle_bytes_measured"] > res["proof"]["proof_bytes_binary"]
    assert res["roots_match_host_reference"] is True
    assert res["chain"]["audit"]["clean"] is True and res["chain"]["finalize"]["n_verifiers"] == 16
    for k in ("root_prev", "root_next", "root_q"):
        assert len(res["roots"][k]) == 64 and int(res["roots"][k], 16) >= 0


def test_fixed_roots_match_numpy_reference_and_are_distinct():
    from pogo_jax.bench import roots

    dev = roots.device_roots()
    assert dev == roots.host_roots()
    assert len(set(dev.values())) == 3
    nxt = roots.theta_next_host()
    bits = np.concatenate([v.reshape(-1).view(np.uint32) for v in nxt.values()])
    assert not np.any(((bits & 0x7F800000) == 0) & (bits != 0)), "theta_next must hold no subnormal or -0.0"


def test_report_merges_and_flags_differing_roots(bench_json, tmp_path, capsys):
    res = json.loads(bench_json.read_text())
    same = tmp_path / "bench_same.json"
    same.write_text(json.dumps(res))
    md, png = tmp_path / "r.md", tmp_path / "r.png"
    assert main(["report", str(bench_json), str(same), "--md", str(md), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "identical in all 2 file(s)" in text and "tokens/s, PoGO enabled" in text
    assert md.read_text() == text and png.stat().st_size > 1000

    bad = copy.deepcopy(res)
    rng = np.random.default_rng()
    key = ["root_prev", "root_next", "root_q"][int(rng.integers(3))]
    bad["roots"][key] = ("0" if bad["roots"][key][0] != "0" else "1") + bad["roots"][key][1:]
    other = tmp_path / "bench_other.json"
    other.write_text(json.dumps(bad))
    assert main(["report", str(bench_json), str(other)]) == 1, key
    cap = capsys.readouterr()
    assert "ROOTS DIFFER" in cap.out and key in cap.err and "differ" in cap.err


def _synthetic_results(path):
    """A bench result with round numbers, so every extrapolated figure can be computed by hand."""
    res = {
        "schema": "pogo-bench-v1", "config": "tiny", "backend": "cpu", "device_kind": "test-device",
        "jax_version": "0", "quick": False, "param_count": 1_000_000, "tree_depth": 8,
        "peak_bf16_flops_per_device": 1e12, "matmul_bf16_flops_per_s_measured": 5e11,
        "train": {"pogo_disabled": {"mfu_vs_peak": 0.5, "mfu_vs_measured_matmul": 1.0}},
        "block": {"light_verify_s": 0.01, "quantize_s": 0.002, "prove_open_s": 0.001,
                  "full_verify_parts_s": {"rebuild": 0.004}, "pogo_overhead_fraction": 0.01,
                  "full_verify_fraction_of_mining": 0.02},
        "merkle": {"leaf_hash_GBps": 1.0, "host_node_hashes_per_s": 1e6, "host_sha256_GBps_one_core": 1.0},
        "proof": {"k": 64},
    }
    path.write_text(json.dumps(res))
    return path


def _curve(path, n_small=1000):
    # L(D) = 1 + 2 * D**-0.5 exactly, at steps 0..4 of 2500 tokens (batch 25 x seq 100)
    pts = [[s, 1 + 2 * (s * 2500) ** -0.5 if s else 5.0] for s in range(5)]
    path.write_text(json.dumps({"config": "synthetic", "batch_size": 25, "seq_len": 100, "params": n_small,
                                "runs": {"fp32": {"eval_curve": pts}}}))
    return path


def test_costs_arithmetic_by_hand(tmp_path, capsys):
    res = _synthetic_results(tmp_path / "bench_cpu.json")
    curve = _curve(tmp_path / "curve.json")
    out = tmp_path / "out"
    assert main(["costs", "--results", str(res), "--models", "tiny", "--tokens", "1e6", "--k", "64",
                 "--devices", "2", "--verifier-devices", "1", "--m", "2", "--target-loss-drop", "0.01",
                 "--curve", str(curve), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    t = json.loads((out / "costs_cpu.json").read_text())["models"][0]
    # tiny: d=64, L=2, d_ff=256, vocab 256, T=64, tied embeddings: 120,576 params in 134 leaves of 1024
    assert t["n_params"] == 120_576 and t["n_leaves"] == 134
    assert t["model_bytes_fp32"] == 482_304
    assert t["update_bytes_4bit"] == 134 * 528 == 70_752
    assert t["tree_depth"] == 8  # 128 < 134 <= 256
    assert t["proof_bytes"] == 64 * (2 * 4096 + 528) + 3 * 64 * 8 * 32 == 607_232
    # flops/token = 6 * (2 * (4*64*64 + 2*64*256) + 64*256) + 12 * 2 * 64 * 64 = 786,432
    assert t["flops_per_token"] == 786_432
    assert t["miner_train_s"] == pytest.approx(1e6 * 786_432 / (0.5 * 1e12 * 2))
    assert t["miner_quantize_s"] == pytest.approx(0.002 / 1e6 * 120_576 / 2)
    assert t["light_verify_s"] == pytest.approx(0.01)  # same k, same depth as measured
    # theta_next and the update hashed once each, 2 trees reduced; theta_prev's hashes are kept
    commit = (4096 * 134 + 70_752) / (1e9 * 2) + 2 * 134 / 1e6
    assert t["miner_commit_s"] == pytest.approx(commit)
    # prove hashes no leaf: 3 trees rebuilt from kept hashes, both losses on 2 windows, the openings
    prove = 3 * 134 / 1e6 + 2 * 2 * 64 * 786_432 / 3 / (0.5e12 * 2) + 0.001
    assert t["miner_prove_s"] == pytest.approx(prove)
    loss_check = 2 * 2 * 64 * 786_432 / 3 / (0.5e12 * 1)
    assert t["full_verify_s"] == pytest.approx(0.004 / 1e6 * 120_576 + loss_check)
    # curve ends at D0 = 10,000 tokens, L = 1.02; L = 1.01 at 40,000: 30,000 tokens on 1,000 params
    assert t["block_tokens_for_target"] == pytest.approx(30_000 * 120_576 / 1000, rel=1e-3)
    for word in ("A1 hardware", "A2 training FLOPs", "A3 tokens per block", "A4 commitment", "A5 prove",
                 "A6 quantize", "A7 light verification", "A8 full verification", "A9 block length", "A10"):
        assert word in text, word
    assert "MFU 0.500" in text and "2 x 'test-device'" in text
    assert (out / "costs_cpu.md").is_file() and (out / "costs_cpu.png").stat().st_size > 1000


def test_power_law_fit_recovers_parameters():
    from pogo_jax.bench.costs import fit_power_law, tokens_for_drop

    rng = np.random.default_rng()
    e, a, alpha = rng.uniform(0.5, 2), rng.uniform(1, 20), rng.uniform(0.2, 0.8)
    pts = [(d, e + a * d**-alpha) for d in (1e3, 3e3, 1e4, 3e4, 1e5)]
    fe, fa, falpha = fit_power_law(pts)
    assert falpha == pytest.approx(alpha, abs=0.003), (e, a, alpha)
    assert tokens_for_drop(fe, fa, falpha, 1e5, 10.0) == math.inf


@pytest.mark.parametrize("cmd", ["report", "costs"])
@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"schema": "other"}'])
def test_bad_results_file_is_one_line_exit_2(cmd, content, tmp_path, capsys):
    path = tmp_path / "bench_cpu.json"
    if content is not None:
        path.write_text(content)
    args = [cmd, str(path)] if cmd == "report" else [cmd, "--results", str(path), "--models", "tiny",
                                                      "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bench_cpu.json" in err[0], err
    assert not (tmp_path / "o").exists()


def test_costs_rejects_bad_numbers(tmp_path, capsys):
    res = _synthetic_results(tmp_path / "bench_cpu.json")
    assert main(["costs", "--results", str(res), "--models", "tiny", "--tokens", "0",
                 "--out", str(tmp_path / "o")]) == 2
    assert "positive" in capsys.readouterr().err
