"""The experiment pipeline at toy size: every stage runs, a rerun is served from the cache, and
results.json and report.html hold what the issue promises."""
from __future__ import annotations

import json

import cv2
import h5py
import hdf5plugin  # noqa: F401  (the compressed datasets)
import numpy as np
import pytest

from experiment.pipeline import METRIC_KEYS, load_experiment_config, run_experiment

TOY = """
name: toy
size_px: 32
workers: 1
train:           {frames: 12, style: clean,     seed: 11, sim_set: ["anatomy.max_length_mm=150"]}
train_realistic: {frames: 12, style: realistic, seed: 11, sim_set: ["anatomy.max_length_mm=150"]}
real_like:       {frames: 8,  style: realistic, seed: 12, sim_set: ["anatomy.max_length_mm=150"]}
test:            {frames: 6,  style: realistic, seed: 13, sim_set: ["anatomy.max_length_mm=150"]}
depth: {steps: 2, config_set: ["train.batch=4", "train.val_every=1"]}
adapt: {steps: 2, config_set: ["refiner.width=8", "refiner.blocks=1", "discriminator.width=8",
        "data.size_px=32", "data.batch_size=4", "schedule.pretrain_refiner_steps=1",
        "schedule.pretrain_disc_steps=1", "history.size=8"]}
eval: {align: median, max_depth_mm: 200.0, bootstrap: 100, panel_frames: 2}
ct_mesh: ""
qualitative_folder: ""
"""


@pytest.mark.timeout(600)
def test_toy_experiment_runs_caches_and_reports(tmp_path):
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(TOY)
    cfg = load_experiment_config(cfg_file)
    run = tmp_path / "run"
    res = run_experiment(cfg, run)

    on_disk = json.loads((run / "results.json").read_text())
    for row in ("raw", "adapted"):
        assert set(METRIC_KEYS) <= set(on_disk[row]), row
        assert on_disk[row]["n"] == 6
        lo, hi = on_disk[row]["abs_rel_ci"]
        assert lo <= on_disk[row]["abs_rel"] <= hi
    assert set(on_disk["baselines"]) == {"upper_bound_trained_on_realistic", "forward_simgan_trained_on_refined_clean",
                                         "matched_training_free", "highlights_inpainted_training_free"}
    assert on_disk["baselines"]["matched_training_free"]["n"] == 6
    assert on_disk["baselines"]["highlights_inpainted_training_free"]["n"] == 6
    for key in ("matched_over_raw_abs_rel", "inpainted_over_raw_abs_rel"):
        ratio = on_disk["tests"]["test_real"][key]
        assert ratio[1] <= ratio[0] <= ratio[2]
    # The inpainted test set is the test set with its small highlights filled and the same depth:
    # what stays bright is a large patch (over 1% of the circle), kept as it was.
    with h5py.File(run / "test_real.h5") as a, h5py.File(run / "test_inpainted.h5") as b:
        assert np.array_equal(a["depth"][:], b["depth"][:])
        before, after = a["rgb"][:], b["rgb"][:]
        bright = after.min(axis=-1) >= 170
        assert np.array_equal(after[bright], before[bright])
        changed = (before != after).any(axis=-1)
        assert changed.any() and changed.mean() < 0.2   # only the highlights and their rims moved
        # what moved is a highlight or its grown rim: within 2 px of a pixel whose channels are all >= 170
        near = np.stack([cv2.dilate((f.min(axis=-1) >= 170).astype(np.uint8), np.ones((5, 5), np.uint8))
                         for f in before]) > 0
        assert near[changed].mean() > 0.99
    for b in on_disk["baselines"].values():
        assert set(METRIC_KEYS) <= set(b)
    assert on_disk["headline"]["ratio"] == pytest.approx(res["adapted"]["abs_rel"] / res["raw"]["abs_rel"])

    html = (run / "report.html").read_text()
    assert "<img src='data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert "abs_rel" in html and "upper bound trained on realistic" in html and "matched training free" in html
    assert "highlights inpainted training free" in html

    stages = sorted(p.name for p in (run / "stages").glob("*.json"))
    assert stages == sorted(f"{n}.json" for n in (
        "render_train_clean", "render_train_realistic", "render_real_like", "render_test_real", "depth_clean",
        "adapt_reverse", "depth_realistic", "adapt_forward", "apply_forward", "depth_forward", "match_test_real",
        "inpaint_test_real"))
    stamps = {p: p.stat().st_mtime_ns for p in (run / "stages").glob("*.json")}
    model_stamp = (run / "depth_clean" / "model.pt").stat().st_mtime_ns

    # A rerun is served from the cache: no stage record or model is rewritten, results are equal.
    res2 = run_experiment(cfg, run)
    assert {p: p.stat().st_mtime_ns for p in (run / "stages").glob("*.json")} == stamps
    assert (run / "depth_clean" / "model.pt").stat().st_mtime_ns == model_stamp
    assert res2["raw"]["abs_rel"] == res["raw"]["abs_rel"]

    # A moved run folder keeps its cache: nothing is retrained or rewritten.
    moved = tmp_path / "moved"
    run.rename(moved)
    res_moved = run_experiment(cfg, moved)
    assert {p.name: p.stat().st_mtime_ns for p in (moved / "stages").glob("*.json")} == \
        {p.name: t for p, t in stamps.items()}
    assert res_moved["adapted"]["abs_rel"] == res["adapted"]["abs_rel"]
    moved.rename(run)

    # A changed training input redoes that stage (and only the stages that depend on it).
    cfg3 = load_experiment_config(cfg_file, ["depth.steps=3"])
    run_experiment(cfg3, run)
    assert (run / "stages" / "render_train_clean.json").stat().st_mtime_ns == \
        stamps[run / "stages" / "render_train_clean.json"]
    assert json.loads((run / "stages" / "depth_clean.json").read_text())["result"]["steps"] == 3
