"""``scripts/device_suite.sh --dry-run``: every step runs on the cpu platform with tiny sizes, and every
JSON it writes parses and carries the fields the GPU run will be read for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "train": {"tokens_per_s", "mfu_vs_peak", "mfu_vs_measured_matmul", "matmul_bf16_flops_per_s_measured",
              "peak_bf16_flops_per_device", "device_kind", "compile_s", "command"},
    "merkle": {"leaf_hashing", "copy", "commit", "host", "device_kind", "jax_version", "command"},
    "pytest": {"returncode", "tests", "passed", "failed", "errors", "skipped"},
    "bench": {"schema", "train", "block", "merkle", "roots", "roots_match_host_reference"},
    "spread": {"spread", "paired", "recommendations", "workers"},
}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_device_suite_dry_run_writes_parseable_json(device_suite_dry_run):
    run, out = device_suite_dry_run
    log = (out / "suite.log").read_text() if (out / "suite.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}\nlog tail:\n{log[-4000:]}"
    suite = json.loads((out / "suite.json").read_text())
    assert suite["dry_run"] is True and suite["platform"] == "cpu"
    steps = {s["step"]: s for s in suite["steps"]}
    assert list(steps) == ["train", "merkle", "pytest", "gpu_block", "spread", "bench"]
    for name, keys in EXPECTED.items():
        assert steps[name]["status"] == "ok", steps[name]
        assert steps[name]["seconds"] < 120, steps[name]  # a dry-run step stays well under its budget
        got = json.loads(Path(steps[name]["json"]).read_text())
        assert keys <= set(got), (name, sorted(keys - set(got)))
    merkle = json.loads(Path(steps["merkle"]["json"]).read_text())
    assert {"jnp", "pallas", "hashlib", "numpy"} <= {r["impl"] for r in merkle["leaf_hashing"]}
    assert all(r["GBps"] > 0 for r in merkle["leaf_hashing"]) and merkle["copy"]["GBps"] > 0
    pt = json.loads(Path(steps["pytest"]["json"]).read_text())
    assert pt["failed"] == pt["errors"] == 0 and pt["tests"] >= 3  # the gpu tests exist (skipped here)
    gpu_block = steps["gpu_block"]
    if (REPO / "scripts" / "gpu_block_check.py").exists():
        assert gpu_block["status"] == "ok"
        json.loads(Path(gpu_block["json"]).read_text())
    else:
        assert gpu_block["status"] == "absent"
    assert (out / "bench_cpu.json").exists() and "=== bench" in log
