"""training.rundir: the run-folder layout and the --resume rules, the same for every trainer."""
from __future__ import annotations

import dataclasses

import pytest

from colonsim.config import from_dict, read_yaml
from colonsim.errors import ConfigError, InputError
from training import RunDir, resume_config

from .conftest import TinyConfig


def test_layout_names(tmp_path):
    run = RunDir(tmp_path / "run")
    assert {p.name for p in (run.config, run.last, run.model, run.tb, run.snapshots, run.loss_curve)} == {
        "config.yaml", "last.pt", "model.pt", "tb", "snapshots", "loss_curve.png"}
    assert run.snapshot(42) == tmp_path / "run" / "snapshots" / "step_000042.pt" and run.snapshots.is_dir()
    assert set(run.paths()) == {"config.yaml", "last.pt", "model.pt", "tb", "snapshots", "loss_curve.png"}


def test_create_writes_a_config_that_rebuilds_the_same(tmp_path, tiny_cfg):
    run = RunDir(tmp_path / "a" / "run")
    run.check_start(tiny_cfg, resume=False)   # a missing folder is a new run
    run.create(tiny_cfg)
    assert from_dict(TinyConfig, read_yaml(run.config)) == tiny_cfg
    assert not run.holds_run()


@pytest.mark.parametrize("held", ["last.pt", "model.pt"])
def test_a_folder_holding_a_run_is_refused_without_resume(tmp_path, tiny_cfg, held):
    run = RunDir(tmp_path)
    run.create(tiny_cfg)
    (tmp_path / held).write_bytes(b"x")
    with pytest.raises(InputError) as e:
        run.check_start(tiny_cfg, resume=False)
    msg = str(e.value)
    assert "\n" not in msg and "--resume" in msg and "--out" in msg and str(tmp_path) in msg


def test_a_folder_of_other_files_is_a_new_run(tmp_path, tiny_cfg):
    (tmp_path / "notes.txt").write_text("mine")
    RunDir(tmp_path).check_start(tiny_cfg, resume=False)


def test_resume_needs_last_pt(tmp_path, tiny_cfg):
    run = RunDir(tmp_path)
    run.create(tiny_cfg)
    with pytest.raises(InputError, match="no last.pt to resume; drop --resume"):
        run.check_start(tiny_cfg, resume=True)


def _held_run(tmp_path, cfg):
    run = RunDir(tmp_path)
    run.create(cfg)
    run.last.write_bytes(b"x")
    return run


def test_resume_may_change_steps_and_time_limit_only(tmp_path, tiny_cfg):
    run = _held_run(tmp_path, tiny_cfg)
    longer = dataclasses.replace(tiny_cfg, train=dataclasses.replace(tiny_cfg.train, steps=99, time_limit_min=5.0))
    run.check_start(tiny_cfg, resume=True)
    run.check_start(longer, resume=True)
    for changed, key in ((dataclasses.replace(tiny_cfg, seed=4), "seed"),
                         (dataclasses.replace(tiny_cfg, train=dataclasses.replace(tiny_cfg.train, lr=0.1)), "train.lr"),
                         (dataclasses.replace(tiny_cfg, compute=dataclasses.replace(tiny_cfg.compute, bf16=True)),
                          "compute.bf16")):
        with pytest.raises(ConfigError) as e:
            run.check_start(changed, resume=True)
        assert e.value.key == key and "\n" not in str(e.value) and "--resume" in str(e.value)


def test_resume_config_layers_the_users_settings_over_the_run(tmp_path, tiny_cfg):
    run = _held_run(tmp_path, tiny_cfg)
    # --resume alone continues the run as configured, even where the defaults say otherwise
    assert resume_config(tmp_path, TinyConfig) == tiny_cfg
    longer = resume_config(tmp_path, TinyConfig, overrides=["train.steps=50"])
    assert longer.train.steps == 50
    run.check_start(longer, resume=True)
    user = tmp_path / "user.yaml"
    user.write_text("train: {lr: 0.5}\n")
    with pytest.raises(ConfigError, match="train.lr"):
        run.check_start(resume_config(tmp_path, TinyConfig, user), resume=True)
    with pytest.raises(ConfigError, match="train.nope"):   # a typo is still an unknown key
        resume_config(tmp_path, TinyConfig, overrides=["train.nope=1"])


def test_resume_of_a_folder_without_config_is_one_line(tmp_path, tiny_cfg):
    (tmp_path / "last.pt").write_bytes(b"x")
    with pytest.raises(InputError, match="config.yaml not found"):
        RunDir(tmp_path).check_start(tiny_cfg, resume=True)
