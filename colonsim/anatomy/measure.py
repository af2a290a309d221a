"""Anatomy measurement by slicing the surface across the centreline, the wall distance used to keep
cameras off the wall, and a centreline for meshes that come without one.

A slice at centreline point p is the plane through p normal to the tangent. From p, RAYS rays in that
plane go out to the nearest wall crossing; the slice's radius is the mean hit distance. Only the wall
around p is seen this way, never another loop of the colon that the plane also cuts.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from colonsim.anatomy.centerline import Centerline, tangents_of, transport_frames
from colonsim.anatomy.colon import Colon
from colonsim.errors import MeshError

RAYS = 64                # rays per slice
WINDOW_MM = 50.0         # a slice looks at the faces owned by centreline points this close in arc
MIN_HITS = 0.75          # a slice needs this fraction of rays to hit the wall (else: outside or open)
FOLD_PROMINENCE_MM = 2.0  # a fold is a dip of the wall distance along the colon at least this deep


# Where a centreline that cannot be estimated comes from: render and preview read the file beside
# the mesh; only `mesh --measure` has a flag for it.
GIVE_CENTERLINE = ("give its centreline as MESH.centerline.npz beside the mesh file (points_mm, N x 3), "
                   "or to 'colonsim mesh --measure' with --centerline")


def slice_rays(mesh: trimesh.Trimesh, line: Centerline, every: int = 1) -> np.ndarray:
    """(M', RAYS) float64 wall distance along each ray, mm (NaN: no hit), for every ``every``-th point.

    Ray k leaves at angle 2 pi k / RAYS in the rotation-minimizing frame, so a ray index follows the
    same side of the wall from slice to slice."""
    tri = np.asarray(mesh.vertices).view(np.ndarray)[np.asarray(mesh.faces)]  # (F, 3, 3), plain ndarray
    # Each face belongs to its nearest centreline point; a slice looks only at the faces that belong
    # to points within WINDOW_MM of arc length (the plane cuts the wall there, and nowhere else).
    arc = line.arclength_mm()
    _, owner = cKDTree(line.points_mm).query(tri.mean(axis=1))
    order = np.argsort(arc[owner], kind="stable")
    face_arc = arc[owner][order]
    tri = tri[order]
    normal, binormal = transport_frames(line.tangents)
    ang = np.arange(RAYS) * (2 * np.pi / RAYS)
    u = np.stack([np.cos(ang), np.sin(ang)], 1)                           # (K, 2)
    idx_points = np.arange(0, len(line.points_mm), every)
    out = np.full((len(idx_points), RAYS), np.nan)
    for row, i in enumerate(idx_points):
        p, t = line.points_mm[i], line.tangents[i]
        lo, hi = np.searchsorted(face_arc, [arc[i] - WINDOW_MM, arc[i] + WINDOW_MM])
        seg = _plane_segments(tri[lo:hi], p, t)                    # (S, 2, 3)
        if len(seg) == 0:
            continue
        rel = seg - p
        pq = np.stack([rel @ normal[i], rel @ binormal[i]], -1)          # (S, 2, 2) in-plane coordinates
        out[row] = _ray_hits(u, pq[:, 0], pq[:, 1])
    return out


def _plane_segments(tri: np.ndarray, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(S, 2, 3) segments where the triangles (F, 3, 3) cross the plane through p with normal n."""
    d = (tri - p) @ n                                                     # (F, 3)
    d[d == 0] = 1e-12  # a vertex on the plane counts as in front, the same in every face that holds it
    crossing = (d < 0).any(axis=1) & (d > 0).any(axis=1)
    tri, d = tri[crossing], d[crossing]
    pts = []
    masks = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        da, db = d[:, a], d[:, b]
        m = (da * db) < 0
        w = np.where(m, da / np.where(m, da - db, 1.0), 0.0)
        pts.append(tri[:, a] + (tri[:, b] - tri[:, a]) * w[:, None])
        masks.append(m)
    pts, masks = np.stack(pts, 1), np.stack(masks, 1)                     # (F, 3, 3), (F, 3)
    two = masks.sum(1) == 2
    order = np.argsort(~masks[two], axis=1, kind="stable")[:, :2]        # the two crossed edges
    return np.take_along_axis(pts[two], order[:, :, None], axis=1)


def _ray_hits(u: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,) distance from the origin along the unit rays u (K, 2) to the nearest segment a-b (S, 2)."""
    e = b - a
    denom = u[:, None, 0] * e[None, :, 1] - u[:, None, 1] * e[None, :, 0]   # u x e, (K, S)
    ax_e = a[:, 0] * e[:, 1] - a[:, 1] * e[:, 0]                             # a x e, (S,)
    a_x_u = a[None, :, 0] * u[:, None, 1] - a[None, :, 1] * u[:, None, 0]   # a x u, (K, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ax_e[None, :] / denom
        lam = a_x_u / denom
    ok = (np.abs(denom) > 1e-12) & (t > 0) & (lam >= -1e-9) & (lam <= 1 + 1e-9)  # rays through vertices hit
    t = np.where(ok, t, np.inf)
    best = t.min(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def _slice_radius(rays: np.ndarray) -> np.ndarray:
    """(M,) mean hit distance of each slice, NaN where fewer than MIN_HITS of the rays hit."""
    hits = np.isfinite(rays).sum(axis=1)
    r = np.where(hits > 0, np.nansum(rays, axis=1) / np.maximum(hits, 1), np.nan)
    hits = hits / max(rays.shape[1], 1)
    return np.where(hits >= MIN_HITS, r, np.nan)


def slice_radii(mesh: trimesh.Trimesh, line: Centerline, step_mm: float = 1.0) -> np.ndarray:
    """(M,) float64 mean lumen radius around each centreline point, mm (NaN where the slice is open),
    sliced about every ``step_mm`` of arc and interpolated between slices."""
    arc = line.arclength_mm()
    every = max(1, int(round(step_mm / max(arc[-1] / max(len(arc) - 1, 1), 1e-9))))
    r = _slice_radius(slice_rays(mesh, line, every))
    rows = np.arange(0, len(arc), every)
    ok = np.isfinite(r)
    if not ok.any():
        return np.full(len(arc), np.nan)
    out = np.interp(arc, arc[rows][ok], r[ok])
    # keep the unknown ends unknown rather than extrapolated
    out[arc < arc[rows][ok][0]] = np.nan
    out[arc > arc[rows][ok][-1]] = np.nan
    return out


def measure_colon(colon: Colon, step_mm: float = 1.0) -> dict:
    """Centreline length, lumen radius percentiles (slices every ``step_mm``), triangle count and the
    median spacing of folds (dips of the wall distance along each ray track), all in mm."""
    line = resample(colon.centerline, step_mm)
    rays = slice_rays(colon.mesh, line)
    radius = _slice_radius(rays)
    valid = radius[np.isfinite(radius)]
    if len(valid) == 0:
        raise MeshError(f"no slice across the centreline of {colon.name} closes around it; is the "
                        "centreline inside the lumen, in the same units as the mesh?")
    pct = {f"p{q}": round(float(np.percentile(valid, q)), 2) for q in (5, 10, 50, 90, 95)}
    return {
        "name": colon.name,
        "length_mm": round(float(colon.centerline.arclength_mm()[-1]), 1),
        "radius_mm": pct,
        "radius_valid_fraction": round(len(valid) / len(radius), 3),
        "triangles": int(len(colon.mesh.faces)),
        "fold_spacing_mm": fold_spacing(rays, step_mm),
    }


def fold_spacing(rays: np.ndarray, step_mm: float) -> float | None:
    """Median distance between successive folds seen by one ray track, mm, or None if too few.

    A fold is a local minimum of the wall distance along the track (within +-4 mm) that lies at least
    FOLD_PROMINENCE_MM below the highest wall on each side within +-12 mm."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    near, side = max(1, int(round(4 / step_mm))), max(2, int(round(12 / step_mm)))
    gaps = []
    for k in range(rays.shape[1]):
        d = rays[:, k]
        ok = np.isfinite(d)
        if ok.sum() < 2 * side + 1:
            continue
        d = np.interp(np.arange(len(d)), np.flatnonzero(ok), d[ok])
        is_min = d == minimum_filter1d(d, 2 * near + 1, mode="nearest")
        left = maximum_filter1d(d, side + 1, origin=side // 2, mode="nearest")     # max over [i-side, i]
        right = maximum_filter1d(d, side + 1, origin=-(side // 2), mode="nearest")  # max over [i, i+side]
        folds = np.flatnonzero(is_min & (np.minimum(left, right) - d >= FOLD_PROMINENCE_MM))
        if len(folds) > 1:
            gaps.extend(np.diff(folds)[np.diff(folds) > near] * step_mm)
    if len(gaps) < 5:
        return None
    return round(float(np.median(gaps)), 1)


def resample(line: Centerline, step_mm: float) -> Centerline:
    """The centreline at even arc-length spacing (radius and segment follow the nearest point)."""
    arc = line.arclength_mm()
    n = max(2, int(np.floor(arc[-1] / step_mm)) + 1)
    s = np.linspace(0, arc[-1], n)
    pts = np.stack([np.interp(s, arc, line.points_mm[:, c]) for c in range(3)], 1)
    near = np.clip(np.searchsorted(arc, s), 0, len(arc) - 1)
    return Centerline(pts, tangents_of(pts), np.interp(s, arc, line.radius_mm), line.segment[near])


def local_wall_distance(colon: Colon, points: np.ndarray, k: int = 8) -> np.ndarray:
    """(K,) float64 distance from each of ``points`` (K, 3) mm to the nearest wall point, mm.

    Exact against the triangles adjacent to the ``k`` nearest vertices (which hold the nearest point
    on any mesh whose triangles are not much longer than the distance to the wall)."""
    mesh = colon.mesh
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    _, vidx = mesh.kdtree.query(pts, k=min(k, len(mesh.vertices)))
    vidx = np.atleast_2d(vidx)
    nbr = mesh.vertex_faces[vidx]                                         # (K, k, maxdeg), -1 padded
    out = np.empty(len(pts))
    for i in range(len(pts)):
        f = np.unique(nbr[i][nbr[i] >= 0])
        tri = mesh.triangles[f]
        cp = trimesh.triangles.closest_point(tri, np.repeat(pts[i:i + 1], len(f), 0))
        out[i] = np.sqrt(((cp - pts[i]) ** 2).sum(1)).min()
    return out


def estimate_centerline(mesh: trimesh.Trimesh, step_mm: float = 1.0, recenter: int = 2) -> Centerline:
    """A centreline inside the lumen of a tubular mesh (mm in, mm out).

    Geodesic distance from one end of the tube (the open boundary farthest away, or the farthest
    vertex of a closed mesh) is nearly constant around each ring of the wall; the centroids of its
    level sets are a first centreline, then each point moves to the centre of its slice."""
    from scipy.ndimage import gaussian_filter1d

    dist = _geodesic_from_end(mesh)
    ok = np.isfinite(dist)
    bin_mm = 2.0 * float(np.median(mesh.edges_unique_length))
    bins = np.floor(dist[ok] / max(bin_mm, 1e-6)).astype(np.int64)
    verts = mesh.vertices[ok]
    count = np.bincount(bins)
    keep = count > 0
    cent = np.stack([np.bincount(bins, verts[:, c])[keep] / count[keep] for c in range(3)], 1)
    if len(cent) < 3:
        raise MeshError(f"the mesh is too small or not a tube; {GIVE_CENTERLINE}")
    cent = gaussian_filter1d(cent, 2.0, axis=0, mode="nearest")
    line = resample(Centerline.from_points(cent), step_mm)
    for _ in range(recenter):
        line = _recenter(mesh, line, step_mm)
    return dataclasses.replace(line, radius_mm=slice_radii(mesh, line))


def _recenter(mesh: trimesh.Trimesh, line: Centerline, step_mm: float) -> Centerline:
    """Move each point to the centroid of its slice's ray hits; drop the open slices at the ends."""
    from scipy.ndimage import gaussian_filter1d

    rays = slice_rays(mesh, line)
    normal, binormal = transport_frames(line.tangents)
    ang = np.arange(RAYS) * (2 * np.pi / RAYS)
    good = np.isfinite(rays).mean(1) >= MIN_HITS
    if good.sum() < 3:
        raise MeshError(f"no slice across the estimated centreline closes; {GIVE_CENTERLINE}")
    first, last = np.flatnonzero(good)[[0, -1]]
    hit = np.isfinite(rays)
    count = np.maximum(hit.sum(axis=1), 1)
    cx = np.where(hit, rays * np.cos(ang), 0.0).sum(axis=1) / count  # centre of the ray hits, in-plane
    cy = np.where(hit, rays * np.sin(ang), 0.0).sum(axis=1) / count
    shift = np.where(good[:, None], cx[:, None] * normal + cy[:, None] * binormal, 0.0)
    pts = (line.points_mm + np.nan_to_num(shift))[first:last + 1]
    pts = gaussian_filter1d(pts, 2.0, axis=0, mode="nearest")
    return resample(Centerline.from_points(pts), step_mm)


def _geodesic_from_end(mesh: trimesh.Trimesh) -> np.ndarray:
    """(V,) position along the tube, mm: D1 / (D1 + D2) times the typical end-to-end distance, where
    D1, D2 are graph-geodesic distances from the two ends (open boundary loops, or the farthest
    vertices of a closed mesh). Using both ends keeps the level sets ring-like at both ends of a bend.
    Vertices off the largest connected part get inf."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, dijkstra

    e = mesh.edges_unique
    w = mesh.edges_unique_length
    v = len(mesh.vertices)
    rows, cols = np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]]
    graph = coo_matrix((np.r_[w, w], (rows, cols)), shape=(v, v)).tocsr()
    _, labels = connected_components(graph, directed=False)
    main = labels == np.argmax(np.bincount(labels))
    bedges = mesh.edges[trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)]
    bverts = np.unique(bedges)
    bverts = bverts[main[bverts]]
    loop_id = None
    if len(bverts):
        loops = coo_matrix((np.ones(len(bedges)), (bedges[:, 0], bedges[:, 1])), shape=(v, v))
        _, loop_id = connected_components(loops, directed=False)

    def end_sources(dist: np.ndarray) -> list:
        """The farthest vertex, widened to its whole open boundary loop when it lies near one."""
        far = int(np.argmax(np.where(main & np.isfinite(dist), dist, -1)))
        if loop_id is None:
            return [far]
        nearest = bverts[np.argmin(np.abs(dist[bverts] - dist[far]) + np.linalg.norm(
            mesh.vertices[bverts] - mesh.vertices[far], axis=1))]
        return list(bverts[loop_id[bverts] == loop_id[nearest]])

    start = int(np.flatnonzero(main)[0])
    d1 = dijkstra(graph, indices=end_sources(dijkstra(graph, indices=start)), min_only=True)
    d2 = dijkstra(graph, indices=end_sources(d1), min_only=True)
    total = d1 + d2
    length = float(np.median(total[main]))
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(main, d1 / total * length, np.inf)
    return pos
