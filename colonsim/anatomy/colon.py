"""Procedural colon anatomy: a tube around a smooth centreline through the named segments, with a
per-segment radius, semilunar haustral folds between the three taeniae coli, a rounded-triangular
cross-section where the taeniae pull, and low-frequency wall deformation.

The defaults (``assets/defaults/sim/anatomy.yaml``) are anchored on the CT colon of the Edinburgh Gut
Cell Atlas (model 00020) and on Gray's Anatomy; the YAML says which number comes from where.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from colonsim.anatomy.centerline import SEGMENT_NAMES, Centerline, anatomical_path, straight_path
from colonsim.anatomy.config import (  # noqa: F401 (re-exported: the anatomy config's public names)
    PARIS_TYPES,
    POLYP_SHAPES,
    AnatomyConfig,
    FoldConfig,
    MeshConfig,
    SegmentRanges,
    SegmentValues,
    load_anatomy_config,
)
from colonsim.anatomy.tube import build_tube
from colonsim.config import sample

if TYPE_CHECKING:  # trimesh (and scipy with it) is imported by what builds meshes, not by configs
    import trimesh

__all__ = ["SEGMENT_NAMES", "AnatomyConfig", "Centerline", "Colon", "FoldConfig", "SegmentRanges",
           "SegmentValues", "MeshConfig", "generate_colon", "load_anatomy_config"]




@dataclass
class Colon:
    """A colon surface with its centreline.

    ``mesh``: triangles wound so that normals face INWARD (the camera is inside), mm.
    ``uv``: (V, 2) float32 per vertex (arc length mm, angle rad), or None for imported meshes.
    ``polyps``: (N, 7) float64 per polyp: apex (mm), unit normal into the lumen, radius (mm); or None.
    ``polyp_types``: (N,) int8 per polyp, its Paris type as an index of PARIS_TYPES (Ip, Is, IIa).
    ``vertex_polyp``: (V,) int32 per vertex, the polyp it belongs to, -1 for the wall; or None.
    ``folds``: the haustral folds of a procedural colon (:func:`colonsim.anatomy.tube.fold_list`).
    """
    mesh: trimesh.Trimesh
    centerline: Centerline
    uv: np.ndarray | None
    name: str
    polyps: np.ndarray | None = None
    polyp_types: np.ndarray | None = None
    vertex_polyp: np.ndarray | None = None
    folds: list | None = None


def generate_colon(cfg: AnatomyConfig, seed: int) -> Colon:
    """A procedural colon; the same ``cfg`` and ``seed`` give the same mesh, bit for bit."""

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0105]))
    radii = cfg.radius_mm.draw(rng)
    if cfg.path == "straight":
        line = straight_path(cfg, radii)
    else:
        line = anatomical_path(cfg, radii, rng)
    folds: list = []
    mesh, uv, line = build_tube(cfg, line, rng, folds)
    polyps = types = None
    vertex_polyp = np.full(len(mesh.vertices), -1, np.int32)
    if cfg.polyps_per_m > 0:   # their own random streams: the wall is the same with or without them
        # (the types have a stream of their own: a colon of sessile polyps only is as it was before types)
        mesh, uv, polyps, types, vertex_polyp = add_polyps(
            cfg, mesh, uv, np.random.default_rng(np.random.SeedSequence([int(seed), 0x9017B])),
            np.random.default_rng(np.random.SeedSequence([int(seed), 0x9017B, 1])))
    return Colon(mesh=mesh, centerline=line, uv=uv, name=f"procedural-{cfg.path}-seed{int(seed)}",
                 polyps=polyps, polyp_types=types, vertex_polyp=vertex_polyp, folds=folds)


def add_polyps(cfg: AnatomyConfig, mesh, uv: np.ndarray, rng: np.random.Generator,
               rng_type: np.random.Generator | None = None):
    """Polyps on the wall of a procedural colon, at random wall vertices at least 40 mm from
    either end. Their count is Poisson with mean ``polyps_per_m`` x length; each draws a radius ``r``
    from ``polyp_radius_mm`` and stands ``h = polyp_height_frac x r`` into the lumen.

    ``polyp_shape``:

    - ``dome``: the wall itself rises into the polyp, its foot meeting the wall tangentially, so
      shading and texture run on from the wall without a seam. Its Paris type is drawn from
      ``polyp_types`` (from ``rng_type``): 0-Is, a dome of base radius ``r`` and height ``h``
      (:func:`polyp_dome`); 0-IIa, a flat plaque of base radius ``r``, ``min(0.3 r, 2.4)`` mm high
      (:func:`plaque_profile`); 0-Ip, a round head of radius ``0.75 r`` on a stalk of a third of
      the head's width, standing ``h`` + the head's diameter (:func:`polyp_stalked`);
    - ``sphere``: an icosphere of radius ``r`` (1,280 triangles) whose centre lies ``r - h`` behind the
      wall along its normal; the part behind the wall is hidden by it, and a crease shows where
      sphere and wall meet.

    Each polyp vertex takes the (arc, angle) of its wall point. Returns (mesh, uv, polyps, types,
    vertex_polyp) as in :class:`Colon`; the wall's own vertices and faces come first, unchanged.
    """
    import trimesh

    length = float(uv[:, 0].max())
    margin = min(40.0, length / 4.0)
    wall = np.flatnonzero((uv[:, 0] > margin) & (uv[:, 0] < length - margin))
    n = int(rng.poisson(cfg.polyps_per_m * length / 1000.0)) if len(wall) else 0
    n_wall = len(mesh.vertices)
    if n == 0:
        return mesh, uv, np.zeros((0, 7)), np.zeros(0, np.int8), np.full(n_wall, -1, np.int32)
    if rng_type is None:
        rng_type = np.random.default_rng(0)
    types = rng_type.choice(len(PARIS_TYPES), size=n, p=cfg.polyp_types.array()).astype(np.int8)
    if cfg.polyp_shape != "dome":
        types[:] = PARIS_TYPES.index("Is")
    ball = trimesh.creation.icosphere(subdivisions=3)
    normals = np.asarray(mesh.vertex_normals)   # into the lumen: the tube is wound inward
    grid = WallGrid(mesh.vertices, uv) if cfg.polyp_shape == "dome" else None
    vertices, faces, uvs, polyps, owner = [mesh.vertices], [mesh.faces], [uv], [], [np.full(n_wall, -1, np.int32)]
    offset = len(mesh.vertices)
    for q in range(n):
        k = int(wall[rng.integers(len(wall))])
        r = sample(rng, cfg.polyp_radius_mm)
        h = sample(rng, cfg.polyp_height_frac) * r
        normal = normals[k] / max(float(np.linalg.norm(normals[k])), 1e-12)
        kind = PARIS_TYPES[types[q]]
        if grid is not None and kind == "Ip":
            v, f, v_uv, h = polyp_stalked(grid, k, normal, r, h)
        elif grid is not None and kind == "IIa":
            h = min(0.3 * r, IIA_MAX_HEIGHT_MM)
            v, f, v_uv = polyp_dome(grid, k, normal, r, h, plaque_profile)
        elif grid is not None:
            v, f, v_uv = polyp_dome(grid, k, normal, r, h)
        else:
            centre = mesh.vertices[k] + normal * (h - r)
            v, f, v_uv = centre + r * ball.vertices, ball.faces, np.repeat(uv[k][None], len(ball.vertices), 0)
        vertices.append(v)
        faces.append(f + offset)
        uvs.append(v_uv)
        polyps.append(np.concatenate([mesh.vertices[k] + h * normal, normal, [r]]))
        owner.append(np.full(len(v), q, np.int32))
        offset += len(v)
    out = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    return out, np.concatenate(uvs).astype(np.float32), np.array(polyps), types, np.concatenate(owner)


DOME_SINK_MM = 0.1    # the dome's foot lies this far behind the wall, so that the wall hides its rim
DOME_RINGS = 16       # rings of the dome's polar grid
DOME_AROUND = 48      # vertices per ring
IIA_MAX_HEIGHT_MM = 2.4   # a flat (0-IIa) polyp stands at most this high: Paris 0-IIa is under ~2.5 mm


class WallGrid:
    """The tube wall of :func:`~colonsim.anatomy.tube.build_tube` as a surface over (arc, angle): the
    vertices are ``rings x around`` in ring order (then the two end-cap apexes), so the wall point at
    any (arc, angle) lies on the triangle of the grid cell around it."""

    def __init__(self, vertices: np.ndarray, uv: np.ndarray):
        self.around = int(np.flatnonzero(uv[:, 0] != uv[0, 0])[0])
        self.rings = (len(vertices) - 2) // self.around
        m = self.rings * self.around
        self.points = np.asarray(vertices[:m], np.float64).reshape(self.rings, self.around, 3)
        self.s = np.asarray(uv[:m:self.around, 0], np.float64)
        self.ds = float(self.s[1] - self.s[0])
        self.dtheta = 2.0 * np.pi / self.around

    def at(self, s: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Wall points (..., 3) at arc ``s`` (mm) and angle ``theta`` (rad)."""
        x = np.clip((s - self.s[0]) / self.ds, 0.0, self.rings - 1 - 1e-9)
        y = np.mod(theta, 2.0 * np.pi) / self.dtheta
        i, j = np.floor(x).astype(int), np.floor(y).astype(int) % self.around
        fx, fy = (x - i)[..., None], (y - np.floor(y))[..., None]
        j1 = (j + 1) % self.around
        p = self.points
        # The cell's two triangles share the diagonal (i, j)-(i+1, j+1), as build_tube winds them.
        return np.where(fy >= fx,
                        p[i, j] + fy * (p[i, j1] - p[i, j]) + fx * (p[i + 1, j1] - p[i, j1]),
                        p[i, j] + fx * (p[i + 1, j] - p[i, j]) + fy * (p[i + 1, j1] - p[i + 1, j]))


def dome_profile(t: np.ndarray) -> np.ndarray:
    """Height of the dome over its base, as a fraction of its apex height, at ``t`` = distance from
    the axis / base radius: (1 - t^2.5)^1.5, round on top and meeting the wall tangentially at t = 1."""
    return (1.0 - np.clip(t, 0.0, 1.0) ** 2.5) ** 1.5


def plaque_profile(t: np.ndarray) -> np.ndarray:
    """The flat (0-IIa) polyp's profile: (1 - t^4)^2, a plateau whose edge slopes down to meet the
    wall tangentially at t = 1."""
    return (1.0 - np.clip(t, 0.0, 1.0) ** 4) ** 2


def _polar_base(grid: WallGrid, k: int, r: float, t: np.ndarray):
    """The polar grid of base radius ``r`` around grid vertex ``k``, laid on the wall: (s, theta) of
    the centre then of each ring ``t`` (fractions of r) x DOME_AROUND directions, the wall points
    there, the centre point and the two unit wall directions (along the arc, around)."""
    i, j = divmod(k, grid.around)
    i = int(np.clip(i, 0, grid.rings - 2))
    s0, th0 = grid.s[i], j * grid.dtheta
    # Wall mm per arc mm and per radian, as chords across the base (a fold under it lengthens them);
    # the wall's local radius, from a short chord, sets the angle that the base spans.
    p0 = grid.points[i, j]
    step = np.array([-r, r])
    ends = grid.at(s0 + step, np.full(2, th0))
    mm_per_s = max(np.linalg.norm(ends[1] - ends[0]) / (2 * r), 0.2)
    radius = max(float(np.linalg.norm(grid.at(s0, th0 + 0.05) - p0)) / 0.05, 1.0)
    ends = grid.at(np.full(2, s0), th0 + step / radius)
    mm_per_rad = max(np.linalg.norm(ends[1] - ends[0]) * radius / (2 * r), 0.2 * radius)
    phi = np.arange(DOME_AROUND) * (2.0 * np.pi / DOME_AROUND)
    rho = r * t[:, None]
    s = s0 + rho * np.cos(phi)[None, :] / mm_per_s
    theta = th0 + rho * np.sin(phi)[None, :] / mm_per_rad
    s_all = np.concatenate([[s0], s.ravel()])
    th_all = np.mod(np.concatenate([[th0], theta.ravel()]), 2.0 * np.pi)
    e_s = grid.at(np.array([s0 + 1.0]), np.array([th0]))[0] - p0
    e_t = grid.at(np.array([s0]), np.array([th0 + 1.0 / radius]))[0] - p0
    return s_all, th_all, grid.at(s_all, th_all), p0, e_s, e_t


def _polar_faces(rings: int, vertices: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Faces of a polar grid (the centre, then ``rings`` rings of DOME_AROUND), wound so that the
    surface faces the lumen (along ``normal``) on the whole."""
    a = np.arange(DOME_AROUND)
    b = (a + 1) % DOME_AROUND
    faces = [np.stack([np.zeros(DOME_AROUND, int), 1 + a, 1 + b], 1)]
    for q in range(rings - 1):
        inner, outer = 1 + q * DOME_AROUND, 1 + (q + 1) * DOME_AROUND
        faces += [np.stack([inner + a, outer + a, outer + b], 1), np.stack([inner + a, outer + b, inner + b], 1)]
    faces = np.concatenate(faces)
    tri = vertices[faces]
    facing = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) @ normal
    if np.sum(facing) < 0:                     # wind like the wall: normals into the lumen
        faces = faces[:, ::-1]
    return faces


def polyp_dome(grid: WallGrid, k: int, normal: np.ndarray, r: float, h: float, profile=dome_profile
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sessile polyp as a raised patch of the wall around grid vertex ``k``: a polar grid of base
    radius ``r`` mm laid on the wall, each point lifted along ``normal`` (the unit wall normal at
    ``k``) by ``(h + sink) * profile(t) - sink``, so the apex stands ``h`` mm into the lumen and
    the foot ``DOME_SINK_MM`` behind the wall. Returns (vertices, faces wound toward the lumen, uv)."""
    t = (np.arange(1, DOME_RINGS + 1) / DOME_RINGS) ** 0.8                  # denser towards the foot
    s_all, th_all, base, _, _, _ = _polar_base(grid, k, r, t)
    lift = (h + DOME_SINK_MM) * profile(np.concatenate([[0.0], np.repeat(t, DOME_AROUND)])) - DOME_SINK_MM
    # Lifted along the wall's normal at the apex, one direction for all: lifting along the local
    # normals would fold the dome over itself where it spans a valley between folds.
    vertices = base + lift[:, None] * normal
    return vertices, _polar_faces(DOME_RINGS, vertices, normal), np.stack([s_all, th_all], 1)


STALK_RINGS = (8, 3, 5)    # rings of a pedunculated polyp's head, stalk and foot: as many as a dome


def polyp_stalked(grid: WallGrid, k: int, normal: np.ndarray, r: float, h: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A pedunculated (0-Ip) polyp at grid vertex ``k``: a surface of revolution about ``normal``
    of a round head (radius ``0.75 r``) on a stalk (radius a third of the head's), ``h`` mm long
    from the wall to the head, whose foot flares out to ``2.2`` stalk radii and meets the wall
    tangentially, ``DOME_SINK_MM`` behind it (foot rings lie on the wall, the head and stalk in the
    wall's tangent plane at ``k``). Returns (vertices, faces, uv, apex height over the wall)."""
    rh = 0.75 * r
    rs = rh / 3.0
    rf = 2.2 * rs
    stalk = max(h, 1.5 * rs)
    foot_h = 0.8 * rs                                       # where the flare meets the stalk
    apex_h = stalk + 2.0 * rh
    zc = apex_h - rh
    # The profile (rho, z) from the apex down to the foot; polar rings after the centre point.
    a_neck = np.pi - np.arcsin(rs / rh)
    alpha = np.linspace(0.0, a_neck, STALK_RINGS[0] + 1)[1:]
    rho = [rh * np.sin(alpha)]
    z = [zc + rh * np.cos(alpha)]
    z_neck = z[0][-1]
    zs = np.linspace(z_neck, foot_h, STALK_RINGS[1] + 1)[1:]
    rho.append(rs * (1.0 + 0.15 * (z_neck - zs) / max(z_neck - foot_h, 1e-6)))
    z.append(zs)
    rs_low = rho[-1][-1]
    tf = np.linspace(0.0, 1.0, STALK_RINGS[2] + 1)[1:]
    rho.append(rs_low + (rf - rs_low) * (1.0 - (1.0 - tf) ** 2))   # a fillet: steep at the stalk ...
    z.append((foot_h + DOME_SINK_MM) * (1.0 - tf) ** 2 - DOME_SINK_MM)   # ... flat at the wall
    rho, z = np.concatenate(rho), np.concatenate(z)
    s_all, th_all, base, p0, e_s, e_t = _polar_base(grid, k, rf, rho / rf)
    e1 = e_s - normal * (e_s @ normal)
    e1 /= max(np.linalg.norm(e1), 1e-12)
    e2 = np.cross(normal, e1)
    if e2 @ e_t < 0:
        e2 = -e2
    phi = np.arange(DOME_AROUND) * (2.0 * np.pi / DOME_AROUND)
    rho_all = np.concatenate([[0.0], np.repeat(rho, DOME_AROUND)])
    z_all = np.concatenate([[apex_h], np.repeat(z, DOME_AROUND)])
    phi_all = np.concatenate([[0.0], np.tile(phi, len(rho))])
    plane = p0 + rho_all[:, None] * (np.cos(phi_all)[:, None] * e1 + np.sin(phi_all)[:, None] * e2)
    # The foot follows the wall (it meets it there); from the foot's top up, the tangent plane.
    w = np.clip(z_all / foot_h, 0.0, 1.0)[:, None]
    vertices = (1.0 - w) * base + w * plane + z_all[:, None] * normal
    faces = _polar_faces(len(rho), vertices, normal)
    return vertices, faces, np.stack([s_all, th_all], 1), float(apex_h)

