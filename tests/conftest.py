"""Test setup: 8 fake CPU devices so sharding is tested without accelerators.

XLA_FLAGS must be set before jax is first imported, which is why it happens here, at import.
"""

from __future__ import annotations

import os

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
