"""``pogo govern`` over HTTP: register a participant, start an epoch with a new initial state from an .npz or an
orbax checkpoint; a non-governance key and a state of another shape are one-line errors that change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from chainkit import SHAPES, Kit, key, make_dataset
from nodekit import serve

from pogo_jax.cli import main
from pogo_jax.spec.keys import public_bytes, save_private_pem


def _one_line_error(capsys, argv: list[str], needle: str, code: int = 2) -> None:
    """Exit 2 for the user's own mistake, 1 for a record the node refused; one line either way."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: " if code == 2 else "REJECT ") and "\n" not in err and "Traceback" not in err, err
    assert needle in err, err


@pytest.mark.timeout(300)
def test_govern_register_and_epoch_from_npz_and_orbax(tmp_path, capsys) -> None:
    kit = Kit(tmp_path / "chain")
    gov_pem, intruder_pem = tmp_path / "gov.pem", tmp_path / "intruder.pem"
    save_private_pem(kit.gov, gov_pem)
    save_private_pem(kit.miners[0], intruder_pem)  # a registered miner, not the governance key
    data = make_dataset(tmp_path / "epoch.pogodata", seed=3)
    rng = np.random.default_rng()
    state = {k: rng.normal(0, 0.02, size=s).astype(np.float32) for k, s in SHAPES.items()}
    npz = tmp_path / "init.npz"
    np.savez(npz, **state)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{**state, "b": np.zeros(301, np.float32)})
    with serve(kit.chain) as url:
        base = ["govern", "epoch", "--node", url, "--data", str(data)]
        seq = kit.st.seq
        _one_line_error(capsys, [*base, "--key", str(intruder_pem)], "REJECT WRONG_SIGNER: epochs are signed by", 1)
        _one_line_error(capsys, [*base, "--key", str(gov_pem), "--init-from", str(wrong)], "b has shape (301,)")
        _one_line_error(capsys, [*base, "--key", str(gov_pem), "--init-from", str(tmp_path / "none")],
                        "no such file or directory")
        assert kit.st.seq == seq and not kit.st.epochs  # nothing recorded

        newcomer = key("newcomer")
        assert main(["govern", "register", "--node", url, "--key", str(gov_pem), "--member",
                     public_bytes(newcomer).hex(), "--role", "verifier", "--name", "v9", "--stake", "700"]) == 0
        assert kit.st.stakes[public_bytes(newcomer)] == 700

        assert main([*base, "--key", str(gov_pem), "--init-from", str(npz)]) == 0
        assert len(kit.st.epochs) == 1 and kit.st.epochs[0].state is not None

        import jax
        import orbax.checkpoint as ocp

        ck = tmp_path / "ckpt"
        moved = {k: v + np.float32(0.5) for k, v in state.items()}
        nested = {"params": {"a": {"w": moved["a/w"]}, "b": moved["b"], "c": {"k": moved["c/k"]}}}
        with ocp.StandardCheckpointer() as w:
            w.save(ck / "state", jax.tree.map(np.asarray, nested))
        assert main([*base, "--key", str(gov_pem), "--init-from", str(ck)]) == 0
        assert len(kit.st.epochs) == 2
        e1, e2 = kit.st.epochs
        assert e1.state.root != e2.state.root  # the orbax state, not the npz again
