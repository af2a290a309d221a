"""Endoscope lens models, the image-circle mask, vignetting, and the remap from rendered views.

Three radially symmetric models map the angle ``theta`` between a ray and the optical axis to the
distance ``r`` (pixels) of its image from the principal point:

- ``pinhole``: ``r = f tan(theta)``;
- ``fisheye``: OpenCV's fisheye model (Kannala, Brandt 2006), ``r = f theta_d``,
  ``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)``;
- ``omnidir``: the omnidirectional polynomial of Scaramuzza, Martinelli, Siegwart (2006), the model
  of the C3VD calibration (Bobrow et al. 2023): the ray of normalized radius ``rho = r / f`` is
  ``(rho cos phi, rho sin phi, g(rho))`` with ``g(rho) = 1 + a2 rho^2 + a3 rho^3 + a4 rho^4``.

``f`` is not a config value: it is solved so that the image circle (radius ``circle_frac`` times
half the image side) spans ``fov_deg``. Pixel centres are at integer coordinates and the principal
point is the image centre ``((w - 1) / 2, (h - 1) / 2)`` (OpenCV's convention). Rays are unit
vectors in the OpenGL camera frame (x right, y up, looking along -z).

A rasterizer is pinhole, so wide lenses are rendered as one wider pinhole view (up to
``MAX_SINGLE_VIEW_DEG`` off axis), or as the front and four side faces of a cube beyond that, and
remapped with precomputed maps (:class:`Remap`). Colour is interpolated bilinearly. Depth is
interpolated as inverse depth, which is exact on planar facets, except where the four source
pixels straddle a depth edge, where the nearest pixel is taken; it is then converted from the
view's z-depth to the z-depth of the output camera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from colonsim.config import check_choice, check_range
from colonsim.errors import ConfigError

MODELS = ("pinhole", "fisheye", "omnidir")
MASKS = ("none", "round", "octagon")
MAX_SINGLE_VIEW_DEG = 75.0   # beyond this half-angle, one pinhole view wastes too many pixels: cube faces
MAX_PINHOLE_FOV_DEG = 170.0  # a pinhole output image beyond this is degenerate
MAX_THETA_DEG = 135.0        # the front + 4 side cube faces cover rays up to here


@dataclass(frozen=True)
class LensConfig:
    model: str                                   # pinhole | fisheye | omnidir
    fov_deg: float                               # full field of view across the image circle, degrees
    kb_coeffs: tuple[float, float, float, float]  # fisheye k1..k4 (0 = equidistant)
    omni_coeffs: tuple[float, float, float]      # omnidir a2, a3, a4 of g(rho) (a0 = 1, a1 = 0)
    circle_frac: float                           # image-circle radius / half the image side
    mask: str                                    # none | round | octagon (the field stop)
    octagon_frac: float                          # octagon: |x| + |y| <= octagon_frac * radius
    vignetting: float                            # radiance lost at the circle edge: 1 - v (r/R)^2
    render_scale: float                          # render px per output px at the image centre
    znear_mm: float                              # near clipping plane, mm
    zfar_mm: float                               # far clipping plane, mm (farther surfaces read 0)
    # An imported calibration (colonsim/tune/calibration.py) replaces the focal length solved from fov_deg
    # and the centred principal point; it is scaled from the calibration image to the output size.
    calib_size_px: tuple[int, int] = (0, 0)      # calibration image (width, height), px; (0, 0) = none
    calib_matrix: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # px per unit r/f: [[m00, m01], [m10, m11]] row-major
    calib_center_px: tuple[float, float] = (0.0, 0.0)  # principal point (x, y) in calibration-image px (0-based)

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        check_range("fov_deg", self.fov_deg, 0.0, 200.0, lo_open=True)
        if self.model == "pinhole" and self.fov_deg > MAX_PINHOLE_FOV_DEG:
            raise ConfigError("fov_deg", f"a pinhole lens needs fov_deg <= {MAX_PINHOLE_FOV_DEG:g}, "
                              f"got {self.fov_deg:g}; use model fisheye or omnidir for wider fields")
        check_range("circle_frac", self.circle_frac, 0.0, 2.0, lo_open=True)
        check_choice("mask", self.mask, MASKS)
        check_range("octagon_frac", self.octagon_frac, 1.0, 2.0)
        check_range("vignetting", self.vignetting, 0.0, 1.0)
        check_range("render_scale", self.render_scale, 0.1, 4.0)
        check_range("znear_mm", self.znear_mm, 0.0, 100.0, lo_open=True)
        check_range("zfar_mm", self.zfar_mm, self.znear_mm, 1e6, lo_open=True)
        if self.calibrated:
            check_range("calib_size_px", min(self.calib_size_px), 1, 100_000)
            m = self.calib_matrix
            if not abs(m[0] * m[3] - m[1] * m[2]) > 1e-9:
                raise ConfigError("calib_matrix", f"must be invertible, got {list(m)}")
        Lens(self, 8, 8)   # the coefficients must give a monotonic mapping over the field of view

    @property
    def calibrated(self) -> bool:
        """True when an imported calibration sets the intrinsics (calib_size_px is not (0, 0))."""
        return tuple(self.calib_size_px) != (0, 0)


def _newton_inverse(fwd, y: np.ndarray, x_tab: np.ndarray, y_tab: np.ndarray) -> np.ndarray:
    """Solve fwd(x) = y for monotonic fwd: table lookup, then Newton steps (numeric derivative)."""
    x = np.interp(y, y_tab, x_tab)
    h = 1e-7
    for _ in range(3):
        d = (fwd(x + h) - fwd(x - h)) / (2 * h)
        x = x - (fwd(x) - y) / np.where(np.abs(d) > 1e-12, d, 1e-12)
    return x


class Lens:
    """One lens model at one image size: pixel <-> ray, intrinsics, mask, vignetting."""

    def __init__(self, cfg: LensConfig, width: int, height: int):
        self.cfg = cfg
        self.width, self.height = int(width), int(height)
        self.cx, self.cy = (self.width - 1) / 2.0, (self.height - 1) / 2.0
        self.radius_px = cfg.circle_frac * min(self.width, self.height) / 2.0
        half = math.radians(cfg.fov_deg) / 2.0
        k = cfg.kb_coeffs
        a2, a3, a4 = cfg.omni_coeffs
        if cfg.model == "pinhole":
            self._unit_r = lambda t: np.tan(t)                        # r / f as a function of theta
        elif cfg.model == "fisheye":
            self._unit_r = lambda t: t * (1 + k[0] * t**2 + k[1] * t**4 + k[2] * t**6 + k[3] * t**8)
        else:
            self._unit_theta = lambda p: np.arctan2(p, 1 + a2 * p**2 + a3 * p**3 + a4 * p**4)
        # Dense monotonic table over the usable angles; it seeds the Newton inversions.
        theta_lim = math.radians(min(MAX_THETA_DEG, 89.9 if cfg.model == "pinhole" else MAX_THETA_DEG))
        if cfg.model == "omnidir":
            p = np.linspace(0.0, 20.0, 20_001)
            th = self._unit_theta(p)
            stop = int(np.argmax(np.diff(th) <= 0)) if np.any(np.diff(th) <= 0) else len(p) - 1
            p, th = p[: stop + 1], th[: stop + 1]
            keep = th <= theta_lim
            self._tab_theta, self._tab_r = th[keep], p[keep]
        else:
            th = np.linspace(0.0, theta_lim, 20_001)
            r = self._unit_r(th)
            stop = int(np.argmax(np.diff(r) <= 0)) if np.any(np.diff(r) <= 0) else len(th) - 1
            self._tab_theta, self._tab_r = th[: stop + 1], r[: stop + 1]
        if self._tab_theta[-1] < half - 1e-9:
            key = {"fisheye": "kb_coeffs", "omnidir": "omni_coeffs"}.get(cfg.model, "fov_deg")
            raise ConfigError(key, f"the {cfg.model} coefficients are not monotonic up to "
                              f"fov_deg/2 = {math.degrees(half):.1f} deg (they fold back at "
                              f"{math.degrees(self._tab_theta[-1]):.1f} deg); use smaller coefficients")
        self.focal_px = self.radius_px / float(self.unit_r(np.array([half]))[0])
        self.theta_max = float(self._tab_theta[-1])
        # (2, 2) pixels per unit of normalized image-plane offset (x right, y down).
        self.matrix = np.diag([self.focal_px, self.focal_px])
        if cfg.calibrated:
            sx, sy = self.width / cfg.calib_size_px[0], self.height / cfg.calib_size_px[1]
            self.matrix = np.asarray(cfg.calib_matrix, np.float64).reshape(2, 2) * [[sx], [sy]]
            self.cx = (cfg.calib_center_px[0] + 0.5) * sx - 0.5   # pixel centres at integers
            self.cy = (cfg.calib_center_px[1] + 0.5) * sy - 0.5
            self.focal_px = math.sqrt(abs(np.linalg.det(self.matrix)))
        self._matrix_inv = np.linalg.inv(self.matrix)

    # ------------------------------------------------------------------ radial model

    def unit_r(self, theta: np.ndarray) -> np.ndarray:
        """r / focal_px for angles theta (rad)."""
        if self.cfg.model == "omnidir":
            return _newton_inverse(self._unit_theta, theta, self._tab_r, self._tab_theta)
        return self._unit_r(theta)

    def theta_of_unit_r(self, r: np.ndarray) -> np.ndarray:
        """Angles theta (rad) for r / focal_px."""
        if self.cfg.model == "omnidir":
            return self._unit_theta(r)
        if self.cfg.model == "pinhole":
            return np.arctan(r)
        return _newton_inverse(self._unit_r, r, self._tab_theta, self._tab_r)

    # ------------------------------------------------------------------ pixel <-> ray

    def pixel_to_ray(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rays of pixels. uv: (N, 2) float pixel coordinates (x right, y down).

        Returns (rays (N, 3) float64 unit vectors, OpenGL camera frame; valid (N,) bool: the pixel
        maps to an angle the model covers)."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        q = (uv - [self.cx, self.cy]) @ self._matrix_inv.T      # normalized offsets, |q| = r / f
        r = np.hypot(q[:, 0], q[:, 1])
        valid = r <= self._tab_r[-1]
        theta = self.theta_of_unit_r(np.minimum(r, self._tab_r[-1]))
        phi = np.arctan2(q[:, 1], q[:, 0])
        s = np.sin(theta)
        rays = np.stack([s * np.cos(phi), -s * np.sin(phi), -np.cos(theta)], axis=1)
        return rays, valid

    def ray_to_pixel(self, rays: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) float64 of rays (N, 3) in the OpenGL camera frame (any length)."""
        rays = np.asarray(rays, np.float64).reshape(-1, 3)
        x, y, z = rays[:, 0], -rays[:, 1], -rays[:, 2]      # OpenCV axes
        theta = np.arctan2(np.hypot(x, y), z)
        r = self.unit_r(theta)
        phi = np.arctan2(y, x)
        q = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        return q @ self.matrix.T + [self.cx, self.cy]

    def intrinsics(self) -> np.ndarray:
        """(3, 3) float32 pinhole matrix of the frame (its focal lengths and principal point)."""
        (m00, m01), (m10, m11) = self.matrix
        return np.array([[m00, m01, self.cx], [m10, m11, self.cy], [0, 0, 1]], np.float32)

    def pixel_grid(self) -> np.ndarray:
        """(h * w, 2) float64 pixel centres, row-major."""
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        return np.stack([u.ravel(), v.ravel()], axis=1)

    def field_mask(self) -> np.ndarray:
        """(h, w) uint8: 1 inside the image circle (or octagon), and where the model has a ray."""
        uv = self.pixel_grid()
        dx, dy = np.abs(uv[:, 0] - self.cx), np.abs(uv[:, 1] - self.cy)
        _, valid = self.pixel_to_ray(uv)
        R = self.radius_px
        if self.cfg.mask == "round":
            valid &= np.hypot(dx, dy) <= R
        elif self.cfg.mask == "octagon":
            valid &= (np.maximum(dx, dy) <= R) & (dx + dy <= self.cfg.octagon_frac * R)
        return valid.reshape(self.height, self.width).astype(np.uint8)

    def vignette(self) -> np.ndarray:
        """(h, w) float32 radiance factor 1 - vignetting * (r / radius)^2, at least 0."""
        uv = self.pixel_grid()
        r2 = ((uv[:, 0] - self.cx) ** 2 + (uv[:, 1] - self.cy) ** 2) / self.radius_px ** 2
        return np.clip(1.0 - self.cfg.vignetting * r2, 0.0, 1.0).reshape(self.height, self.width).astype(np.float32)


# ----------------------------------------------------------------------------- rendered views -> lens


def _look_rotation(forward, up) -> np.ndarray:
    """(3, 3) camera-from-view rotation of a view looking along ``forward`` (OpenGL axes)."""
    z = -np.asarray(forward, np.float64)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


@dataclass(frozen=True)
class View:
    """One pinhole render feeding the lens: square, principal point at its centre."""
    rotation: np.ndarray   # (3, 3) float64, camera-from-view
    size_px: int           # side of the square render, pixels
    focal_px: float        # focal length of the render, pixels


DEPTH_EDGE_RATIO = 0.5     # second / first difference of inverse depth above which a pixel is an edge


class Remap:
    """Precomputed maps from the rendered pinhole views to the lens image.

    ``direct`` (pinhole lens): one view at the output size, used as is. Otherwise one wide view, or
    the cube faces, each remapped with cv2.remap. :meth:`apply` returns linear rgb and z-depth.
    """

    def __init__(self, lens: Lens):
        import cv2  # noqa: F401  (fail early if missing)
        self.lens = lens
        h, w = lens.height, lens.width
        self.mask = lens.field_mask()
        self._gain = (lens.vignette() * self.mask)[..., None].astype(np.float32)   # (h, w, 1)
        self._gain4 = np.concatenate([np.repeat(self._gain, 3, axis=2), np.ones((h, w, 1), np.float32)], axis=2)
        # A calibrated pinhole may have an off-centre principal point: remap it like the wide lenses.
        self.direct = lens.cfg.model == "pinhole" and not lens.cfg.calibrated
        if self.direct:
            if w != h:
                raise ConfigError("output.size_px", "square frames only")
            self.views = [View(np.eye(3), w, lens.focal_px)]
            return
        rays, valid = lens.pixel_to_ray(lens.pixel_grid())
        valid &= self.mask.ravel() > 0
        theta = np.arccos(np.clip(-rays[:, 2], -1.0, 1.0))
        need = float(theta[valid].max()) if valid.any() else 0.1
        f = lens.cfg.render_scale * lens.focal_px
        if math.degrees(need) <= MAX_SINGLE_VIEW_DEG:
            half = f * math.tan(need)
            views = [View(np.eye(3), 2 * int(math.ceil(half)) + 4, f)]
        else:
            size = 2 * int(math.ceil(f)) + 4
            faces = [((0, 0, -1), (0, 1, 0)), ((1, 0, 0), (0, 1, 0)), ((-1, 0, 0), (0, 1, 0)),
                     ((0, 1, 0), (0, 0, 1)), ((0, -1, 0), (0, 0, 1))]
            views = [View(_look_rotation(fw, up), size, f) for fw, up in faces]
        fwd = np.stack([-v.rotation[:, 2] for v in views])                 # (V, 3)
        owner = np.argmax(rays @ fwd.T, axis=1)
        self.views, self._maps = [], []
        for i, v in enumerate(views):
            sel = valid & (owner == i)
            if not sel.any():
                continue
            rv = rays[sel] @ v.rotation                                     # view-frame rays
            c = (v.size_px - 1) / 2.0
            mx = np.full(h * w, -10.0, np.float32)
            my = np.full(h * w, -10.0, np.float32)
            mx[sel] = c + v.focal_px * rv[:, 0] / -rv[:, 2]
            # Rows of the GL read-back run bottom-up: map to the flipped row index.
            my[sel] = (v.size_px - 1) - (c - v.focal_px * rv[:, 1] / -rv[:, 2])
            k = np.zeros(h * w, np.float32)                                 # view z -> output z
            k[sel] = np.where(rays[sel, 2] < -1e-6, rays[sel, 2] / rv[:, 2], 0.0)
            self.views.append(v)
            self._maps.append((mx.reshape(h, w), my.reshape(h, w), k.reshape(h, w)))
        self._kernel = np.ones((3, 3), np.uint8)
        self._d2x = np.float32([[1, -2, 1]])
        self._d1x = np.float32([[-0.5, 0, 0.5]])

    def row_spans(self, margin_px: int = 4) -> list[np.ndarray]:
        """Per view, (s, 2) int32 [first, end) columns of each read-back row that the remap reads,
        grown by ``margin_px`` in x and y (the depth-edge filter looks 2 px around a sample); a row
        read nowhere has first == end. The renderer need not shade the rest of the view: for a
        120 degree fisheye with an octagonal border only about half of the square view is read."""
        import cv2
        out = []
        for k, v in enumerate(self.views):
            s = v.size_px
            used = np.zeros((s, s), np.uint8)
            if self.direct:
                used[:] = self.mask[::-1] > 0          # read-back rows run bottom-up
            else:
                mx, my, _ = self._maps[k]
                inside = (self.mask > 0) & (mx > -1.0) & (my > -1.0)
                x0, y0 = np.floor(mx[inside]).astype(np.int64), np.floor(my[inside]).astype(np.int64)
                for dx in (0, 1):
                    for dy in (0, 1):
                        used[np.clip(y0 + dy, 0, s - 1), np.clip(x0 + dx, 0, s - 1)] = 1
            if margin_px > 0:
                used = cv2.dilate(used, np.ones((2 * margin_px + 1,) * 2, np.uint8))
            any_col = used.any(axis=1)
            first = np.where(any_col, used.argmax(axis=1), 0)
            end = np.where(any_col, s - used[:, ::-1].argmax(axis=1), 0)
            out.append(np.stack([first, end], axis=1).astype(np.int32))
        return out

    def _depth_edges(self, inv: np.ndarray) -> np.ndarray:
        """(s, s) uint8: 1 where a bilinear cell may straddle a depth edge.

        Inverse depth is linear in the image on a plane, so its second difference is ~0 on smooth
        surfaces and about the size of the jump at an occlusion edge (or next to empty background);
        a pixel is an edge where the second difference exceeds half the first difference. The
        flags are dilated by one pixel to cover every cell that touches one.
        """
        import cv2
        d2 = np.maximum(np.abs(cv2.filter2D(inv, -1, self._d2x, borderType=cv2.BORDER_REPLICATE)),
                        np.abs(cv2.filter2D(inv, -1, self._d2x.T, borderType=cv2.BORDER_REPLICATE)))
        d1 = np.maximum(np.abs(cv2.filter2D(inv, -1, self._d1x, borderType=cv2.BORDER_REPLICATE)),
                        np.abs(cv2.filter2D(inv, -1, self._d1x.T, borderType=cv2.BORDER_REPLICATE)))
        edge = (d2 > DEPTH_EDGE_RATIO * d1 + 1e-3 * inv).astype(np.uint8)
        return cv2.dilate(edge, self._kernel)

    def apply_label(self, images: list[np.ndarray], channel: int = 0) -> np.ndarray:
        """(h, w) uint8: a 0/1 label of the read-backs (channel ``channel`` > 0.5, e.g. the polyp
        mask pass's) through the lens, by nearest sampling (a label is never interpolated); 0
        outside the mask. Nearest is the sample the depth takes at a depth edge."""
        import cv2
        if self.direct:
            return ((images[0][::-1, :, channel] > 0.5) & (self.mask > 0)).astype(np.uint8)
        out = np.zeros(self.mask.shape, np.uint8)
        for img, (mx, my, _) in zip(images, self._maps):
            label = (img[..., channel] > 0.5).astype(np.uint8)
            out |= cv2.remap(label, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        out *= (self.mask > 0).astype(np.uint8)
        return out

    def apply(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """images: one (s, s, 4) float32 read-back per view (rows bottom-up; rgb radiance, a = 1/z).

        Returns rgb (h, w, 3) float32 linear radiance (vignetted, 0 outside the mask) and depth
        (h, w) float32 z-depth in mm (0 outside the mask or where there is no surface).
        """
        import cv2
        if self.direct:
            img = images[0][::-1]
            rgb = img[..., :3] * self._gain
            inv = img[..., 3]
            depth = np.divide(1.0, inv, out=np.zeros(inv.shape, np.float32), where=inv > 0)
            depth *= self.mask
            return rgb, depth
        h, w = self.mask.shape
        rgba = np.zeros((h, w, 4), np.float32) if len(images) > 1 else None
        depth = np.zeros((h, w), np.float32)
        for img, (mx, my, k) in zip(images, self._maps):
            lin = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            inv = np.ascontiguousarray(img[..., 3])
            edge = cv2.remap(self._depth_edges(inv), mx, my, cv2.INTER_NEAREST)
            near = cv2.remap(inv, mx, my, cv2.INTER_NEAREST)
            inv_out = np.where(edge > 0, near, lin[..., 3])
            depth += np.divide(k, inv_out, out=np.zeros((h, w), np.float32), where=inv_out > 0)
            if rgba is None:
                rgba = lin
            else:
                rgba += lin
        # Whole-pixel (contiguous) passes: the vignette gain of alpha is 1 and alpha is dropped.
        cv2.multiply(rgba, self._gain4, dst=rgba)
        depth *= self.mask
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), depth
