"""depth eval and depth predict on the dataset layouts that ``colonsim export`` writes (issue 42).

The export -> import -> eval round trip: a real pyrender render (64 px, 4 frames), exported as
SimCol3D, C3VD and PNG + .npy, evaluated by the same tiny depth model (tests/depth/conftest.py).
The frames are the same bytes in every layout (SimCol3D's 16-bit RGBA is the 8-bit value x 257, read
back exactly), so the predictions are the same; only the ground truth differs, by the depth
encoding's rounding: at most half a unit, SimCol3D 200/65280/2 = 0.00153 mm, C3VD 100/65535/2 =
0.00076 mm, PNG + .npy exact (float32). So:
- l1_mm and rmse_mm agree within half a unit (each pixel's error moves by at most that);
- the threshold metrics (delta1-3) within one pixel per image (a pixel whose ratio lies within half
  a unit of 1.25 may round across it: measured, one pixel of one image for SimCol3D);
- the other relative metrics (abs_rel, sq_rel, rmse_log, median_rel) within 1e-3 relative, a loose
  bound: measured at most 1.1e-5 (SimCol3D, median_rel) and 1.3e-5 (C3VD, median_rel).
C3VD's encoding ends at 100 mm (deeper depth saturates there), so the comparison ignores ground
truth beyond 99 mm (--max-depth-mm 99) for every layout.
"""
from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

import cli
from colonsim.data import realdata
from colonsim.run.generate import render_dataset
from colonsim.simconfig import load_sim_config

HALF_UNIT_MM = {"simcol3d": 200.0 / 65280 / 2, "c3vd": 100.0 / 65535 / 2, "png": 0.0}
MAX_DEPTH_MM = "99"   # C3VD saturates at 100 mm (module doc)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    h5 = d / "data.h5"
    cfg = load_sim_config(overrides=["output.size_px=64", "anatomy.triangles=20000"])
    render_dataset(cfg, h5, 4, seed=3, workers=1, progress=False)
    for fmt in HALF_UNIT_MM:
        assert cli.main(["export", str(h5), "--format", fmt, "--out", str(d / fmt)]) == 0
    return h5, d


def _eval(capsys, model, data, *extra):
    code = cli.main(["depth", "eval", "--model", str(model), "--data", str(data), "--max-depth-mm", MAX_DEPTH_MM,
                     "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("fmt", list(HALF_UNIT_MM))
def test_depth_eval_on_an_exported_folder_gives_the_metrics_of_its_hdf5(capsys, tiny_model, exported, fmt):
    h5, d = exported
    ref = _eval(capsys, tiny_model, h5, "--per-image")
    got = _eval(capsys, tiny_model, d / fmt, "--per-image")
    assert got["n"] == ref["n"] == 4
    assert [r["n_valid"] for r in got["per_image"]] == [r["n_valid"] for r in ref["per_image"]]
    half = HALF_UNIT_MM[fmt]
    one_pixel_per_image = float(np.mean([1.0 / r["n_valid"] for r in ref["per_image"]]))
    for k, v in ref["metrics"].items():
        if k in ("l1_mm", "rmse_mm"):
            tol = half + 1e-6
        elif k.startswith("delta"):
            tol = one_pixel_per_image + 1e-9
        else:
            tol = 1e-3 * abs(v) + 1e-9
        assert abs(got["metrics"][k] - v) <= tol, (fmt, k, got["metrics"][k], v)
    if fmt == "png":   # exact: the same float32 depth, mask and frames
        assert got["metrics"] == pytest.approx(ref["metrics"], rel=1e-6, abs=1e-9)


def test_depth_scale_names_an_encoding_and_replaces_the_layouts_own(capsys, tiny_model, exported):
    """--depth-scale c3vd on a SimCol3D folder reads its depth at C3VD's scale: every depth x 200/65280
    becomes x 100/65535, about half, so the metrics change (the user asked for another encoding)."""
    _, d = exported
    own = _eval(capsys, tiny_model, d / "simcol3d")
    named = _eval(capsys, tiny_model, d / "simcol3d", "--depth-scale", "simcol3d")
    other = _eval(capsys, tiny_model, d / "simcol3d", "--depth-scale", "c3vd")
    assert named["metrics"] == own["metrics"]
    assert other["metrics"]["l1_mm"] != pytest.approx(own["metrics"]["l1_mm"], rel=1e-3)


def test_depth_predict_reads_only_the_colour_frames_of_a_simcol3d_folder_16bit_rgba(
        capsys, tiny_model, exported, tmp_path, caplog):
    _, d = exported
    src = d / "simcol3d"
    img = cv2.imread(str(src / "FrameBuffer_0000.png"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape[2] == 4   # as SimCol3D's own frames
    before = len(realdata.converted_images())
    with caplog.at_level(logging.INFO, logger="colonsim.data.realdata"):
        code = cli.main(["depth", "predict", "--model", str(tiny_model), "--input", str(src),
                         "--out", str(tmp_path / "pred"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["n"] == 4
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert names == sorted([f"FrameBuffer_{i:04d}{e}" for i in range(4) for e in (".npy", ".png")])
    assert len(realdata.converted_images()) - before == 4
    assert len([r for r in caplog.records if "further 16-bit or RGBA" in r.getMessage()]) <= 1


def test_depth_predict_and_eval_read_16bit_and_rgba_frames_of_a_plain_folder(capsys, tiny_model, tmp_path):
    """A plain folder (no dataset layout) of 16-bit RGBA and 8-bit RGBA PNGs with .npy ground truth."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(20, 235, (2, 32, 32, 3), dtype=np.uint8)
    src = tmp_path / "frames"
    src.mkdir()
    alpha16 = np.full((32, 32, 1), 65535, np.uint16)
    cv2.imwrite(str(src / "a.png"), np.concatenate([rgb[0][..., ::-1].astype(np.uint16) * 257, alpha16], axis=2))
    cv2.imwrite(str(src / "b.png"), np.concatenate([rgb[1][..., ::-1], np.full((32, 32, 1), 255, np.uint8)], axis=2))
    for n in ("a", "b"):
        np.save(src / f"{n}.npy", np.full((32, 32), 30.0, np.float32))
    code = cli.main(["depth", "predict", "--model", str(tiny_model), "--input", str(src), "--out",
                     str(tmp_path / "pred"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["n"] == 2, err
    assert _eval(capsys, tiny_model, src)["n"] == 2
    for n, i in (("a", 0), ("b", 1)):
        np.testing.assert_array_equal(realdata.read_image(src / f"{n}.png"), rgb[i])
