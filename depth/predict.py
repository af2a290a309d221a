"""Depth prediction with a trained network, on arrays, folders of images and videos.

:func:`predict_depth` resizes each frame to the network's training size (``size_px`` x ``size_px``,
area averaging), runs the network, and resizes the depth back to the frame's size (bilinear). The
network was trained at one pixel scale, so running it at another would change what a fold or the
lumen looks like to it; resizing keeps the input like the training data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from colonsim import staged_output
from colonsim.errors import InputError

PLY_HEADER = ("ply\nformat binary_little_endian 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")


@torch.no_grad()
def predict_depth(model: torch.nn.Module, rgb: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Depth of one frame (H, W, 3) or of a batch (N, H, W, 3) of uint8 RGB frames.

    Returns float32 depth in mm of shape (H, W) or (N, H, W): any frame size is accepted (see the
    module doc for the resizing to the training size and back).
    """
    batch_size = check_batch_size(batch_size)
    rgb = np.asarray(rgb)
    single = rgb.ndim == 3
    frames = rgb[None] if single else rgb
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"predict_depth needs (H, W, 3) or (N, H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    n, h, w = frames.shape[:3]
    size = int(getattr(model, "size_px", 0)) or max(h, w)
    device = next(model.parameters()).device
    model.eval()
    out = np.empty((n, h, w), np.float32)
    for s in range(0, n, batch_size):
        chunk = frames[s:s + batch_size]
        if (h, w) != (size, size):
            interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
            chunk = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in chunk])
        x = torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))).float().div_(255.0)
        d = model(x.to(device)).float().cpu().numpy()[:, 0]
        if (h, w) != (size, size):
            d = np.stack([cv2.resize(di, (w, h), interpolation=cv2.INTER_LINEAR) for di in d])
        out[s:s + len(chunk)] = d
    return out[0] if single else out


def colorize(depth: np.ndarray, mask: np.ndarray | None = None, max_depth_mm: float | None = None) -> np.ndarray:
    """(H, W) depth mm -> (H, W, 3) uint8 RGB, turbo colour map, near = red, far = blue, on a log
    scale from the 2nd to the 98th percentile (or up to ``max_depth_mm``); black outside ``mask``."""
    valid = depth > 0 if mask is None else (mask > 0) & (depth > 0)
    if not valid.any():
        return np.zeros(depth.shape + (3,), np.uint8)
    lo, hi = np.percentile(np.log(depth[valid]), [2, 98])
    if max_depth_mm is not None:
        hi = min(hi, np.log(max_depth_mm))
    t = (np.log(np.maximum(depth, 1e-3)) - lo) / max(hi - lo, 1e-6)
    u8 = np.round(255 * (1.0 - np.clip(t, 0, 1))).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)
    bgr[~valid] = 0
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_fov(fov_deg: float | None, flag: str = "--fov-deg") -> float | None:
    """InputError unless ``fov_deg`` is None or a field of view strictly between 0 and 180 degrees."""
    if fov_deg is None:
        return None
    try:
        fov = float(fov_deg)
    except (TypeError, ValueError):
        raise InputError(f"{flag} must be a number of degrees, got {fov_deg!r}") from None
    if not 0.0 < fov < 180.0:
        raise InputError(f"{flag} must be a field of view between 0 and 180 degrees (exclusive), got {fov_deg!r}")
    return fov


def check_batch_size(batch_size: int, flag: str = "batch_size") -> int:
    """InputError unless ``batch_size`` is a whole number of frames, at least 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"{flag} must be a whole number of frames, at least 1; got {batch_size!r}")
    return int(batch_size)


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes, to write by bytes: cv2.imwrite takes a C string and crashed
    on a file name that is not UTF-8."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError("cannot encode a PNG")
    return buf.tobytes()


def intrinsics_matrix(norm: list[float] | None, h: int, w: int, fov_deg: float | None = None) -> np.ndarray:
    """A (3, 3) pinhole matrix for an (h, w) frame: from a horizontal field of view if given, else
    from normalized intrinsics [fx/W, fy/H, cx/W, cy/H] (those of the training data)."""
    fov_deg = check_fov(fov_deg)
    if fov_deg is not None:
        f = w / 2 / np.tan(np.radians(fov_deg) / 2)
        return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)
    if norm is None:
        raise InputError("the checkpoint holds no camera intrinsics; pass --fov-deg for the point cloud")
    fx, fy, cx, cy = norm
    return np.array([[fx * w, 0, cx * w], [0, fy * h, cy * h], [0, 0, 1]], np.float64)


def write_ply(path: str | Path, depth: np.ndarray, rgb: np.ndarray, k: np.ndarray,
              mask: np.ndarray | None = None) -> int:
    """Back-project (H, W) z-depth mm through the pinhole ``k`` into a coloured point cloud (binary
    PLY, mm, camera frame with OpenGL axes: x right, y up, looking along -z). Returns the point count."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    valid = depth > 0 if mask is None else (depth > 0) & (mask > 0)
    z = depth[valid].astype(np.float64)
    x = (u[valid] + 0.5 - k[0, 2]) / k[0, 0] * z
    y = (v[valid] + 0.5 - k[1, 2]) / k[1, 1] * z
    verts = np.empty(z.size, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    verts["x"], verts["y"], verts["z"] = x, -y, -z
    verts["r"], verts["g"], verts["b"] = rgb[valid].T
    with open(path, "wb") as f:
        f.write(PLY_HEADER.format(n=z.size).encode("ascii"))
        f.write(verts.tobytes())
    return int(z.size)


def predict_folder(model_path: str | Path, source: str | Path, out_dir: str | Path, *, ply: bool = False,
                   fov_deg: float | None = None, batch_size: int = 16, overwrite: bool = False) -> dict[str, Any]:
    """Predict every frame of a folder of images or a video: ``NAME.npy`` (float32 mm, 0 outside
    the detected image circle), ``NAME.png`` (colour map) and, with ``ply``, ``NAME.ply``.

    A non-empty ``out_dir`` is refused unless ``overwrite``; the files are written beside it and
    moved into it once all are written (:func:`colonsim.staged_output`), replacing only files of the
    same names. The summary counts the truncated JPEGs read (``truncated``)."""
    from colonsim.data.realdata import detect_border_mask, iter_frames, truncated_images

    from .networks import load_model

    fov_deg = check_fov(fov_deg)
    batch_size = check_batch_size(batch_size)
    if str(out_dir).strip() == "":
        raise InputError("--out is empty; give a folder name")
    src, out = Path(source), Path(out_dir)
    if not src.exists():
        raise InputError(f"--input not found: {src}; expected a folder of images or a video")
    if out.resolve() == src.resolve():
        raise InputError(f"--out {out} is the input itself; choose another folder")
    if out.parent.is_dir():
        from colonsim import check_output
        check_output(out, overwrite=overwrite, directory=True)   # before the model loads
    model, meta = load_model(model_path)
    if ply and fov_deg is None and meta.get("intrinsics_norm") is None:
        intrinsics_matrix(None, 1, 1)   # the error, before any frame
    truncated = len(truncated_images())
    frames = iter_frames(src)
    first = next(frames)   # a missing or empty source fails here, before any folder is made
    out.parent.mkdir(parents=True, exist_ok=True)
    n, points = 0, 0
    with staged_output(out, overwrite=overwrite, directory=True) as tmp:
        for name, rgb in _chain(first, frames):
            stem = Path(name).stem
            mask = detect_border_mask(rgb)
            depth = predict_depth(model, rgb, batch_size) * mask
            np.save(tmp / f"{stem}.npy", depth.astype(np.float32))
            (tmp / f"{stem}.png").write_bytes(encode_png(colorize(depth, mask)))
            if ply:
                k = intrinsics_matrix(meta.get("intrinsics_norm"), *depth.shape, fov_deg=fov_deg)
                points += write_ply(tmp / f"{stem}.ply", depth, rgb, k, mask)
            n += 1
    return {"n": n, "out_dir": str(out), "ply": ply, "points": points,
            "truncated": len(truncated_images()) - truncated}


def _chain(first, rest):
    yield first
    yield from rest
