"""Test setup: 8 fake CPU devices so sharding is tested without accelerators.

XLA_FLAGS must be set before jax is first imported, which is why it happens here, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", os.environ.get("POGO_TEST_PLATFORMS", "cpu"))

import pytest  # noqa: E402


def _has_gpu() -> bool:
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices("gpu"))
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _has_gpu():
        skip = pytest.mark.skip(reason="no GPU present")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_configure(config):
    # One persistent XLA compilation cache for the session and the `pogo` subprocesses the tests
    # start: many tests compile the same tiny programs. Only compile time is saved, never results.
    cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"pogo-jax-test-xla-cache-{os.getuid()}"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    os.makedirs(cache, exist_ok=True)


@pytest.fixture(scope="session")
def device_suite_dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``scripts/device_suite.sh --dry-run`` once per session: its own test reads every step, and its
    bench step (``pogo bench --config tiny --quick``) is the bench JSON the bench tests read."""
    out = tmp_path_factory.mktemp("device-out")
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    env.pop("JAX_PLATFORMS", None)  # the script sets the cpu platform itself in a dry run
    env.pop("XLA_FLAGS", None)  # one CPU device, as on the GPU machine's host side
    repo = Path(__file__).resolve().parent.parent
    run = subprocess.run(["bash", "scripts/device_suite.sh", "--dry-run"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=850)
    return run, out


def suite_steps(out: Path) -> dict[str, dict]:
    return {s["step"]: s for s in json.loads((out / "suite.json").read_text())["steps"]}
