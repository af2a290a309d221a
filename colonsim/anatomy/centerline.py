"""The colon's centreline: points, unit tangents, mean lumen radius and segment label per point.

Also the procedural centreline: a "turtle" path whose tangent turns at a set rate per piece of each
segment, so that every segment has exactly its configured length. Axes (patient frame, mm): x to the
patient's left, y anterior, z cranial; the path starts at the anus heading +z.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colonsim.anatomy.config import SEGMENT_NAMES, AnatomyConfig
from colonsim.errors import ConfigError, InputError

STEP_MM = 1.0  # spacing of the procedural centreline's points

# Bends of each segment: (fraction of the segment's length, world rotation axis, angle deg), in turn.
# The shape is the textbook frame (Gray's): sacral curve of the rectum, an anterior sigmoid loop,
# the descending colon up the left flank, the acute splenic flexure, a transverse colon that sags
# caudally and bows anteriorly, the hepatic flexure, and the ascending colon down to the caecum.
_X, _Y, _Z = np.eye(3)
_BENDS = {
    "rectum": [(0.5, _X, 20.0), (0.5, _X, -30.0)],
    "sigmoid": [(0.25, _Y, 80.0), (0.2, _Y, 0.0), (0.35, _Z, 180.0), (0.2, _Y, 80.0)],
    "descending": [(0.5, _X, 8.0), (0.5, _X, -8.0)],
    "splenic_flexure": [(1.0, _Y, -140.0)],
    "transverse": [(0.3, _Z, -25.0), (0.4, _Y, 100.0), (0.3, _Z, 25.0)],
    "hepatic_flexure": [(1.0, _Y, -140.0)],
    "ascending": [(1.0, _X, 8.0)],
    "caecum": [(1.0, _X, 0.0)],
}


@dataclass(frozen=True)
class Centerline:
    """points_mm (M, 3) float64; tangents (M, 3) float64 unit; radius_mm (M,) float64 mean lumen radius
    around each point (NaN where unknown); segment (M,) int16 index into SEGMENT_NAMES, -1 unknown."""
    points_mm: np.ndarray
    tangents: np.ndarray
    radius_mm: np.ndarray
    segment: np.ndarray

    def __post_init__(self):
        m = len(self.points_mm)
        if self.points_mm.shape != (m, 3) or self.tangents.shape != (m, 3) or \
                self.radius_mm.shape != (m,) or self.segment.shape != (m,):
            raise InputError(f"centreline arrays disagree in shape: points {self.points_mm.shape}, "
                             f"tangents {self.tangents.shape}, radius {self.radius_mm.shape}, "
                             f"segment {self.segment.shape}; expected (M,3), (M,3), (M,), (M,)")
        if m < 2:
            raise InputError(f"a centreline needs at least 2 points, got {m}")

    @classmethod
    def from_points(cls, points_mm: np.ndarray, radius_mm: np.ndarray | None = None,
                    segment: np.ndarray | None = None) -> "Centerline":
        """Tangents by central differences; unknown radius (NaN) and segment (-1) unless given."""
        p = np.asarray(points_mm, dtype=np.float64)
        m = len(p)
        return cls(p, tangents_of(p),
                   np.full(m, np.nan) if radius_mm is None else np.asarray(radius_mm, np.float64),
                   np.full(m, -1, np.int16) if segment is None else np.asarray(segment, np.int16))

    def arclength_mm(self) -> np.ndarray:
        """(M,) float64 cumulative arc length from the first point, mm."""
        d = np.linalg.norm(np.diff(self.points_mm, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(d)])

    def scaled(self, scale: np.ndarray) -> "Centerline":
        """The centreline with points multiplied by a (3,) scale (radius becomes unknown)."""
        return Centerline.from_points(self.points_mm * scale, None, self.segment)

    def save_npz(self, path: str | Path) -> None:
        np.savez(path, points_mm=self.points_mm, tangents=self.tangents, radius_mm=self.radius_mm,
                 segment=self.segment, segment_names=np.array(SEGMENT_NAMES))

    @classmethod
    def load(cls, path: str | Path) -> "Centerline":
        """Read npz (``points_mm``/``points``), JSON holding a ``points`` array, or text x y z per line."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"centreline file not found: {p}")
        try:
            if p.suffix == ".npz":
                with np.load(p, allow_pickle=False) as z:
                    key = "points_mm" if "points_mm" in z else "points"
                    if key not in z:
                        raise InputError(f"centreline {p} has no 'points_mm' array; found {sorted(z.files)}")
                    pts = np.asarray(z[key], dtype=np.float64)
                    _check_points(pts, p)
                    if all(k in z for k in ("tangents", "radius_mm", "segment")):
                        return cls(pts, np.asarray(z["tangents"], np.float64),
                                   np.asarray(z["radius_mm"], np.float64), np.asarray(z["segment"], np.int16))
                    return cls.from_points(pts)
            text = p.read_text()
            if text.lstrip().startswith(("{", "[")):
                data = json.loads(text)
                pts = data.get("points") if isinstance(data, dict) else data
                if pts is None:
                    raise InputError(f"centreline JSON {p} has no 'points' array")
                pts = np.asarray(pts, dtype=np.float64)
            else:
                rows = [ln.replace(",", " ").split() for ln in text.splitlines()]
                pts = np.asarray([[float(v) for v in r] for r in rows if r and not r[0].startswith("#")])
        except (ValueError, TypeError, OSError, json.JSONDecodeError) as e:
            raise InputError(f"centreline {p} could not be read ({e}); expected npz, JSON with 'points' "
                             f"[[x, y, z], ...], or text with x y z per line") from None
        _check_points(pts, p)
        return cls.from_points(pts)


def _check_points(pts: np.ndarray, path: Path) -> None:
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
        raise InputError(f"centreline {path} has points of shape {pts.shape}; expected (M, 3) with M >= 2")
    if not np.isfinite(pts).all():
        raise InputError(f"centreline {path} has NaN or infinite coordinates")


def tangents_of(points: np.ndarray) -> np.ndarray:
    """(M, 3) unit tangents of a polyline by central differences."""
    t = np.gradient(points, axis=0)
    n = np.linalg.norm(t, axis=1, keepdims=True)
    return t / np.maximum(n, 1e-12)


def transport_frames(tangents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-minimizing normals N and binormals B = T x N, each (M, 3), so that rings do not twist."""
    m = len(tangents)
    n = np.empty((m, 3))
    seed = np.eye(3)[np.argmin(np.abs(tangents[0]))]
    v = seed - tangents[0] * (seed @ tangents[0])
    n[0] = v / np.linalg.norm(v)
    for i in range(1, m):
        v = n[i - 1] - tangents[i] * (n[i - 1] @ tangents[i])
        norm = np.linalg.norm(v)
        n[i] = v / norm if norm > 1e-9 else n[i - 1]
    b = np.cross(tangents, n)
    return n, b


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of the vector ``v`` about the unit ``axis`` by ``angle`` rad."""
    c, s = np.cos(angle), np.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * (axis @ v) * (1 - c)


def _rotate3(v: tuple, axis: tuple, angle: float) -> tuple:
    """:func:`_rotate` on Python floats (3-tuples): the turtle's inner step."""
    c, s = math.cos(angle), math.sin(angle)
    (vx, vy, vz), (ax, ay, az) = v, axis
    k = (ax * vx + ay * vy + az * vz) * (1 - c)
    return (vx * c + (ay * vz - az * vy) * s + ax * k,
            vy * c + (az * vx - ax * vz) * s + ay * k,
            vz * c + (ax * vy - ay * vx) * s + az * k)


def _segment_bounds(cfg: "AnatomyConfig") -> np.ndarray:
    """(9,) arc length at the start of each segment and the end of the last, mm."""
    return np.concatenate([[0.0], np.cumsum(cfg.segment_length_mm.array())])


def _crop(cfg: "AnatomyConfig", bounds: np.ndarray) -> tuple[float, float]:
    first, last = SEGMENT_NAMES.index(cfg.segments[0]), SEGMENT_NAMES.index(cfg.segments[-1])
    s0 = bounds[first] + cfg.start_mm
    s1 = bounds[last + 1]
    if cfg.max_length_mm > 0:
        s1 = min(s1, s0 + cfg.max_length_mm)
    return s0, s1


def _labels(s: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(bounds, s, side="right") - 1, 0, len(SEGMENT_NAMES) - 1).astype(np.int16)


def segment_radius(s: np.ndarray, bounds: np.ndarray, radii: np.ndarray,
                   blend_mm: float = 30.0) -> np.ndarray:
    """(len(s),) wall radius, mm: each segment's radius, blended smoothly over ``blend_mm`` at junctions."""
    r = radii[_labels(s, bounds)]
    for b, (r0, r1) in zip(bounds[1:-1], zip(radii[:-1], radii[1:])):
        w = np.clip((s - b) / blend_mm + 0.5, 0.0, 1.0)
        w = w * w * (3 - 2 * w)
        near = np.abs(s - b) < blend_mm / 2
        r = np.where(near, r0 + (r1 - r0) * w, r)
    return r


def straight_path(cfg: "AnatomyConfig", radii: np.ndarray) -> Centerline:
    """The listed segments laid along +z from the origin (for tests and analytic renders)."""
    bounds = _segment_bounds(cfg)
    s0, s1 = _crop(cfg, bounds)
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / STEP_MM)) + 1))
    pts = np.zeros((len(s), 3))
    pts[:, 2] = s - s0
    return Centerline(pts, np.tile(_Z, (len(s), 1)), segment_radius(s, bounds, radii), _labels(s, bounds))


def anatomical_path(cfg: "AnatomyConfig", radii: np.ndarray, rng: np.random.Generator,
                    tries: int = 20) -> Centerline:
    """The whole colon's centreline in the patient frame, cropped to the listed piece. The bends are
    jittered per colon; a path that would bring two parts of the lumen into contact is drawn again."""
    bounds = _segment_bounds(cfg)
    for _ in range(tries):
        s, pts, tan = _turtle(cfg, bounds, rng)
        radius = segment_radius(s, bounds, radii)
        if not _self_contact(pts, radius):
            break
    else:
        raise ConfigError("segment_length_mm", f"no colon without self-contact in {tries} draws; "
                          "lower bend_jitter or change the segment lengths")
    s0, s1 = _crop(cfg, bounds)
    keep = (s >= s0 - 1e-9) & (s <= s1 + 1e-9)
    return Centerline(pts[keep], tan[keep], radius[keep], _labels(s[keep], bounds))


def _turtle(cfg: "AnatomyConfig", bounds: np.ndarray, rng: np.random.Generator):
    """Integrate the tangent through every segment's bends (jittered), plus a slow random wander."""
    lengths = np.diff(bounds)
    pieces = []  # (length mm, axis, total angle rad)
    for name, length in zip(SEGMENT_NAMES, lengths):
        for frac, axis, deg in _BENDS[name]:
            jitter = 1.0 + cfg.bend_jitter * np.clip(rng.normal(), -2, 2) * 0.5
            tilt = rng.normal(size=3) * 0.15 * cfg.bend_jitter
            ax = axis + tilt
            pieces.append((frac * length, ax / np.linalg.norm(ax), np.deg2rad(deg) * jitter))
    total = bounds[-1]
    n = int(np.ceil(total / STEP_MM))
    s = np.linspace(0.0, total, n + 1)
    ds = total / n
    # slow wander: a smooth random turn rate (rad/mm) about a slowly turning axis
    k = np.arange(1, 7)
    phases, amps = rng.uniform(0, 2 * np.pi, (3, len(k))), rng.normal(size=(3, len(k))) / k
    wander = (amps[:, None, :] * np.sin(2 * np.pi * k * s[:, None, None].transpose(1, 0, 2) / 600.0
                                        + phases[:, None, :])).sum(-1).T  # (n+1, 3)
    wander *= cfg.bend_jitter * 0.004
    piece_end = np.cumsum([p[0] for p in pieces])
    # The steps are sequential, so they run on Python floats: numpy's per-call overhead on
    # 3-vectors made this loop 0.5 s of a 100k-triangle colon's build.
    piece_of = np.minimum(np.searchsorted(piece_end, s[1:] - ds / 2, side="right"), len(pieces) - 1)
    turns = [(tuple(map(float, axis)), angle * ds / length if length > 0 else 0.0)
             for length, axis, angle in pieces]
    tx, ty, tz = map(float, _Z)
    px = py = pz = 0.0
    out = np.zeros((n + 1, 6))
    out[0, 3:] = (tx, ty, tz)
    for i, (j, (wx, wy, wz)) in enumerate(zip(piece_of.tolist(), wander[1:].tolist()), start=1):
        axis, angle = turns[j]
        if angle != 0.0:
            tx, ty, tz = _rotate3((tx, ty, tz), axis, angle)
        wn = math.sqrt(wx * wx + wy * wy + wz * wz)
        if wn > 0:
            tx, ty, tz = _rotate3((tx, ty, tz), (wx / wn, wy / wn, wz / wn), wn * ds)
        norm = math.sqrt(tx * tx + ty * ty + tz * tz)
        tx, ty, tz = tx / norm, ty / norm, tz / norm
        px, py, pz = px + tx * ds, py + ty * ds, pz + tz * ds
        out[i] = (px, py, pz, tx, ty, tz)
    pts, tan = out[:, :3].copy(), out[:, 3:].copy()
    return s, pts, tan


def _self_contact(pts: np.ndarray, radius: np.ndarray) -> bool:
    """Whether two parts of the lumen far apart along the path come closer than their radii allow,
    or a bend is tighter than the wall radius (the rings would fold over)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(pts)
    reach = 2.2 * float(radius.max()) + 10.0
    pairs = tree.query_pairs(reach, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        far = np.abs(i - j) * STEP_MM > 3.0 * (radius[i] + radius[j])
        d = np.linalg.norm(pts[i] - pts[j], axis=1)
        if np.any(far & (d < 1.15 * (radius[i] + radius[j]) + 4.0)):
            return True
    t = tangents_of(pts)
    curvature = np.linalg.norm(np.gradient(t, axis=0), axis=1) / STEP_MM
    return bool(np.any(curvature * radius > 0.9))
