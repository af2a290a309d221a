"""colonsim inspect --check: poses, depth and intrinsics of a sequence file agree, or it says so."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import cli
from colonsim.data.posecheck import check_poses
from colonsim.run.generate import render_dataset
from colonsim.simconfig import load_sim_config


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    out = tmp_path_factory.mktemp("check") / "seq.h5"
    cfg = load_sim_config(overrides=["output.size_px=64", "anatomy.triangles=20000", "trajectory.sequence_length=9"])
    render_dataset(cfg, out, 18, seed=3, workers=1, progress=False)
    return out


def test_a_rendered_sequence_passes(sequence, capsys):
    r = check_poses(sequence)
    assert r["ok"] and r["pairs"] == 2 and r["worst_px"] < 0.1, r
    assert cli.main(["inspect", str(sequence), "--check"]) == 0
    assert "poses agree with depth (2 pairs" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", ["transposed", "rotation transposed", "inverted"])
def test_a_pose_in_another_convention_is_caught(sequence, tmp_path, capsys, wrong):
    bad = tmp_path / "bad.h5"
    shutil.copy(sequence, bad)
    with h5py.File(bad, "a") as f:
        p = f["pose"][()].astype(np.float64)
        if wrong == "transposed":
            p = np.transpose(p, (0, 2, 1))
        elif wrong == "rotation transposed":
            p[:, :3, :3] = np.transpose(p[:, :3, :3], (0, 2, 1))
        else:
            p = np.linalg.inv(p)   # world-to-camera
        f["pose"][...] = p.astype(np.float32)
    r = check_poses(bad)
    assert not r["ok"] and r["worst_px"] > 1.0, r
    assert cli.main(["inspect", str(bad), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pose check failed" in err and "px" in err


def test_independent_frames_have_nothing_to_check(tmp_path):
    out = tmp_path / "frames.h5"
    render_dataset(load_sim_config(overrides=["output.size_px=16", "anatomy.triangles=20000"]), out, 2, seed=1,
                   workers=1, progress=False)
    r = check_poses(out)
    assert r["ok"] and r["pairs"] == 0 and "sequence_length 1" in r["note"]
