import cv2
import numpy as np
import pytest

from colonsim.errors import InputError
from depth.gt import DEPTH_SCALES, find_depth_file, parse_depth_scale, read_depth, read_depth_for


def test_simcol3d_16bit_png_reads_in_mm(tmp_path):
    units = np.array([[0, 65280], [32640, 326]], np.uint16)  # SimCol3D: 65280 = 200 mm
    cv2.imwrite(str(tmp_path / "d.png"), units)
    d = read_depth(tmp_path / "d.png", parse_depth_scale("simcol3d"))
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, [[0.0, 200.0], [100.0, 326 * 200 / 65280]], rtol=1e-6)


def test_c3vd_16bit_tiff_reads_in_mm(tmp_path):
    units = np.array([[65535, 6553], [0, 13107]], np.uint16)  # C3VD: 65535 = 100 mm
    cv2.imwrite(str(tmp_path / "0000_depth.tiff"), units)
    d = read_depth(tmp_path / "0000_depth.tiff", parse_depth_scale("c3vd"))
    np.testing.assert_allclose(d, units * (100.0 / 65535.0), rtol=1e-6)
    assert d[0, 0] == pytest.approx(100.0)
    assert parse_depth_scale("0.5") == 0.5 and DEPTH_SCALES["c3vd"] == 100 / 65535


def test_16bit_without_scale_and_bad_scale_are_errors(tmp_path):
    cv2.imwrite(str(tmp_path / "d.png"), np.ones((4, 4), np.uint16))
    with pytest.raises(InputError, match="--depth-scale"):
        read_depth(tmp_path / "d.png")
    with pytest.raises(InputError, match="depth-scale"):
        parse_depth_scale("meters")
    cv2.imwrite(str(tmp_path / "rgb.png"), np.ones((4, 4, 3), np.uint16))
    with pytest.raises(InputError, match="channels"):
        read_depth(tmp_path / "rgb.png", 1.0)


def test_depth_files_are_found_beside_or_in_a_sibling_folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (tmp_path / "depth").mkdir()
    rgb = np.zeros((3, 5, 3), np.uint8)
    for name in ("a", "b", "c"):
        cv2.imwrite(str(frames / f"{name}.png"), rgb)
    np.save(frames / "a.npy", np.full((3, 5), 7.0, np.float32))
    cv2.imwrite(str(tmp_path / "depth" / "b.png"), np.full((3, 5), 100, np.uint16))
    assert find_depth_file(frames / "a.png") == frames / "a.npy"
    assert find_depth_file(frames / "b.png") == tmp_path / "depth" / "b.png"
    assert find_depth_file(frames / "c.png") is None  # an 8-bit image is not its own ground truth
    assert read_depth_for(frames / "b.png", (3, 5), 0.5)[0, 0] == 50.0
    with pytest.raises(InputError, match="same size"):
        read_depth_for(frames / "a.png", (4, 5), None)
