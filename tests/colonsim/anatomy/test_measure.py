"""Measurement: wall distance, slice radius and fold spacing on colons of known geometry."""
import numpy as np
import pytest

from colonsim.anatomy.centerline import Centerline
from colonsim.anatomy.colon import SEGMENT_NAMES, generate_colon, load_anatomy_config
from colonsim.anatomy.measure import RAYS, local_wall_distance, measure_colon, resample, slice_radii
from colonsim.anatomy.tube import CAP_DEPTH


def tube(radius_mm=20.0, *extra):
    cfg = load_anatomy_config(overrides=[
        "anatomy.path=straight", "anatomy.segments=[descending]", "anatomy.max_length_mm=120",
        "anatomy.folds.height_mm=0", "anatomy.wall_noise=0", "anatomy.taenia_depth=0", "anatomy.triangles=40000",
        *[f"anatomy.radius_mm.{n}={radius_mm}" for n in SEGMENT_NAMES], *extra])
    return generate_colon(cfg, seed=0)


def test_wall_distance_on_and_off_the_axis_of_a_round_tube():
    colon = tube(20.0)
    around = (len(colon.mesh.vertices) - 2) // len(np.unique(colon.uv[:, 0]))   # 2: the end caps' apexes
    chord = 20.0 * np.cos(np.pi / around)  # the nearest wall point of an inscribed polygon
    pts = np.array([[0, 0, 60.0], [5, 0, 60.0], [0, -12, 30.0], [0, 0, 200.0]])
    d = local_wall_distance(colon, pts)
    assert d[0] == pytest.approx(chord, abs=0.05)
    assert d[1] == pytest.approx(chord - 5, abs=0.1)
    assert d[2] == pytest.approx(chord - 12, abs=0.1)
    assert d[3] == pytest.approx(200 - 120 - CAP_DEPTH * 20.0, abs=0.5)  # beyond the capped end: its apex


def test_slice_radius_of_an_off_centre_line_is_still_the_mean_distance_to_the_wall():
    colon = tube(20.0)
    shifted = Centerline.from_points(colon.centerline.points_mm + [6.0, 0, 0])
    r = slice_radii(colon.mesh, shifted)
    # mean over angles of the distance from a point 6 mm off the axis of a circle of radius 20
    phi = np.arange(RAYS) * 2 * np.pi / RAYS
    expected = np.mean(-6 * np.cos(phi) + np.sqrt(400 - 36 * np.sin(phi) ** 2))
    assert np.nanmedian(r) == pytest.approx(expected, rel=0.01)


def test_fold_free_tube_has_no_folds_and_folded_tube_has_them():
    assert measure_colon(tube(20.0))["fold_spacing_mm"] is None
    folded = measure_colon(tube(20.0, "anatomy.folds.height_mm=5", "anatomy.folds.spacing_mm=20",
                                "anatomy.folds.irregularity=0"))
    assert folded["fold_spacing_mm"] == pytest.approx(20.0, rel=0.1)
    assert folded["triangles"] == pytest.approx(40_000, rel=0.05)
    assert folded["length_mm"] == pytest.approx(120.0, abs=0.5)


def test_resample_spacing_and_end_points():
    line = Centerline.from_points(np.array([[0, 0, 0], [0, 0, 10.0], [0, 10, 10.0]]))
    r = resample(line, 1.0)
    assert len(r.points_mm) == 21
    assert np.allclose(np.diff(r.arclength_mm()), 1.0)
    assert np.allclose(r.points_mm[[0, -1]], [[0, 0, 0], [0, 10, 10]])
