"""Procedural colon anatomy: a tube around a smooth centreline through the named segments, with a
per-segment radius, semilunar haustral folds between the three taeniae coli, a rounded-triangular
cross-section where the taeniae pull, and low-frequency wall deformation.

The defaults (``assets/defaults/sim/anatomy.yaml``) are anchored on the CT colon of the Edinburgh Gut
Cell Atlas (model 00020) and on Gray's Anatomy; the YAML says which number comes from where.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from .centerline import SEGMENT_NAMES, Centerline, anatomical_path, straight_path
from .config import Range, assets_path, check_choice, check_range, load, read_yaml, sample
from .errors import ConfigError

if TYPE_CHECKING:  # trimesh (and scipy with it) is imported by what builds meshes, not by configs
    import trimesh

__all__ = ["SEGMENT_NAMES", "AnatomyConfig", "Centerline", "Colon", "FoldConfig", "SegmentRanges",
           "SegmentValues", "MeshConfig", "generate_colon", "load_anatomy_config"]


@dataclass(frozen=True)
class SegmentValues:
    """One number per named segment (see SEGMENT_NAMES); the unit is given by the field that holds it."""
    rectum: float
    sigmoid: float
    descending: float
    splenic_flexure: float
    transverse: float
    hepatic_flexure: float
    ascending: float
    caecum: float

    def __post_init__(self):
        for name in SEGMENT_NAMES:
            check_range(name, getattr(self, name), 0.0)

    def array(self) -> np.ndarray:
        """(8,) float64 in SEGMENT_NAMES order."""
        return np.array([getattr(self, n) for n in SEGMENT_NAMES], dtype=np.float64)


@dataclass(frozen=True)
class SegmentRanges:
    """One randomizable [lo, hi] per named segment, drawn once per colon."""
    rectum: Range
    sigmoid: Range
    descending: Range
    splenic_flexure: Range
    transverse: Range
    hepatic_flexure: Range
    ascending: Range
    caecum: Range

    def __post_init__(self):
        for name in SEGMENT_NAMES:
            check_range(name, getattr(self, name), 5.0, 80.0)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """(8,) float64, one draw per segment in SEGMENT_NAMES order."""
        return np.array([sample(rng, getattr(self, n)) for n in SEGMENT_NAMES])


@dataclass(frozen=True)
class FoldConfig:
    spacing_mm: Range       # axial distance between successive folds of one sector, mm
    height_mm: Range        # reach of a fold's crest into the lumen, mm (0 = no folds)
    thickness_mm: float     # axial width of a fold at half height, mm
    irregularity: float     # 0 regular .. 1 irregular (spacing, height, crest shape jitter)
    arch_mm: float          # axial bow of the crescent-shaped crest, mm
    bulge_mm: float         # outward bulge of the haustral sac between two folds, mm (0 without folds)

    def __post_init__(self):
        check_range("spacing_mm", self.spacing_mm, 5.0, 200.0)
        check_range("height_mm", self.height_mm, 0.0, 20.0)
        check_range("thickness_mm", self.thickness_mm, 0.5, 30.0)
        check_range("irregularity", self.irregularity, 0.0, 1.0)
        check_range("arch_mm", self.arch_mm, 0.0, 20.0)
        check_range("bulge_mm", self.bulge_mm, 0.0, 20.0)


@dataclass(frozen=True)
class AnatomyConfig:
    path: Literal["anatomical", "straight"]  # named segments in their places, or a straight tube along +z
    segments: tuple[str, ...]       # which consecutive segments to generate, in SEGMENT_NAMES order
    start_mm: float                 # start of the piece, mm of arc from the first listed segment's start
    max_length_mm: float            # length cap of the piece, mm (0 = all of the listed segments)
    segment_length_mm: SegmentValues  # centreline length of each segment, mm
    radius_mm: SegmentRanges        # wall radius between folds, mm, drawn per colon
    fold_scale: SegmentValues       # fold height multiplier per segment (0 = no folds)
    triangularity: SegmentValues    # 0 round .. 1 rounded-triangular cross-section (taeniae)
    folds: FoldConfig               # haustral folds
    taenia_depth: float             # rounded-triangle strength at triangularity 1, fraction of radius
    wall_noise: float               # low-frequency wall deformation, fraction of radius (std)
    wall_wavelength_mm: float       # typical axial wavelength of the wall deformation, mm
    bend_jitter: float              # random change of each centreline bend, fraction of its angle
    triangles: int                  # triangle budget, 20,000 .. 500,000
    polyps_per_m: float = 0.0       # sessile polyps per metre of colon (Poisson; 0 = none)
    polyp_radius_mm: Range = (3.0, 8.0)     # radius of a polyp (its base, or its sphere), mm, per polyp
    polyp_height_frac: Range = (0.6, 1.2)   # how far it stands into the lumen, fraction of its radius
    polyp_shape: str = "dome"       # dome (rises from the wall) or sphere (an icosphere set into it)

    def __post_init__(self):
        if not self.segments:
            raise ConfigError("segments", f"empty; list one or more of {list(SEGMENT_NAMES)}")
        for s in self.segments:
            check_choice("segments", s, SEGMENT_NAMES)
        idx = [SEGMENT_NAMES.index(s) for s in self.segments]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ConfigError("segments", f"{list(self.segments)} must be consecutive, in the order "
                              f"{list(SEGMENT_NAMES)}")
        check_range("start_mm", self.start_mm, 0.0)
        check_range("max_length_mm", self.max_length_mm, 0.0)
        if 0 < self.max_length_mm < 10:
            raise ConfigError("max_length_mm", f"{self.max_length_mm:g} mm is too short; use 0 (no cap) "
                              "or at least 10 mm")
        check_range("taenia_depth", self.taenia_depth, 0.0, 0.4)
        check_range("wall_noise", self.wall_noise, 0.0, 0.3)
        check_range("wall_wavelength_mm", self.wall_wavelength_mm, 10.0, 2000.0)
        check_range("bend_jitter", self.bend_jitter, 0.0, 1.0)
        check_range("triangles", self.triangles, 20_000, 500_000)
        check_range("polyps_per_m", self.polyps_per_m, 0.0, 100.0)
        check_range("polyp_radius_mm", self.polyp_radius_mm, 0.5, 30.0)
        check_range("polyp_height_frac", self.polyp_height_frac, 0.1, 2.0)
        check_choice("polyp_shape", self.polyp_shape, POLYP_SHAPES)
        for n in SEGMENT_NAMES:
            check_range(f"triangularity.{n}", getattr(self.triangularity, n), 0.0, 1.0)
            check_range(f"fold_scale.{n}", getattr(self.fold_scale, n), 0.0, 2.0)
        total = sum(getattr(self.segment_length_mm, s) for s in self.segments)
        if total <= 0:
            raise ConfigError("segment_length_mm", "the listed segments have zero total length")
        if self.start_mm >= total:
            raise ConfigError("start_mm", f"{self.start_mm:g} mm is beyond the end of the listed "
                              f"segments ({total:g} mm long)")


POLYP_SHAPES = ("dome", "sphere")


@dataclass
class Colon:
    """A colon surface with its centreline.

    ``mesh``: triangles wound so that normals face INWARD (the camera is inside), mm.
    ``uv``: (V, 2) float32 per vertex (arc length mm, angle rad), or None for imported meshes.
    ``polyps``: (N, 7) float64 per polyp: apex (mm), unit normal into the lumen, radius (mm); or None.
    """
    mesh: trimesh.Trimesh
    centerline: Centerline
    uv: np.ndarray | None
    name: str
    polyps: np.ndarray | None = None


@dataclass(frozen=True)
class MeshConfig:
    """The root of ``colonsim mesh``'s config: keys are ``anatomy.*``."""
    anatomy: AnatomyConfig


def load_anatomy_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> AnatomyConfig:
    """The defaults (assets/defaults/sim/anatomy.yaml), then the user's YAML, then ``anatomy.key=value``."""
    defaults = [{"anatomy": read_yaml(assets_path("defaults", "sim", "anatomy.yaml"))}]
    return load(MeshConfig, defaults, path, overrides).anatomy


def generate_colon(cfg: AnatomyConfig, seed: int) -> Colon:
    """A procedural colon; the same ``cfg`` and ``seed`` give the same mesh, bit for bit."""
    from .tube import build_tube  # the surface construction, kept in its own module

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0105]))
    radii = cfg.radius_mm.draw(rng)
    if cfg.path == "straight":
        line = straight_path(cfg, radii)
    else:
        line = anatomical_path(cfg, radii, rng)
    mesh, uv, line = build_tube(cfg, line, rng)
    polyps = None
    if cfg.polyps_per_m > 0:   # their own random stream: the wall is the same with or without them
        mesh, uv, polyps = add_polyps(cfg, mesh, uv, np.random.default_rng(
            np.random.SeedSequence([int(seed), 0x9017B])))
    return Colon(mesh=mesh, centerline=line, uv=uv, name=f"procedural-{cfg.path}-seed{int(seed)}",
                 polyps=polyps)


def add_polyps(cfg: AnatomyConfig, mesh, uv: np.ndarray, rng: np.random.Generator):
    """Sessile polyps on the wall of a procedural colon, at random wall vertices at least 40 mm from
    either end. Their count is Poisson with mean ``polyps_per_m`` x length; each draws a radius ``r``
    from ``polyp_radius_mm`` and stands ``h = polyp_height_frac x r`` into the lumen.

    ``polyp_shape``:

    - ``dome``: the wall itself rises into a dome of base radius ``r`` (:func:`polyp_dome`): its
      foot meets the wall tangentially, so shading and texture run on from the wall without a seam;
    - ``sphere``: an icosphere of radius ``r`` (1,280 triangles) whose centre lies ``r - h`` behind the
      wall along its normal; the part behind the wall is hidden by it, and a crease shows where
      sphere and wall meet.

    Each polyp vertex takes the (arc, angle) of its wall point. Returns (mesh, uv, polyps) as in
    :class:`Colon`; the wall's own vertices and faces come first, unchanged.
    """
    import trimesh

    length = float(uv[:, 0].max())
    margin = min(40.0, length / 4.0)
    wall = np.flatnonzero((uv[:, 0] > margin) & (uv[:, 0] < length - margin))
    n = int(rng.poisson(cfg.polyps_per_m * length / 1000.0)) if len(wall) else 0
    if n == 0:
        return mesh, uv, np.zeros((0, 7))
    ball = trimesh.creation.icosphere(subdivisions=3)
    normals = np.asarray(mesh.vertex_normals)   # into the lumen: the tube is wound inward
    grid = WallGrid(mesh.vertices, uv) if cfg.polyp_shape == "dome" else None
    vertices, faces, uvs, polyps = [mesh.vertices], [mesh.faces], [uv], []
    offset = len(mesh.vertices)
    for _ in range(n):
        k = int(wall[rng.integers(len(wall))])
        r = sample(rng, cfg.polyp_radius_mm)
        h = sample(rng, cfg.polyp_height_frac) * r
        normal = normals[k] / max(float(np.linalg.norm(normals[k])), 1e-12)
        if grid is not None:
            v, f, v_uv = polyp_dome(grid, k, normal, r, h)
        else:
            centre = mesh.vertices[k] + normal * (h - r)
            v, f, v_uv = centre + r * ball.vertices, ball.faces, np.repeat(uv[k][None], len(ball.vertices), 0)
        vertices.append(v)
        faces.append(f + offset)
        uvs.append(v_uv)
        polyps.append(np.concatenate([mesh.vertices[k] + h * normal, normal, [r]]))
        offset += len(v)
    out = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    return out, np.concatenate(uvs).astype(np.float32), np.array(polyps)


DOME_SINK_MM = 0.1    # the dome's foot lies this far behind the wall, so that the wall hides its rim
DOME_RINGS = 16       # rings of the dome's polar grid
DOME_AROUND = 48      # vertices per ring


class WallGrid:
    """The tube wall of :func:`~colonsim.tube.build_tube` as a surface over (arc, angle): the
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


def polyp_dome(grid: WallGrid, k: int, normal: np.ndarray, r: float, h: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sessile polyp as a raised patch of the wall around grid vertex ``k``: a polar grid of base
    radius ``r`` mm laid on the wall, each point lifted along ``normal`` (the unit wall normal at
    ``k``) by ``(h + sink) * dome_profile(t) - sink``, so the apex stands ``h`` mm into the lumen and
    the foot ``DOME_SINK_MM`` behind the wall. Returns (vertices, faces wound toward the lumen, uv)."""
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
    t = (np.arange(1, DOME_RINGS + 1) / DOME_RINGS) ** 0.8                  # denser towards the foot
    phi = np.arange(DOME_AROUND) * (2.0 * np.pi / DOME_AROUND)
    rho = r * t[:, None]
    s = s0 + rho * np.cos(phi)[None, :] / mm_per_s
    theta = th0 + rho * np.sin(phi)[None, :] / mm_per_rad
    s_all = np.concatenate([[s0], s.ravel()])
    th_all = np.mod(np.concatenate([[th0], theta.ravel()]), 2.0 * np.pi)
    base = grid.at(s_all, th_all)
    lift = (h + DOME_SINK_MM) * dome_profile(np.concatenate([[0.0], np.repeat(t, DOME_AROUND)])) - DOME_SINK_MM
    # Lifted along the wall's normal at the apex, one direction for all: lifting along the local
    # normals would fold the dome over itself where it spans a valley between folds.
    vertices = base + lift[:, None] * normal
    a = np.arange(DOME_AROUND)
    b = (a + 1) % DOME_AROUND
    faces = [np.stack([np.zeros(DOME_AROUND, int), 1 + a, 1 + b], 1)]
    for q in range(DOME_RINGS - 1):
        inner, outer = 1 + q * DOME_AROUND, 1 + (q + 1) * DOME_AROUND
        faces += [np.stack([inner + a, outer + a, outer + b], 1), np.stack([inner + a, outer + b, inner + b], 1)]
    faces = np.concatenate(faces)
    tri = vertices[faces]
    facing = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) @ normal
    if np.sum(facing) < 0:                     # wind the dome like the wall: normals into the lumen
        faces = faces[:, ::-1]
    return vertices, faces, np.stack([s_all, th_all], 1)
