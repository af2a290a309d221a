"""Camera poses: clear of the wall (checked by brute force), distributed as configured, smooth, pure."""
import math

import numpy as np
import pytest
import trimesh
from scipy import stats

from colonsim import config
from colonsim.anatomy.centerline import Centerline, transport_frames
from colonsim.anatomy.colon import AnatomyConfig, Colon, generate_colon
from colonsim.errors import ConfigError, MeshError
from colonsim.render import trajectory
from colonsim.simconfig import load_sim_config


def _tube(points: np.ndarray, radius: float, around: int = 48, ring_mm: float = 1.5) -> Colon:
    """A tube of constant radius around a polyline centreline, normals inward."""
    line = Centerline.from_points(points, np.full(len(points), radius))
    arc = line.arclength_mm()
    s = np.linspace(0, arc[-1], int(arc[-1] / ring_mm) + 1)
    p = np.stack([np.interp(s, arc, line.points_mm[:, i]) for i in range(3)], 1)
    t = np.stack([np.interp(s, arc, line.tangents[:, i]) for i in range(3)], 1)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n, b = transport_frames(t)
    th = np.arange(around) * 2 * np.pi / around
    v = p[:, None] + radius * (np.cos(th)[None, :, None] * n[:, None] + np.sin(th)[None, :, None] * b[:, None])
    k, j = np.meshgrid(np.arange(len(s) - 1), np.arange(around), indexing="ij")
    v00, v01 = k * around + j, k * around + (j + 1) % around
    faces = np.concatenate([np.stack([v00, v01 + around, v01], -1).reshape(-1, 3),
                            np.stack([v00, v00 + around, v01 + around], -1).reshape(-1, 3)])
    return Colon(mesh=trimesh.Trimesh(v.reshape(-1, 3), faces, process=False), centerline=line, uv=None,
                 name="tube")


def _straight(length=200.0, radius=15.0) -> Colon:
    z = np.linspace(0, length, 101)
    return _tube(np.stack([0 * z, 0 * z, z], 1), radius)


def _bent(radius=12.0, bend_mm=45.0) -> Colon:
    """40 mm straight, then a 180 degree bend of radius bend_mm, then 40 mm straight back."""
    z = np.linspace(0, 40, 41)[:-1]
    a = np.linspace(0, np.pi, 150)
    arc = np.stack([bend_mm * (1 - np.cos(a)), 0 * a, 40 + bend_mm * np.sin(a)], 1)
    back = np.stack([np.full(40, 2 * bend_mm), np.zeros(40), np.linspace(40, 0, 41)[1:]], 1)
    return _tube(np.concatenate([np.stack([0 * z, 0 * z, z], 1), arc, back]), radius)


def _cfg(*overrides) -> trajectory.TrajectoryConfig:
    return config.load(trajectory.TrajectoryConfig, [config.assets_path("defaults", "sim", "trajectory.yaml")],
                       overrides=list(overrides))


def _brute_wall_distances(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Exact point-mesh distances by brute force (no spatial index): the nearest triangle's centroid
    is at most one circumradius farther than the nearest centroid."""
    tri = mesh.triangles
    centroids = tri.mean(axis=1)
    circ = np.linalg.norm(tri - centroids[:, None], axis=2).max()
    out = []
    for p in points:
        cd = np.linalg.norm(centroids - p, axis=1)
        near = tri[cd <= cd.min() + circ + 1e-9]
        q = trimesh.triangles.closest_point(near, np.broadcast_to(p, (len(near), 3)))
        out.append(np.linalg.norm(q - p, axis=1).min())
    return np.array(out)


def _raycast_min_depth(mesh: trimesh.Trimesh, pose: np.ndarray, fov_deg: float, reach: float = 20.0) -> float:
    """Smallest z-depth over a fan of rays inside the field of view (Moller-Trumbore, brute force),
    over the triangles within ``reach`` mm (inf when no ray hits one)."""
    half = math.radians(fov_deg) / 2
    ang = np.linspace(0, half, 15)
    az = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    a, z = np.meshgrid(ang, az)
    d_cam = np.stack([np.sin(a) * np.cos(z), np.sin(a) * np.sin(z), -np.cos(a)], -1).reshape(-1, 3)
    d = d_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    tri = mesh.triangles
    near = np.linalg.norm(tri.mean(axis=1) - o, axis=1) < reach
    if not near.any():
        return math.inf
    v0, e1, e2 = tri[near, 0], tri[near, 1] - tri[near, 0], tri[near, 2] - tri[near, 0]
    pvec = np.cross(d[:, None], e2[None])                      # (R, T, 3)
    det = np.einsum("tk,rtk->rt", e1, pvec)
    inv = 1 / np.where(np.abs(det) < 1e-12, np.nan, det)
    tvec = o - v0
    u = np.einsum("tk,rtk->rt", tvec, pvec) * inv
    qvec = np.cross(tvec, e1)
    v = np.einsum("rk,tk->rt", d, qvec) * inv
    t = np.einsum("tk,tk->t", e2, qvec)[None] * inv
    hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    t = np.where(hit, t, np.inf).min(axis=1)                   # distance along each ray
    return float((t * np.cos(a).ravel()).min())                # z-depth = distance * cos(angle)


def test_raycast_reference_gives_the_analytic_depth_in_a_tube():
    colon = _straight(radius=15.0)
    pose = np.eye(4)
    pose[:3, 3] = [0, 0, 100]
    pose[:3, 2] = [0, 0, -1]                     # looking along +z
    pose[:3, 1] = [0, -1, 0]
    # the rim of the fan, 70 deg off axis, meets the wall at z = r / tan(70 deg); the polygon sits
    # inside the circle by r (1 - cos(pi / 48)) at most
    assert _raycast_min_depth(colon.mesh, pose, 140.0) == pytest.approx(15.0 / math.tan(math.radians(70)), rel=0.01)


@pytest.fixture(scope="module")
def generated_colon():
    cfg = config.load(AnatomyConfig, [config.assets_path("defaults", "sim", "anatomy.yaml")],
                      overrides=["max_length_mm=250", "triangles=20000", "start_mm=120"])
    return generate_colon(cfg, 3)


@pytest.mark.parametrize("which", ["bent", "generated"])
def test_200_poses_keep_2mm_from_the_wall_and_2mm_min_depth(which, generated_colon):
    colon = _bent() if which == "bent" else generated_colon
    cfg = _cfg("end_margin_mm=15", "wall_view_probability=0.3", "lateral_offset_frac=[0.3, 0.9]",
               "clearance_fov_deg=140")
    poses = [trajectory.pose_for_frame(colon, cfg, 11, i) for i in range(200)]
    walls = _brute_wall_distances(colon.mesh, np.array([pose[:3, 3] for pose, _ in poses]))
    assert walls.min() >= 2.0
    assert np.allclose(walls, [p["traj_wall_distance_mm"] for _, p in poses], atol=1e-6)
    # a surface nearer than 2 mm in z inside 70 deg of the axis is within 2 / cos(70 deg) = 5.9 mm
    depths = [_raycast_min_depth(colon.mesh, pose, 140.0, reach=10.0) for pose, _ in poses[::2]]
    assert min(depths) >= 2.0
    for pose, params in poses:
        assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-9)
        assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
        assert tuple(params) == trajectory.PARAM_KEYS
    # the offsets reach well towards the wall: the sampler is not trivially centred
    assert max(p["traj_lateral_offset_mm"] for _, p in poses) > 5.0


def test_view_angle_to_the_lumen_axis_follows_the_configured_jitter():
    colon = _straight(radius=20.0)
    cfg = _cfg("view_angle_deg=[4.0, 20.0]", "wall_view_probability=0.0", "lateral_offset_frac=[0, 0.3]")
    angles, recorded = [], []
    for i in range(200):
        pose, params = trajectory.pose_for_frame(colon, cfg, 5, i)
        forward = -pose[:3, 2]
        angles.append(math.degrees(math.acos(np.clip(forward[2], -1, 1))))   # the axis is +z
        recorded.append(params["traj_view_angle_deg"])
    assert np.allclose(angles, recorded, atol=1e-6)
    assert 4.0 - 1e-6 <= min(angles) and max(angles) <= 20.0 + 1e-6
    assert stats.kstest(angles, stats.uniform(4.0, 16.0).cdf).pvalue > 0.01
    walls = [trajectory.pose_for_frame(colon, _cfg("wall_view_probability=1.0", "wall_view_angle_deg=[50, 60]"),
                                       5, i)[1]["traj_view_angle_deg"] for i in range(30)]
    assert 50.0 - 1e-6 <= min(walls) and max(walls) <= 60.0 + 1e-6


def test_roll_is_uniform_in_its_range():
    colon = _straight()
    rolls = [trajectory.pose_for_frame(colon, _cfg("roll_deg=[-90, 90]"), 2, i)[1]["traj_roll_deg"]
             for i in range(100)]
    assert stats.kstest(rolls, stats.uniform(-90, 180).cdf).pvalue > 0.01


def test_sequences_move_smoothly_along_the_centreline():
    colon = _bent()
    cfg = _cfg("end_margin_mm=10", "sequence_length=60", "step_mm=[0.5, 1.0]", "keyframe_interval=20",
               "lateral_offset_frac=[0, 0.5]", "view_angle_deg=[0, 20]", "wall_view_probability=0.0",
               "roll_deg=[-30, 30]")
    frames = [trajectory.pose_for_frame(colon, cfg, 3, i) for i in range(120)]
    seq = [p["traj_sequence_id"] for _, p in frames]
    assert seq == [0.0] * 60 + [1.0] * 60
    for part in (frames[:60], frames[60:]):
        pos = np.array([pose[:3, 3] for pose, _ in part])
        arc = np.array([p["traj_arc_mm"] for _, p in part])
        steps = np.diff(arc)
        assert np.allclose(steps, steps[0]) and 0.5 <= abs(steps[0]) <= 1.0
        # arc step, widened by the offset on the outside of the bend, plus the offset's own change
        assert np.linalg.norm(np.diff(pos, axis=0), axis=1).max() <= 1.0 * (1 + 6 / 45) + 1.5 * 0.5 * 12 / 20
        z = np.array([pose[:3, 2] for pose, _ in part])
        turn = np.degrees(np.arccos(np.clip((z[1:] * z[:-1]).sum(axis=1), -1, 1)))
        # the axis turns 180 deg / (pi * 45 mm) per mm; the view moves <= 1.5 * 40 deg / 20 frames
        assert turn.max() <= 1.0 * 180 / (np.pi * 45) + 1.5 * 40 / 20 + 0.1
    jump = np.linalg.norm(frames[60][0][:3, 3] - frames[59][0][:3, 3])
    assert jump > 2.0  # a new sequence starts elsewhere


def test_backward_sequences_look_and_move_towards_the_start():
    colon = _straight()
    cfg = _cfg("backward_probability=1.0", "sequence_length=10", "view_angle_deg=0", "lateral_offset_frac=0")
    frames = [trajectory.pose_for_frame(colon, cfg, 1, i) for i in range(10)]
    assert np.allclose(frames[0][0][:3, 2], [0, 0, 1])             # looks along -axis: camera z = +axis
    assert frames[9][1]["traj_arc_mm"] < frames[0][1]["traj_arc_mm"]


def test_pose_is_a_pure_function_of_colon_cfg_seed_index():
    cfg = _cfg("sequence_length=7")
    alone = trajectory.pose_for_frame(_bent(), cfg, 9, 17)
    colon = _bent()
    for i in range(30):
        trajectory.pose_for_frame(colon, cfg, 9, i)
        trajectory.pose_for_frame(colon, cfg, 4, i)
    after = trajectory.pose_for_frame(colon, cfg, 9, 17)
    assert np.array_equal(alone[0], after[0]) and alone[1] == after[1]
    assert not np.array_equal(after[0], trajectory.pose_for_frame(colon, cfg, 10, 17)[0])


def test_a_geometry_built_elsewhere_and_pickled_gives_the_same_poses():
    """Render workers get the sampler's geometry from the parent (pickled) instead of building it."""
    import pickle

    cfg = _cfg("sequence_length=3")
    built = trajectory.geometry(_bent())
    shipped = pickle.loads(pickle.dumps(built))
    colon, fresh = _bent(), _bent()
    trajectory.prime(colon, shipped)
    assert trajectory.geometry(colon) is shipped          # used as is, not rebuilt
    for i in (0, 4, 11):
        a, b = trajectory.pose_for_frame(colon, cfg, 5, i), trajectory.pose_for_frame(fresh, cfg, 5, i)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_too_short_or_too_narrow_colons_raise_mesh_error():
    with pytest.raises(MeshError, match="end_margin_mm"):
        trajectory.pose_for_frame(_straight(length=50), _cfg("end_margin_mm=30"), 0, 0)
    with pytest.raises(MeshError, match="too narrow"):
        trajectory.pose_for_frame(_straight(radius=1.5), _cfg("max_attempts=2"), 0, 0)


@pytest.mark.parametrize("item,key", [("lateral_offset_frac=1.5", "lateral_offset_frac"),
                                      ("sequence_length=0", "sequence_length"),
                                      ("view_angle_deg=[20, 10]", "view_angle_deg"),
                                      ("wall_view_probability=2", "wall_view_probability"),
                                      ("clearance_fov_deg=0", "clearance_fov_deg"),
                                      ("step_mm=fast", "step_mm")])
def test_bad_values_raise_config_error_naming_the_key(item, key):
    with pytest.raises(ConfigError) as e:
        load_sim_config(overrides=[f"trajectory.{item}"])
    assert e.value.key == f"trajectory.{key}"


def test_cone_min_depth_is_exact_on_a_tube_and_a_sliver_triangle():
    colon = _straight(radius=15.0)
    geom = trajectory.geometry(colon)
    pose = np.eye(4)
    pose[:3, 3] = [0, 0, 100]
    pose[:3, 2] = [0, 0, -1]                     # looking along +z
    pose[:3, 1] = [0, -1, 0]
    # the 48-gon's wall is nearest (15 cos(pi / 48)) midway between its vertices; the cone meets it at
    # z = that / tan(70 deg) (an edge of a ring quad crossing the cone), exact to rounding
    want = 15.0 * math.cos(math.pi / 48) / math.tan(math.radians(70))
    assert geom.min_depth(pose, 140.0, 10.0) == pytest.approx(want, rel=0.02)
    # a fan of rays can only miss the nearest point, never find a nearer one
    assert geom.min_depth(pose, 140.0, 10.0) <= _raycast_min_depth(colon.mesh, pose, 140.0) + 1e-9
    # one huge triangle crossing the view 5 mm ahead: its interior, not a vertex or edge, is nearest
    tri = np.array([[[-1e4, -1e4, -5.0], [1e4, -1e4, -5.0], [0.0, 1e4, -5.0]]])
    assert trajectory._cone_min_depth(tri, math.tan(math.radians(60))) == pytest.approx(5.0)
    tilted = tri.copy()
    tilted[..., 2] = -5.0 - 0.5 * tilted[..., 0]    # z = -5 - x/2: nearest on the cone's rim, x > 0
    t = math.tan(math.radians(30))
    assert trajectory._cone_min_depth(tilted, t) == pytest.approx(5.0 / (1 + 0.5 * t), rel=1e-9)
    assert trajectory._cone_min_depth(tri + [0, 0, 10.0], t) == math.inf   # behind the camera


def _narrow_tube_mesh(radius: float) -> trimesh.Trimesh:
    """A closed cylinder along z = 0..200 mm whose side triangles run its whole length (slivers)."""
    mesh = trimesh.creation.cylinder(radius=radius, height=200.0, sections=48)
    mesh.apply_translation([0.0, 0.0, 100.0])
    return mesh


def test_a_lumen_too_narrow_for_the_camera_fails_fast_with_its_radius():
    import time
    for colon in (_straight(radius=3.0), Colon(mesh=_narrow_tube_mesh(3.0), centerline=_straight(radius=3.0).centerline,
                                                uv=None, name="cylinder")):
        t0 = time.perf_counter()
        with pytest.raises(MeshError, match=r"too narrow for the camera: its radius is at most 2\.9\d mm, "
                                            r"and the camera needs about 5\.49 mm"):
            trajectory.pose_for_frame(colon, _cfg(), 0, 0)
        assert time.perf_counter() - t0 < 5.0
    # just wide enough: an on-axis view down a 6 mm tube keeps 2 mm over 140 deg
    pose, params = trajectory.pose_for_frame(_straight(radius=6.0), _cfg(), 0, 0)
    assert params["traj_wall_distance_mm"] >= 2.0


def test_render_into_a_3mm_tube_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path
    mesh = tmp_path / "tube.ply"
    _straight(radius=3.0).mesh.export(mesh)
    root = Path(__file__).resolve().parents[3]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "cli.py", "render", "--out", str(tmp_path / "x.h5"), "--frames", "4",
                           "--size", "32", "--mesh", str(mesh), "--quiet"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "too narrow for the camera" in lines[0] and "Traceback" not in proc.stderr
    assert time.perf_counter() - t0 < 60.0   # worker start-up included; it was > 60 s in the search alone
    assert not (tmp_path / "x.h5").exists()


@pytest.fixture(scope="module")
def polyp_colon():
    cfg = load_sim_config("clean", overrides=[
        "anatomy.segments=[sigmoid]", "anatomy.max_length_mm=300", "anatomy.triangles=20000",
        "anatomy.polyps_per_m=20"]).anatomy
    return generate_colon(cfg, 5)


def test_polyp_views_look_at_a_polyp_from_the_drawn_distance_inside_the_lumen(polyp_colon):
    colon = polyp_colon
    cfg = _cfg("polyp_view_probability=1", "polyp_view_distance_mm=[8, 30]", "polyp_view_angle_deg=[0, 50]")
    poses = [trajectory.pose_for_frame(colon, cfg, 2, i) for i in range(60)]
    cams = np.array([pose[:3, 3] for pose, _ in poses])
    assert _brute_wall_distances(colon.mesh, cams).min() >= 2.0
    geom = trajectory.geometry(colon)
    looking = 0
    for pose, params in poses:
        assert trajectory._inside(geom, pose) and tuple(params) == trajectory.PARAM_KEYS
        to_apex = colon.polyps[:, :3] - pose[:3, 3]
        dist = np.linalg.norm(to_apex, axis=1)
        cos = (to_apex @ -pose[:3, 2]) / dist
        # some polyp's apex at 8-30 mm, within 45 deg of the view axis (the aim point is within
        # 1.5 radii of the apex, so near 8 mm the apex can sit off the centre)
        looking += bool(np.any((dist > 8 - 1e-6) & (dist < 30 + 1e-6) & (cos > np.cos(np.radians(60)))))
    assert looking >= 57   # a few sequences may fall back to lumen views after failed attempts
    # without polyp views, the same frames rarely have a polyp that near and that central
    plain = [trajectory.pose_for_frame(colon, _cfg(), 2, i) for i in range(60)]
    near = sum(bool(np.any((np.linalg.norm(colon.polyps[:, :3] - p[:3, 3], axis=1) < 30) &
                           (((colon.polyps[:, :3] - p[:3, 3]) @ -p[:3, 2]) /
                            np.linalg.norm(colon.polyps[:, :3] - p[:3, 3], axis=1) > np.cos(np.radians(60)))))
               for p, _ in plain)
    assert near < looking / 2


def test_polyp_sequences_approach_their_polyp(polyp_colon):
    cfg = _cfg("polyp_view_probability=1", "sequence_length=6", "polyp_view_distance_mm=[8, 30]")
    for seq in range(4):
        cams = np.array([trajectory.pose_for_frame(polyp_colon, cfg, 1, seq * 6 + k)[0][:3, 3] for k in range(6)])
        dist = np.linalg.norm(polyp_colon.polyps[:, None, :3] - cams[None], axis=2)   # (polyps, frames)
        target = int(np.argmin(dist[:, -1]))
        assert dist[target, -1] == pytest.approx(8.0, abs=1e-6)   # it ends at the near distance
        assert np.all(np.diff(dist[target]) <= 1e-9)   # never moves away from it


def test_compiled_cone_test_gives_the_numpy_minimum_bit_for_bit():
    """The pose sampler's clearance test runs compiled (numba is a dependency); it must give the
    same smallest depth as the NumPy reference, so that the same poses are accepted."""
    compiled = trajectory._compiled_cone()
    assert compiled is not None
    rng = np.random.default_rng(11)
    for trial in range(400):
        n = int(rng.integers(1, 200))
        tri = rng.normal(size=(n, 3, 3)) * rng.uniform(1, 30) + rng.normal(size=3) * rng.uniform(0, 20)
        if trial % 4 == 0:
            tri[..., 2] = rng.normal()            # planes square to the axis: the conic is a circle
        if trial % 7 == 0:
            tri[:, 1] = tri[:, 0]                 # degenerate triangles (an edge of zero length)
        tan_half = math.tan(math.radians(rng.uniform(5, 85)))
        want = trajectory._cone_min_depth(tri, tan_half)
        got = compiled(np.ascontiguousarray(tri), tan_half)
        assert got == want or (math.isinf(got) and math.isinf(want)), (trial, got, want)
    assert math.isinf(compiled(np.float64([[[0, 0, 5], [1, 0, 5], [0, 1, 5]]]), 1.0))   # behind the camera
