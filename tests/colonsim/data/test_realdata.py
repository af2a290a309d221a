"""Tests for the real-data folder contract (colonsim.data.realdata)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from colonsim.data import realdata
from colonsim.errors import InputError

CVC = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "cvc-colondb"


def _octagon_frame(h=60, w=80, lumen=True):
    """(h, w, 3) uint8 RGB: a bright octagon on black, with a near-black lumen touching its centre."""
    img = np.zeros((h, w, 3), np.uint8)
    cx, cy, r = w // 2, h // 2, h // 2 - 4
    ang = np.deg2rad(22.5 + 45 * np.arange(8))
    pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1).round().astype(np.int32)
    cv2.fillConvexPoly(img, pts, (180, 90, 70))
    if lumen:
        cv2.circle(img, (cx, cy), 8, (2, 1, 1), -1)  # as dark as the border
    return img, pts


def test_list_images_natural_order_and_filters(tmp_path):
    for name in ["10.png", "2.jpg", "1.JPEG", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in realdata.list_images(tmp_path)] == ["1.JPEG", "2.jpg", "10.png"]


def test_list_images_empty_or_missing(tmp_path):
    with pytest.raises(InputError, match="no images"):
        realdata.list_images(tmp_path)
    with pytest.raises(InputError, match="not found"):
        realdata.list_images(tmp_path / "absent")


def test_read_image_roundtrip_is_rgb(tmp_path):
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    out = realdata.read_image(tmp_path / "a.png")
    assert out.shape == (8, 9, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("kind", ["gray", "16bit", "garbage"])
def test_read_image_rejects(tmp_path, kind):
    p = tmp_path / "bad.png"
    if kind == "gray":
        cv2.imwrite(str(p), np.zeros((8, 8), np.uint8))
    elif kind == "16bit":   # a 16-bit single-channel image is a depth map, not a frame
        cv2.imwrite(str(p), np.zeros((8, 8), np.uint16))
    else:
        p.write_bytes(b"not an image")
    with pytest.raises(InputError, match={"gray": "grayscale", "16bit": "16-bit", "garbage": "cannot read"}[kind]):
        realdata.read_image(p)


def test_16bit_rgba_and_rgb_frames_are_read_as_8bit_rgb_with_one_note(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(realdata, "_CONVERTED", [])
    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    # (rgb * 257 + 100 rounds back to rgb; the int64 product does not wrap)
    rgba16 = np.concatenate([rgb[..., ::-1], np.full((8, 9, 1), 255, np.uint8)], axis=2).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "0000.png"), rgba16)                          # SimCol3D's frames
    cv2.imwrite(str(tmp_path / "0001.png"), np.minimum(rgb[..., ::-1].astype(np.int64) * 257 + 100, 65535).astype(np.uint16))   # 16-bit RGB
    with caplog.at_level("INFO", logger="colonsim.data.realdata"):
        frames = list(realdata.iter_frames(tmp_path))
    assert [n for n, _ in frames] == ["0000.png", "0001.png"]
    for _, out in frames:
        assert out.shape == (8, 9, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb)
    notes = [r for r in caplog.records if "16-bit" in r.getMessage()]
    assert len(notes) == 1 and "0000.png" in notes[0].getMessage() and "RGBA" in notes[0].getMessage()
    assert [Path(n).name for n in realdata.converted_images()] == ["0000.png", "0001.png"]


def test_iter_frames_video_and_unopenable(tmp_path):
    path = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(3):
        vw.write(np.full((24, 32, 3), 40 * i + 20, np.uint8))
    vw.release()
    frames = list(realdata.iter_frames(path))
    assert [n for n, _ in frames] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    assert frames[0][1].shape == (24, 32, 3)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="cannot open video|no readable frames"):
        list(realdata.iter_frames(bad))


def test_border_mask_keeps_dark_lumen_inside_octagon():
    img, pts = _octagon_frame()
    mask = realdata.detect_border_mask(img)
    truth = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(truth, pts, 1)
    assert mask[30, 40] == 1  # the dark lumen in the centre is inside
    assert mask[0, 0] == 0 and mask[-1, -1] == 0
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9


@pytest.mark.skipif(not CVC.is_dir(), reason=f"real frames absent: {CVC}")
def test_border_mask_on_cvc_frames_is_a_plausible_octagon():
    for name in ["1.jpg", "100.jpg", "250.jpg", "370.jpg"]:
        rgb = realdata.read_image(CVC / name)
        mask = realdata.detect_border_mask(rgb)
        h, w = mask.shape
        assert 0.6 < mask.mean() < 0.95, name
        assert mask[h // 2, w // 2] == 1, name
        assert mask[:3, :3].sum() == 0 and mask[-3:, -3:].sum() == 0, name  # corners cut off
        ys, xs = np.nonzero(mask)
        assert abs(ys.mean() - h / 2) < 0.1 * h and abs(xs.mean() - w / 2) < 0.1 * w, name


def test_unopenable_video_writes_nothing_to_stderr(tmp_path):
    """OpenCV's ffmpeg would log "moov atom not found" to fd 2; only our own message may appear, and
    fd 2 must work again afterwards (the message is written through it)."""
    import subprocess
    import sys

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x01 not a video" * 10)
    code = ("import os, sys, cv2\n"  # cv2 first: the environment settings of realdata come too late
            "from colonsim.data import realdata\n"
            "from colonsim.errors import InputError\n"
            "try:\n"
            f"    list(realdata.iter_frames({str(clip)!r}))\n"
            "except InputError as e:\n"
            "    os.write(2, (str(e) + '\\n').encode())\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3],
                       capture_output=True, text=True, timeout=60)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 0 and len(lines) == 1, p.stderr
    assert lines[0].startswith("cannot open video") and "moov" not in p.stderr
