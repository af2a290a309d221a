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


def build_tube(cfg: "AnatomyConfig", line: Centerline, rng: np.random.Generator, folds: list | None = None
               ) -> tuple[trimesh.Trimesh, np.ndarray, Centerline]:
    """The wall mesh (inward normals), the per-vertex uv (V, 2) float32 (arc length mm, angle rad),
    and the centreline with ``radius_mm`` set to the mean wall radius around each point.
    ``folds``: the haustral folds (:func:`fold_list`) are appended to it."""
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

    radius = wall_radius(cfg, s, theta, base, seg, rng, folds)          # (rings, around) mm
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
                seg: np.ndarray, rng: np.random.Generator, folds: list | None = None) -> np.ndarray:
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
    return radius - _folds(cfg, s, phase, fold_scale, rng, folds)


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


def fold_list(cfg: "AnatomyConfig", s0: float, s1: float, rng: np.random.Generator) -> list[dict]:
    """The haustral folds of a wall from arc ``s0`` to ``s1`` mm, drawn sector by sector: one dict
    per fold with its ``sector`` (0..2), crest position ``pos_mm``, ``height_mm`` (before the
    segment's fold_scale), ``thickness_mm``, angular span ``u0``..``u1`` inside its sector (0..1,
    a partial fold when the span is under 1), ``skew``, ``arch_mm``, ``wobble`` (phase and
    amplitude of the crest height along the fold), and ``branch`` (None, or the fork point
    ``fork`` in 0..1 of the span, the side it runs to, and ``offset_mm``: how far along the colon
    the branch ends; the distance to the next fold of the sector for a branch that joins it)."""
    f = cfg.folds
    irr = f.irregularity
    folds: list[dict] = []
    for sector in range(3):
        pos = s0 - rng.uniform(0, 1) * sample(rng, f.spacing_mm)
        row: list[dict] = []
        while True:
            spacing = sample(rng, f.spacing_mm) * (1 + irr * 0.3 * np.clip(rng.normal(), -2, 2))
            pos += max(spacing, 0.5 * f.spacing_mm[0])
            height = sample(rng, f.height_mm) * (1 + irr * 0.3 * np.clip(rng.normal(), -2, 2))
            skew = irr * 0.25 * rng.uniform(-1, 1)    # the crest's highest point moves off mid-sector
            span = sample(rng, f.completeness)         # a partial fold spans part of the sector ...
            start = rng.uniform(0, 1 - span)           # ... anywhere in it, tapering out at both ends
            arch = f.arch_mm * (1 + irr * 0.5 * rng.uniform(-1, 1))
            thickness = sample(rng, f.thickness_mm)
            wobble = (rng.uniform(0, 2 * np.pi), irr * 0.35 * rng.uniform(0, 1))
            branch = None
            if rng.random() < f.merge_probability:
                branch = {"fork": rng.uniform(0.2, 0.6), "side": 1 if rng.random() < 0.5 else -1,
                          "join": bool(rng.random() < 0.6), "height": rng.uniform(0.5, 0.9)}
            row.append({"sector": sector, "pos_mm": float(pos), "height_mm": float(height),
                        "thickness_mm": float(thickness), "u0": float(start), "u1": float(start + span),
                        "skew": float(skew), "arch_mm": float(arch), "wobble": wobble, "branch": branch})
            if pos - (2 * thickness / 2.355 * 2 + arch) > s1:
                break
        for a, b in zip(row[:-1], row[1:]):   # a branch joins the next fold, or splits off a third of the way
            if a["branch"] is not None:
                gap = b["pos_mm"] - a["pos_mm"]
                a["branch"]["offset_mm"] = float(gap if a["branch"]["join"] else 0.35 * gap)
        if row and row[-1]["branch"] is not None:
            row[-1]["branch"]["offset_mm"] = float(0.35 * np.mean(f.spacing_mm))
        folds += row
    return folds


def _folds(cfg: "AnatomyConfig", s: np.ndarray, phase: np.ndarray, fold_scale: np.ndarray,
           rng: np.random.Generator, record: list | None = None) -> np.ndarray:
    """(len(s), len(theta)) inward reach of the wall relief, mm. Each sector between two taeniae
    carries its own row of semilunar folds (:func:`fold_list`: crescents, zero at the taeniae or,
    for a partial fold, at the ends of its span, crest bowed), some with a branch that runs off
    obliquely to join the next fold or ends between them; between two folds the wall of the
    haustral sac bulges outward (negative reach). ``record``: the fold list is appended to it."""
    f = cfg.folds
    depth = np.zeros_like(phase)
    folds = fold_list(cfg, float(s[0]), float(s[-1]), rng)
    if record is not None:
        record.extend(folds)
    if f.height_mm[1] <= 0:
        return depth
    sectors = [np.mod(phase - sector * SECTOR, 2 * np.pi) / SECTOR for sector in range(3)]  # 0..1 inside
    for k, fold in enumerate(folds):
        u = sectors[fold["sector"]]
        inside = u < 1.0
        pos, sigma = fold["pos_mm"], fold["thickness_mm"] / 2.355
        nxt = folds[k + 1] if k + 1 < len(folds) and folds[k + 1]["sector"] == fold["sector"] else None
        if nxt is not None and f.bulge_mm > 0:   # the sac between this fold and the next
            rows = np.flatnonzero((s > pos) & (s < nxt["pos_mm"]))
            if len(rows):
                along = np.sin(np.pi * (s[rows] - pos) / (nxt["pos_mm"] - pos))
                across = np.where(inside[rows], np.sin(np.pi * u[rows]), 0.0)
                depth[rows] -= f.bulge_mm * fold_scale[rows, None] * along[:, None] * across
        if fold["height_mm"] <= 0:
            continue
        width = fold["u1"] - fold["u0"]
        branch = fold["branch"]
        reach = 4 * sigma + abs(fold["arch_mm"]) + (branch["offset_mm"] if branch else 0.0)
        rows = np.flatnonzero((s > pos - reach) & (s < pos + reach))
        if len(rows) == 0:
            continue
        ur = u[rows]
        uu = np.clip((ur - fold["u0"] - fold["skew"] * ur * (1 - ur)) / width, 0, 1)
        crescent = np.where(inside[rows], np.sin(np.pi * uu) ** 0.7, 0.0)
        phi, amp = fold["wobble"]
        height = fold["height_mm"] * (1 + amp * np.sin(2 * np.pi * uu + phi))   # the crest rises and falls
        crest = pos + fold["arch_mm"] * crescent                                # bowed crest line
        bump = np.exp(-0.5 * ((s[rows, None] - crest) / sigma) ** 2)
        depth[rows] += fold_scale[rows, None] * height * crescent * bump
        if branch is not None:
            # From the fork the branch leaves the crest and runs obliquely to the end of the span
            # on its side, rising and tapering out again: a Y where two folds merge or one splits.
            fork = branch["fork"] if branch["side"] > 0 else 1 - branch["fork"]
            t = (uu - fork) / (1 - fork) if branch["side"] > 0 else (fork - uu) / fork
            t = np.clip(t, 0, 1)
            ramp = t * t * (3 - 2 * t)
            b_crest = crest + branch["offset_mm"] * ramp
            b_height = branch["height"] * height * np.sin(np.pi * np.clip(0.15 + 0.85 * t, 0, 1)) ** 0.7 * (t > 0)
            b_bump = np.exp(-0.5 * ((s[rows, None] - b_crest) / (0.8 * sigma)) ** 2)
            depth[rows] += fold_scale[rows, None] * np.where(inside[rows], b_height, 0.0) * b_bump
    return depth


def _interp(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Linear interpolation of the rows of ``y`` (M, 3) at ``xq``."""
    return np.stack([np.interp(xq, x, y[:, c]) for c in range(y.shape[1])], axis=1)


def _orthonormal(n: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    n = n - t * np.sum(n * t, axis=1, keepdims=True)
    return n / np.linalg.norm(n, axis=1, keepdims=True)
