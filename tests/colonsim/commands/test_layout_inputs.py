"""colonsim render --flow / --normals (aliases of output.flow / output.normals), and adapt apply on a
SimCol3D folder of 16-bit RGBA frames (issue 42: its colour frames only, converted with one note)."""
from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

import cli
from colonsim.commands.render import _load_config


def _render_args(*argv):
    import argparse

    from colonsim.commands import render
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    render.add_parsers(sub)
    return parser.parse_args(["render", "--out", "x.h5", "--frames", "1", *argv])


@pytest.mark.parametrize("argv,flow,normals", [
    ((), False, False),
    (("--flow",), True, False),
    (("--normals",), False, True),
    (("--flow", "--normals"), True, True),
    (("--set", "output.flow=true"), True, False),   # the --set spelling keeps working
])
def test_render_flow_and_normals_flags_set_the_outputs(argv, flow, normals):
    cfg = _load_config(_render_args(*argv))
    assert (cfg.output.flow, cfg.output.normals) == (flow, normals)


def test_adapt_apply_reads_a_simcol3d_folder_of_16bit_rgba_frames(tmp_path, capsys, caplog):
    from adapt.checkpoint import save_refiner
    from adapt.config import load_adapt_config
    from adapt.networks import Refiner
    from colonsim.data import realdata

    src = tmp_path / "Frames_S1"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        bgr = rng.integers(30, 220, (32, 32, 3), dtype=np.uint8)
        rgba16 = np.concatenate([bgr, np.full((32, 32, 1), 255, np.uint8)], axis=2).astype(np.uint16) * 257
        cv2.imwrite(str(src / f"FrameBuffer_{i:04d}.png"), rgba16)
        cv2.imwrite(str(src / f"Depth_{i:04d}.png"), np.full((32, 32), 20000, np.uint16))   # not a frame
    model = tmp_path / "refiner.pt"
    save_refiner(model, Refiner(4, 1), load_adapt_config(), 0)
    before = len(realdata.converted_images())
    with caplog.at_level(logging.INFO, logger="colonsim.data.realdata"):
        code = cli.main(["adapt", "apply", "--model", str(model), "--input", str(src), "--out",
                         str(tmp_path / "out"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["frames"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["FrameBuffer_0000.png", "FrameBuffer_0001.png"]
    assert len(realdata.converted_images()) - before == 2
    assert any("simcol3d folder" in r.getMessage() for r in caplog.records)
    assert cv2.imread(str(tmp_path / "out" / "FrameBuffer_0000.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_adapt_frame_source_reads_the_colour_frames_of_exported_layouts(tmp_path):
    """adapt's folder frame source (training on real frames) takes a C3VD folder's colour frames,
    not its 16-bit depth TIFFs or its occlusion PNGs."""
    from adapt.data import open_frames

    src = tmp_path / "c3vd"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i}_color.png"), np.full((24, 24, 3), 40 + 50 * i, np.uint8))
        cv2.imwrite(str(src / f"{i:04d}_depth.tiff"), np.full((24, 24), 30000, np.uint16))
        cv2.imwrite(str(src / f"{i:04d}_occlusion.png"), np.zeros((24, 24), np.uint8))
    frames = open_frames(src, short_side_px=24)
    assert len(frames) == 3
    rgb, mask = frames.get(2)
    assert rgb.shape == (24, 24, 3) and int(rgb[12, 12, 0]) == 140
