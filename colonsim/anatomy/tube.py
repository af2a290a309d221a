"""The colon wall as a triangulated tube around a centreline: rings of vertices at even arc length,
a radius field r(s, theta) with haustral folds, taeniae and low-frequency deformation."""
from __future__ import annotations

import dataclasses

import numpy as np
import trimesh

from colonsim.anatomy.centerline import Centerline, transport_frames
from colonsim.anatomy.config import AnatomyConfig
from colonsim.config import sample

AXIAL_OVER_AROUND = 0.5  # axial vertex spacing / circumferential spacing: folds need axial detail
SECTOR = 2 * np.pi / 3   # the three taeniae coli split the circumference into three sectors


def ring_counts(triangles: int, length_mm: float, radius_mm: float) -> tuple[int, int]:
    """(rings, vertices per ring) for an open tube of ``2 * around * (rings - 1)`` triangles near the
    budget, with the axial spacing AXIAL_OVER_AROUND times the circumferential spacing."""
    circumference = 2 * np.pi * radius_mm
    around = int(np.clip(round(np.sqrt(triangles * circumference * AXIAL_OVER_AROUND / (2 * length_mm))),
                         24, 2048))
    rings = max(2, int(round(triangles / (2 * around))) + 1)
    return rings, around


def build_tube(cfg: "AnatomyConfig", line: Centerline, rng: np.random.Generator
               ) -> tuple[trimesh.Trimesh, np.ndarray, Centerline]:
    """The wall mesh (inward normals), the per-vertex uv (V, 2) float32 (arc length mm, angle rad),
    and the centreline with ``radius_mm`` set to the mean wall radius around each point."""
    arc = line.arclength_mm()
    rings, around = ring_counts(cfg.triangles, arc[-1], float(np.mean(line.radius_mm)))
    s = np.linspace(0.0, arc[-1], rings)
    theta = np.arange(around) * (2 * np.pi / around)

    normal, binormal = transport_frames(line.tangents)
    centre = _interp(arc, line.points_mm, s)
    n_ring = _orthonormal(_interp(arc, normal, s), _interp(arc, line.tangents, s))
    b_ring = np.cross(_interp(arc, line.tangents, s), n_ring)
    base = np.interp(s, arc, line.radius_mm)
    seg = line.segment[np.clip(np.searchsorted(arc, s), 0, len(arc) - 1)]

    radius = wall_radius(cfg, s, theta, base, seg, rng)                 # (rings, around) mm
    ring_dir = (np.cos(theta)[None, :, None] * n_ring[:, None, :] +
                np.sin(theta)[None, :, None] * b_ring[:, None, :])       # (rings, around, 3)
    vertices = (centre[:, None, :] + radius[..., None] * ring_dir).reshape(-1, 3)

    k, j = np.meshgrid(np.arange(rings - 1), np.arange(around), indexing="ij")
    v00 = k * around + j
    v01 = k * around + (j + 1) % around
    v10 = v00 + around
    v11 = v01 + around
    # (v00, v01, v11) would face outward (e_theta x T is radial); this winding faces the axis.
    faces = np.concatenate([np.stack([v00, v11, v01], -1).reshape(-1, 3),
                            np.stack([v00, v10, v11], -1).reshape(-1, 3)])
    uv = np.stack(np.broadcast_arrays(s[:, None], theta[None, :]), -1).reshape(-1, 2)
    vertices, faces, uv = _cap_ends(vertices, faces, uv, centre, _interp(arc, line.tangents, s),
                                    radius, s)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)

    mean_r = np.interp(arc, s, radius.mean(axis=1))
    return mesh, uv.astype(np.float32), dataclasses.replace(line, radius_mm=mean_r)


CAP_DEPTH = 0.5    # the end cones reach this fraction of the end ring's mean radius beyond it


def _cap_ends(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, centre: np.ndarray,
              tangent: np.ndarray, radius: np.ndarray, s: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Close both ends of the tube with a shallow cone (the caecum is a blind pouch; at the rectum
    the scope's own entry): a camera near an end sees wall, never a hole into nothing. Adds two
    vertices and 2 * around triangles, wound like the wall (normals into the lumen)."""
    rings, around = radius.shape
    j = np.arange(around)
    out_v, out_f, out_uv = [vertices], [faces], [uv]
    n = len(vertices)
    for k, sign in ((0, -1.0), (rings - 1, 1.0)):
        apex = centre[k] + sign * CAP_DEPTH * radius[k].mean() * tangent[k]
        a, b = k * around + j, k * around + (j + 1) % around
        tri = np.stack([np.full(around, n), a, b], axis=1) if sign < 0 else \
            np.stack([np.full(around, n), b, a], axis=1)
        out_v.append(apex[None])
        out_f.append(tri)
        out_uv.append(np.array([[s[k], 0.0]]))
        n += 1
    return np.concatenate(out_v), np.concatenate(out_f), np.concatenate(out_uv)


def wall_radius(cfg: "AnatomyConfig", s: np.ndarray, theta: np.ndarray, base: np.ndarray,
                seg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(len(s), len(theta)) wall radius, mm: the segment radius ``base`` (len(s),) shaped by the
    taeniae (rounded triangle), the low-frequency deformation, and the haustral folds."""
    tri = cfg.triangularity.array()[seg]
    fold_scale = cfg.fold_scale.array()[seg]
    # the taeniae twist slowly along the colon
    twist = rng.uniform(0, SECTOR) + 0.3 * np.sin(2 * np.pi * s / rng.uniform(300, 900) + rng.uniform(0, 6.3))
    phase = theta[None, :] - twist[:, None]                                 # angle from taenia 0
    shape = 1.0 + cfg.taenia_depth * tri[:, None] * np.cos(3 * phase)       # corners at the taeniae
    shape = shape * (1.0 + cfg.wall_noise * _smooth_field(s, theta, cfg.wall_wavelength_mm, rng))
    radius = base[:, None] * shape
    return radius - _folds(cfg, s, phase, fold_scale, rng)


def _smooth_field(s: np.ndarray, theta: np.ndarray, wavelength_mm: float, rng: np.random.Generator,
                  terms: int = 16) -> np.ndarray:
    """(len(s), len(theta)) random smooth field with zero mean and unit standard deviation."""
    lam = wavelength_mm * np.exp(rng.uniform(np.log(0.5), np.log(2.0), terms))
    harmonic = rng.integers(0, 4, terms)
    phi_s, phi_t = rng.uniform(0, 2 * np.pi, (2, terms))
    amp = rng.normal(size=terms)
    field = np.zeros((len(s), len(theta)))
    var = 0.0
    for a, l, h, ps, pt in zip(amp, lam, harmonic, phi_s, phi_t):
        field += a * np.cos(2 * np.pi * s / l + ps)[:, None] * np.cos(h * theta + pt)[None, :]
        var += a * a * (0.5 if h == 0 else 0.25)
    return field / np.sqrt(max(var, 1e-12))


def _folds(cfg: "AnatomyConfig", s: np.ndarray, phase: np.ndarray, fold_scale: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """(len(s), len(theta)) inward reach of the wall relief, mm. Each sector between two taeniae
    carries its own row of semilunar folds (crescents: highest mid-sector, zero at the taeniae, crest
    bowed), and between two folds the wall of the haustral sac bulges outward (negative reach)."""
    f = cfg.folds
    depth = np.zeros_like(phase)
    sigma = f.thickness_mm / 2.355
    reach = 4 * sigma + f.arch_mm
    irr = f.irregularity
    for sector in range(3):
        u = np.mod(phase - sector * SECTOR, 2 * np.pi) / SECTOR             # 0..1 inside this sector
        inside = u < 1.0
        pos = s[0] - rng.uniform(0, 1) * sample(rng, f.spacing_mm)
        previous = None
        while True:
            spacing = sample(rng, f.spacing_mm) * (1 + irr * 0.3 * np.clip(rng.normal(), -2, 2))
            pos += max(spacing, 0.5 * f.spacing_mm[0])
            height = sample(rng, f.height_mm) * (1 + irr * 0.3 * np.clip(rng.normal(), -2, 2))
            skew = irr * 0.25 * rng.uniform(-1, 1)    # the crest's highest point moves off mid-sector
            width = 1 - irr * 0.3 * rng.uniform(0, 1)  # the crescent may not span the whole sector
            arch = f.arch_mm * (1 + irr * 0.5 * rng.uniform(-1, 1))
            if previous is not None and f.bulge_mm > 0 and f.height_mm[1] > 0:  # the sac between two folds
                rows = np.flatnonzero((s > previous) & (s < pos))
                if len(rows):
                    along = np.sin(np.pi * (s[rows] - previous) / (pos - previous))
                    across = np.where(inside[rows], np.sin(np.pi * u[rows]), 0.0)
                    depth[rows] -= f.bulge_mm * fold_scale[rows, None] * along[:, None] * across
            previous = pos
            if pos - reach > s[-1]:
                break
            rows = np.flatnonzero(np.abs(s - pos) < reach)
            if len(rows) == 0 or height <= 0:
                continue
            uu = np.clip((u[rows] - 0.5 * (1 - width) - skew * u[rows] * (1 - u[rows])) / width, 0, 1)
            crescent = np.where(inside[rows], np.sin(np.pi * uu) ** 0.7, 0.0)
            crest = pos + arch * crescent                                    # bowed crest line
            bump = np.exp(-0.5 * ((s[rows, None] - crest) / sigma) ** 2)
            depth[rows] += height * fold_scale[rows, None] * crescent * bump
    return depth


def _interp(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``y`` (M, 3) at ``xq``."""
    return np.stack([np.interp(xq, x, y[:, c]) for c in range(y.shape[1])], axis=1)


def _orthonormal(n: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    n = n - t * np.sum(n * t, axis=1, keepdims=True)
    return n / np.linalg.norm(n, axis=1, keepdims=True)
