"""Fuzz the proof-bundle reader and the light verifier with mutated honest bundles.

At least 10,000 mutations per run (fresh seed each run, printed on failure): bit flips, truncation,
extension, spliced bytes, huge declared lengths, and JSON-level edits (reordered and duplicated
fields, wrong types, huge sizes and indices, path-like strings, deep nesting, missing and unknown
fields). A JSON edit keeps the now stale signature or, half the time, is re-signed with the miner's
key, as a cheating miner would, so that every check after the signature is reached too.

Every mutation must end as ``MalformedInput`` (exit 2) or a reject with a reason code (exit 1);
any other exception is a crash. The reader accepts only canonical metadata, so reordered or
duplicated fields are malformed. A re-signed mutation may be accepted only when it parses to the
honest bundle itself up to its reported losses (a miner may sign any losses; the full tier checks
them). Each check must finish quickly (no hang) and, on a sample run under tracemalloc, allocate
a bounded amount. Unmutated honest bundles are accepted. Bundles come from synthetic blocks
(random state, random 4-bit update, small k so one light check takes about a millisecond); a
GPU-produced miner bundle is verified on CPU and fuzzed in the `gpu` test at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from pogo_jax.demo.synthetic import fresh_beacon, synthetic_block
from pogo_jax.errors import MalformedInput
from pogo_jax.spec.bundle import BUNDLE_DOMAIN, SIG_BYTES, Bundle
from pogo_jax.spec.keys import sign
from pogo_jax.spec.light import verify_light

N_MUTATIONS = 10_500
TRACED = 600  # mutations run under tracemalloc (slower), drawn at random
MAX_SECONDS = 2.0  # per check: parse + light verify
MAX_ALLOC = 32 << 20  # bytes at peak per check (honest bundles here are ~10 KB)
REASON = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
PATHS = ["../../../../etc/passwd", "/dev/zero", "/proc/self/mem", "C:\\Windows\\system32", "~/.ssh/id_ed25519",
         "a/../../b", "\\\\server\\share", "file:///etc/shadow", "bundles/../ledger.sqlite", "..", ""]
REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Case:
    key: object  # the miner's key (a cheating miner re-signs its mutations)
    bundle: Bundle
    raw: bytes
    ctx: object
    k: int


def _cases(seed: int) -> list[Case]:
    out = []
    for i, (n, s, g, k, m) in enumerate([(64, 64, 32, 4, 2), (37, 128, 64, 5, 3), (5, 64, 64, 8, 2)]):
        blk = synthetic_block(n, s, g, seed=seed + i, n_windows=16)
        b = blk.bundle(fresh_beacon(seed.to_bytes(8, "little"), i), k, m)
        out.append(Case(blk.key, b, b.to_bytes(), blk.context(b.beacon, k, m), k))
    return out


# ------------------------------------------------------------------------------------- mutators


def _split(raw: bytes) -> tuple[dict, bytes]:
    (jlen,) = struct.unpack_from("<Q", raw, 12)
    meta = json.loads(raw[20 : 20 + jlen])
    data = raw[28 + jlen : len(raw) - SIG_BYTES]
    return meta, data


def _join(js: bytes, data: bytes, raw: bytes, case: Case, resign: bool) -> bytes:
    body = raw[:12] + struct.pack("<Q", len(js)) + js + struct.pack("<Q", len(data)) + data
    sig = sign(case.key, BUNDLE_DOMAIN, hashlib.sha256(body).digest()) if resign else raw[-SIG_BYTES:]
    return body + sig


def _paths(obj, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def _other_type(rng, v):
    choices = [0, -1, 2**63, 2**64 + 5, "x", "", True, None, [], {}, [1, 2], {"a": 1}, "00" * 32, "ff" * 1000]
    while True:
        c = choices[rng.integers(len(choices))]
        if type(c) is not type(v) or c != v:
            return c


def _huge(rng, v):
    return [2**40, 2**62, 2**63 - 1, 2**24, 10**18, -(2**63), 1 << 31][rng.integers(7)] if isinstance(v, int) \
        else ([0] * int(rng.integers(1000, 20000)) if isinstance(v, list) else "a" * int(rng.integers(1000, 70000)))


def mutate_json(rng, raw: bytes, case: Case) -> tuple[str, bytes]:
    meta, data = _split(raw)
    kind = ["reorder", "duplicate", "type", "huge", "path", "delete", "unknown", "nest", "bigint", "nonascii",
            "openings", "data"][rng.integers(12)]
    resign = bool(rng.integers(2))
    paths = list(_paths(meta))
    path, val = paths[rng.integers(len(paths))]
    if kind == "reorder":
        items = list(meta.items())
        rng.shuffle(items)
        js = json.dumps(dict(items), separators=(",", ":")).encode()
    elif kind == "duplicate":
        js = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        key = list(meta)[rng.integers(len(meta))]
        js = b"{" + json.dumps(key).encode() + b":" + json.dumps(meta[key]).encode() + b"," + js[1:]
    elif kind == "nest":
        js = json.dumps(_set(meta, path, None), sort_keys=True, separators=(",", ":")).encode()
        depth = int(rng.integers(100, 50_000))
        js = js.replace(b"null", b"[" * depth + b"]" * depth, 1)
    elif kind == "bigint":
        js = json.dumps(_set(meta, path, 7), sort_keys=True, separators=(",", ":")).encode()
        js = js.replace(b":7", b":" + b"9" * int(rng.integers(4000, 20000)), 1)
    elif kind == "nonascii":
        js = json.dumps(_set(meta, path, "\u00e9\u4e2d"), sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    else:
        if kind == "type":
            meta = _set(meta, path, _other_type(rng, val))
        elif kind == "huge":
            meta = _set(meta, path, _huge(rng, val))
        elif kind == "path":
            strs = [(p, v) for p, v in paths if isinstance(v, str)] or [(path, val)]
            p, _ = strs[rng.integers(len(strs))]
            meta = _set(meta, p, PATHS[rng.integers(len(PATHS))])
        elif kind in ("delete", "unknown"):
            dicts = [(p, v) for p, v in paths if isinstance(v, dict) and v]
            p, d = dicts[rng.integers(len(dicts))]
            if kind == "delete":
                d.pop(list(d)[rng.integers(len(d))])
            else:
                d[PATHS[rng.integers(len(PATHS))] or "extra"] = 1
        elif kind == "openings":
            ops = meta["openings"]
            if ops:
                j = int(rng.integers(len(ops)))
                op = rng.integers(4)
                if op == 0:
                    ops.append(ops[j])
                elif op == 1:
                    ops.pop(j)
                elif op == 2:
                    ops[j]["index"] = int(rng.integers(0, 2**20))
                else:
                    ops[j][["path_prev", "path_next", "path_q"][rng.integers(3)]].reverse()
        elif kind == "data":
            d = bytearray(data)
            if d:
                d[int(rng.integers(len(d)))] ^= 1 << int(rng.integers(8))
            data = bytes(d)
        js = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    return f"json:{kind}:{'resigned' if resign else 'stale'}:{'/'.join(map(str, path))}", _join(js, data, raw,
                                                                                               case, resign)


def mutate_bytes(rng, raw: bytes) -> tuple[str, bytes]:
    d = bytearray(raw)
    kind = ["flip", "flip_region", "truncate", "extend", "lengths", "splice", "zero"][rng.integers(7)]
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            p = int(rng.integers(len(d)))
            d[p] ^= 1 << int(rng.integers(8))
    elif kind == "flip_region":
        (jlen,) = struct.unpack_from("<Q", raw, 12)
        lo, hi = [(0, 28), (20, 20 + jlen), (28 + jlen, len(d) - SIG_BYTES), (len(d) - SIG_BYTES, len(d))][
            rng.integers(4)]
        if hi > lo:
            p = int(rng.integers(lo, hi))
            d[p] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        del d[int(rng.integers(len(d))):]
    elif kind == "extend":
        d += bytes(rng.integers(0, 256, size=int(rng.integers(1, 200)), dtype=np.uint8)) if rng.integers(2) \
            else bytes(int(rng.integers(1, 70)))
    elif kind == "lengths":
        (jlen,) = struct.unpack_from("<Q", raw, 12)
        big = [2**64 - 1, 2**63, 2**40, 2**31, 2**31 - 1, 64 << 20, len(raw), 0,
               int(rng.integers(2**63, dtype=np.uint64)) * 2]
        off = 12 if rng.integers(2) else 20 + jlen
        struct.pack_into("<Q", d, off, big[rng.integers(len(big))])
    elif kind == "splice":
        a, b = sorted(int(x) for x in rng.integers(len(d), size=2))
        p = int(rng.integers(len(d)))
        d[p:p] = d[a:b]
    else:  # zero a run of bytes
        a = int(rng.integers(len(d)))
        n = min(len(d) - a, int(rng.integers(1, 64)))
        d[a : a + n] = bytes(n)
    return f"bytes:{kind}", bytes(d)


# ------------------------------------------------------------------------------------- checking


def _same_as_honest(b: Bundle, honest: Bundle) -> bool:
    strip = {"loss_prev": 0.0, "loss_next": 0.0, "signature": b""}
    return dataclasses.replace(b, **strip) == dataclasses.replace(honest, **strip)


def check(case: Case, what: str, raw: bytes, seed: int) -> str:
    """Parse and verify; returns 'malformed', a reason code or 'accept', else fails the test."""
    t0 = time.perf_counter()
    try:
        b = Bundle.from_bytes(raw)
    except MalformedInput as e:
        assert str(e) and "\n" not in str(e), (seed, what, e)
        out = "malformed"
    except Exception as e:  # noqa: BLE001 - any other exception is the crash this test looks for
        raise AssertionError(f"seed {seed}: {what}: reader crashed with {type(e).__name__}: {e}") from e
    else:
        try:
            res = verify_light(b, case.ctx)
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"seed {seed}: {what}: verifier crashed with {type(e).__name__}: {e}") from e
        if res.accept:  # only a miner re-signing its honest answer with other losses (the full tier checks those)
            assert "resigned" in what and _same_as_honest(b, case.bundle), (seed, what, "accepted a mutated bundle")
            out = "accept"
        else:
            assert REASON.fullmatch(res.reason), (seed, what, res.reason)
            out = res.reason
    dt = time.perf_counter() - t0
    assert dt < MAX_SECONDS, (seed, what, f"{dt:.2f} s")
    return out


def test_honest_bundles_are_accepted() -> None:
    seed = int(np.random.default_rng().integers(2**31))
    for c in _cases(seed):
        assert Bundle.from_bytes(c.raw) == c.bundle, seed
        res = verify_light(Bundle.from_bytes(c.raw), c.ctx)
        assert res.accept, (seed, res)


@pytest.mark.timeout(300)
def test_fuzz_bundle_reader_and_light_verifier() -> None:
    seed = int(np.random.default_rng().integers(2**31))
    print(f"fuzz seed {seed}")
    fuzz(_cases(seed), seed, N_MUTATIONS)


def fuzz(cases: list[Case], seed: int, n_mutations: int) -> None:
    rng = np.random.default_rng(seed)
    N_MUTATIONS = n_mutations  # noqa: N806
    traced = set(rng.choice(N_MUTATIONS, size=TRACED, replace=False).tolist())
    outcomes: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for i in range(N_MUTATIONS):
        case = cases[i % len(cases)]
        what, raw = mutate_json(rng, case.raw, case) if rng.integers(2) else mutate_bytes(rng, case.raw)
        if raw == case.raw:
            continue
        what = f"mutation {i} ({what})"
        if i in traced:
            tracemalloc.start()
            out = check(case, what, raw, seed)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < MAX_ALLOC + 4 * len(raw), (seed, what, f"peak {peak} bytes")
        else:
            out = check(case, what, raw, seed)
        outcomes[out] = outcomes.get(out, 0) + 1
        k = what.split("(")[1].split(":")[0] + ":" + what.split(":")[1].split(")")[0]
        kinds[k] = kinds.get(k, 0) + 1
    n = sum(outcomes.values())
    print(f"{n} mutations: {dict(sorted(outcomes.items(), key=lambda x: -x[1]))}")
    assert n >= 0.95 * n_mutations, (seed, n)
    # The mutations reach both the reader and the verifier's checks (not only one of them).
    assert outcomes.get("malformed", 0) > n // 10 and sum(v for k, v in outcomes.items()
                                                         if k not in ("malformed", "accept")) > n // 20, outcomes
    assert len(kinds) >= 18, kinds


@pytest.mark.slow
def test_cli_exit_codes_for_mutated_bundles(tmp_path) -> None:
    """Through `pogo verify` (no --chain): exit 2 with one line for malformed bytes, exit 1 with one
    line naming the reason for a false claim; never a traceback."""
    seed = int(np.random.default_rng().integers(2**31))
    case = _cases(seed)[0]
    rng = np.random.default_rng(seed)
    files = {"trunc": (case.raw[: len(case.raw) // 2], 2), "flip_sig": (None, 1), "huge": (None, 2)}
    d = bytearray(case.raw)
    d[-1] ^= 1
    files["flip_sig"] = (bytes(d), 1)
    d = bytearray(case.raw)
    struct.pack_into("<Q", d, 12, 2**63)
    files["huge"] = (bytes(d), 2)
    files["json"] = (mutate_json(rng, case.raw, case)[1], None)
    for name, (raw, want) in files.items():
        f = tmp_path / f"{name}.pogo"
        f.write_bytes(raw)
        p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", "verify", str(f), "--k", str(case.k)],
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
        assert p.returncode in ((1, 2) if want is None else (want,)), (seed, name, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, (seed, name, p.stderr)


@pytest.mark.gpu
@pytest.mark.timeout(900)
def test_gpu_produced_bundle_is_accepted_on_cpu_and_survives_fuzzing(tmp_path) -> None:
    """A block mined and proved on the GPU (``pogo demo``: its miner sees the GPU, its verifiers only the CPU)
    is confirmed by the CPU full tier; its stored bundle, light-checked on the CPU against the chain's replayed
    context, is then fuzzed like the synthetic ones. Run: POGO_TEST_PLATFORMS=cuda,cpu pytest -m gpu."""
    from pogo_jax.chain.blobs import BlobStore
    from pogo_jax.chain.ledger import Ledger
    from pogo_jax.chain.state import replay
    from pogo_jax.spec.keys import load_private_pem

    out = tmp_path / "gpu-chain"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "pogo_jax.cli", "demo", "--config", "tiny", "--set",
                        "miner.block_steps=3", "--set", "chain.k_leaves=16", "--blocks", "1", "--out", str(out)],
                       env={**env, "JAX_PLATFORMS": "cuda,cpu"}, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    st = replay(Ledger.open(out / "node" / "ledger.sqlite", readonly=True).entries())
    blk = st.blocks[-1]
    votes = [v.body for v in st.history[-1].candidates[blk.hash].votes.values()]
    assert sum(v.tier == "full" and v.verdict == "accept" for v in votes) >= 2
    ctx = st.context(blk.hash)
    raw = BlobStore(out / "node" / "blobs", readonly=True).get(ctx.bundle_sha256)
    b = Bundle.from_bytes(raw)
    case = Case(load_private_pem(out / "miner-0" / "key.pem"), b, raw, ctx, 16)
    assert verify_light(b, case.ctx).accept
    seed = int(np.random.default_rng().integers(2**31))
    print(f"fuzz seed {seed}")
    fuzz([case], seed, 2000)
