"""Frame statistics: each one measures what it claims, and the distance is 0 only for equal sets."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from colonsim.tune import framestats


def _disc(size=96):
    v, u = np.mgrid[0:size, 0:size]
    r = np.hypot(u - (size - 1) / 2, v - (size - 1) / 2) / (size / 2)
    return r, (r <= 1.0).astype(np.uint8)


def test_radial_profile_follows_a_known_falloff():
    r, mask = _disc()
    grey = np.clip(200 * (1 - 0.7 * r**2), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2) * mask[..., None]
    st = framestats.frame_stats(rgb, mask)
    assert np.all(np.diff(st.profile) < 0)                  # monotonic falloff
    lab_centre = cv2.cvtColor(np.full((1, 1, 3), 199, np.uint8), cv2.COLOR_RGB2LAB)[0, 0, 0].astype(float) * 100 / 255
    assert st.profile[0] == pytest.approx(lab_centre, abs=1.5)
    assert st.specular == 0.0


def test_noise_estimate_recovers_added_gaussian_noise():
    _, mask = _disc(128)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.uniform(60, 180, (128, 128)).astype(np.float32), (0, 0), 8)
    for sigma in (2.0, 6.0):
        noisy = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)
        st = framestats.frame_stats(np.repeat(noisy[..., None], 3, 2), mask)
        assert st.noise == pytest.approx(sigma, rel=0.2)


def test_blur_lowers_sharpness_and_highlights_are_counted():
    _, mask = _disc()
    rng = np.random.default_rng(1)
    img = rng.integers(40, 200, (96, 96, 3), dtype=np.uint8)
    img[10:20, 40:50] = 255                                   # 100 white pixels inside the disc
    sharp = framestats.frame_stats(img, mask)
    blurred = framestats.frame_stats(cv2.GaussianBlur(img, (0, 0), 2.0), mask)
    assert blurred.sharpness < 0.5 * sharp.sharpness
    assert sharp.specular == pytest.approx(100 / mask.sum(), rel=0.01)


def test_distance_is_zero_for_equal_sets_and_grows_with_a_colour_shift():
    _, mask = _disc()
    rng = np.random.default_rng(2)
    frames = [(rng.integers(50, 200, (96, 96, 3), dtype=np.uint8), mask) for _ in range(3)]
    a = framestats.set_stats(frames, 64)
    assert framestats.distance(a, framestats.set_stats(frames, 64)) == 0.0
    shifted = [(np.clip(f.astype(int) + [40, 0, -30], 0, 255).astype(np.uint8), m) for f, m in frames]
    parts = framestats.distance_parts(a, framestats.set_stats(shifted, 64))
    assert parts["colour"] > 0.5
    assert set(parts) == set(framestats.PARTS)


def _dark_spot(centre_yx, size=96, spot_px=14):
    """A bright wall with one dark blob (the lumen) at ``centre_yx``, inside the disc."""
    _, mask = _disc(size)
    v, u = np.mgrid[0:size, 0:size]
    grey = 200.0 - 180.0 * np.exp(-((v - centre_yx[0]) ** 2 + (u - centre_yx[1]) ** 2) / (2 * spot_px ** 2))
    return np.repeat(grey.astype(np.uint8)[..., None], 3, 2) * mask[..., None], mask


def test_view_finds_the_lumen_where_it_is_and_keeps_the_distribution():
    down = framestats.frame_stats(*_dark_spot((48, 48)))            # looking down the lumen
    wall = framestats.frame_stats(*_dark_spot((48, 88), spot_px=8))  # a wall view: dark at the rim
    assert down.view[0, 0] < 0.1 and wall.view[0, 0] > 0.75
    assert down.view[1, 0] > wall.view[1, 0] > 0.0                 # the central lumen fills more
    mixed = framestats.set_stats([_dark_spot((48, 48))] * 3 + [_dark_spot((48, 88), spot_px=8)] * 7, 96)
    # the quantiles keep both kinds of view, where a mean would report a view that is neither
    assert mixed.view[0, 0] < 0.1 and mixed.view[0, -1] > 0.75
    only_down = framestats.set_stats([_dark_spot((48, 48))] * 10, 96)
    assert framestats.distance_parts(mixed, only_down)["view"] > 1.0
