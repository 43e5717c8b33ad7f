"""Download a candidate's proof bundle or 4-bit update from a node, checked by the hash the chain's log names.

  pogo fetch bundle --node URL HEIGHT [--round A] [--candidate N|HASH] [--out FILE]
  pogo fetch update --node URL HEIGHT [--round A] [--candidate N|HASH] [--out FILE]

The log is replayed and checked first (as ``pogo chain`` does), the candidate is picked from it, and the
file is refused unless it hashes to what the log recorded; nothing is taken on the node's word. Without
``--candidate`` the block confirmed at HEIGHT is taken, else the round's only candidate. N counts a round's
candidates from 1 in the order the chain recorded them; HASH is a prefix of a header hash (``pogo chain``).
A fetched bundle is checked with ``pogo verify FILE --node URL``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from pogo_jax.cli._common import add_node_arg, client
from pogo_jax.errors import UserError

SUFFIX = {"bundle": "pogo", "update": "qupd"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=sorted(SUFFIX), help="the candidate's proof bundle or its 4-bit update")
    add_node_arg(p)
    p.add_argument("height", type=int, metavar="HEIGHT", help="the height the candidate was mined for")
    p.add_argument("--round", type=int, default=None, metavar="A",
                   help="the round at that height (default: every round at HEIGHT)")
    p.add_argument("--candidate", default=None, metavar="N|HASH",
                   help="the round's N-th candidate (from 1), or a header-hash prefix (default: the confirmed "
                        "block, else the only candidate)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="where to write it (default: WHAT-HEIGHT-ROUND-HASH8.pogo|.qupd here); never overwritten")


def pick(st, height: int, rnd: int | None, candidate: str | None):  # noqa: ANN001, ANN201 - (Round, Candidate)
    """The (round, candidate) the arguments name in the replayed state, or a UserError that lists the choices."""
    rounds = [r for r in [*st.history, st.round] if r.height == height and (rnd is None or r.round == rnd)]
    where = f"height {height}" + ("" if rnd is None else f" round {rnd}")
    if not rounds:
        now = st.round
        raise UserError(f"the chain has no round at {where} (confirmed height {st.tip_height}, open round "
                        f"({now.height}, {now.round}))")
    cands = [(r, c) for r in rounds for c in r.candidates.values()]
    if not cands:
        raise UserError(f"no candidate was recorded at {where}")
    listing = "; ".join(f"round {r.round} #{i} {c.hash.hex()[:8]} ({c.status})" for r in rounds
                        for i, c in enumerate(r.candidates.values(), 1))
    if candidate is None:
        won = [(r, c) for r, c in cands if r.winner == c.hash]
        if won:
            return won[0]
        if len(cands) == 1:
            return cands[0]
        raise UserError(f"{len(cands)} candidates at {where} and none confirmed: say --candidate N or HASH ({listing})")
    if candidate.isdigit() and len(candidate) <= 3:
        if len(rounds) > 1:
            raise UserError(f"{len(rounds)} rounds at height {height}: say --round A with --candidate N ({listing})")
        by_index = list(rounds[0].candidates.values())
        n = int(candidate)
        if not 1 <= n <= len(by_index):
            raise UserError(f"--candidate {n}: {where} has {len(by_index)} candidate(s) ({listing})")
        return rounds[0], by_index[n - 1]
    prefix = candidate.lower()
    if len(prefix) < 4 or any(ch not in "0123456789abcdef" for ch in prefix):
        raise UserError(f"--candidate {candidate!r} is neither a number nor a header-hash prefix of 4+ hex digits")
    hits = [(r, c) for r, c in cands if c.hash.hex().startswith(prefix)]
    if len(hits) != 1:
        raise UserError(f"--candidate {candidate}: {'no' if not hits else 'more than one'} candidate at {where} "
                        f"has a header hash starting so ({listing})")
    return hits[0]


def _sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def run(args: argparse.Namespace) -> int:
    from pogo_jax.chain.view import ChainView

    if args.height < 1:
        raise UserError(f"HEIGHT is a block height, 1 or more; got {args.height}")
    if args.round is not None and args.round < 1:
        raise UserError(f"--round counts from 1; got {args.round}")
    if args.out is not None and args.out.is_dir():
        raise UserError(f"--out {args.out} is a directory; name a file")
    c = client(args.node)
    r, cand = pick(ChainView(c).state, args.height, args.round, args.candidate)
    hh = cand.hash.hex()
    sha = cand.update_sha256 if args.what == "update" else cand.bundle_sha256
    if sha is None:
        raise UserError(f"candidate {hh[:8]} of round ({r.height}, {r.round}) has no bundle on the chain "
                        f"({'withheld' if r.phase not in ('submit', 'beacon', 'proof') else 'not published yet'})")
    out = args.out or Path(f"{args.what}-{r.height}-{r.round}-{hh[:8]}.{SUFFIX[args.what]}")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {out} exists and is not a file")
    if out.is_file() and _sha256(out) != sha:
        raise UserError(f"{out} exists with other content: remove it or choose another --out")
    c.blob_to_file(sha, out)
    hint = f"; check it: pogo verify {out} --node {args.node}" if args.what == "bundle" else ""
    print(f"{args.what} of candidate {hh[:16]} (round ({r.height}, {r.round}), {cand.status}): "
          f"{out.stat().st_size:,} bytes, sha256 {sha.hex()[:16]}... as the log names it -> {out}{hint}")
    return 0
