"""Camera poses inside the lumen: along the centreline, offset from it, looking down the lumen.

A pose is a pure function of ``(colon, cfg, seed, index)`` (:func:`pose_for_frame`). Frames are
grouped into sequences of ``sequence_length`` frames (1 = independent frames). A sequence starts at
an arc position drawn away from the ends and advances by a drawn step per frame; the lateral offset
(a fraction of the local clear radius, the distance from the centreline to the nearest wall), the
view direction (an angle to the lumen axis, drawn from ``view_angle_deg``, or from
``wall_view_angle_deg`` with probability ``wall_view_probability``, at a uniform azimuth) and the
roll are drawn at keyframes every ``keyframe_interval`` frames and blended with a smoothstep, so
that position and orientation change smoothly and stop changing at each keyframe.

Polyp views (colons generated with polyps): with probability ``polyp_view_probability`` a sequence
looks at one polyp instead, from a drawn distance along a ray within ``polyp_view_angle_deg`` of
its normal (approaching it over the sequence), aimed near its apex; such a camera must also lie
within the clear radius of its nearest centreline point, so that it is surely in the lumen.

Clearance: every frame of a sequence is checked against the mesh; the camera centre must be at
least ``min_wall_distance_mm`` from the wall (exact point-triangle distances), and no surface point
inside the cone of ``clearance_fov_deg`` may lie nearer than ``min_depth_mm`` in z-depth (exact, per
triangle: :func:`_cone_min_depth`). A sequence that fails anywhere is redrawn from the same rng, up
to ``max_attempts`` times, then centred on-axis sequences are tried as often; then MeshError.

Poses are camera-to-world (4, 4) float64, mm, OpenGL axes: the camera looks along its -z, y up.
"""
from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass

import numpy as np

from colonsim.anatomy.centerline import transport_frames
from colonsim.config import Range, check_range, sample
from colonsim.errors import InputError, MeshError
from colonsim.render import kernels

_CLEAR_K = 32        # nearest triangles (by centroid) searched for the clear radius of a point
_LARGE_FACTOR = 4.0  # triangles with a circumradius above this times the 25th percentile: searched always
_TAG = 0x7A1EC7      # separates the trajectory's random streams from other users of the seed


@dataclass(frozen=True)
class TrajectoryConfig:
    end_margin_mm: float          # keep the camera this far from both ends of the centreline, mm
    lateral_offset_frac: Range    # offset from the centreline, fraction of the local clear radius
    view_angle_deg: Range         # angle between the view and the lumen axis (down-the-lumen views), deg
    wall_view_probability: float  # probability of a view towards the wall instead
    wall_view_angle_deg: Range    # angle to the lumen axis of wall views, deg
    backward_probability: float   # probability that a sequence moves and looks towards the start
    roll_deg: Range               # roll around the view axis, deg
    min_wall_distance_mm: float   # smallest distance from the camera centre to the wall, mm
    min_depth_mm: float           # smallest z-depth of any surface inside the checked field of view, mm
    clearance_fov_deg: float      # full field of view checked for min_depth_mm (>= the lens's), deg
    sequence_length: int          # frames per smooth video sequence; 1 = independent frames
    step_mm: Range                # sequences: advance along the centreline per frame, mm
    keyframe_interval: int        # sequences: frames between keyframes of offset, view and roll
    max_attempts: int             # redraws of a failing sequence before centred on-axis ones
    polyp_view_probability: float = 0.0  # probability that a sequence looks at a polyp (colons with polyps)
    polyp_view_distance_mm: Range = (8.0, 30.0)  # camera to polyp apex, mm (sequences approach to the lower end)
    polyp_view_angle_deg: Range = (0.0, 50.0)    # angle between the view axis and the polyp's normal, deg

    def __post_init__(self):
        check_range("end_margin_mm", self.end_margin_mm, 0.0, 1e5)
        check_range("lateral_offset_frac", self.lateral_offset_frac, 0.0, 0.95)
        check_range("view_angle_deg", self.view_angle_deg, 0.0, 90.0)
        check_range("wall_view_probability", self.wall_view_probability, 0.0, 1.0)
        check_range("wall_view_angle_deg", self.wall_view_angle_deg, 0.0, 90.0)
        check_range("backward_probability", self.backward_probability, 0.0, 1.0)
        check_range("roll_deg", self.roll_deg, -360.0, 360.0)
        check_range("min_wall_distance_mm", self.min_wall_distance_mm, 0.0, 1e3)
        check_range("min_depth_mm", self.min_depth_mm, 0.0, 1e3)
        check_range("clearance_fov_deg", self.clearance_fov_deg, 0.0, 179.0, lo_open=True)
        check_range("sequence_length", self.sequence_length, 1, 10**7)
        check_range("step_mm", self.step_mm, 0.0, 100.0)
        check_range("keyframe_interval", self.keyframe_interval, 1, 10**6)
        check_range("max_attempts", self.max_attempts, 1, 10**4)
        check_range("polyp_view_probability", self.polyp_view_probability, 0.0, 1.0)
        check_range("polyp_view_distance_mm", self.polyp_view_distance_mm, 1.0, 200.0)
        check_range("polyp_view_angle_deg", self.polyp_view_angle_deg, 0.0, 80.0)


#: Keys of the params dict returned with every pose, in order.
PARAM_KEYS = ("traj_arc_mm", "traj_lateral_offset_mm", "traj_view_angle_deg", "traj_roll_deg",
              "traj_sequence_id", "traj_wall_distance_mm")


# ----------------------------------------------------------------------------- colon geometry


class _Geometry:
    """What the sampler needs from a colon, built once per colon: arc lengths, rotation-minimizing
    frames of the centreline, and a KD-tree over triangle centroids for exact wall distances."""

    def __init__(self, colon):
        from scipy.spatial import cKDTree

        line = colon.centerline
        self.points = np.asarray(line.points_mm, dtype=np.float64)
        self.tangents = np.asarray(line.tangents, dtype=np.float64)
        self.arc = line.arclength_mm()
        self.normals, _ = transport_frames(self.tangents)
        self.triangles = np.asarray(colon.mesh.triangles, dtype=np.float64)      # (F, 3, 3) mm
        if len(self.triangles) == 0:
            raise MeshError(f"colon {colon.name!r} has no triangles")
        centroids = self.triangles.mean(axis=1)
        radius = np.linalg.norm(self.triangles - centroids[:, None], axis=2).max(axis=1)
        # A few large triangles (a long sliver, a cap) would widen every ball query to their size:
        # they are kept out of the tree and always searched.
        big = radius > max(_LARGE_FACTOR * float(np.percentile(radius, 25)), 1e-9)
        self.large = np.flatnonzero(big)
        small = np.flatnonzero(~big)
        self.small = small
        self.circumradius = float(radius[small].max())
        self.tree = cKDTree(centroids[small])
        self.name = colon.name
        self.clear = self.nearest_distance(self.points)  # (M,) clear radius of the centreline, mm
        self.polyps = np.zeros((0, 7)) if colon.polyps is None else np.asarray(colon.polyps, np.float64)

    def frame_at(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Centreline point, unit tangent, normal, binormal and clear radius (the smaller of the two
        neighbouring points', mm) at arc length ``s`` (mm)."""
        i = int(np.clip(np.searchsorted(self.arc, s) - 1, 0, len(self.arc) - 2))
        w = (s - self.arc[i]) / max(self.arc[i + 1] - self.arc[i], 1e-12)
        p = (1 - w) * self.points[i] + w * self.points[i + 1]
        t = _unit((1 - w) * self.tangents[i] + w * self.tangents[i + 1])
        n = _unit((1 - w) * self.normals[i] + w * self.normals[i + 1])
        n = _unit(n - t * (n @ t))
        return p, t, n, _cross(t, n), float(min(self.clear[i], self.clear[i + 1]))

    def wall_distance(self, p: np.ndarray, within: float) -> float:
        """Distance from the point ``p`` (3,) to the mesh, mm, exact when it is below ``within``
        (every triangle that near is searched); inf when no triangle is that near."""
        from trimesh.triangles import closest_point

        idx = self.near_triangles(p, within)
        if len(idx) == 0:
            return math.inf
        tri = self.triangles[idx]
        q = closest_point(tri, np.broadcast_to(p, (len(tri), 3)))
        return float(np.linalg.norm(q - p, axis=1).min())

    def nearest_distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) distances of (N, 3) points to the mesh, mm, over the _CLEAR_K small triangles with
        the nearest centroids and every large one (exact on meshes of even, compact triangles)."""
        from trimesh.triangles import closest_point

        points = np.asarray(points, np.float64).reshape(-1, 3)
        k = min(_CLEAR_K, self.tree.n)
        idx = self.small[self.tree.query(points, k=k)[1].reshape(len(points), k)]
        if len(self.large):
            idx = np.concatenate([idx, np.broadcast_to(self.large, (len(points), len(self.large)))], axis=1)
        rep = np.repeat(points, idx.shape[1], axis=0)
        q = closest_point(self.triangles[idx.ravel()], rep)
        return np.linalg.norm(q - rep, axis=1).reshape(len(points), -1).min(axis=1)

    def min_depth(self, pose: np.ndarray, fov_deg: float, depth_mm: float) -> float:
        """Smallest z-depth of the surface inside the view cone (exact), searched up to ``depth_mm``
        (inf when nothing is that near)."""
        half = math.radians(fov_deg) / 2.0
        reach = depth_mm / math.cos(half)
        idx = self.near_triangles(pose[:3, 3], reach)
        if len(idx) == 0:
            return math.inf
        tri = (self.triangles[idx] - pose[:3, 3]) @ pose[:3, :3]
        compiled = _compiled_cone()
        return compiled(tri, math.tan(half)) if compiled is not None else _cone_min_depth(tri, math.tan(half))

    def near_triangles(self, p: np.ndarray, within: float) -> np.ndarray:
        """Indices of every triangle that may come within ``within`` mm of the point ``p`` (3,):
        small triangles by a ball query on their centroids, large ones (module doc) always."""
        idx = self.small[self.tree.query_ball_point(p, within + self.circumradius)]
        return np.concatenate([np.asarray(idx, np.intp), self.large]) if len(self.large) else np.asarray(idx, np.intp)


def _cross(a, b) -> np.ndarray:
    """``np.cross`` of (..., 3) arrays (the same products and differences, so the same values),
    without its axis handling, which costs more than the arithmetic on the few vectors of a pose."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _compiled_cone():
    """:func:`colonsim.render._fused.cone_min_depth` (the same values as :func:`_cone_min_depth`, 0.03
    against 0.75 ms for 300 triangles), or None without numba."""
    fused = kernels.compiled()
    return None if fused is None else fused.cone_min_depth


def warm_up() -> None:
    """Load the compiled cone test now (a render worker does it while its parent builds meshes)."""
    compiled = _compiled_cone()
    if compiled is not None:
        compiled(np.zeros((1, 3, 3)), 1.0)


def _cone_min_depth(tri: np.ndarray, tan_half: float) -> float:
    """Smallest z-depth of (F, 3, 3) camera-frame triangles (mm, OpenGL axes) inside the solid cone
    of half-angle atan(tan_half) around -z; inf when none enters it.

    The part of a triangle inside the (convex) cone is convex, so the linear depth is smallest at
    one of: a vertex inside the cone, an edge crossing the cone's surface, or the lowest point of
    the conic where the triangle's plane cuts the cone, if that lies inside the triangle.
    """
    t2 = tan_half * tan_half
    q = tri * np.array([1.0, 1.0, -1.0])                    # z = depth along the view
    z = q[..., 2]
    inside = (z > 0) & (q[..., 0] ** 2 + q[..., 1] ** 2 <= t2 * z * z)
    best = float(z[inside].min()) if inside.any() else math.inf
    # edges a + u (b - a), u in [0, 1]: x^2 + y^2 - t2 z^2 = 0, a quadratic in u, on the z > 0 nappe
    a = q.reshape(-1, 3)
    d = (np.roll(q, -1, axis=1) - q).reshape(-1, 3)
    w = np.array([1.0, 1.0, -t2])
    qa, qb, qc = (d * d * w).sum(1), 2.0 * (a * d * w).sum(1), (a * a * w).sum(1)
    disc = qb * qb - 4.0 * qa * qc
    ok = (disc >= 0) & (np.abs(qa) > 1e-12)
    if ok.any():
        root = np.sqrt(disc[ok])
        for sign in (-1.0, 1.0):
            u = (-qb[ok] + sign * root) / (2.0 * qa[ok])
            zu = a[ok, 2] + u * d[ok, 2]
            hit = (u >= 0) & (u <= 1) & (zu > 0)
            if hit.any():
                best = min(best, float(zu[hit].min()))
    # the conic: on the cone q = z (t cos phi, t sin phi, 1), the plane n.q = k gives
    # z = k / (n_z + t (n_x cos phi + n_y sin phi)), lowest at phi along +-(n_x, n_y)
    n = _cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0])
    k = (n * q[:, 0]).sum(1)
    lateral = np.hypot(n[:, 0], n[:, 1])
    s = np.where(k >= 0, 1.0, -1.0)
    g = n[:, 2] + s * tan_half * lateral
    ok = k * g > 0
    if ok.any():
        zc = k[ok] / g[ok]
        # a plane square to the axis cuts a circle: every point of it is lowest; take phi = 0
        flat = lateral[ok] <= 1e-12 * np.abs(n[ok, 2])
        cos_phi = np.where(flat, 1.0, s[ok] * n[ok, 0] / np.where(flat, 1.0, lateral[ok]))
        sin_phi = np.where(flat, 0.0, s[ok] * n[ok, 1] / np.where(flat, 1.0, lateral[ok]))
        p = np.stack([zc * tan_half * cos_phi, zc * tan_half * sin_phi, zc], axis=1)
        tk, nk = q[ok], n[ok]
        # inside the triangle: p is on the same side of every edge as the triangle's normal
        ins = np.ones(len(p), bool)
        for i in range(3):
            e = tk[:, (i + 1) % 3] - tk[:, i]
            ins &= (_cross(e, p - tk[:, i]) * nk).sum(1) >= 0
        if ins.any():
            best = min(best, float(zc[ins].min()))
    return best


_GEOMETRIES: dict[int, tuple[weakref.ref, _Geometry]] = {}


def geometry(colon) -> _Geometry:
    """What the pose sampler builds from ``colon`` once (about 0.3 s for 100k triangles), cached
    (rebuilt if that object has gone and its id is reused): a picklable object, so that one process
    can build it and hand it to others (:func:`prime`)."""
    hit = _GEOMETRIES.get(id(colon))
    if hit is not None and hit[0]() is colon:
        return hit[1]
    geom = _Geometry(colon)
    prime(colon, geom)
    return geom


def prime(colon, geom: _Geometry) -> None:
    """Use ``geom`` (from :func:`geometry` of an equal colon, e.g. in another process) as the
    geometry of ``colon``. Poses do not depend on where the geometry was built."""
    _GEOMETRIES[id(colon)] = (weakref.ref(colon, lambda _, k=id(colon): _GEOMETRIES.pop(k, None)), geom)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


# ----------------------------------------------------------------------------- sequences


@dataclass(frozen=True)
class _Plan:
    """One sequence: start arc mm, signed step mm per frame, keyframes (K, 5): offset x, offset y
    (fractions of the clear radius), view x, view y (deg, angle times azimuth direction), roll deg."""
    start_mm: float
    step_mm: float
    keys: np.ndarray


def _draw_plan(geom: _Geometry, cfg: TrajectoryConfig, rng: np.random.Generator, centred: bool) -> _Plan:
    """Draw one candidate sequence; the number of draws does not depend on the values drawn."""
    length = cfg.sequence_length
    direction = -1.0 if rng.random() < cfg.backward_probability else 1.0
    lo, hi = cfg.end_margin_mm, geom.arc[-1] - cfg.end_margin_mm
    if hi <= lo:
        raise MeshError(f"colon {geom.name!r} has a centreline {geom.arc[-1]:.0f} mm long, too short for "
                        f"trajectory.end_margin_mm={cfg.end_margin_mm:g} at both ends; lower it")
    step = sample(rng, cfg.step_mm)
    if length > 1:
        step = min(step, (hi - lo) / (length - 1))  # a long sequence slows down to fit the colon
    span = step * (length - 1)
    start = lo + (hi - lo - span) * rng.random()
    if direction < 0:
        start += span
    n_keys = (length - 1) // cfg.keyframe_interval + 2
    keys = np.empty((n_keys, 5))
    for k in range(n_keys):
        frac, phi = sample(rng, cfg.lateral_offset_frac), 2 * math.pi * rng.random()
        wall = rng.random() < cfg.wall_view_probability
        lumen_angle, wall_angle = sample(rng, cfg.view_angle_deg), sample(rng, cfg.wall_view_angle_deg)
        psi, roll = 2 * math.pi * rng.random(), sample(rng, cfg.roll_deg)
        angle = wall_angle if wall else lumen_angle
        if centred:
            frac, angle = 0.0, 0.0
        keys[k] = (frac * math.cos(phi), frac * math.sin(phi), angle * math.cos(psi), angle * math.sin(psi), roll)
    # roll changes along the shorter way round, so a sequence never spins by more than 180 deg a key
    keys[1:, 4] = keys[0, 4] + np.cumsum((np.diff(keys[:, 4]) + 180.0) % 360.0 - 180.0)
    return _Plan(start, direction * step, keys)


def _pose(geom: _Geometry, cfg: TrajectoryConfig, plan: _Plan, k: int) -> tuple[np.ndarray, dict]:
    """Frame ``k`` of a sequence: the camera-to-world pose and its recorded values."""
    u = k / cfg.keyframe_interval
    j = int(u)
    t = u - j
    w = t * t * (3 - 2 * t)
    ox, oy, vx, vy, roll = (1 - w) * plan.keys[j] + w * plan.keys[j + 1]
    s = plan.start_mm + plan.step_mm * k
    centre, tangent, normal, binormal, clear = geom.frame_at(s)
    offset = clear * (ox * normal + oy * binormal)
    axis = tangent if plan.step_mm >= 0 else -tangent
    angle = math.hypot(vx, vy)
    psi = math.atan2(vy, vx)
    a = math.radians(angle)
    forward = math.cos(a) * axis + math.sin(a) * (math.cos(psi) * normal + math.sin(psi) * binormal)
    up = binormal - forward * (binormal @ forward)
    if np.linalg.norm(up) < 1e-6:
        up = normal - forward * (normal @ forward)
    up = _unit(up)
    r = math.radians(roll)
    up = math.cos(r) * up + math.sin(r) * _cross(forward, up)   # roll about the view axis
    z = -forward
    pose = np.eye(4)
    pose[:3, 0] = _cross(up, z)
    pose[:3, 1] = up
    pose[:3, 2] = z
    pose[:3, 3] = centre + offset
    params = {"traj_arc_mm": float(s), "traj_lateral_offset_mm": float(np.linalg.norm(offset)),
              "traj_view_angle_deg": angle, "traj_roll_deg": float(roll)}
    return pose, params


@dataclass(frozen=True)
class _PolypPlan:
    """A sequence looking at one polyp: the camera on the ray from its apex along ``ray``, at
    ``far_mm`` then (sequences) closer, up to ``near_mm``; the view aimed at ``target``."""
    apex: np.ndarray
    ray: np.ndarray
    target: np.ndarray
    far_mm: float
    near_mm: float
    roll_deg: float


def _draw_polyp_plan(geom: _Geometry, cfg: TrajectoryConfig, rng: np.random.Generator) -> _PolypPlan:
    """A polyp, a viewing direction within ``polyp_view_angle_deg`` of its normal, a distance, an
    aim point near the apex (so that the polyp is not always in the image centre) and a roll."""
    row = geom.polyps[rng.integers(len(geom.polyps))]
    apex, normal, radius = row[:3], row[3:6], float(row[6])
    tilt, psi = math.radians(sample(rng, cfg.polyp_view_angle_deg)), 2 * math.pi * rng.random()
    a = _unit(_cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0]))
    b = _cross(normal, a)
    ray = math.cos(tilt) * normal + math.sin(tilt) * (math.cos(psi) * a + math.sin(psi) * b)
    far, near = sample(rng, cfg.polyp_view_distance_mm), cfg.polyp_view_distance_mm[0]
    u, phi = rng.random(), 2 * math.pi * rng.random()
    target = apex - radius * 0.5 * normal + 1.5 * radius * u * (math.cos(phi) * a + math.sin(phi) * b)
    return _PolypPlan(apex, _unit(ray), target, far, near, sample(rng, cfg.roll_deg))


def _polyp_pose(geom: _Geometry, cfg: TrajectoryConfig, plan: _PolypPlan, k: int) -> tuple[np.ndarray, dict]:
    """Frame ``k`` of a polyp sequence: the camera-to-world pose and its recorded values."""
    t = k / max(cfg.sequence_length - 1, 1)
    camera = plan.apex + plan.ray * ((1 - t) * plan.far_mm + t * plan.near_mm)
    forward = _unit(plan.target - camera)
    up = _cross(forward, plan.ray if abs(forward @ plan.ray) < 0.99 else [0.0, 0.0, 1.0])
    up = _unit(_cross(up, forward))
    r = math.radians(plan.roll_deg)
    up = math.cos(r) * up + math.sin(r) * _cross(forward, up)
    pose = np.eye(4)
    pose[:3, 0] = _cross(up, -forward)
    pose[:3, 1] = up
    pose[:3, 2] = -forward
    pose[:3, 3] = camera
    i, _ = _nearest_centreline(geom, camera)
    angle = math.degrees(math.acos(float(np.clip(abs(forward @ geom.tangents[i]), 0.0, 1.0))))
    params = {"traj_arc_mm": float(geom.arc[i]),
              "traj_lateral_offset_mm": float(np.linalg.norm(camera - geom.points[i])),
              "traj_view_angle_deg": angle, "traj_roll_deg": float(plan.roll_deg)}
    return pose, params


def _nearest_centreline(geom: _Geometry, p: np.ndarray) -> tuple[int, float]:
    """Index of the centreline point nearest to ``p`` (3,), and its distance, mm."""
    d = np.linalg.norm(geom.points - p, axis=1)
    i = int(np.argmin(d))
    return i, float(d[i])


def _inside(geom: _Geometry, pose: np.ndarray) -> bool:
    """Whether the camera is surely in the lumen: within the clear radius of its nearest centreline
    point (that ball holds no wall). Poses along the centreline are inside by construction; a
    camera placed from a polyp could otherwise end up beyond the opposite wall."""
    i, d = _nearest_centreline(geom, pose[:3, 3])
    return d <= geom.clear[i]


def _clear(geom: _Geometry, cfg: TrajectoryConfig, pose: np.ndarray) -> bool:
    """Whether a pose keeps both clearances (module doc)."""
    if geom.wall_distance(pose[:3, 3], within=cfg.min_wall_distance_mm) < cfg.min_wall_distance_mm:
        return False
    return geom.min_depth(pose, cfg.clearance_fov_deg, cfg.min_depth_mm) >= cfg.min_depth_mm


@functools.lru_cache(maxsize=8)
def _sequence(geom: _Geometry, cfg: TrajectoryConfig, seed: int, seq: int) -> tuple[tuple[np.ndarray, dict], ...]:
    """Every frame (pose, params) of sequence ``seq``: the first drawn plan whose every frame keeps
    its clearances. Cached, because the frames of a sequence are usually asked for in turn."""
    rng = np.random.default_rng(np.random.SeedSequence([_TAG, int(seed), int(seq)]))
    polyps = cfg.polyp_view_probability > 0 and len(geom.polyps) > 0
    for attempt in range(2 * cfg.max_attempts):
        at_polyp = polyps and attempt < cfg.max_attempts and rng.random() < cfg.polyp_view_probability
        if at_polyp:
            plan = _draw_polyp_plan(geom, cfg, rng)
        else:
            plan = _draw_plan(geom, cfg, rng, centred=attempt >= cfg.max_attempts)
        frames = []
        for k in range(cfg.sequence_length):
            pose, params = _polyp_pose(geom, cfg, plan, k) if at_polyp else _pose(geom, cfg, plan, k)
            if (at_polyp and not _inside(geom, pose)) or not _clear(geom, cfg, pose):
                break
            params["traj_sequence_id"] = float(seq)
            frames.append((pose, params))
        else:
            points = np.array([pose[:3, 3] for pose, _ in frames])
            # The k-nearest estimate is an upper bound (a distance to some triangle); every triangle
            # nearer than it is then searched, which makes it exact on folded and polyp-studded walls.
            for (_, params), p, bound in zip(frames, points, geom.nearest_distance(points)):
                params["traj_wall_distance_mm"] = min(float(bound), geom.wall_distance(p, float(bound)))
            return tuple(frames)
    raise _too_narrow(geom, cfg)


def _too_narrow(geom: _Geometry, cfg: TrajectoryConfig) -> MeshError:
    """The error for a colon where no sequence keeps its clearances: the measured lumen radius (the
    largest clear radius of the centreline between the end margins) beside the radius the camera
    needs in a straight lumen (its wall distance, and the view cone free up to min_depth_mm)."""
    usable = (geom.arc >= cfg.end_margin_mm) & (geom.arc <= geom.arc[-1] - cfg.end_margin_mm)
    radius = float(geom.clear[usable].max() if usable.any() else geom.clear.max())
    cone = cfg.min_depth_mm * math.tan(math.radians(cfg.clearance_fov_deg) / 2.0)
    need = max(cfg.min_wall_distance_mm, cone)
    return MeshError(
        f"the lumen of colon {geom.name!r} is too narrow for the camera: its radius is at most "
        f"{radius:.2f} mm, and the camera needs about {need:.2f} mm (trajectory.min_wall_distance_mm="
        f"{cfg.min_wall_distance_mm:g} to the wall, and min_depth_mm={cfg.min_depth_mm:g} over "
        f"clearance_fov_deg={cfg.clearance_fov_deg:g}, which needs {cone:.2f} mm); no camera path "
        f"found in {2 * cfg.max_attempts} attempts: use a wider mesh, or lower those values or "
        f"trajectory.sequence_length or lateral_offset_frac")


def pose_for_frame(colon, cfg: TrajectoryConfig, seed: int, index: int) -> tuple[np.ndarray, dict[str, float]]:
    """The camera pose of frame ``index``: a pure function of ``(colon, cfg, seed, index)``.

    colon: a :class:`colonsim.anatomy.colon.Colon` (mesh in mm, centreline).
    Returns (4, 4) float64 camera-to-world (mm, OpenGL axes: the camera looks along -z, y up) and
    the values in :data:`PARAM_KEYS`: arc position mm, lateral offset mm, view angle to the lumen
    axis deg, roll deg, sequence id, distance from the camera to the wall mm.
    """
    if index < 0:
        raise InputError(f"frame index must be >= 0, got {index}")
    seq, k = divmod(int(index), cfg.sequence_length)
    pose, params = _sequence(geometry(colon), cfg, int(seed), seq)[k]
    return pose.copy(), dict(params)
