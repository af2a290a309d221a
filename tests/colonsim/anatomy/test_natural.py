"""Natural geometry: partial and branched haustral folds, and polyps of the Paris types, measured
on the mesh."""
import numpy as np
import pytest

from colonsim.anatomy.colon import PARIS_TYPES, generate_colon, load_anatomy_config
from colonsim.anatomy.tube import SECTOR
from tests.colonsim.raycast import ray_hit

PIECE = ["anatomy.segments=[sigmoid]", "anatomy.max_length_mm=300", "anatomy.triangles=40000",
         "anatomy.fold_scale.sigmoid=1"]
STRAIGHT = ["anatomy.path=straight", "anatomy.segments=[transverse]", "anatomy.max_length_mm=400",
            "anatomy.triangles=100000", "anatomy.wall_noise=0", "anatomy.taenia_depth=0", "anatomy.folds.bulge_mm=0",
            "anatomy.folds.arch_mm=0", "anatomy.folds.irregularity=0", "anatomy.radius_mm.transverse=25"]


def test_default_folds_are_partial_branched_and_varied():
    colon = generate_colon(load_anatomy_config(overrides=PIECE), seed=1)
    folds = colon.folds
    span = np.degrees(np.array([f["u1"] - f["u0"] for f in folds]) * SECTOR)
    assert len(folds) >= 30
    assert np.all(span <= 120.0 + 1e-9)                 # a fold never crosses a taenia: < 360 degrees
    assert np.mean(span < 0.9 * 120.0) > 0.4            # completeness [0.45, 1]: most are partial
    assert span.min() < 70.0
    branched = [f for f in folds if f["branch"] is not None]
    assert 0.1 < len(branched) / len(folds) < 0.5       # merge_probability 0.3
    assert any(b["branch"]["join"] for b in branched) and not all(b["branch"]["join"] for b in branched)
    thick = np.array([f["thickness_mm"] for f in folds])
    assert thick.min() >= 3.0 and thick.max() <= 6.0 and np.ptp(thick) > 1.5


def _fold_extents(colon, radius_mm: float, threshold_mm: float = 1.5) -> np.ndarray:
    """Angular extent, degrees, of each fold of a round straight tube measured on its mesh: the
    connected regions (angle wrapping around) where the wall reaches more than ``threshold_mm``
    into the lumen, and the angles each covers."""
    from scipy import ndimage

    v = np.asarray(colon.mesh.vertices)[:-2]            # without the two end-cap apexes
    s = colon.uv[:-2, 0]
    around = int(np.sum(s == s[0]))
    relief = (radius_mm - np.hypot(v[:, 0], v[:, 1])).reshape(-1, around)   # the path runs along z
    label, n = ndimage.label(relief > threshold_mm)
    root = np.arange(n + 1)

    def find(a):
        while root[a] != a:
            a = root[a]
        return a
    for a, b in zip(label[:, 0], label[:, -1]):         # regions that cross angle 0 are one
        if a and b:
            root[find(a)] = find(b)
    roots = np.array([find(a) for a in range(n + 1)])[label]
    return np.array([np.degrees(len(np.unique(np.nonzero(roots == q)[1])) * 2 * np.pi / around)
                     for q in np.unique(roots[label > 0])])


def test_partial_folds_span_less_of_the_circumference_on_the_mesh():
    """Measured on the mesh of a round straight tube: with completeness 1 each fold spans most of
    its sector (a crescent that tapers to zero at the taeniae); with the default completeness
    [0.45, 1] many folds span far less, and none goes all the way round."""
    full = _fold_extents(generate_colon(load_anatomy_config(overrides=[
        *STRAIGHT, "anatomy.folds.merge_probability=0", "anatomy.folds.completeness=1"]), seed=2), 25.0)
    partial = _fold_extents(generate_colon(load_anatomy_config(overrides=[
        *STRAIGHT, "anatomy.folds.merge_probability=0"]), seed=2), 25.0)
    print(f"fold extent p10/p50/p90, degrees: complete {np.percentile(full, [10, 50, 90]).round(1)}, "
          f"default {np.percentile(partial, [10, 50, 90]).round(1)} ({len(full)}, {len(partial)} folds)")
    assert len(full) >= 30 and len(partial) >= 30
    assert np.all(partial < 360.0) and np.all(full < 360.0)
    assert np.percentile(full, 10) > 80.0
    assert np.percentile(partial, 50) < 0.85 * np.percentile(full, 50)
    assert np.percentile(partial, 10) < 70.0


OVERRIDES = ["anatomy.segments=[sigmoid]", "anatomy.max_length_mm=400", "anatomy.triangles=40000",
             "anatomy.polyps_per_m=40", "anatomy.polyp_radius_mm=[4, 8]", "anatomy.polyp_height_frac=[0.6, 1.2]"]


def _polyps_of(kind: str):
    only = [f"anatomy.polyp_types.{t}={int(t == kind)}" for t in PARIS_TYPES]
    cfg = load_anatomy_config(overrides=[*OVERRIDES, *only])
    colon = generate_colon(cfg, seed=3)
    plain = generate_colon(load_anatomy_config(overrides=[*OVERRIDES, *only, "anatomy.polyps_per_m=0"]), seed=3)
    assert len(colon.polyps) >= 5 and np.all(colon.polyp_types == PARIS_TYPES.index(kind))
    return colon, plain


def _profile(colon, q: int):
    """(height over the apex's wall point, distance from the polyp's axis) of polyp q's vertices."""
    apex, normal = colon.polyps[q, :3], colon.polyps[q, 3:6]
    v = colon.mesh.vertices[colon.vertex_polyp == q] - apex
    along = v @ normal
    lateral = np.linalg.norm(v - along[:, None] * normal, axis=1)
    return along, lateral


def test_a_flat_polyp_stands_under_2_5_mm():
    colon, plain = _polyps_of("IIa")
    for q, (apex, normal, r) in enumerate(zip(colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6])):
        height = ray_hit(plain.mesh.triangles, apex, -normal)   # apex to the wall under it
        assert 0.5 < height < 2.5
        _, lateral = _profile(colon, q)
        assert lateral.max() == pytest.approx(r, rel=0.3)      # as wide as drawn: a plaque, not a bump
        assert height < 0.5 * r


def test_a_sessile_polyp_is_a_dome_of_its_drawn_height():
    colon, plain = _polyps_of("Is")
    for q, (apex, normal, r) in enumerate(zip(colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6])):
        height = ray_hit(plain.mesh.triangles, apex, -normal)
        assert 0.6 * r - 1e-6 <= height <= 1.2 * r + 1e-6
        along, lateral = _profile(colon, q)
        assert lateral.max() == pytest.approx(r, rel=0.3)       # its base: the drawn radius


def test_a_pedunculated_polyp_has_a_head_on_a_narrower_stalk():
    colon, plain = _polyps_of("Ip")
    for q, (apex, normal, r) in enumerate(zip(colon.polyps[:, :3], colon.polyps[:, 3:6], colon.polyps[:, 6])):
        height = ray_hit(plain.mesh.triangles, apex, -normal)
        along, lateral = _profile(colon, q)
        head = along > -1.5 * 0.75 * r                          # the head's upper three quarters
        stalk = (along < -2.0 * 0.75 * r - 0.5) & (along > -height + 0.3 * r)   # under it, above the foot
        assert head.sum() > 100 and stalk.sum() >= 48         # a ring of the stalk at least
        head_w, stalk_w = lateral[head].max(), lateral[stalk].max()
        assert head_w == pytest.approx(0.75 * r, rel=0.05)
        assert stalk_w < 0.45 * head_w                          # a neck: the head overhangs its stalk
        assert height > 2 * 0.75 * r + 0.5 * r                  # a head's diameter plus a stalk
        # A ray along the normal just outside the stalk, from above, meets the head's underside
        # above the wall: the head overhangs.
        side = np.cross(normal, [0.0, 0.0, 1.0] if abs(normal[2]) < 0.9 else [1.0, 0.0, 0.0])
        side /= np.linalg.norm(side)
        start = apex + 0.5 * (stalk_w + head_w) * side + 5.0 * normal
        own = colon.mesh.triangles[np.isin(colon.mesh.faces, np.flatnonzero(colon.vertex_polyp == q)).all(axis=1)]
        hits = ray_hit(own, start, -normal)
        assert hits < 5.0 + 2 * 0.75 * r
