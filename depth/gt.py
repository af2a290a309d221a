"""Ground-truth depth files beside real frames (the real-data folder contract of DESIGN.md).

For an image ``NAME.ext`` the depth is looked for, in this order: beside it as ``NAME.npy``,
``NAME_depth.npy``, ``NAME_depth.png/.tif/.tiff``, ``NAME.tif/.tiff/.png`` (when that is not the
image itself); then in a sibling folder ``depth/``, ``depths/``, ``gt/`` or ``ground_truth/`` of the
image folder, as ``NAME.npy/.png/.tif/.tiff``.

``.npy`` holds float depth in mm. A 16-bit PNG or TIFF holds integer units that ``depth_scale``
(mm per unit) converts: SimCol3D (Rau et al. 2023) stores 16-bit PNG where 65280 is 200 mm;
C3VD (Bobrow et al. 2023) stores 16-bit TIFF where 65535 is 100 mm. ``parse_depth_scale`` accepts
those names. Zero stays zero (no ground truth).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from colonsim import decode_file
from colonsim.errors import InputError

#: Named depth scales, mm per 16-bit unit.
DEPTH_SCALES = {"simcol3d": 200.0 / 65280.0, "c3vd": 100.0 / 65535.0}
SIBLING_DIRS = ("depth", "depths", "gt", "ground_truth")
DEPTH_EXTS = (".npy", ".png", ".tif", ".tiff")


def parse_depth_scale(value: str | float | None) -> float | None:
    """A depth scale in mm per unit from a number or a name in DEPTH_SCALES (None stays None)."""
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    name = str(value).strip().lower()
    if name in DEPTH_SCALES:
        return DEPTH_SCALES[name]
    try:
        scale = float(name)
    except ValueError:
        raise InputError(f"--depth-scale {value!r} is neither a number (mm per unit) nor one of "
                         f"{', '.join(DEPTH_SCALES)}") from None
    if not scale > 0:
        raise InputError(f"--depth-scale must be positive (mm per unit), got {value!r}")
    return scale


def find_depth_file(image: str | Path) -> Path | None:
    """The ground-truth depth file of an image (see module doc), or None."""
    image = Path(image)
    stem, here = image.stem, image.parent
    candidates = [here / f"{stem}.npy"] + [here / f"{stem}_depth{e}" for e in DEPTH_EXTS]
    candidates += [here / f"{stem}{e}" for e in (".tif", ".tiff", ".png")]
    candidates += [here.parent / d / f"{stem}{e}" for d in SIBLING_DIRS for e in DEPTH_EXTS]
    for c in candidates:
        if c.is_file() and c.resolve() != image.resolve() and _is_depth_file(c):
            return c
    return None


def _is_depth_file(path: Path) -> bool:
    if path.suffix == ".npy":
        return True
    img = decode_file(path, cv2.IMREAD_UNCHANGED)   # by bytes: any file name
    return img is not None and img.ndim == 2 and img.dtype in (np.uint16, np.float32)


def read_depth(path: str | Path, depth_scale: float | None = None) -> np.ndarray:
    """Read a ground-truth depth map as (H, W) float32 mm (0 = no ground truth).

    Args:
        path: ``.npy`` (float mm) or a single-channel 16-bit PNG/TIFF (or float32 TIFF, mm).
        depth_scale: mm per unit of a 16-bit file; required for those.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"depth file not found: {path}")
    if path.suffix == ".npy":
        try:
            d = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise InputError(f"{path} is not a plain numeric .npy array ({e})") from None
        if d.ndim == 3 and d.shape[-1] == 1:
            d = d[..., 0]
        if d.ndim != 2 or not np.issubdtype(d.dtype, np.number):
            raise InputError(f"{path} holds {d.dtype} {d.shape}; expected an (H, W) float array in mm")
        if depth_scale is not None and np.issubdtype(d.dtype, np.integer):
            d = d * depth_scale
        return np.nan_to_num(d.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    img = decode_file(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read depth file {path}")
    if img.ndim != 2:
        raise InputError(f"depth file {path} has {img.shape[2]} channels; expected one channel")
    if img.dtype == np.float32:
        return np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    if img.dtype != np.uint16:
        raise InputError(f"depth file {path} is {img.dtype}; expected a 16-bit PNG/TIFF or a float .npy")
    if depth_scale is None:
        raise InputError(f"16-bit depth file {path} needs --depth-scale MM_PER_UNIT "
                         f"(simcol3d = 200/65280, c3vd = 100/65535)")
    return (img.astype(np.float32) * np.float32(depth_scale))


def read_depth_for(image: str | Path, shape: tuple[int, int], depth_scale: float | None) -> np.ndarray | None:
    """The ground truth of an image, checked against the image's (H, W); None if it has none."""
    path = find_depth_file(image)
    if path is None:
        return None
    d = read_depth(path, depth_scale)
    if d.shape != tuple(shape):
        raise InputError(f"ground truth {path} is {d.shape[1]}x{d.shape[0]} but its image {Path(image).name} "
                         f"is {shape[1]}x{shape[0]}; they must have the same size")
    return d
