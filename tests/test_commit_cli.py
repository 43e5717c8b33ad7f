"""`pogo commit` on a real `pogo train` run directory: device and host roots agree."""

from __future__ import annotations

import json

from pogo_jax.cli import main


def test_commit_of_a_training_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tiny", "--steps", "3", "--out", str(run),
                 "--set", "train.checkpoint_every=3"]) == 0
    capsys.readouterr()
    roots = []
    for extra in ([], ["--host"]):
        assert main(["commit", str(run), *extra]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["n_leaves"] == 134 and out["leaf_size"] == 1024
        roots.append(out["root"])
    assert roots[0] == roots[1]
    assert main(["commit", str(tmp_path / "missing")]) == 2
