"""Lens models: pixel <-> ray round trips, the field of view, masks, view layout, config errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from colonsim.errors import ConfigError
from colonsim.render.lens import Lens, Remap
from colonsim.simconfig import load_sim_config

MODELS = [
    ("pinhole", 100.0, []),
    ("fisheye", 140.0, ["lens.kb_coeffs=[-0.02, 0.003, 0.0, 0.0]"]),
    ("omnidir", 170.0, ["lens.omni_coeffs=[-0.15, 0.01, 0.0]"]),
]


def _lens(model, fov, extra=(), size=96, mask="round"):
    cfg = load_sim_config(overrides=[f"lens.model={model}", f"lens.fov_deg={fov}",
                                     f"lens.mask={mask}", *extra])
    return Lens(cfg.lens, size, size)


@pytest.mark.parametrize("model,fov,extra", MODELS)
def test_pixel_ray_pixel_round_trip_within_a_tenth_of_a_pixel(model, fov, extra):
    lens = _lens(model, fov, extra)
    uv = lens.pixel_grid()[lens.field_mask().ravel() > 0]
    rays, valid = lens.pixel_to_ray(uv)
    assert valid.all()
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-12)
    back = lens.ray_to_pixel(rays * 3.7)           # any ray length
    assert np.abs(back - uv).max() < 0.1


@pytest.mark.parametrize("model,fov,extra", MODELS)
def test_image_circle_spans_the_configured_field_of_view(model, fov, extra):
    lens = _lens(model, fov, extra)
    edge = np.array([[lens.cx + lens.radius_px, lens.cy], [lens.cx, lens.cy - lens.radius_px]])
    rays, _ = lens.pixel_to_ray(edge)
    theta = np.degrees(np.arccos(-rays[:, 2]))
    np.testing.assert_allclose(theta, fov / 2, atol=1e-6)
    # image y runs down, camera y up: the top edge pixel looks up
    assert rays[1, 1] > 0 and rays[0, 0] > 0


def test_equidistant_fisheye_maps_angle_linearly_to_radius():
    lens = _lens("fisheye", 160.0)
    t = np.radians([10.0, 40.0, 70.0])
    rays = np.stack([np.sin(t), np.zeros(3), -np.cos(t)], axis=1)
    r = lens.ray_to_pixel(rays)[:, 0] - lens.cx
    np.testing.assert_allclose(r / t, lens.radius_px / math.radians(80.0), rtol=1e-9)


def test_pinhole_matches_its_intrinsics_matrix():
    lens = _lens("pinhole", 90.0, mask="none")
    K = lens.intrinsics().astype(np.float64)
    pts = np.array([[3.0, -2.0, -10.0], [-1.0, 4.0, -5.0]])       # OpenGL camera frame
    cv = pts * np.array([1, -1, -1])                              # OpenCV axes
    proj = (K @ cv.T).T
    np.testing.assert_allclose(lens.ray_to_pixel(pts), proj[:, :2] / proj[:, 2:], atol=1e-6)


def test_masks_have_the_analytic_area():
    lens = _lens("fisheye", 140.0, size=200)
    assert abs(lens.field_mask().sum() / (math.pi * 100**2) - 1) < 0.01
    oct_ = _lens("fisheye", 140.0, ["lens.octagon_frac=1.5"], size=200, mask="octagon")
    area = (2 * 100) ** 2 - 4 * 0.5 * (2 * 100 - 1.5 * 100) ** 2
    assert abs(oct_.field_mask().sum() / area - 1) < 0.01


def test_wide_lenses_use_one_view_or_cube_faces():
    assert Remap(_lens("pinhole", 100.0)).direct
    assert len(Remap(_lens("fisheye", 140.0)).views) == 1
    assert len(Remap(_lens("fisheye", 170.0)).views) == 5


def test_vignetting_falls_off_to_the_configured_value_at_the_circle():
    lens = _lens("fisheye", 140.0, ["lens.vignetting=0.4"], size=101)
    v = lens.vignette()
    assert v[50, 50] == pytest.approx(1.0)
    # the circle's radius is half the image side (50.5 px); pixel 100 is 50 px from the centre
    assert v[50, 100] == pytest.approx(1 - 0.4 * (50 / 50.5) ** 2, abs=1e-6)


@pytest.mark.parametrize("override,key", [
    ("lens.fov_deg=0", "lens.fov_deg"),
    ("lens.fov_deg=201", "lens.fov_deg"),
    ("lens.model=bogus", "lens.model"),
    ("lens.mask=square", "lens.mask"),
    ("lens.kb_coeffs=[-0.5, 0, 0, 0]", "lens.kb_coeffs"),     # folds back at 47 deg, before 70
])
def test_bad_lens_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=["lens.model=fisheye", "lens.fov_deg=140", override])
    assert e.value.key == key


def test_pinhole_beyond_170_degrees_is_refused():
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=["lens.model=pinhole", "lens.fov_deg=175"])
    assert e.value.key == "lens.fov_deg"
    load_sim_config(overrides=["lens.model=fisheye", "lens.fov_deg=190"])   # fine for a fisheye
