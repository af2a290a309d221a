from pathlib import Path

import cv2
import numpy as np
import pytest

from colonsim.errors import InputError
from depth.networks import load_model
from depth.predict import colorize, predict_depth, predict_folder, write_ply


def test_predict_depth_any_size_and_batching(tiny_model):
    model, _ = load_model(tiny_model)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 45, 60, 3), dtype=np.uint8)
    d = predict_depth(model, frames, batch_size=2)
    assert d.shape == (5, 45, 60) and d.dtype == np.float32 and (d > 0).all()
    np.testing.assert_allclose(predict_depth(model, frames[3]), d[3], rtol=1e-5)
    at_size = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert predict_depth(model, at_size).shape == (32, 32)
    with pytest.raises(InputError, match="uint8"):
        predict_depth(model, frames.astype(np.float32))


def test_point_cloud_back_projects_through_the_intrinsics(tmp_path):
    depth = np.full((4, 6), 50.0, np.float32)
    depth[0, 0] = 0  # no surface: no point
    rgb = np.full((4, 6, 3), 200, np.uint8)
    k = np.array([[10.0, 0, 3.0], [0, 10.0, 2.0], [0, 0, 1]])
    n = write_ply(tmp_path / "c.ply", depth, rgb, k)
    assert n == 23
    raw = (tmp_path / "c.ply").read_bytes()
    body = raw[raw.index(b"end_header\n") + len(b"end_header\n"):]
    pts = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    assert len(pts) == 23 and np.all(pts["z"] == -50.0)
    # pixel (u=5, v=3) centre (5.5, 3.5): x = 2.5/10*50, y = -(1.5/10*50) with y up
    last = pts[-1]
    assert last["x"] == pytest.approx(12.5) and last["y"] == pytest.approx(-7.5)


def test_predict_folder_writes_npy_png_ply(tiny_model, tmp_path):
    src = tmp_path / "frames"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        img = rng.integers(40, 256, (30, 40, 3), dtype=np.uint8)
        cv2.imwrite(str(src / f"{i}.png"), img)
    r = predict_folder(tiny_model, src, tmp_path / "out", ply=True)
    assert r["n"] == 2 and r["points"] > 0
    d = np.load(tmp_path / "out" / "0.npy")
    assert d.shape == (30, 40) and d.dtype == np.float32
    assert cv2.imread(str(tmp_path / "out" / "1.png")).shape == (30, 40, 3)
    assert (tmp_path / "out" / "1.ply").read_bytes().startswith(b"ply\n")
    assert colorize(np.zeros((2, 2))).sum() == 0


def test_predict_on_a_video(tiny_model, tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for i in range(3):
        writer.write(np.full((32, 48, 3), 60 + 40 * i, np.uint8))
    writer.release()
    r = predict_folder(tiny_model, path, tmp_path / "out")
    assert r["n"] == 3
    assert np.load(tmp_path / "out" / "frame_000002.npy").shape == (32, 48)


def test_predict_on_real_cvc_colondb_frames(tiny_model, tmp_path):
    src = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "cvc-colondb"
    if not src.is_dir():
        pytest.skip(f"real frames not found at {src} (see shared/data/SOURCES.md)")
    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted(src.glob("*.jpg"))[:2]:
        (frames / p.name).write_bytes(p.read_bytes())
    r = predict_folder(tiny_model, frames, tmp_path / "out")
    assert r["n"] == 2
    d = np.load(next((tmp_path / "out").glob("*.npy")))
    assert d.shape == (500, 574)  # the frame's own size, (H, W)
    assert d[0, 0] == 0 and d[250, 287] > 0  # zero on the black border, depth inside the image circle
