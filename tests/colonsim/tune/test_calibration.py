"""Calibration import: OpenCV fisheye and Scaramuzza files reproduce their pixel <-> ray mappings."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from colonsim.errors import InputError
from colonsim.render.lens import Lens
from colonsim.simconfig import load_sim_config
from colonsim.tune import calibration

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "cvc-colondb"

# A wide endoscope-like fisheye, off-centre, with unequal focal lengths (width 574, height 500).
K = [[231.5, 0.0, 290.3], [0.0, 229.8, 245.1], [0.0, 0.0, 1.0]]
D = [-0.031, 0.0042, -0.0011, 0.00007]
# Scaramuzza polynomial (MATLAB convention, a0 > 0) with a small stretch.
SCARA = {"model": "scaramuzza", "poly": [265.0, 0.0, -1.6e-3, 2.0e-6, -3.5e-9], "stretch": [1.002, 0.003, -0.002],
         "center": [338.4, 271.9], "image_size": [675, 540]}


def _gl_to_cv(rays):
    return rays * [1.0, -1.0, -1.0]


def _grid(w, h, step=23):
    v, u = np.mgrid[5:h - 5:step, 5:w - 5:step]
    return np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)


def _lens_for(calib, circle_frac=1.0):
    cfg = load_sim_config(overrides=[f"lens.circle_frac={circle_frac}"])
    lc = calibration.apply_calibration(cfg.lens, calib)
    return Lens(lc, *calib.size_px)


def test_opencv_fisheye_matches_cv2_projection_within_a_tenth_of_a_pixel(tmp_path):
    f = tmp_path / "fisheye.yaml"
    f.write_text(json.dumps({"model": "fisheye", "K": K, "D": D, "image_size": [574, 500]}))
    lens = _lens_for(calibration.load_calibration(f), circle_frac=1.0)
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, np.radians(70), 300)
    phi = rng.uniform(-np.pi, np.pi, 300)
    pts = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1) * 40.0
    expected, _ = cv2.fisheye.projectPoints(pts[:, None, :], np.zeros(3), np.zeros(3), np.array(K), np.array(D))
    expected = expected.reshape(-1, 2)
    ours = lens.ray_to_pixel(_gl_to_cv(pts))
    assert np.abs(ours - expected).max() < 0.1
    # and back: the rays of those pixels agree with cv2.fisheye.undistortPoints
    und = cv2.fisheye.undistortPoints(expected[:, None, :], np.array(K), np.array(D)).reshape(-1, 2)
    rays, valid = lens.pixel_to_ray(expected)
    assert valid.all()
    cv_rays = _gl_to_cv(rays)
    ours_norm = cv_rays[:, :2] / cv_rays[:, 2:]
    fx = K[0][0]
    assert np.abs(ours_norm - und).max() * fx < 0.1


def _scaramuzza_ray(uv):
    """The Scaramuzza cam2world, written out by hand: (N, 3) unit rays, x right, y down, z forward."""
    a0, a1, a2, a3, a4 = SCARA["poly"]
    c, d, e = SCARA["stretch"]
    A = np.array([[c, d], [e, 1.0]])
    q = (uv - SCARA["center"]) @ np.linalg.inv(A).T
    rho = np.hypot(q[:, 0], q[:, 1])
    z = np.sign(a0) * (a0 + a1 * rho + a2 * rho**2 + a3 * rho**3 + a4 * rho**4)
    r = np.stack([q[:, 0], q[:, 1], z], 1)
    return r / np.linalg.norm(r, axis=1, keepdims=True)


@pytest.mark.parametrize("fmt", ["yaml", "txt"])
def test_scaramuzza_matches_the_polynomial_within_a_tenth_of_a_pixel(tmp_path, fmt):
    if fmt == "yaml":
        f = tmp_path / "omni.yaml"
        f.write_text(json.dumps(SCARA))
    else:
        f = tmp_path / "calib.txt"
        (w, h), (cx, cy) = SCARA["image_size"], SCARA["center"]
        f.write_text(" ".join(str(x) for x in [w, h, cx, cy, *SCARA["poly"], *SCARA["stretch"]]))
    lens = _lens_for(calibration.load_calibration(f), circle_frac=0.95)
    uv = _grid(675, 540)
    uv = uv[lens.field_mask()[uv[:, 1].astype(int), uv[:, 0].astype(int)] > 0]
    expected = _scaramuzza_ray(uv)
    # world -> pixel: our projection of the hand-made rays lands on the pixels they came from
    assert np.abs(lens.ray_to_pixel(_gl_to_cv(expected)) - uv).max() < 0.1
    # pixel -> world: angle between rays, as pixels at the local focal length
    rays, valid = lens.pixel_to_ray(uv)
    assert valid.all()
    ang = np.arccos(np.clip((_gl_to_cv(rays) * expected).sum(1), -1, 1))
    assert ang.max() * lens.focal_px < 0.1


def test_calibrated_renderer_intrinsics_scale_to_the_output_size(tmp_path):
    f = tmp_path / "pin.json"
    f.write_text(json.dumps({"model": "pinhole", "K": [[100, 0, 63.5], [0, 100, 63.5], [0, 0, 1]],
                             "D": [0, 0, 0, 0, 0], "image_size": [128, 128]}))
    calib = calibration.load_calibration(f)
    cfg = load_sim_config(overrides=["lens.circle_frac=1.0"])
    lc = calibration.apply_calibration(cfg.lens, calib)
    lens = Lens(lc, 64, 64)
    np.testing.assert_allclose(lens.intrinsics(), [[50, 0, 31.5], [0, 50, 31.5], [0, 0, 1]], atol=1e-5)
    assert lc.fov_deg == pytest.approx(2 * np.degrees(np.arctan(64 / 100)), abs=1e-6)


@pytest.mark.parametrize("content,needle", [
    ({"model": "fisheye", "K": K, "image_size": [574, 500]}, "distortion"),
    ({"model": "fisheye", "K": K, "D": D, "image_size": [0, 500]}, "impossible image size"),
    ({"model": "scaramuzza", "poly": [1, 0, 0], "stretch": [1, 0, 0], "center": [1, 1], "image_size": [9, 9]},
     "5 numbers"),
    ({"hello": 1}, "neither"),
])
def test_bad_calibration_files_raise_one_clear_error(tmp_path, content, needle):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(content))
    with pytest.raises(InputError, match=needle):
        calibration.load_calibration(f)


def test_field_stop_fit_recovers_an_octagon():
    cfg = load_sim_config(overrides=["lens.mask=octagon", "lens.circle_frac=0.9", "lens.octagon_frac=1.5"])
    mask = Lens(cfg.lens, 120, 120).field_mask()
    stop = calibration.fit_field_stop(mask)
    assert stop["mask"] == "octagon" and stop["iou"] > 0.97
    assert stop["circle_frac"] == pytest.approx(0.9, abs=0.03)
    assert stop["octagon_frac"] == pytest.approx(1.5, abs=0.06)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real frames not found at {DATA}")
def test_mask_estimated_from_cvc_frames_is_an_octagon():
    from colonsim.data.realdata import list_images, read_image
    frames = [read_image(p) for p in list_images(DATA)[:8]]
    stop = calibration.fit_field_stop(calibration.estimate_mask(frames))
    assert stop["iou"] > 0.9
    assert 0.8 < stop["circle_frac"] < 1.3


def _far_centroid(tmp_path, cx, cy):
    """Centroid (x, y) of the farthest 1 % of pixels of a frame down a straight tube, at 48x48."""
    from colonsim.anatomy.colon import generate_colon
    from colonsim.render.scene import FrameRenderer
    f = tmp_path / f"k{cx}_{cy}.json"
    f.write_text(json.dumps({"model": "fisheye", "K": [[30, 0, cx], [0, 30, cy], [0, 0, 1]],
                             "D": [0, 0, 0, 0], "image_size": [64, 48]}))
    cfg = load_sim_config("clean", overrides=[
        "output.size_px=48", "anatomy.path=straight", "anatomy.max_length_mm=200", "anatomy.triangles=20000",
        "trajectory.lateral_offset_frac=0", "trajectory.view_angle_deg=0", "trajectory.wall_view_probability=0",
        "lens.circle_frac=1.6", "lens.mask=none"])
    lens = calibration.apply_calibration(cfg.lens, calibration.load_calibration(f))
    cfg = type(cfg)(**{**cfg.__dict__, "lens": lens})
    r = FrameRenderer(cfg, [generate_colon(cfg.anatomy, 3)])
    depth = r.render(0, 0).depth
    ys, xs = np.nonzero(depth >= np.percentile(depth[depth > 0], 99))
    return np.array([xs.mean(), ys.mean()])


def test_renderer_moves_the_image_with_the_calibrated_principal_point(tmp_path):
    centred = _far_centroid(tmp_path, 31.5, 23.5)
    moved = _far_centroid(tmp_path, 20.0, 12.0)
    # the principal point moves by (-11.5 * 48 / 64, -11.5) px at the 48x48 output; so does the image
    np.testing.assert_allclose(moved - centred, [-8.625, -11.5], atol=1.5)


def test_opencv_filestorage_yaml_is_read(tmp_path):
    f = tmp_path / "cam.yml"
    fs = cv2.FileStorage(str(f), cv2.FILE_STORAGE_WRITE)
    fs.write("model", "fisheye")
    fs.write("K", np.array(K))
    fs.write("D", np.array(D))
    fs.write("width", 574)
    fs.write("height", 500)
    fs.release()
    c = calibration.load_calibration(f)
    assert c.model == "fisheye" and c.size_px == (574, 500)
    assert c.matrix == (231.5, 0.0, 0.0, 229.8) and c.kb_coeffs == pytest.approx(D)


def test_distorted_pinhole_is_converted_to_a_close_fisheye(tmp_path):
    Kp = [[300.0, 0, 287.0], [0, 300.0, 249.5], [0, 0, 1]]
    Dp = [-0.28, 0.09, 0.0, 0.0, -0.012]
    f = tmp_path / "pin.json"
    f.write_text(json.dumps({"model": "pinhole", "K": Kp, "D": Dp, "image_size": [574, 500]}))
    calib = calibration.load_calibration(f)
    assert calib.model == "fisheye"
    lens = _lens_for(calib, circle_frac=1.0)
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.uniform(-0.7, 0.7, (300, 2)), np.ones((300, 1))], 1)   # within ~45 deg
    expected, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), np.array(Kp), np.array(Dp))
    assert np.abs(lens.ray_to_pixel(_gl_to_cv(pts)) - expected.reshape(-1, 2)).max() < 0.5
