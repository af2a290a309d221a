"""The render, inspect and preview commands: summaries, and one-line errors with exit status 2."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import trimesh

import cli
from colonsim.run.generate import MANIFEST, parts_dir

N = 4
SMALL = ["--size", "32", "--seed", "3", "--quiet", "--set", "anatomy.path=straight",
         "--set", "anatomy.max_length_mm=200", "--set", "anatomy.triangles=20000",
         "--set", "tissue.texture_px=64"]


def run_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting bad input: exit 2 and exactly one line on stderr, which is returned."""
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith(("INFO", "DEBUG"))]
    assert len(err) == 1, err
    assert err[0].startswith("colonsim: error:")
    return err[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "data.h5"
    assert cli.main(["render", "--out", str(out), "--frames", str(N), *SMALL]) == 0
    return out


def test_render_summary_and_inspect(finished, capsys):
    assert cli.main(["inspect", str(finished), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["n_frames"] == N and report["height"] == 32
    assert report["fields"]["rgb"]["compression"] == "blosc"
    assert "mesh_id" in report["params"] and report["depth_min_mm"] > 0
    assert cli.main(["inspect", str(finished)]) == 0
    assert capsys.readouterr().out.startswith(f"{finished}: ok, {N} frames 32x32")


def test_bad_render_input_is_one_line_exit_2(finished, tmp_path, capsys):
    base = ["render", "--frames", str(N), *SMALL]
    assert "exists" in run_error(capsys, [*base, "--out", str(finished)])
    assert "frames" in run_error(capsys, ["render", "--out", str(tmp_path / "a.h5"), "--frames", "0"])
    assert "unknown style" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--style", "nope"])
    assert "lens.fov_deg" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--set", "lens.fov_deg=0"])
    narrow = tmp_path / "straw.ply"
    trimesh.creation.cylinder(radius=1.5, height=200, sections=24).export(narrow)
    assert "mesh" in run_error(capsys, [*base, "--out", str(tmp_path / "a.h5"), "--mesh", str(narrow)])
    assert not (tmp_path / "a.h5").exists() and not parts_dir(tmp_path / "a.h5").exists()


def test_resume_refuses_other_settings_and_foreign_or_corrupt_files(finished, tmp_path, capsys):
    base = ["render", "--out", str(finished), "--frames", str(N), *SMALL, "--resume"]
    assert "seed" in run_error(capsys, [*base, "--seed", "4"])
    assert "light.mu" in run_error(capsys, [*base, "--set", "light.mu=1.5"])
    assert "n_frames" in run_error(capsys, ["render", "--out", str(finished), "--frames", "5", *SMALL, "--resume"])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["rgb"] = np.zeros((1, 2, 2, 3), np.uint8)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(500))
    data = finished.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    for bad in (foreign, garbage, cut):
        args = ["render", "--out", str(bad), "--frames", str(N), *SMALL, "--resume"]
        assert "ColonSim" in run_error(capsys, args) or "HDF5" in run_error(capsys, args)
        assert "error" in run_error(capsys, ["inspect", str(bad)])
    stray = tmp_path / "stray.h5"
    parts_dir(stray).mkdir()
    (parts_dir(stray) / MANIFEST).write_text("{not json")
    assert "render in progress" in run_error(capsys, ["render", "--out", str(stray), "--frames", str(N),
                                                      *SMALL, "--resume"])
    assert "not finished" in run_error(capsys, ["inspect", str(stray)])


# A wide fisheye scope (OpenCV cv2.fisheye model) and a Scaramuzza omnidirectional one, as files.
FISHEYE = {"model": "fisheye", "K": [[231.5, 0.0, 290.3], [0.0, 229.8, 245.1], [0.0, 0.0, 1.0]],
           "D": [-0.031, 0.0042, -0.0011, 0.00007], "image_size": [574, 500]}
SCARAMUZZA = {"model": "scaramuzza", "poly": [265.0, 0.0, -1.6e-3, 2.0e-6, -3.5e-9],
              "stretch": [1.002, 0.003, -0.002], "center": [338.4, 271.9], "image_size": [675, 540]}


def _expected_intrinsics(calib: dict, size: int) -> np.ndarray:
    """The (3, 3) matrix of a size x size frame of the calibrated scope, from the file's numbers."""
    w, h = calib["image_size"]
    sx, sy = size / w, size / h
    if calib["model"] == "fisheye":
        (fx, s, cx), (_, fy, cy), _ = calib["K"]
        m = np.array([[fx, s], [0.0, fy]])
    else:
        a0 = calib["poly"][0]
        c, d, e = calib["stretch"]
        cx, cy = calib["center"]
        m = np.array([[c, d], [e, 1.0]]) * a0
    m = m * [[sx], [sy]]
    return np.array([[m[0, 0], m[0, 1], (cx + 0.5) * sx - 0.5], [m[1, 0], m[1, 1], (cy + 0.5) * sy - 0.5],
                     [0, 0, 1]], np.float32)


@pytest.mark.parametrize("calib", [FISHEYE, SCARAMUZZA], ids=["opencv-fisheye", "scaramuzza"])
def test_render_with_a_calibration_stores_its_geometry_and_resume_checks_it(calib, tmp_path, capsys):
    cam = tmp_path / "scope.json"
    cam.write_text(json.dumps(calib))
    out = tmp_path / "scope.h5"
    extra = ["--camera", str(cam)]
    if calib is FISHEYE:  # the real frames' image circle: a disc of radius 0.9 half-sides
        import cv2
        disc = np.zeros((100, 100), np.uint8)
        cv2.circle(disc, (50, 50), 45, 255, -1)
        cv2.imwrite(str(tmp_path / "mask.png"), disc)
        extra += ["--mask", str(tmp_path / "mask.png")]
    assert cli.main(["render", "--out", str(out), "--frames", "2", *SMALL, *extra]) == 0
    with h5py.File(out, "r") as f:
        camera = json.loads(f.attrs["camera"])
        lens = json.loads(f.attrs["config"])["lens"]
        K = f["intrinsics"][()]
    assert camera == lens
    assert camera["model"] == ("fisheye" if calib is FISHEYE else "omnidir")
    assert tuple(camera["calib_size_px"]) == tuple(calib["image_size"])
    if calib is FISHEYE:
        assert camera["kb_coeffs"] == pytest.approx(FISHEYE["D"])
        assert camera["mask"] == "round" and camera["circle_frac"] == pytest.approx(0.9, abs=0.03)
    np.testing.assert_allclose(K[0], _expected_intrinsics(calib, 32), rtol=1e-5)
    np.testing.assert_allclose(K[1], K[0])
    # the calibrated config is what a resume is checked against
    assert "lens" in run_error(capsys, ["render", "--out", str(out), "--frames", "2", *SMALL, "--resume"])
    assert cli.main(["render", "--out", str(out), "--frames", "2", *SMALL, *extra, "--resume"]) == 0


def test_preview_takes_a_calibration(tmp_path, capsys):
    cam = tmp_path / "scope.json"
    cam.write_text(json.dumps(FISHEYE))
    png = tmp_path / "grid.png"
    scene = [a for a in SMALL if a != "--quiet"]  # preview draws no progress bar
    assert cli.main(["preview", "--out", str(png), "--frames", "1", *scene, "--camera", str(cam), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(png) and png.stat().st_size > 0


@pytest.mark.parametrize("calib, message", [
    ({k: v for k, v in FISHEYE.items() if k != "K"}, "missing"),
    ({**FISHEYE, "image_size": [0, 500]}, "image size"),
    ("not: [a mapping", "YAML"),
])
def test_bad_calibration_file_is_one_line_exit_2(calib, message, tmp_path, capsys):
    cam = tmp_path / "scope.yaml"
    cam.write_text(calib if isinstance(calib, str) else json.dumps(calib))
    scene = [a for a in SMALL if a != "--quiet"]
    for cmd in (["render", "--out", str(tmp_path / "a.h5"), "--frames", "2", "--quiet"],
                ["preview", "--out", str(tmp_path / "a.png")]):
        assert message in run_error(capsys, [*cmd, *scene, "--camera", str(cam)])
    assert "not found" in run_error(capsys, ["render", "--out", str(tmp_path / "a.h5"), "--frames", "2", *SMALL,
                                             "--camera", str(tmp_path / "nope.yaml")])
    assert not (tmp_path / "a.h5").exists() and not parts_dir(tmp_path / "a.h5").exists()
