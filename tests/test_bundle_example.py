"""Golden bundle: the committed example in docs/ still parses, verifies, and matches the
standard-library checker printed in docs/bundle.md (the format cannot drift unnoticed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pogo_jax.spec.bundle import Bundle
from pogo_jax.spec.light import verify_light

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE = DOCS / "examples" / "block-000001.pogo"


def test_example_bundle_verifies_and_roundtrips():
    data = EXAMPLE.read_bytes()
    b = Bundle.from_bytes(data)
    assert b.to_bytes() == data
    res = verify_light(b, None, k=4)  # offline: what needs the chain is listed, the rest checked
    assert res.accept, res
    assert res.leaf_indices == tuple(o.index for o in b.openings) and "beacon" in res.unchecked
    # One flipped bit in the leaf data is a false claim with a reason code.
    bad = bytearray(data)
    bad[-64 - 100] ^= 1
    assert not verify_light(Bundle.from_bytes(bytes(bad)), None, k=4).accept


def test_stdlib_checker_output_matches_the_docs():
    out = subprocess.run([sys.executable, str(DOCS / "examples" / "check_bundle.py"), str(EXAMPLE)],
                         capture_output=True, text=True, check=True).stdout
    assert "False" not in out and out.count("True") == 12
    assert out.strip() in (DOCS / "bundle.md").read_text()
