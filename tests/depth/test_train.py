import shutil

import pytest
import torch
import yaml

from colonsim import config as cfgmod
from colonsim.errors import InputError
from depth.train import lr_at, train_depth


def test_loss_goes_down_on_a_tiny_overfit(tiny_h5, tiny_cfg, tmp_path):
    cfg = cfgmod.replace(tiny_cfg, ["train.steps=40", "train.warmup_steps=4", "train.val_every=20",
                                    "train.checkpoint_every=40", "data.color_balance_jitter=0"])
    r = train_depth(cfg, [tiny_h5], tmp_path / "run")
    loss = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["history"]["loss"]
    assert r["steps"] == 40 and len(loss) == 40
    assert sum(loss[-5:]) < 0.6 * sum(loss[:5]), loss
    assert r["best_val_abs_rel"] < 0.6  # the untrained network predicts 14 mm everywhere: abs_rel ~ 0.8
    for name in ("model.pt", "last.pt", "config.yaml", "loss_curve.png", "snapshots/step_000040.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    assert any((tmp_path / "run" / "tb").iterdir())
    assert cfgmod.from_dict(type(cfg), yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())) == cfg


def test_resume_continues_the_same_run(tiny_h5, tiny_cfg, tmp_path):
    straight = train_depth(tiny_cfg, [tiny_h5], tmp_path / "a")
    assert straight["steps"] == 6
    # A run cut short after step 3: its folder holds the step-3 checkpoint as last.pt.
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "snapshots" / "step_000003.pt", tmp_path / "b" / "last.pt")
    shutil.copy(tmp_path / "a" / "config.yaml", tmp_path / "b" / "config.yaml")
    mid = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert mid["step"] == 3 and mid["optimizer"]["state"]
    resumed = train_depth(tiny_cfg, [tiny_h5], tmp_path / "b", resume=True)
    assert resumed["steps"] == 6
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert b["step"] == 6 and b["history"]["step"] == list(range(1, 7))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, sa in a["optimizer"]["state"].items():
        sb = b["optimizer"]["state"][i]
        assert float(sa["step"]) == float(sb["step"]) == 6
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


def test_a_finished_run_folder_is_not_overwritten(tiny_h5, tiny_cfg, tmp_path):
    train_depth(cfgmod.replace(tiny_cfg, ["train.steps=1"]), [tiny_h5], tmp_path / "run")
    before = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(InputError, match="--resume"):
        train_depth(tiny_cfg, [tiny_h5], tmp_path / "run")
    assert (tmp_path / "run" / "model.pt").read_bytes() == before


def test_resume_extends_the_steps_and_refuses_other_changes(tiny_h5, tiny_cfg, tmp_path):
    from colonsim.errors import ConfigError

    run = tmp_path / "run"
    train_depth(cfgmod.replace(tiny_cfg, ["train.steps=2"]), [tiny_h5], run)
    with pytest.raises(ConfigError) as e:   # anything but steps and time_limit_min is the run's own
        train_depth(cfgmod.replace(tiny_cfg, ["train.lr=0.01"]), [], run, resume=True, steps=3)
    assert e.value.key == "train.lr"
    r = train_depth(cfgmod.replace(tiny_cfg, ["train.time_limit_min=5"]), [], run, resume=True, steps=3)
    assert r["steps"] == 3   # the data of the run itself, from last.pt
    stored = cfgmod.from_dict(type(tiny_cfg), yaml.safe_load((run / "config.yaml").read_text()))
    assert stored.train.steps == 3 and stored.train.time_limit_min == 5
    with pytest.raises(InputError, match="no last.pt to resume"):
        train_depth(tiny_cfg, [tiny_h5], tmp_path / "new", resume=True)


def test_separate_val_file_and_schedule(tiny_h5, tiny_val_h5, tiny_cfg, tmp_path):
    r = train_depth(tiny_cfg, [tiny_h5], tmp_path / "run", val=tiny_val_h5, steps=2)
    assert r["steps"] == 2 and r["val_metrics"]["abs_rel"] > 0
    t = tiny_cfg.train
    assert lr_at(0, t) == pytest.approx(t.lr / t.warmup_steps)
    assert lr_at(t.warmup_steps, t) == pytest.approx(t.lr)
    assert lr_at(t.steps, t) == pytest.approx(t.lr * t.min_lr_ratio)


def test_bf16_autocast_and_channels_last_train(tiny_h5, tiny_cfg, tmp_path):
    cfg = cfgmod.replace(tiny_cfg, ["compute.bf16=true", "compute.channels_last=true", "train.steps=2"])
    r = train_depth(cfg, [tiny_h5], tmp_path / "run")
    assert r["steps"] == 2 and 0 < r["final_loss"] < 10
    assert 0 < r["val_metrics"]["abs_rel"] < 10


def test_bad_data_is_refused_before_the_run_folder_is_made(tiny_h5, tiny_cfg, tmp_path):
    from colonsim.errors import DatasetError

    with pytest.raises(DatasetError, match="missing.h5"):
        train_depth(tiny_cfg, [tiny_h5], tmp_path / "run", val=tmp_path / "missing.h5")
    assert not (tmp_path / "run").exists()
