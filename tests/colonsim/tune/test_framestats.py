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
