"""colonsim export (SimCol3D, C3VD, PNG + .npy) and read_layout: the round trip keeps depth and poses."""
from __future__ import annotations

import numpy as np
import pytest

import cli
from colonsim.data import export as ex
from colonsim.data import h5io, schema
from colonsim.run.generate import render_dataset
from colonsim.simconfig import load_sim_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "seq.h5"
    cfg = load_sim_config(overrides=["output.size_px=48", "anatomy.triangles=20000", "trajectory.sequence_length=3",
                                     "output.flow=true"])
    render_dataset(cfg, out, 4, seed=2, workers=1, progress=False)
    with h5io.open_checked(out) as f:
        arrays = {k: f[k][()] for k in (schema.RGB, schema.DEPTH, schema.POSE, schema.INTRINSICS, schema.OCCLUSION)}
    return out, arrays


@pytest.mark.parametrize("fmt,step_mm", [("simcol3d", 200.0 / 65280), ("c3vd", 100.0 / 65535), ("png", 0.0)])
def test_export_then_read_layout_gives_the_same_frames_depth_and_poses(data, tmp_path, fmt, step_mm):
    src, a = data
    out = tmp_path / fmt
    assert cli.main(["export", str(src), "--format", fmt, "--out", str(out)]) == 0
    readme = (out / "README.txt").read_text()
    for word in ("handed", "camera-to-world", "mm"):
        assert word in readme
    lay = ex.read_layout(out)
    assert lay.kind == fmt and len(lay.names) == 4
    np.testing.assert_array_equal(lay.rgb, a[schema.RGB])
    limit = {"simcol3d": 200.0, "c3vd": 100.0, "png": np.inf}[fmt]
    inside = a[schema.DEPTH] < limit
    err = np.abs(lay.depth - a[schema.DEPTH])[inside]
    assert err.max() <= step_mm / 2 + 2e-5   # half a unit of the encoding, and float32 rounding
    assert (lay.depth[a[schema.DEPTH] == 0] == 0).all()
    np.testing.assert_allclose(lay.poses, a[schema.POSE], atol=1e-4)
    np.testing.assert_allclose(lay.intrinsics, a[schema.INTRINSICS][0], rtol=1e-6)
    if fmt == "c3vd":
        assert (out / "0000_occlusion.png").is_file()
    if fmt == "png":
        assert (out / "0000_flow.npy").is_file()


def test_pose_conventions_are_those_stated():
    pose = np.eye(4)
    pose[:3, 3] = [10.0, 20.0, 30.0]   # a camera at (10, 20, 30) mm looking along the world's -z
    t, q = ex.to_simcol3d(pose)
    np.testing.assert_allclose(t, [1.0, -2.0, 3.0])   # cm, world y mirrored
    # Unity camera: z forward (the world's -z, unchanged by the y mirror), y up (the world's +y,
    # which is -y in the mirrored world)
    from scipy.spatial.transform import Rotation
    r = Rotation.from_quat(q).as_matrix()
    np.testing.assert_allclose(r @ [0, 0, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, -1, 0], atol=1e-12)
    # SimCol3D's own conversion to a right-handed pose (anitarau/simcol evaluation/eval_synthetic_pose.py:
    # TM @ P @ TM, TM = diag(1, -1, 1, 1)) gives back ColonSim's pose in OpenCV camera axes
    p = np.eye(4)
    p[:3, :3], p[:3, 3] = r, t * 10
    tm = np.diag([1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(tm @ p @ tm, pose @ np.diag([1.0, -1.0, -1.0, 1.0]), atol=1e-9)
    v = ex.to_c3vd(pose).reshape(4, 4).T   # column-major
    np.testing.assert_allclose(v[:3, 3], [10.0, 20.0, 30.0])
    np.testing.assert_allclose(v[:3, 2], [0, 0, -1])   # OpenCV camera z (forward) = world -z


def test_a_folder_that_holds_files_is_refused_without_overwrite(data, tmp_path, capsys):
    src, _ = data
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["export", str(src), "--format", "png", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert cli.main(["export", str(src), "--format", "png", "--out", str(out), "--overwrite"]) == 0
    assert (out / "keep.txt").read_text() == "mine" and (out / "0003.png").is_file()


def test_simcol3d_own_folder_layout_finds_its_poses_in_the_parent(data, tmp_path):
    """SimCol3D keeps the frames of sequence k in Frames_S<k>/ and SavedPosition_S<k>.txt beside it."""
    src, a = data
    out = tmp_path / "export"
    assert cli.main(["export", str(src), "--format", "simcol3d", "--out", str(out)]) == 0
    seq = tmp_path / "SyntheticColon_I" / "Frames_S1"
    seq.parent.mkdir()
    out.rename(seq)
    (seq / "SavedPosition.txt").rename(seq.parent / "SavedPosition_S1.txt")
    (seq / "SavedRotationQuaternion.txt").rename(seq.parent / "SavedRotationQuaternion_S1.txt")
    (seq / "cam.txt").write_text("227.6 227.6 227.5 227.5\n")   # not a 3x3 matrix: left out
    lay = ex.read_layout(seq)
    np.testing.assert_allclose(lay.poses, a[schema.POSE], atol=1e-4)
    assert lay.intrinsics is None


def test_c3vd_colour_frames_without_zero_padding_are_read(data, tmp_path):
    """C3VD's releases name colour frames 0_color.png as well as 0000_color.png (depth 0000_depth.tiff)."""
    src, a = data
    out = tmp_path / "c3vd"
    assert cli.main(["export", str(src), "--format", "c3vd", "--out", str(out)]) == 0
    for p in out.glob("*_color.png"):
        p.rename(out / f"{int(p.name[:4])}_color.png")
    lay = ex.read_layout(out)
    assert lay.kind == "c3vd" and lay.names[:2] == ["0_color.png", "1_color.png"]
    np.testing.assert_array_equal(lay.rgb, a[schema.RGB])
    np.testing.assert_allclose(lay.depth, a[schema.DEPTH].clip(0, 100.0), atol=100.0 / 65535 / 2 + 1e-5)
    assert lay.mask is not None and lay.mask.shape == a[schema.DEPTH].shape   # mask.npy, every layout
