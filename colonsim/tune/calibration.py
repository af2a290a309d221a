"""Import a real scope's calibration and image-circle mask into the lens config.

Two calibration formats are read (YAML, JSON, or OpenCV FileStorage YAML/XML):

- **OpenCV** (``cv2.fisheye.calibrate`` or ``cv2.calibrateCamera``): ``K`` (3x3, row-major, or
  the FileStorage ``camera_matrix`` node), ``D`` (fisheye: k1..k4; pinhole: k1, k2, p1, p2[, k3]),
  ``image_size`` / ``width`` + ``height``, and ``model: fisheye | pinhole``. Fisheye maps exactly
  onto the lens's ``fisheye`` model (Kannala, Brandt 2006). A pinhole calibration with zero
  distortion maps exactly onto ``pinhole``; with radial distortion it is converted to the closest
  fisheye polynomial (least squares over the field; the residual is logged). Tangential
  distortion (p1, p2) has no counterpart and must be below ``MAX_TANGENTIAL``.
- **Scaramuzza** omnidirectional (Scaramuzza, Martinelli, Siegwart 2006; the model of the C3VD
  calibration, Bobrow et al. 2023): ``model: scaramuzza`` with ``poly: [a0, a1, a2, a3, a4]``,
  ``stretch: [c, d, e]``, ``center: [cx, cy]`` and ``image_size: [width, height]`` (or the flat keys
  ``a0..a4, c, d, e, cx, cy, width, height``), or a text file of the 12 numbers
  ``width height cx cy a0 a1 a2 a3 a4 c d e``. Conventions: x is the column, y the row, pixel
  centres at integers (0-based); the pixel offset from the centre is ``[c d; e 1] (x', y')`` and
  the ray of the sensor point ``(x', y')`` is ``(x', y', sign(a0) (a0 + a1 rho + ... + a4 rho^4))``
  (x right, y down, z forward; rho = |(x', y')|). a1 must be 0, as both toolboxes fix it.

The image-circle mask (1 inside) is given as a PNG or estimated from real frames (a per-pixel
majority vote of :func:`colonsim.data.realdata.detect_border_mask`), and is fitted by the lens's
``round`` or ``octagon`` field stop (:func:`fit_field_stop`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colonsim.errors import ColonSimError, InputError
from colonsim.render.lens import Lens, LensConfig

log = logging.getLogger(__name__)

MAX_TANGENTIAL = 1e-3   # largest |p1|, |p2| of a pinhole calibration that is accepted (ignored)
MAX_IMAGE_SIDE = 100_000


@dataclass(frozen=True)
class Calibration:
    """A calibration in the lens's terms (see LensConfig.calib_*)."""
    model: str                              # pinhole | fisheye | omnidir (the lens model it maps to)
    size_px: tuple[int, int]                # calibration image (width, height), px
    matrix: tuple[float, float, float, float]  # px per unit r/f, row-major 2x2
    center_px: tuple[float, float]          # principal point (x, y), px, 0-based
    kb_coeffs: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # fisheye k1..k4
    omni_coeffs: tuple[float, float, float] = (0.0, 0.0, 0.0)  # omnidir a2, a3, a4 of g(rho), normalized
    source: str = ""                        # file it came from


# ----------------------------------------------------------------------------- reading files


def _fs_value(node):
    """A cv2.FileNode as a number, string, list, or nested list (matrices)."""
    if node.isSeq():
        return [_fs_value(node.at(i)) for i in range(node.size())]
    if node.isMap():
        m = node.mat()
        return None if m is None else m.tolist()
    if node.isInt() or node.isReal():
        return node.real()
    return node.string() if node.isString() else None


def _read_mapping(path: Path) -> dict:
    """A calibration file as a plain dict (YAML, JSON, OpenCV FileStorage, or 12 numbers)."""
    text = path.read_text(errors="replace")
    head = text.lstrip()[:16]
    if head.startswith("%YAML") or head.startswith("<?xml"):
        import cv2
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        try:
            return {key: _fs_value(fs.getNode(key)) for key in fs.root().keys()}
        finally:
            fs.release()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"calibration file {path} is not valid JSON: {e.msg} (line {e.lineno})") from None
    else:
        nums = text.replace(",", " ").split()
        try:
            values = [float(x) for x in nums]
        except ValueError:
            values = None
        if values is not None and len(values) == 12:
            keys = ("width", "height", "cx", "cy", "a0", "a1", "a2", "a3", "a4", "c", "d", "e")
            return {"model": "scaramuzza", **dict(zip(keys, values))}
        import yaml
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"calibration file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(f"calibration file {path} must hold a mapping of keys (K, D, image_size, ...), "
                         f"not {type(data).__name__}")
    return data


def _numbers(data: dict, keys: tuple[str, ...], n: int | None, path: Path, what: str) -> list[float]:
    """The first of ``keys`` present, flattened to floats (exactly n of them when n is given)."""
    for k in keys:
        if k in data and data[k] is not None:
            v = data[k]
            if isinstance(v, dict) and "data" in v:        # OpenCV FileStorage written as plain YAML
                v = v["data"]
            flat = np.asarray(v, dtype=object).ravel().tolist()
            try:
                out = [float(x) for x in flat]
            except (TypeError, ValueError):
                raise InputError(f"calibration file {path}: {k} must be numbers, got {v!r}") from None
            if n is not None and len(out) != n:
                raise InputError(f"calibration file {path}: {k} must have {n} numbers ({what}), got {len(out)}")
            if not all(math.isfinite(x) for x in out):
                raise InputError(f"calibration file {path}: {k} has non-finite values")
            return out
    raise InputError(f"calibration file {path} is missing {what} (key {' or '.join(keys)})")


def _size(data: dict, path: Path) -> tuple[int, int]:
    if "width" in data or "height" in data:
        w = _numbers(data, ("width",), 1, path, "the image width")[0]
        h = _numbers(data, ("height",), 1, path, "the image height")[0]
    else:
        w, h = _numbers(data, ("image_size", "size", "imageSize", "image_size_px"), 2, path,
                        "the image size [width, height]")
    if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE) or w != int(w) or h != int(h):
        raise InputError(f"calibration file {path}: impossible image size {w:g} x {h:g}; expected whole "
                         f"numbers of pixels between 1 and {MAX_IMAGE_SIDE}")
    return int(w), int(h)


def _opencv(data: dict, path: Path, model: str) -> Calibration:
    size = _size(data, path)
    K = np.asarray(_numbers(data, ("K", "camera_matrix", "cameraMatrix"), 9, path, "the 3x3 camera matrix K"))
    K = K.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] != 0 or np.any(K[2] != [0, 0, 1]):
        raise InputError(f"calibration file {path}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                         f"with fx, fy > 0, got {K.tolist()}")
    D = _numbers(data, ("D", "dist_coeffs", "distortion_coefficients", "distCoeffs"), None, path,
                 "the distortion coefficients D")
    matrix = (float(K[0, 0]), float(K[0, 1]), 0.0, float(K[1, 1]))
    center = (float(K[0, 2]), float(K[1, 2]))
    if model == "fisheye":
        if len(D) != 4:
            raise InputError(f"calibration file {path}: an OpenCV fisheye D has 4 numbers (k1..k4), got {len(D)}")
        return Calibration("fisheye", size, matrix, center, kb_coeffs=tuple(D), source=str(path))
    if len(D) not in (4, 5, 8, 12, 14):
        raise InputError(f"calibration file {path}: an OpenCV pinhole D has 4, 5, 8, 12 or 14 numbers, got {len(D)}")
    D = D + [0.0] * (5 - len(D)) if len(D) < 5 else D
    if any(abs(x) > MAX_TANGENTIAL for x in D[2:4]) or any(x != 0 for x in D[5:]):
        raise InputError(f"calibration file {path}: tangential (p1, p2 > {MAX_TANGENTIAL:g}) or rational/thin-prism "
                         "distortion has no counterpart in the lens models; recalibrate with the fisheye model")
    k1, k2, k3 = D[0], D[1], D[4]
    if k1 == k2 == k3 == 0:
        return Calibration("pinhole", size, matrix, center, source=str(path))
    # r_d = tan(t) (1 + k1 tan^2 + k2 tan^4 + k3 tan^6) is fitted by t (1 + c1 t^2 + ... + c4 t^8).
    f = math.sqrt(matrix[0] * matrix[3])
    corner = max(math.hypot(x - center[0], y - center[1]) for x in (0, size[0] - 1) for y in (0, size[1] - 1))
    t_max = math.atan(corner / f) * 1.05
    t = np.linspace(1e-4, t_max, 400)
    r2 = np.tan(t) ** 2
    rd = np.tan(t) * (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3)
    A = np.stack([t ** 3, t ** 5, t ** 7, t ** 9], axis=1)
    coeffs, *_ = np.linalg.lstsq(A, rd - t, rcond=None)
    err = float(np.abs(A @ coeffs + t - rd).max() * f)
    log.info("pinhole distortion of %s converted to fisheye k1..k4 = %s (max error %.3f px)", path, coeffs, err)
    return Calibration("fisheye", size, matrix, center, kb_coeffs=tuple(float(c) for c in coeffs), source=str(path))


def _scaramuzza(data: dict, path: Path) -> Calibration:
    size = _size(data, path)
    if "poly" in data or "coeffs" in data:
        a = _numbers(data, ("poly", "coeffs"), 5, path, "the polynomial a0..a4")
    else:
        a = [_numbers(data, (f"a{i}",), 1, path, f"the polynomial coefficient a{i}")[0] for i in range(5)]
    if "stretch" in data:
        c, d, e = _numbers(data, ("stretch",), 3, path, "the stretch [c, d, e]")
    else:
        c, d, e = (_numbers(data, (k,), 1, path, f"the stretch coefficient {k}")[0] for k in "cde")
    if "center" in data:
        cx, cy = _numbers(data, ("center",), 2, path, "the centre [cx, cy]")
    else:
        cx, cy = (_numbers(data, (k,), 1, path, f"the centre {k}")[0] for k in ("cx", "cy"))
    a0 = a[0]
    if abs(a0) < 1e-9:
        raise InputError(f"calibration file {path}: a0 must not be 0 (it is the focal scale, px)")
    if abs(a[1]) > 1e-9 * abs(a0):
        raise InputError(f"calibration file {path}: a1 must be 0 (the Scaramuzza toolboxes fix it), got {a[1]:g}")
    if abs(c - d * e) < 1e-9:
        raise InputError(f"calibration file {path}: the stretch [[c, d], [e, 1]] is singular (c = d e)")
    s = abs(a0)   # rho' = |a0| rho; g(rho) = poly(|a0| rho) / a0
    omni = (a[2] * a0, a[3] * a0 * s, a[4] * a0 ** 3)
    matrix = (c * s, d * s, e * s, s)
    return Calibration("omnidir", size, matrix, (cx, cy), omni_coeffs=omni, source=str(path))


def load_calibration(path: str | Path) -> Calibration:
    """Read an OpenCV (fisheye/pinhole) or Scaramuzza calibration file (module doc).

    Raises InputError for a missing file, an unknown format, missing fields or an impossible size."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"calibration file not found: {p}")
    data = _read_mapping(p)
    model = str(data.get("model", data.get("distortion_model", ""))).lower()
    if model in ("scaramuzza", "omnidir", "ocam") or any(k in data for k in ("poly", "a0")):
        return _scaramuzza(data, p)
    if model in ("fisheye", "equidistant", "kannala_brandt", "pinhole", "plumb_bob", "radtan"):
        return _opencv(data, p, "fisheye" if model in ("fisheye", "equidistant", "kannala_brandt") else "pinhole")
    if any(k in data for k in ("K", "camera_matrix", "cameraMatrix")):
        raise InputError(f"calibration file {p}: say which OpenCV model it is with 'model: fisheye' or "
                         "'model: pinhole'")
    raise InputError(f"calibration file {p} is neither an OpenCV calibration (K, D, image_size, model) nor "
                     "a Scaramuzza one (poly a0..a4, stretch c d e, center, image_size); see docs/tuning.md")


def apply_calibration(lens: LensConfig, calib: Calibration) -> LensConfig:
    """``lens`` with the calibration's model, coefficients and intrinsics. ``fov_deg`` becomes the
    field seen at the image-circle radius (circle_frac), measured along x."""
    base = dataclasses.replace(lens, model=calib.model, kb_coeffs=tuple(calib.kb_coeffs),
                               omni_coeffs=tuple(calib.omni_coeffs), calib_size_px=calib.size_px,
                               calib_matrix=tuple(calib.matrix), calib_center_px=tuple(calib.center_px),
                               fov_deg=10.0)
    w, h = calib.size_px
    probe = Lens(base, w, h)
    r = probe.radius_px / probe.matrix[0, 0]
    if r > probe._tab_r[-1]:
        raise InputError(f"calibration {calib.source}: the image circle (circle_frac {lens.circle_frac:g}) "
                         "reaches beyond the angles the model covers; lower lens.circle_frac")
    fov = 2.0 * math.degrees(float(probe.theta_of_unit_r(np.array([r]))[0]))
    try:
        return dataclasses.replace(base, fov_deg=min(fov, 199.0))
    except ColonSimError as e:
        raise InputError(f"calibration {calib.source} does not fit the lens model: {e}") from None


# ----------------------------------------------------------------------------- the image-circle mask


def read_mask(path: str | Path) -> np.ndarray:
    """An image-circle mask PNG as (H, W) uint8, 1 where the pixel is nonzero."""
    import cv2

    from colonsim.data.realdata import decode_file  # lazily, like cv2: only --mask needs them
    p = Path(path)
    if not p.is_file():
        raise InputError(f"mask file not found: {p}")
    img = decode_file(p, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(f"cannot read mask {p}: expected a PNG, nonzero inside the image circle")
    m = (img > 0).astype(np.uint8)
    if m.sum() < 0.05 * m.size:
        raise InputError(f"mask {p} is (nearly) empty; expected nonzero pixels inside the image circle")
    return m


def estimate_mask(frames: list[np.ndarray]) -> np.ndarray:
    """(H, W) uint8 majority vote of detect_border_mask over (H, W, 3) uint8 frames of one size."""
    from colonsim.data.realdata import detect_border_mask
    if not frames:
        raise InputError("no real frames to estimate the image-circle mask from")
    votes = np.zeros(frames[0].shape[:2], np.int32)
    for f in frames:
        if f.shape[:2] != votes.shape:
            raise InputError(f"real frames differ in size ({f.shape[:2]} vs {votes.shape}); "
                             "give the mask as a PNG instead")
        votes += detect_border_mask(f)
    return (2 * votes > len(frames)).astype(np.uint8)


def fit_field_stop(mask: np.ndarray) -> dict:
    """The lens field stop that best covers ``mask`` ((H, W), 1 inside), centred on the image.

    Returns {"mask": "round" | "octagon", "circle_frac", "octagon_frac", "iou"}."""
    import cv2
    scale = min(1.0, 128.0 / max(mask.shape))   # fractions do not depend on the resolution
    if scale < 1.0:
        mask = cv2.resize(mask.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    h, w = mask.shape
    m = mask > 0
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        raise InputError("the image-circle mask is empty")
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    R = max(xs.max() - cx, cx - xs.min(), ys.max() - cy, cy - ys.min()) + 0.5
    v, u = np.mgrid[0:h, 0:w]
    dx, dy = np.abs(u - cx), np.abs(v - cy)
    best = None
    for kind in ("round", "octagon"):
        fracs = [1.0] if kind == "round" else np.linspace(1.0, 2.0, 41)
        for of in fracs:
            for scale in np.linspace(0.9, 1.1, 21):
                Rs = R * scale
                fit = np.hypot(dx, dy) <= Rs if kind == "round" else (np.maximum(dx, dy) <= Rs) & (dx + dy <= of * Rs)
                iou = float((fit & m).sum() / max((fit | m).sum(), 1))
                if best is None or iou > best["iou"]:
                    best = {"mask": kind, "circle_frac": float(Rs / (min(w, h) / 2.0)),
                            "octagon_frac": float(of), "iou": iou}
    return best


def apply_field_stop(lens: LensConfig, stop: dict) -> LensConfig:
    """``lens`` with the fitted field stop (mask kind, circle_frac, octagon_frac)."""
    return dataclasses.replace(lens, mask=stop["mask"], circle_frac=min(stop["circle_frac"], 2.0),
                               octagon_frac=min(max(stop["octagon_frac"], 1.0), 2.0))
