"""Verify a bundle as a registered verifier and record a signed attestation in the ledger.

Light tier by default; --full adds the rebuild and loss check. Exit 0 when the attestation was
recorded (whatever its verdict), 2 on unusable input (then nothing is recorded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pogo_jax.cmd._common import add_chain_arg, load_key, open_chain


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="proof bundle file")
    add_chain_arg(p)
    p.add_argument("--key", type=Path, required=True, help="the verifier's private key PEM")
    p.add_argument("--full", action="store_true", help="full tier (rebuild theta_next, check the losses)")


def run(args: argparse.Namespace) -> int:
    from pogo_jax.roles.chainops import Verdict, attest, light_verify, read_bundle

    chain, ledger = open_chain(args.chain)
    key = load_key(args.key)
    bundle = read_bundle(args.bundle)
    pc = ledger.meta()["config"]["pogo"]
    res = light_verify(bundle, ledger, pc["k_leaves"], pc["m_windows"], pc["delta"])
    verdict = Verdict(res.accept, "light", res.reason, res.detail)
    if res.accept and args.full:
        from pogo_jax.fullverify import verify_full

        full = verify_full(chain, ledger, bundle)
        verdict = Verdict(full.accept, "full", full.reason, full.detail, full.loss_prev, full.loss_next)
    attest(ledger, key, bundle, verdict)
    print(json.dumps({"height": bundle.header.height, "verdict": "accept" if verdict.accept else "reject",
                      "tier": verdict.tier, "reason": verdict.reason, "detail": verdict.detail}))
    return 0
