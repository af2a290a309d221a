"""colonsim textures: the texture bank from real frames (shading removal, determinism, one-line errors)."""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import cli
from colonsim.render import texbank
from colonsim.tune import textures

SIZE = 160   # frames of 160 px: patches of at most 20 px
PATCH = ["--patch", "16", "--per-frame", "6"]


def fake_frame(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """An (s, s, 3) uint8 frame: pink mucosa with fine texture under a smooth light fall-off, a
    black border outside the image circle, a dark lumen and two specular highlights."""
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    r = np.hypot(yy, xx)
    texture = 1.0 + 0.15 * cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), 1.5)
    shade = 0.9 * np.exp(-((xx - 0.2) ** 2 + yy ** 2) / 0.3)
    lin = shade[..., None] * texture[..., None] * np.array([0.75, 0.3, 0.15])
    lin[np.hypot(yy + 0.25, xx + 0.25) < 0.1] = 0.002   # lumen
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.clip(lin, 0, None) ** (1 / 2.4) - 0.055)
    img = np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8)
    for cy, cx in ((70, 90), (100, 60)):
        cv2.circle(img, (cx, cy), 2, (255, 255, 255), -1)
    img[r > 0.47] = 0
    return img


def write_folder(d: Path, n: int = 4, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(d / f"{i + 1}.png"), cv2.cvtColor(fake_frame(rng), cv2.COLOR_RGB2BGR))
    return d


def run_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith(("INFO", "DEBUG"))]
    assert len(err) == 1 and err[0].startswith("colonsim: error:"), err
    return err[0]


def test_bank_is_deterministic_with_provenance(tmp_path, capsys):
    real = write_folder(tmp_path / "real")
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert cli.main(["textures", "--real", str(real), "--out", str(a), *PATCH]) == 0
    assert "patches of 16 px from 4 of 4 frames" in capsys.readouterr().out
    assert cli.main(["textures", "--real", str(real), "--out", str(b), *PATCH]) == 0
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a) as f:
        assert f.attrs["kind"] == texbank.BANK_KIND and f.attrs["version"] == texbank.BANK_VERSION
        assert f.attrs["source"] == str(real.resolve())
        assert '"patch_px": 16' in f.attrs["config"] and '"blur_sigma_frac"' in f.attrs["config"]
        assert [x.decode() for x in f["frame_names"][...]] == ["1.png", "2.png", "3.png", "4.png"]
        assert f["patches"].shape == (24, 16, 16, 3) and f["patches"].dtype == np.uint8
        # Shading removed: every patch is near the frame's mean colour (PATCH_SCALE), highlights inpainted.
        rel = f["patches"][...] / texbank.PATCH_SCALE
        assert abs(rel.mean() - 1.0) < 0.1 and rel.max() < 1.8
    bank = texbank.load_bank(a)
    assert bank.quantiles.shape == (3, texbank.QUANTILES)
    # --only restricts the frames (a training split).
    names = tmp_path / "train.txt"
    names.write_text("2.png\n# comment\n4.png\n")
    c = tmp_path / "c.h5"
    assert cli.main(["textures", "--real", str(real), "--out", str(c), "--only", str(names), *PATCH]) == 0
    with h5py.File(c) as f:
        assert [x.decode() for x in f["frame_names"][...]] == ["2.png", "4.png"]


def test_unusable_folder_is_one_line_exit_2(tmp_path, capsys):
    dark = tmp_path / "dark"
    dark.mkdir()
    for i in range(2):
        cv2.imwrite(str(dark / f"{i}.png"), np.full((SIZE, SIZE, 3), 5, np.uint8))
    assert "no usable frames" in run_error(capsys, ["textures", "--real", str(dark), "--out", str(tmp_path / "x.h5")])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in run_error(capsys, ["textures", "--real", str(empty), "--out", str(tmp_path / "x.h5")])
    real = write_folder(tmp_path / "real", n=1)
    # A patch larger than an eighth of the frame's side fits nowhere.
    assert "no usable frames" in run_error(capsys, ["textures", "--real", str(real), "--out",
                                                    str(tmp_path / "x.h5"), "--patch", "24"])
    names = tmp_path / "n.txt"
    names.write_text("nope.png\n")
    assert "nope.png" in run_error(capsys, ["textures", "--real", str(real), "--out", str(tmp_path / "x.h5"),
                                            "--only", str(names)])
    assert not (tmp_path / "x.h5").exists()


def test_bank_from_a_video(tmp_path, capsys):
    video = tmp_path / "scope.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (SIZE, SIZE))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write an MJPG video here")
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(cv2.cvtColor(fake_frame(rng), cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "bank.h5"
    assert cli.main(["textures", "--real", str(video), "--out", str(out), "--max-frames", "2", *PATCH]) == 0
    with h5py.File(out) as f:
        assert [x.decode() for x in f["frame_names"][...]] == ["frame_000000.png", "frame_000001.png"]
    assert "not found" in run_error(capsys, ["textures", "--real", str(tmp_path / "nope"), "--out", str(out)])


def test_shading_removal_flattens_a_shaded_plane():
    size = 200
    yy, xx = np.mgrid[:size, :size] / size
    albedo = np.array([0.6, 0.25, 0.12])
    shade = 0.15 + 0.8 * (0.6 * xx + 0.4 * yy) * np.exp(-((xx - 0.3) ** 2 + (yy - 0.6) ** 2))
    lin = shade[..., None] * albedo
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    rgb = np.round(srgb * 255).astype(np.uint8)
    valid = np.ones((size, size), bool)
    out, shading = textures.remove_shading(rgb, valid, 0.05 * size)
    inner = out[20:-20, 20:-20]
    rel = inner / inner.reshape(-1, 3).mean(axis=0)
    # The input varies by a factor of ~4 across the plane; the albedo left is flat to ~1-2 %
    # (8-bit quantization and the blur's bias on the curved shading), colour ratios kept.
    assert shade.max() / shade.min() > 3.0
    assert np.abs(rel - 1.0).max() < 0.06 and rel.std() < 0.015
    ratio = inner.reshape(-1, 3).mean(axis=0)
    assert np.allclose(ratio / ratio[0], albedo / albedo[0], rtol=0.05)
