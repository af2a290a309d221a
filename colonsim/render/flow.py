"""Geometry outputs beside RGB and depth: optical flow, occlusion and surface normals.

Flow comes from exact geometry, not from images. Pixel ``(u, v)`` of frame t with z-depth ``z``
(mm along the optical axis) is the 3D point ``z * ray / -ray_z`` of the lens's ray through it
(:meth:`colonsim.render.lens.Lens.pixel_to_ray`, fisheye and omnidir included). The point is
moved into the camera frame of frame t + 1 by the relative pose (poses are camera-to-world, mm,
OpenGL axes) and projected by the same lens (:meth:`~colonsim.render.lens.Lens.ray_to_pixel`);
the flow is the difference of the two pixel positions, in output pixels (x right, y down).

- ``flow_valid``: 1 where the flow is defined: the pixel sees a surface (depth > 0, inside the
  mask), the frame has a next frame in its sequence, and the moved point lies within the angles
  the lens model covers.
- ``occlusion``: 1 where the flow is valid but frame t + 1 does not see that surface point: its
  target is outside the image or the mask, or the next frame's depth there (bilinear in inverse
  depth, from neighbours with a surface) differs from the point's projected z by more than :data:`OCC_REL_TOL` of it.

Normals come from a second render pass of the same geometry (:func:`render_normals`): the
interpolated vertex normals of the mesh in the camera frame, turned to face the camera, through
the same lens remap as depth.
"""
from __future__ import annotations

import numpy as np

from colonsim.render.lens import Lens

OCC_REL_TOL = 0.02   # relative z difference above which a point counts as hidden in the next frame
TABLE_SIZE = 4097    # samples of the lens's radial map for the compiled loop (colonsim.render._flowkernel)


_GEOMETRIES: dict = {}


class FlowGeometry:
    """The per-pixel rays of one lens at one size, scaled to unit z-depth (computed once)."""

    def __init__(self, lens: Lens):
        self.lens = lens
        h, w = lens.height, lens.width
        uv = lens.pixel_grid()
        rays, valid = lens.pixel_to_ray(uv)
        front = rays[:, 2] < -1e-9
        valid &= front
        scale = np.where(front, -1.0 / np.where(front, rays[:, 2], -1.0), 0.0)
        self.rays_z = (rays * scale[:, None]).reshape(h, w, 3)     # z-depth 1 along -z
        self.valid = valid.reshape(h, w)
        self.uv = uv.reshape(h, w, 2)
        self.mask = lens.field_mask()
        self._pix_ok = self.valid.astype(np.uint8)
        # r / f at TABLE_SIZE angles up to the model's largest: the compiled loop interpolates it
        self.table = np.ascontiguousarray(lens.unit_r(np.linspace(0.0, lens.theta_max, TABLE_SIZE)), np.float64)

    @classmethod
    def of(cls, lens: Lens) -> "FlowGeometry":
        """The geometry of ``lens``, built once per process for each lens config and size (a
        fisheye's takes about 0.14 s at 256x256, once per shard otherwise)."""
        key = (lens.cfg, lens.width, lens.height)
        if key not in _GEOMETRIES:
            if len(_GEOMETRIES) >= 4:
                _GEOMETRIES.pop(next(iter(_GEOMETRIES)))
            _GEOMETRIES[key] = cls(lens)
        return _GEOMETRIES[key]

    def points(self, depth: np.ndarray) -> np.ndarray:
        """(h, w, 3) camera-frame points (mm, OpenGL axes) of a z-depth map (h, w) mm."""
        return self.rays_z * np.asarray(depth, np.float64)[..., None]


def relative_pose(pose0: np.ndarray, pose1: np.ndarray) -> np.ndarray:
    """(4, 4) camera-1-from-camera-0 transform of two camera-to-world poses."""
    return np.linalg.inv(np.asarray(pose1, np.float64)) @ np.asarray(pose0, np.float64)


def project(geo: FlowGeometry, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (..., 2) of camera-frame points (..., 3), and whether the lens covers them."""
    shape = points.shape[:-1]
    p = points.reshape(-1, 3)
    theta = np.arctan2(np.hypot(p[:, 0], p[:, 1]), -p[:, 2])
    ok = theta <= geo.lens.theta_max
    if geo.lens.cfg.model == "pinhole":
        ok &= -p[:, 2] > 1e-9
    uv = np.zeros((len(p), 2))
    if ok.any():
        uv[ok] = geo.lens.ray_to_pixel(p[ok])
    return uv.reshape(*shape, 2), ok.reshape(shape)


def _sample_depth(depth: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear z-depth of ``depth`` (h, w) at pixel positions ``uv`` (n, 2), and whether it is inside
    the image and every neighbour of nonzero weight has a surface."""
    h, w = depth.shape
    slack = 1e-6   # round-off of a position on the image's edge
    inside = (uv[:, 0] >= -slack) & (uv[:, 1] >= -slack) & (uv[:, 0] <= w - 1 + slack) & (uv[:, 1] <= h - 1 + slack)
    x, y = np.clip(uv[:, 0], 0, w - 1), np.clip(uv[:, 1], 0, h - 1)
    x0 = np.clip(np.floor(x), 0, w - 2 if w > 1 else 0).astype(np.int64)
    y0 = np.clip(np.floor(y), 0, h - 2 if h > 1 else 0).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = np.clip(x - x0, 0, 1), np.clip(y - y0, 0, 1)
    d00, d01, d10, d11 = depth[y0, x0], depth[y0, x1], depth[y1, x0], depth[y1, x1]
    w00, w01, w10, w11 = (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy
    eps = 1e-3   # a neighbour of less weight than this (round-off of an integer position) is not needed
    ok = inside & ((d00 > 0) | (w00 < eps)) & ((d01 > 0) | (w01 < eps)) & ((d10 > 0) | (w10 < eps)) \
        & ((d11 > 0) | (w11 < eps))
    # Inverse depth is interpolated (linear in the image on a planar facet of a pinhole view).
    i00, i01, i10, i11 = (np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 0.0) for x in (d00, d01, d10, d11))
    inv = i00 * w00 + i01 * w01 + i10 * w10 + i11 * w11
    return 1.0 / np.maximum(inv, 1e-12), ok


def _compiled():
    """The numba loop (:mod:`colonsim.render._flowkernel`), or None without numba."""
    try:
        from colonsim.render import _flowkernel
    except ImportError:
        return None
    return _flowkernel


def flow_to_next(geo: FlowGeometry, depth0: np.ndarray, pose0: np.ndarray,
                 depth1: np.ndarray | None, pose1: np.ndarray | None,
                 rel_tol: float = OCC_REL_TOL, compiled: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward flow from a frame (``depth0`` (h, w) mm, camera-to-world ``pose0``) to the next one.

    ``depth1``, ``pose1``: the next frame of the same sequence, or None (the last frame of a
    sequence: no flow). Returns flow (h, w, 2) float32 output pixels (0 where not valid), occlusion
    (h, w) uint8 and flow_valid (h, w) uint8 (see the module doc). ``compiled``: the numba loop
    where numba is installed (about 3 ms at 256x256 against 94 ms), else this NumPy reference;
    the two agree within 1e-4 px."""
    h, w = geo.mask.shape
    flow = np.zeros((h, w, 2), np.float32)
    occ = np.zeros((h, w), np.uint8)
    valid = np.zeros((h, w), np.uint8)
    if depth1 is None or pose1 is None:
        return flow, occ, valid
    kernel = _compiled() if compiled else None
    if kernel is not None:
        rel = relative_pose(pose0, pose1)
        m = geo.lens.matrix
        kernel.flow_kernel(np.ascontiguousarray(depth0, np.float32), geo.mask, geo._pix_ok, geo.rays_z,
                           np.ascontiguousarray(rel[:3, :3]), np.ascontiguousarray(rel[:3, 3]),
                           np.ascontiguousarray(depth1, np.float32), geo.lens.cfg.model == "pinhole", geo.table,
                           float(geo.lens.theta_max), float(m[0, 0]), float(m[0, 1]), float(m[1, 0]),
                           float(m[1, 1]), float(geo.lens.cx), float(geo.lens.cy), float(rel_tol), flow, occ, valid)
        return flow, occ, valid
    depth0 = np.asarray(depth0, np.float32)
    src = (depth0 > 0) & (geo.mask > 0) & geo.valid
    if not src.any():
        return flow, occ, valid
    rel = relative_pose(pose0, pose1)
    p0 = geo.rays_z[src] * depth0[src, None].astype(np.float64)
    p1 = p0 @ rel[:3, :3].T + rel[:3, 3]
    uv1, ok = project(geo, p1)
    uv0 = geo.uv[src]
    f = np.where(ok[:, None], uv1 - uv0, 0.0)
    depth1 = np.asarray(depth1, np.float32)
    d, seen = _sample_depth(depth1, uv1)
    z1 = -p1[:, 2]
    xi = np.clip(np.rint(uv1[:, 0]), 0, w - 1).astype(np.int64)
    yi = np.clip(np.rint(uv1[:, 1]), 0, h - 1).astype(np.int64)
    seen &= ok & (geo.mask[yi, xi] > 0) & (np.abs(d - z1) <= rel_tol * np.maximum(z1, 1e-9))
    flow[src] = f.astype(np.float32)
    valid[src] = ok
    occ[src] = ok & ~seen
    return flow, occ, valid


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` of frame t + 1 (h, w, c) sampled at each pixel of frame t plus its flow
    (bilinear): where the flow is valid and not occluded, it is frame t's view of the same points."""
    import cv2
    h, w = flow.shape[:2]
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(np.ascontiguousarray(image), u + flow[..., 0], v + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


# ----------------------------------------------------------------------------- normals


def render_normals(renderer, pose: np.ndarray, mesh_id: int, slot: int = 0) -> np.ndarray:
    """(h, w, 3) float32 unit surface normals in the camera frame (OpenGL axes, facing the camera;
    0 where there is no surface) of a :class:`colonsim.render.scene.FrameRenderer`'s view from
    camera-to-world ``pose`` of colon ``mesh_id``: a second render pass of the same geometry
    through the same lens remap. Must run in the thread that owns the renderer's GL context;
    :func:`draw_normals` then :func:`finish_normals` split it into that part and the rest."""
    return finish_normals(renderer, draw_normals(renderer, pose, mesh_id, slot))


def draw_normals(renderer, pose: np.ndarray, mesh_id: int, slot: int = 0) -> list[np.ndarray]:
    """The GL half of :func:`render_normals`: one (s, s, 4) float32 read-back per lens view (rgb:
    normal in the output camera's frame, a: 1 / z). In the thread that owns the GL context."""
    images = renderer.draw_pass("normals", pose, mesh_id, slot)
    for img, view in zip(images, renderer.remap.views):
        if not np.array_equal(view.rotation, np.eye(3)):
            img[..., :3] = img[..., :3] @ view.rotation.T.astype(np.float32)   # view frame -> camera frame
    return images


def finish_normals(renderer, images: list[np.ndarray]) -> np.ndarray:
    """The rest of :func:`render_normals` (no GL): the lens remap of the views and normalization."""
    n, depth = renderer.remap.apply(images)
    # Elementwise (not einsum, whose sums depend on the arrays' alignment): the same bytes in any
    # thread and with any worker count.
    norm = np.sqrt(n[..., 0] * n[..., 0] + n[..., 1] * n[..., 1] + n[..., 2] * n[..., 2])[..., None]
    return np.divide(n, norm, out=np.zeros_like(n), where=(norm > 1e-6) & (depth[..., None] > 0))


# ----------------------------------------------------------------------------- pose check


def landing_error(geo: FlowGeometry, depth0: np.ndarray, pose0: np.ndarray, depth1: np.ndarray,
                  pose1: np.ndarray) -> np.ndarray:
    """(h, w) float64 pixels, NaN where not measured: how far from where the poses say frame 1
    sees the point of each pixel of frame 0. The point (depth0 through the lens) is moved by the
    poses into frame 1, where it should lie at pixel q with z-depth z. Frame 1's own depth there is
    d1(q); the error is the image distance to the nearest position where frame 1's depth is z, to
    first order: |d1(q) - z| / |grad d1(q)| (px). Where depth, poses and lens agree it is ~0; a pose
    in another convention (transposed, world-to-camera, other axes) gives pixels of error.
    Measured where the pixel sees a surface and q lies inside frame 1's image and mask, on a
    surface (all four neighbours have depth) whose depth changes by at least 1e-3 mm a pixel."""
    h, w = geo.mask.shape
    err = np.full((h, w), np.nan)
    depth0 = np.asarray(depth0, np.float32)
    depth1 = np.asarray(depth1, np.float32)
    src = (depth0 > 0) & (geo.mask > 0) & geo.valid
    if not src.any():
        return err
    rel = relative_pose(pose0, pose1)
    p1 = (geo.rays_z[src] * depth0[src, None].astype(np.float64)) @ rel[:3, :3].T + rel[:3, 3]
    q, ok = project(geo, p1)
    d1, seen = _sample_depth(depth1, q)
    xi = np.clip(np.rint(q[:, 0]), 0, w - 1).astype(np.int64)
    yi = np.clip(np.rint(q[:, 1]), 0, h - 1).astype(np.int64)
    gy, gx = np.gradient(depth1.astype(np.float64))
    grad = np.hypot(gx[yi, xi], gy[yi, xi])
    ok &= seen & (geo.mask[yi, xi] > 0) & (grad > 1e-3)
    e = np.full(len(q), np.nan)
    e[ok] = np.abs(d1[ok] - -p1[ok, 2]) / grad[ok]
    err[src] = e
    return err
