"""Training-free reverse adaptation: give real frames the image statistics of a synthetic set.

A reference for the learned refiner, and a measure of what the refiner has to learn. Four fixed
steps; the last three are fitted to the synthetic ColonSim HDF5, and none moves the layout of light
and dark (lumen, folds, polyps) in a frame:

0. **highlights**: specular highlights of the wet mucosa (small patches of pixels whose every
   channel is at least ``highlight_level``, grown by a pixel or two) are inpainted from the mucosa around them
   (Telea 2004, as ``cv2.inpaint``), since the ``clean`` renders have none. This is the detect-and-
   inpaint approach of Arnold, Ghosh, Ameling, Lacey (2010, "Automatic segmentation and inpainting of
   specular highlights for endoscopic imaging", EURASIP J. Image Video Process.), simplified to a
   fixed threshold. Mucosa is red to yellow, so its blue channel stays well under a highlight's;
1. **defocus**: the frame's grey level is low-passed by a Gaussian as wide, relative to the image
   circle, as the renders' sensor defocus (``sensor.defocus_sigma_px`` of the file's config);
2. **tone**: its grey levels inside the image circle are mapped, by rank, onto the grey-level
   distribution of one synthetic frame drawn at random (histogram matching: monotone, so the
   order of light and dark stays);
3. **colour**: each grey level takes the synthetic set's mean colour at that grey level (in a
   ``clean`` render colour is, up to a few levels, a function of the grey level: one albedo).

``steps`` chooses which of the four to apply (all by default; ``--only`` on the command line), to
measure what each contributes. Without ``colour`` a pixel keeps its own chromaticity, scaled to
its new grey level. Outside the image circle stays black. The draw of step 2 is seeded by ``seed`` and the frame's
name (folders, videos) or index (HDF5), so a frame's output does not depend on which other
frames are processed with it.
"""
from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from colonsim import open_checked
from colonsim.data import realdata
from colonsim.errors import DatasetError, InputError

from ..apply import check_paths, write_frames, write_h5
from ..data import H5Frames

#: Points of each synthetic frame's grey-level quantile function.
QUANTILES = 257
#: The steps of :func:`match_frame`, in the order they are applied.
STEPS = ("highlights", "defocus", "tones", "colour")
#: Default of ``highlight_level``: 8-bit level that all three channels of a highlight reach.
HIGHLIGHT_LEVEL = 170
#: A bright patch larger than this fraction of the image circle is overexposed wall, not a highlight.
HIGHLIGHT_MAX_FRAC = 0.01
#: Pixels a grey level needs for its own colour in the lookup table; rarer levels are interpolated.
LUT_MIN_PIXELS = 20


@dataclass(frozen=True)
class MatchTarget:
    """The synthetic set's statistics that :func:`match_frame` imposes.

    lut: (256, 3) float32, the mean RGB of the synthetic pixels at each grey level (mean of R, G, B);
        outside the synthetic range, the nearest end's hue scaled to the grey level (may exceed 255).
    quantiles: (K, QUANTILES) float32, each fitted synthetic frame's grey-level quantile function.
    blur_frac: the defocus Gaussian's sigma as a fraction of the image circle's height.
    """
    lut: np.ndarray
    quantiles: np.ndarray
    blur_frac: float
    source: str = ""

    def summary(self) -> dict:
        return {"synthetic": self.source, "frames_fitted": int(len(self.quantiles)),
                "blur_frac": round(float(self.blur_frac), 5),
                "median_grey": round(float(np.median(self.quantiles[:, QUANTILES // 2])), 1)}


def circle_height(mask: np.ndarray) -> int:
    """Rows of the frame that hold some of the image circle (the circle's height, px)."""
    return int(np.count_nonzero((mask > 0).any(axis=1)))


def _config_defocus_px(path: Path) -> float | None:
    """The mean of ``sensor.defocus_sigma_px`` in the file's stored config, or None."""
    with open_checked(path) as f:
        raw = f.attrs.get("config")
    try:
        value = json.loads(raw)["sensor"]["defocus_sigma_px"]
        return float(np.mean(np.asarray(value, dtype=float)))
    except (TypeError, KeyError, ValueError, json.JSONDecodeError):
        return None


def fit_target(synthetic: str | Path, frames: int = 400, blur_frac: float | None = None) -> MatchTarget:
    """Fit :class:`MatchTarget` to up to ``frames`` evenly spaced frames of a ColonSim HDF5.

    ``blur_frac`` None takes the renders' defocus from the file's config (0 when it has none).
    """
    path = Path(synthetic)
    if not path.exists():
        raise InputError(f"synthetic set not found: {path}; expected a ColonSim .h5")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise InputError(f"--synthetic {path} is not a readable HDF5 file; matching needs a ColonSim .h5 to fit to")
    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if blur_frac is not None and not 0.0 <= blur_frac <= 0.2:
        raise InputError(f"--blur-frac must lie in [0, 0.2] (a fraction of the image circle's height), got {blur_frac}")
    src = H5Frames(path, cache_mb=0)  # each frame is read once
    if len(src) == 0:
        raise DatasetError(f"{path} holds no complete frames to fit to")
    idx = np.unique(np.linspace(0, len(src) - 1, min(frames, len(src))).round().astype(int))
    sums, counts = np.zeros((256, 3)), np.zeros(256)
    quantiles, heights = [], []
    levels = np.linspace(0.0, 1.0, QUANTILES)
    for i in idx:
        rgb, mask = src.get(int(i))
        inside = rgb[mask > 0].astype(np.float64)
        if len(inside) == 0:
            continue
        grey = inside.mean(axis=1)
        g = np.clip(grey.round(), 0, 255).astype(int)
        counts += np.bincount(g, minlength=256)
        for c in range(3):
            sums[:, c] += np.bincount(g, weights=inside[:, c], minlength=256)
        quantiles.append(np.quantile(grey, levels))
        heights.append(circle_height(mask))
    if not quantiles:
        raise DatasetError(f"{path}: no frame has pixels inside its mask")
    ok = counts >= LUT_MIN_PIXELS
    if not ok.any():
        ok = counts > 0
    lut = np.empty((256, 3))
    levels_ok = np.flatnonzero(ok)
    for c in range(3):
        lut[:, c] = np.interp(np.arange(256), levels_ok, sums[ok, c] / counts[ok])
    # Beyond the synthetic range, the nearest end's hue at the pixel's own grey level.
    lo, hi = levels_ok[0], levels_ok[-1]
    if lo > 0:
        lut[:lo] = lut[lo] * (np.arange(lo) / lo)[:, None]
    lut[hi + 1:] = lut[hi] * (np.arange(hi + 1, 256) / max(hi, 1))[:, None]
    if blur_frac is None:
        defocus = _config_defocus_px(path)
        blur_frac = 0.0 if defocus is None else defocus / float(np.median(heights))
    return MatchTarget(lut.astype(np.float32), np.asarray(quantiles, np.float32), float(blur_frac), str(path))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank in [0, 1]; equal values share their mean rank (a flat area stays flat)."""
    if len(values) < 2:
        return np.full(len(values), 0.5)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mid = np.cumsum(counts) - 0.5 * (counts + 1)      # mean 0-based position of each distinct value
    return mid[inverse] / (len(values) - 1)


def _masked_blur(grey: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of the pixels inside the circle only (normalized convolution)."""
    if sigma <= 0:
        return grey
    m = inside.astype(np.float32)
    num = cv2.GaussianBlur(grey * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return num / np.maximum(den, 1e-6)


def frame_key(name: str | int) -> int:
    """The per-frame part of the draw's seed: a frame's index, or a stable hash of its name."""
    return int(name) if isinstance(name, (int, np.integer)) else zlib.crc32(str(name).encode())


def check_steps(steps, option: str = "--only") -> tuple[str, ...]:
    """``steps`` as a tuple of known step names (a comma-separated string is split); InputError,
    naming ``option``, otherwise."""
    if isinstance(steps, str):
        steps = [x.strip() for x in steps.split(",") if x.strip()]
    steps = tuple(steps)
    bad = [x for x in steps if x not in STEPS]
    if bad or not steps:
        raise InputError(f"{option} must be one or more of {','.join(STEPS)} (comma-separated), got "
                         f"{','.join(steps) or 'nothing'}")
    return tuple(x for x in STEPS if x in steps)


def remove_highlights(rgb: np.ndarray, inside: np.ndarray, level: int = HIGHLIGHT_LEVEL,
                      max_frac: float = HIGHLIGHT_MAX_FRAC) -> tuple[np.ndarray, np.ndarray]:
    """Inpaint the specular highlights of a frame: (frame, highlight mask (H, W) bool).

    A highlight pixel has all three channels >= ``level`` inside the image circle, in a connected
    patch of at most ``max_frac`` of the circle (larger bright patches are overexposed wall, which
    inpainting from the rim would smear); the mask is grown by ``circle height / 200`` px (at least
    1) to take in the highlights' soft rims, and filled by Telea's method with a radius of ``circle height / 100`` px (at least 3). The border
    is first filled outward from the circle's edge, so that highlights at the edge are not filled
    with black. Pixels outside the mask are returned unchanged.
    """
    hl = (rgb.min(axis=2) >= level) & inside
    if not hl.any():
        return rgb, hl
    # Specular highlights are small; a large bright patch is overexposed wall, and stays.
    _, labels, stats, _ = cv2.connectedComponentsWithStats(hl.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_frac * inside.sum())
    hl = np.isin(labels, small[small > 0])
    if not hl.any():
        return rgb, hl
    height = circle_height(inside)
    grow = max(1, round(height / 200))
    hl = cv2.dilate(hl.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))).astype(bool) & inside
    src = rgb
    if not inside.all():   # the circle's colours (not the highlights') carried outward, a few pixels deep
        mucosa = inside & ~hl
        w = mucosa.astype(np.float32)
        sigma = max(2.0, height / 50)
        num = cv2.GaussianBlur(rgb.astype(np.float32) * w[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
        mean = rgb[mucosa].mean(axis=0) if mucosa.any() else np.zeros(3)
        fill = np.where(den > 1e-3, num / np.maximum(den, 1e-3), mean)   # far out: the circle's mean
        fill = np.clip(fill, 0, 255).astype(np.uint8)
        src = np.where(inside[..., None], rgb, fill)
    out = cv2.inpaint(np.ascontiguousarray(src), hl.astype(np.uint8), max(3, round(height / 100)),
                      cv2.INPAINT_TELEA)
    return np.where(hl[..., None], out, rgb), hl


def match_frame(rgb: np.ndarray, mask: np.ndarray | None, target: MatchTarget, key: int,
                seed: int = 0, steps=STEPS, highlight_level: int = HIGHLIGHT_LEVEL,
                highlight_max_frac: float = HIGHLIGHT_MAX_FRAC) -> np.ndarray:
    """One frame (H, W, 3) uint8 -> the matched frame, same size; black outside the mask.

    mask: (H, W), nonzero inside the image circle; None detects the black border.
    steps: which of :data:`STEPS` to apply. highlight_level, highlight_max_frac: ``level`` and
    ``max_frac`` of :func:`remove_highlights`.
    """
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"matching needs (H, W, 3) uint8 frames, got {rgb.shape} {rgb.dtype}")
    steps = check_steps(steps)
    inside = (realdata.detect_border_mask(rgb) if mask is None else np.asarray(mask)) > 0
    out = np.zeros_like(rgb)
    if not inside.any():
        return out
    if "highlights" in steps:
        rgb = remove_highlights(rgb, inside, highlight_level, highlight_max_frac)[0]
    src = rgb.astype(np.float32)
    grey = src.mean(axis=2)
    if "defocus" in steps:
        sigma = target.blur_frac * circle_height(inside)
        grey = _masked_blur(grey, inside, sigma)
        if "colour" not in steps:
            src = np.stack([_masked_blur(src[..., c], inside, sigma) for c in range(3)], axis=2)
    new = grey[inside].astype(np.float64)
    if "tones" in steps:
        pick = int(np.random.default_rng([seed, key]).integers(len(target.quantiles)))
        new = np.interp(_ranks(new), np.linspace(0.0, 1.0, QUANTILES), target.quantiles[pick])
    if "colour" in steps:
        colour = np.stack([np.interp(new, np.arange(256), target.lut[:, c]) for c in range(3)], axis=1)
    else:   # the pixel's own chromaticity at its new grey level
        colour = src[inside] * (new / np.maximum(grey[inside], 1e-3))[:, None]
    out[inside] = np.clip(colour.round(), 0, 255).astype(np.uint8)
    return out


def match(synthetic: str | Path, input: str | Path, out: str | Path, *, frames: int = 400,
          blur_frac: float | None = None, seed: int = 0, steps=STEPS, highlight_level: int = HIGHLIGHT_LEVEL,
          highlight_max_frac: float = HIGHLIGHT_MAX_FRAC, overwrite: bool = False) -> dict:
    """Match a folder, video or ColonSim HDF5 to a synthetic set; written as :func:`adapt.apply.apply`
    writes refined frames (same names and sizes; an HDF5 copy with only ``rgb`` changed; atomic)."""
    src, dst = Path(input), Path(out)
    h5_input = check_paths(src, dst, overwrite, keep=[Path(synthetic)])
    steps = check_steps(steps)
    if not 1 <= int(highlight_level) <= 255 or int(highlight_level) != highlight_level:
        raise InputError(f"--highlight-level must be an 8-bit level from 1 to 255, got {highlight_level}")
    level = int(highlight_level)
    if not 0.0 < highlight_max_frac <= 1.0:
        raise InputError(f"--highlight-max-frac must be in (0, 1], got {highlight_max_frac}")
    max_frac = float(highlight_max_frac)
    target = fit_target(synthetic, frames, blur_frac)
    t0 = time.monotonic()
    if h5_input:
        def batch(idx, rgb, mask):
            masks = [None if mask is None else (mask if mask.ndim == 2 else mask[j]) for j in range(len(rgb))]
            return np.stack([match_frame(rgb[j], masks[j], target, frame_key(int(idx[j])), seed, steps, level,
                                         max_frac)
                             for j in range(len(rgb))])
        by = {"matched_to": str(synthetic), "seed": seed, "blur_frac": target.blur_frac, "steps": list(steps),
              "highlight_level": level, "highlight_max_frac": max_frac}
        n = write_h5(batch, by, src, dst, 16, desc="adapt match", overwrite=overwrite)
    else:
        n = write_frames(lambda name, rgb: match_frame(rgb, None, target, frame_key(name), seed, steps, level,
                                                       max_frac),
                         src, dst, desc="adapt match", overwrite=overwrite)
    return {"frames": n, "input": str(src), "out": str(dst), "seed": seed, "steps": list(steps),
            "highlight_level": level, "highlight_max_frac": max_frac,
            "seconds": round(time.monotonic() - t0, 1), **target.summary()}
