"""Check a PoGO proof bundle with the Python standard library only (hashlib, json, struct).

    python docs/examples/check_bundle.py docs/examples/block-000001.pogo

Recomputes the header hash, the challenge seed and leaf indices, every leaf hash and audit path
in the three trees, and prints what it found. It trusts the beacon value in the bundle (a real
verifier takes the round's value from the chain's log, and the round's windows with it) and does
not check the two Ed25519 signatures (header and bundle) or the float32 apply rule: `pogo verify`
does those.
"""

import hashlib
import json
import pathlib
import struct
import sys


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def leaf_hash(tag: bytes, index: int, data: bytes) -> bytes:
    head = b"\x00" + tag
    h64 = head + b"\x00" * (56 - len(head)) + struct.pack("<Q", index)
    return hashlib.sha256(h64 + data).digest()


def root_from_path(leaf: bytes, index: int, n: int, path: list) -> bytes:
    h, i, width, used = leaf, index, n, 0
    while width > 1:
        if i ^ 1 < width:  # a sibling exists at this level (else the node is carried up)
            s = bytes.fromhex(path[used])
            used += 1
            h = hashlib.sha256(b"\x01" + (s + h if i & 1 else h + s)).digest()
        i, width = i // 2, (width + 1) // 2
    assert used == len(path), "path too long"
    return h


def sample(seed: bytes, label: bytes, n: int, k: int) -> list:
    out, limit, counter = [], 2**64 - (2**64 % n), 0
    while len(out) < min(k, n):
        (u,) = struct.unpack_from("<Q", hashlib.sha256(seed + label + struct.pack("<Q", counter)).digest())
        counter += 1
        if u < limit and u % n not in out:
            out.append(u % n)
    return out


def main(path: str) -> None:
    buf = pathlib.Path(path).read_bytes()
    assert buf[:8] == b"POGOBNDL", "not a bundle"
    (version,) = struct.unpack_from("<I", buf, 8)
    (jlen,) = struct.unpack_from("<Q", buf, 12)
    meta = json.loads(buf[20 : 20 + jlen])
    (dlen,) = struct.unpack_from("<Q", buf, 20 + jlen)
    data = buf[28 + jlen : 28 + jlen + dlen]  # leaf data; the miner's 64-byte signature follows
    assert len(buf) == 28 + jlen + dlen + 64, "bundle is truncated or extended"
    header = meta["header"]["body"]  # the signed envelope: {"body": header, "kind": "header", "signature"}
    hh = hashlib.sha256(canonical(header)).digest()
    beacon = bytes.fromhex(meta["beacon"])
    seed = hashlib.sha256(b"pogo/challenge/v1" + hh + beacon).digest()
    layout_hash = hashlib.sha256(canonical(meta["layout"])).hexdigest()
    n, s, g = header["n_leaves"], header["leaf_size"], header["group_size"]
    k = len(meta["openings"])
    print(f"bundle v{version}: height {header['height']} round {header['round']}, {n} leaves, k={k}, "
          f"{len(buf)} bytes")
    print(f"header hash   {hh.hex()}")
    print(f"layout hash   {layout_hash}  (header says {header['layout_hash']})")
    print(f"beacon        {beacon.hex()}")
    print(f"seed          {seed.hex()}")
    want = sample(seed, b"leaves", n, k)
    got = [o["index"] for o in meta["openings"]]
    print(f"challenge     {want}  (bundle opens {got})")
    per = 8 * s + s // g + s // 2
    for i, o in enumerate(meta["openings"]):
        rec = data[i * per : (i + 1) * per]
        parts = [(b"POGO-PARAM-v1", rec[: 4 * s], o["path_prev"], header["root_prev"]),
                 (b"POGO-PARAM-v1", rec[4 * s : 8 * s], o["path_next"], header["root_next"]),
                 (b"POGO-QUPD-v1", rec[8 * s :], o["path_q"], header["root_q"])]
        ok = [root_from_path(leaf_hash(tag, o["index"], leaf), o["index"], n, p).hex() == root
              for tag, leaf, p, root in parts]
        print(f"leaf {o['index']:4d}: theta_prev {ok[0]}, theta_next {ok[1]}, update {ok[2]} "
              f"(path length {len(o['path_prev'])})")


if __name__ == "__main__":
    main(sys.argv[1])
