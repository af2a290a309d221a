"""Contact sheet: exact tile placement, a shared depth scale, and a sweep that changes only its key."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import cli
from colonsim.errors import ConfigError
from colonsim.tune.preview import Layout, draw_sheet, parse_sweep

SMALL = ["--size", "32", "--set", "anatomy.path=straight", "--set", "anatomy.max_length_mm=200",
         "--set", "anatomy.triangles=20000", "--set", "tissue.texture_px=64"]


def tile(img: np.ndarray, origin: tuple[int, int], size: int) -> np.ndarray:
    y, x = origin
    return img[y:y + size, x:x + size]


def test_parse_sweep_reads_yaml_values_and_keeps_brackets():
    assert parse_sweep("light.mu=1,2.8,5") == ("light.mu", [1, 2.8, 5])
    assert parse_sweep("tissue.specular=[0.1, 0.2],0.5") == ("tissue.specular", [[0.1, 0.2], 0.5])
    with pytest.raises(ConfigError):
        parse_sweep("light.mu")


def test_sheet_places_rgb_tiles_exactly_and_maps_depth_on_one_scale():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    near = np.full((3, 16, 16), 10.0, np.float32)
    far = np.full((3, 16, 16), 90.0, np.float32)
    far[:, :4] = 0  # no surface: drawn black
    img, (lo, hi) = draw_sheet([(rgb, near), (rgb[::-1], far)], ["a", "b"])
    lay = Layout(2, 3, 16)
    assert img.shape == (lay.height, lay.width, 3)
    for c in range(3):
        assert np.array_equal(tile(img, lay.rgb_origin(0, c), 16), rgb[c])
        assert np.array_equal(tile(img, lay.rgb_origin(1, c), 16), rgb[2 - c])
    assert lo == pytest.approx(10.0) and hi == pytest.approx(90.0)
    d_near, d_far = tile(img, lay.depth_origin(0, 0), 16), tile(img, lay.depth_origin(1, 0), 16)
    assert np.all(d_far[:4] == 0) and not np.array_equal(d_near[8, 8], d_far[8, 8])
    y0, y1, x0, x1 = lay.bar_box()  # the bar runs from far (top) to near (bottom)
    assert np.array_equal(img[y0, x0], d_far[8, 8]) and np.array_equal(img[y1 - 1, x0], d_near[8, 8])


def test_preview_sweep_renders_one_labelled_row_per_value(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli.main(["preview", "--out", str(out), "--frames", "2", "--sweep", "light.mu=0.5,6",
                     *SMALL, "--json"]) == 0
    img = cv2.imread(str(out))[..., ::-1]
    lay = Layout(2, 2, 32)
    assert img.shape == (lay.height, lay.width, 3)
    for c in range(2):
        # The light changes the colour but not the geometry: same depth tiles, other RGB tiles.
        assert np.array_equal(tile(img, lay.depth_origin(0, c), 32), tile(img, lay.depth_origin(1, c), 32))
        assert not np.array_equal(tile(img, lay.rgb_origin(0, c), 32), tile(img, lay.rgb_origin(1, c), 32))
    assert not np.array_equal(tile(img, lay.rgb_origin(0, 0), 32), tile(img, lay.rgb_origin(0, 1), 32))
    capsys.readouterr()
    assert cli.main(["preview", "--out", str(tmp_path / "x.png"), "--sweep", "light.nope=1,2", *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "light.nope" in err[0]
