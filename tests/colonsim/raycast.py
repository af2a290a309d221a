"""A float64 ray cast over all triangles of a mesh: the reference for geometry and depth tests."""
import numpy as np


def ray_hit(tri: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> float:
    """Distance to the first triangle hit by the ray (Moller-Trumbore over all triangles), or inf."""
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(direction, e2)
    det = (e1 * p).sum(1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    t0 = origin - tri[:, 0]
    u = (t0 * p).sum(1) * inv
    q = np.cross(t0, e1)
    v = (direction * q).sum(1) * inv
    t = (e2 * q).sum(1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
    return float(t[hit].min()) if hit.any() else np.inf
