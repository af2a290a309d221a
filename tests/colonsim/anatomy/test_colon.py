"""Procedural colon: determinism, inward normals, centreline inside the lumen, radius, segments."""
import numpy as np
import pytest
import trimesh

from colonsim.anatomy.colon import SEGMENT_NAMES, generate_colon, load_anatomy_config
from colonsim.anatomy.measure import local_wall_distance, measure_colon, slice_rays
from colonsim.anatomy.meshio import centerline_path, save_colon
from colonsim.errors import ConfigError
from tests.colonsim.raycast import ray_hit

PIECE = ["anatomy.segments=[sigmoid]", "anatomy.max_length_mm=200", "anatomy.triangles=20000"]
CT_P5, CT_P95 = 14.4, 31.2          # CT 00020 measured by colonsim.anatomy.measure (docs/anatomy.md)
REF_P5, REF_P95 = 21.0, 40.7        # the reference spread for the same CT colon
# Sessile (Paris 0-Is) polyps only: the dome of polyp_height_frac that the tests of the dome measure
SESSILE = ["anatomy.polyp_types.Ip=0", "anatomy.polyp_types.Is=1", "anatomy.polyp_types.IIa=0"]


def straight_tube(radius_mm: float, length_mm: float = 150.0):
    cfg = load_anatomy_config(overrides=[
        "anatomy.path=straight", "anatomy.segments=[transverse]", f"anatomy.max_length_mm={length_mm}",
        "anatomy.folds.height_mm=0", "anatomy.wall_noise=0", "anatomy.taenia_depth=0",
        "anatomy.triangles=20000", *[f"anatomy.radius_mm.{n}={radius_mm}" for n in SEGMENT_NAMES]])
    return generate_colon(cfg, seed=0)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path, suffix):
    cfg = load_anatomy_config(overrides=PIECE)
    paths = []
    for run, seed in enumerate([7, 7, 8]):
        p = tmp_path / f"c{run}{suffix}"
        save_colon(generate_colon(cfg, seed), p)
        paths.append(p)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert centerline_path(paths[0]).read_bytes() == centerline_path(paths[1]).read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def _nearest_axis_point(colon, points):
    from scipy.spatial import cKDTree

    _, i = cKDTree(colon.centerline.points_mm).query(points)
    return colon.centerline.points_mm[i]


def test_normals_face_inward_toward_the_centreline():
    colon = generate_colon(load_anatomy_config(overrides=PIECE), seed=1)
    centres = colon.mesh.triangles_center
    inward = _nearest_axis_point(colon, centres) - centres
    dots = np.einsum("ij,ij->i", colon.mesh.face_normals, inward)
    assert (dots > 0).mean() > 0.999


def test_centreline_stays_inside_the_lumen_of_a_whole_colon():
    colon = generate_colon(load_anatomy_config(overrides=["anatomy.triangles=20000"]), seed=2)
    line = colon.centerline
    rays = slice_rays(colon.mesh, line, every=5)[1:-1]  # the first and last slices lie on the open ends
    assert np.isfinite(rays).all()  # every slice closes all around its centre point
    wall = local_wall_distance(colon, line.points_mm[::5])
    assert (wall > 0.3 * line.radius_mm[::5]).all()


def test_straight_tube_measures_its_configured_radius_within_2_percent():
    for radius in (12.0, 25.0):
        m = measure_colon(straight_tube(radius))
        for q in ("p10", "p50", "p90"):
            assert abs(m["radius_mm"][q] - radius) <= 0.02 * radius, (radius, m["radius_mm"])


def test_segments_have_their_configured_lengths_and_labels_in_order():
    cfg = load_anatomy_config(overrides=["anatomy.triangles=20000", "anatomy.bend_jitter=0.5"])
    colon = generate_colon(cfg, seed=3)
    line = colon.centerline
    assert line.arclength_mm()[-1] == pytest.approx(cfg.segment_length_mm.array().sum(), abs=1.0)
    assert np.all(np.diff(line.segment) >= 0) and set(line.segment) == set(range(len(SEGMENT_NAMES)))
    for i, name in enumerate(SEGMENT_NAMES):
        seg_len = np.diff(line.arclength_mm())[line.segment[1:] == i].sum()
        assert seg_len == pytest.approx(getattr(cfg.segment_length_mm, name), abs=2.0)


def test_a_piece_of_one_segment_has_the_capped_length():
    cfg = load_anatomy_config(overrides=["anatomy.segments=[transverse]", "anatomy.start_mm=100",
                                         "anatomy.max_length_mm=180", "anatomy.triangles=20000"])
    colon = generate_colon(cfg, seed=0)
    assert colon.centerline.arclength_mm()[-1] == pytest.approx(180.0, abs=1.0)
    assert set(colon.centerline.segment) == {SEGMENT_NAMES.index("transverse")}
    assert 19_000 <= len(colon.mesh.faces) <= 21_000
    assert colon.uv.shape == (len(colon.mesh.vertices), 2) and colon.uv.dtype == np.float32


def test_default_colon_radius_percentiles_fall_within_the_ct_spread():
    colon = generate_colon(load_anatomy_config(overrides=["anatomy.triangles=20000"]), seed=0)
    r = measure_colon(colon, step_mm=2.0)["radius_mm"]
    assert max(CT_P5, REF_P5) <= r["p10"] < r["p50"] < r["p90"] <= min(CT_P95, REF_P95)


def test_folds_of_fixed_spacing_are_measured_at_that_spacing():
    cfg = load_anatomy_config(overrides=PIECE + ["anatomy.folds.spacing_mm=25", "anatomy.folds.irregularity=0",
                                                 "anatomy.folds.height_mm=6", "anatomy.fold_scale.sigmoid=1"])
    spacing = measure_colon(generate_colon(cfg, seed=4))["fold_spacing_mm"]
    assert spacing == pytest.approx(25.0, rel=0.1)


def test_rounded_triangle_cross_section_where_triangularity_is_high():
    base = ["anatomy.path=straight", "anatomy.segments=[transverse]", "anatomy.max_length_mm=100",
            "anatomy.folds.height_mm=0", "anatomy.wall_noise=0", "anatomy.triangles=20000",
            "anatomy.taenia_depth=0.12"]
    for tri, expected in ((1.0, 0.12), (0.0, 0.0)):
        colon = generate_colon(load_anatomy_config(overrides=base + [f"anatomy.triangularity.transverse={tri}"]), 0)
        rays = slice_rays(colon.mesh, colon.centerline, every=50)[1]
        third = 2 * np.abs(np.fft.rfft(rays)[3]) / len(rays) / rays.mean()  # relative 3-lobe amplitude
        assert third == pytest.approx(expected, abs=0.015)


@pytest.mark.parametrize("override, key", [
    ("anatomy.triangles=10000", "anatomy.triangles"),
    ("anatomy.triangles=600000", "anatomy.triangles"),
    ("anatomy.segments=[rectum, transverse]", "anatomy.segments"),
    ("anatomy.segments=[colon]", "anatomy.segments"),
    ("anatomy.radius_mm.caecum=[40, 30]", "anatomy.radius_mm.caecum"),
    ("anatomy.folds.irregularity=2", "anatomy.folds.irregularity"),
    ("anatomy.no_such_key=1", "anatomy.no_such_key"),
    ("anatomy.max_length_mm=5", "anatomy.max_length_mm"),
    ("anatomy.start_mm=5000", "anatomy.start_mm"),
    ("anatomy.path=curly", "anatomy.path"),
    ("anatomy.polyps_per_m=-1", "anatomy.polyps_per_m"),
    ("anatomy.polyp_radius_mm=[0.1, 5]", "anatomy.polyp_radius_mm"),
    ("anatomy.polyp_height_frac=[0.5, 3]", "anatomy.polyp_height_frac"),
    ("anatomy.polyp_shape=cube", "anatomy.polyp_shape"),
])
def test_bad_config_values_raise_config_error_naming_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_anatomy_config(overrides=[override])
    assert e.value.key == key


def test_the_tube_is_closed_at_both_ends_by_caps_facing_the_lumen():
    colon = generate_colon(load_anatomy_config(overrides=PIECE), seed=1)
    mesh = colon.mesh
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume < 0          # consistently wound with the normals inward, caps included


@pytest.mark.parametrize("shape", ["dome", "sphere"])
def test_polyps_stand_into_the_lumen_by_their_drawn_height_and_leave_the_wall_unchanged(shape):
    overrides = [*PIECE, *SESSILE, "anatomy.max_length_mm=300", "anatomy.polyps_per_m=30",
                 "anatomy.polyp_radius_mm=[3, 8]", "anatomy.polyp_height_frac=0.6",
                 f"anatomy.polyp_shape={shape}"]
    plain = generate_colon(load_anatomy_config(overrides=[*overrides, "anatomy.polyps_per_m=0"]), 3)
    colon = generate_colon(load_anatomy_config(overrides=overrides), 3)
    assert plain.polyps is None
    n_wall = len(plain.mesh.vertices)
    assert np.array_equal(colon.mesh.vertices[:n_wall], plain.mesh.vertices)   # same wall, bit for bit
    assert np.array_equal(colon.mesh.faces[:len(plain.mesh.faces)], plain.mesh.faces)
    assert 3 <= len(colon.polyps) <= 20                                         # Poisson, mean 9
    assert len(colon.uv) == len(colon.mesh.vertices)
    apex, normal, radius = colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6]
    assert np.all((radius >= 3) & (radius <= 8))
    assert np.allclose(np.linalg.norm(normal, axis=1), 1.0)
    # From each apex back along its normal, the plain wall lies at the polyp's height, 0.6 r: the
    # ray meets the wall vertex the polyp stands on.
    height = np.array([ray_hit(plain.mesh.triangles, a, -n) for a, n in zip(apex, normal)])
    assert np.allclose(height, 0.6 * radius, rtol=1e-6)
    # The apex is in the lumen: nearer the centreline than the wall it stands on.
    axis = _nearest_axis_point(colon, apex)
    assert np.all(np.linalg.norm(apex - axis, axis=1) <
                  np.linalg.norm(apex - height[:, None] * normal - axis, axis=1))


def test_a_dome_polyp_rises_from_the_wall_its_foot_just_behind_it_and_faces_the_lumen():
    from colonsim.anatomy.colon import DOME_AROUND, DOME_RINGS, DOME_SINK_MM

    overrides = [*PIECE, *SESSILE, "anatomy.max_length_mm=300", "anatomy.polyps_per_m=15",
                 "anatomy.polyp_radius_mm=[4, 8]", "anatomy.polyp_height_frac=[0.6, 1.2]"]
    plain = generate_colon(load_anatomy_config(overrides=[*overrides, "anatomy.polyps_per_m=0"]), 5)
    colon = generate_colon(load_anatomy_config(overrides=overrides), 5)
    n_wall, f_wall = len(plain.mesh.vertices), len(plain.mesh.faces)
    per_v, per_f = 1 + DOME_RINGS * DOME_AROUND, DOME_AROUND * (2 * DOME_RINGS - 1)
    assert len(colon.mesh.vertices) == n_wall + per_v * len(colon.polyps) >= n_wall + 2 * per_v
    # Each dome vertex carries the (arc, angle) of its wall point: near the wall point under the
    # apex (not the wall vertex nearest the apex: beside a fold that is the fold's crest, 17 mm off
    # along the colon for one polyp of seed 5 once folds were partial and branched).
    apex, normal = colon.polyps[:, :3], colon.polyps[:, 3:6]
    under = apex - np.array([ray_hit(plain.mesh.triangles, a, -n) for a, n in zip(apex, normal)])[:, None] * normal
    near = np.abs(colon.uv[n_wall:, 0] - np.repeat(_arc_of(plain, under), per_v))
    assert np.all(near <= 2.0 * 8.0) and np.all((colon.uv[n_wall:, 1] >= 0) & (colon.uv[n_wall:, 1] < 2 * np.pi))
    for q, (apex, normal, r) in enumerate(zip(colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6])):
        v = colon.mesh.vertices[n_wall + q * per_v: n_wall + (q + 1) * per_v]
        f = colon.mesh.faces[f_wall + q * per_f: f_wall + (q + 1) * per_f] - (n_wall + q * per_v)
        assert np.allclose(v[0], apex)                            # the dome's top is the listed apex
        # Wound consistently (a disc: each inner edge run both ways), and its top faces the lumen.
        dome = trimesh.Trimesh(v, f, process=False)
        assert dome.is_winding_consistent and len(dome.faces) == per_f
        tri = v[f]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        assert np.all(face_n[:DOME_AROUND] @ normal > 0)          # the top faces the lumen
        # The foot ring lies just behind the wall (hidden, no gap), within its base radius.
        foot = v[-DOME_AROUND:]
        behind = np.array([ray_hit(plain.mesh.triangles, p, normal) for p in foot])
        assert np.all((behind > 0.2 * DOME_SINK_MM) & (behind < 3 * DOME_SINK_MM))
        lateral = foot - apex - ((foot - apex) @ normal)[:, None] * normal
        assert np.allclose(np.linalg.norm(lateral, axis=1), r, rtol=0.25)   # folds bend the wall under it
        # Halfway out, the dome stands well clear of the wall.
        mid = v[1 + (DOME_RINGS // 2) * DOME_AROUND: 1 + (DOME_RINGS // 2 + 1) * DOME_AROUND]
        height = np.array([ray_hit(plain.mesh.triangles, p, -normal) for p in mid])
        h = ray_hit(plain.mesh.triangles, apex, -normal)
        assert np.all((height > 0.3 * h) & (height < h))


def _arc_of(colon, points: np.ndarray) -> np.ndarray:
    """Arc length of the nearest wall vertex of ``colon`` to each point."""
    d = np.linalg.norm(colon.mesh.vertices[None, :, :] - points[:, None, :], axis=2)
    return colon.uv[np.argmin(d, axis=1), 0]
