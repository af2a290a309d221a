"""Data-parallel depth training: 2 gloo processes follow the 1-process run (same global batch), rank 0
alone writes the run folder, and a 2-process run resumes."""
from __future__ import annotations

import shutil

import torch

from colonsim import config as cfgmod
from depth.train import train_depth

STEPS = ["train.steps=4", "train.val_every=4", "train.checkpoint_every=2", "data.color_balance_jitter=0"]


def history(run) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def test_two_gloo_processes_match_one_process_and_resume(tiny_h5, tiny_cfg, tmp_path):
    cfg = cfgmod.replace(tiny_cfg, STEPS)
    one = train_depth(cfg, [tiny_h5], tmp_path / "one")
    two = train_depth(cfg, [tiny_h5], tmp_path / "two", nproc=2)
    a, b = history(tmp_path / "one"), history(tmp_path / "two")
    assert two["steps"] == one["steps"] == 4 and b["history"]["step"] == [1, 2, 3, 4]
    # Same global batch of 4 frames, split 2 + 2: the losses agree to float rounding (the loss
    # drops by far more than the tolerance over these steps, so a wrong batch split would show).
    assert torch.allclose(torch.tensor(a["history"]["loss"]), torch.tensor(b["history"]["loss"]), rtol=1e-3), \
        (a["history"]["loss"], b["history"]["loss"])
    for k, v in a["model"].items():
        assert not k.startswith("module.") and torch.allclose(v.float(), b["model"][k].float(), atol=1e-4), k
    # A 2-process run resumed from its step-2 checkpoint ends where the uninterrupted one did.
    (tmp_path / "cut").mkdir()
    shutil.copy(tmp_path / "two" / "snapshots" / "step_000002.pt", tmp_path / "cut" / "last.pt")
    shutil.copy(tmp_path / "two" / "config.yaml", tmp_path / "cut" / "config.yaml")
    train_depth(cfg, [tiny_h5], tmp_path / "cut", resume=True, nproc=2)
    c = history(tmp_path / "cut")
    assert c["step"] == 4 and torch.allclose(torch.tensor(c["history"]["loss"]), torch.tensor(b["history"]["loss"]))
    for k, v in b["model"].items():
        assert torch.allclose(v.float(), c["model"][k].float(), atol=1e-6), k


def test_global_batch_that_does_not_split_is_refused(tiny_h5, tiny_cfg, tmp_path, capsys):
    import cli
    capsys.readouterr()
    code = cli.main(["depth", "train", "--data", str(tiny_h5), "--out", str(tmp_path / "r"), "--nproc", "3",
                     "--set", "train.batch=4", "--set", "compute.device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "multiple of the number of processes" in err[0]
