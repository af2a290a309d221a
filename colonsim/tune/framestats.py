"""Image statistics of endoscopy frames, and the distance between two sets of frames.

The statistics, computed inside each frame's image circle at one analysis size (frames of both sets
are resized to the same square size first, so that noise and sharpness are comparable):

- ``profile``: the radial brightness profile, mean CIE L* (0-100) in ``N_BINS`` rings of the
  normalized radius r / R (R: the largest distance of a mask pixel from the mask's centroid);
- ``lab_quantiles``: the colour distribution, the ``QUANTILES`` of L*, a* and b* (OpenCV's Lab of
  8-bit sRGB rescaled to the CIE ranges), (3, len(QUANTILES));
- ``specular``: the fraction of mask pixels that are specular highlights (all channels >=
  ``SPECULAR_MIN`` of 255: white, saturated);
- ``noise``: the noise standard deviation of the grey image in grey levels (0-255), estimated
  with the Laplacian-difference operator of Immerkaer (1996) and a median (robust to edges);
- ``sharpness``: the mean gradient magnitude (Sobel, grey levels / px) over the mean grey level;
- ``view``: where the lumen is and how much of the frame it fills. The grey image is low-passed
  (Gaussian, a tenth of R) inside the circle; ``lumen_r`` is the normalized radius of its darkest
  point (0: a view down the lumen, near 1: a view of the wall, dark only at the rim), and
  ``lumen_frac`` the fraction of the circle darker than ``LUMEN_LEVEL`` of its 90th percentile. A set
  keeps the ``VIEW_QUANTILES`` of both over its frames: the distribution of views, not its mean.

A set of frames is summarized by the mean of each statistic over its frames (averaging quantiles is
the 1-D Wasserstein barycentre), and by the distribution of its views. :func:`distance` compares
two summaries as the sum of six parts, each scaled so that 1 is a clearly visible difference:

======== ===================================================================== =================
part     definition                                                             1.0 means
======== ===================================================================== =================
profile  mean |delta L*| over the radial bins / 10                              10 L* units
colour   mean |delta quantile| over L*, a*, b* and the quantiles / 10           10 Lab units
specular |delta fraction| / 0.02                                                2 % of the pixels
noise    |delta noise| / 2                                                      2 grey levels
sharp    |log2(sharp_a / sharp_b)|                                              a factor of 2
view     mean |delta quantile| of lumen_r and of lumen_frac / 0.1               a tenth of the
                                                                                radius or circle
======== ===================================================================== =================
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

N_BINS = 8
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SPECULAR_MIN = 235
VIEW_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
LUMEN_LEVEL = 0.35
SCALES = {"profile": 10.0, "colour": 10.0, "specular": 0.02, "noise": 2.0, "view": 0.1}
PARTS = ("profile", "colour", "specular", "noise", "sharp", "view")
_IMMERKAER = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])


@dataclass
class FrameStats:
    """Statistics of one frame or, averaged, of a set (module doc)."""
    profile: np.ndarray        # (N_BINS,) float64 mean L* per radial ring (nan where a ring is empty)
    lab_quantiles: np.ndarray  # (3, len(QUANTILES)) float64 quantiles of L*, a*, b*
    specular: float            # fraction of mask pixels that are highlights
    noise: float               # noise sigma, grey levels (0-255)
    sharpness: float           # mean gradient magnitude / mean grey level, 1 / px
    view: np.ndarray           # (2, len(VIEW_QUANTILES)) quantiles of lumen_r and lumen_frac over the frames

    def to_dict(self) -> dict:
        return {"profile": [round(float(x), 3) for x in self.profile],
                "lab_quantiles": [[round(float(x), 3) for x in row] for row in self.lab_quantiles],
                "specular": float(self.specular), "noise": float(self.noise), "sharpness": float(self.sharpness),
                "lumen_r": [round(float(x), 3) for x in self.view[0]],
                "lumen_frac": [round(float(x), 3) for x in self.view[1]]}


def resize_frame(rgb: np.ndarray, mask: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 and (H, W) mask -> (size, size, 3) uint8 (area-averaged) and (size, size) uint8."""
    if rgb.shape[:2] == (size_px, size_px):
        return rgb, mask.astype(np.uint8)
    small = cv2.resize(rgb, (size_px, size_px), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask.astype(np.uint8), (size_px, size_px), interpolation=cv2.INTER_NEAREST)
    return small, m


def frame_stats(rgb: np.ndarray, mask: np.ndarray) -> FrameStats:
    """Statistics of one frame. rgb: (H, W, 3) uint8 sRGB; mask: (H, W), nonzero inside the circle."""
    m = mask > 0
    if m.sum() < 16:
        raise ValueError("the image-circle mask has fewer than 16 pixels")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    L, a, b = lab[..., 0] * (100.0 / 255.0), lab[..., 1] - 128.0, lab[..., 2] - 128.0
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean(), xs.mean()
    r = np.hypot(ys - cy, xs - cx)
    rbin = np.minimum((r / max(r.max(), 1e-9) * N_BINS).astype(int), N_BINS - 1)
    Lm = L[m]
    counts = np.bincount(rbin, minlength=N_BINS)
    sums = np.bincount(rbin, weights=Lm, minlength=N_BINS)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    quant = np.stack([np.quantile(ch[m], QUANTILES) for ch in (L, a, b)])
    specular = float((rgb[m].min(axis=1) >= SPECULAR_MIN).mean())
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inner.sum() < 16:
        inner = m
    hp = np.abs(cv2.filter2D(grey, -1, _IMMERKAER))[inner]
    # For white noise, conv has sigma 6 sigma_n; median(|N(0, s)|) = 0.6745 s.
    noise = float(np.median(hp) / (0.6745 * 6.0))
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    sharp = float(np.hypot(gx, gy)[inner].mean() / max(grey[inner].mean(), 1.0))
    view = np.repeat(np.array(lumen(grey, inner, (cy, cx), r.max()))[:, None], len(VIEW_QUANTILES), 1)
    return FrameStats(profile, quant, specular, noise, sharp, view)


def lumen(grey: np.ndarray, inside: np.ndarray, centre: tuple[float, float], radius: float) -> tuple[float, float]:
    """(lumen_r, lumen_frac) of one frame (module doc): grey (H, W) float, inside (H, W) bool, the
    circle's centre (y, x) and radius R in px."""
    sigma = max(radius / 10.0, 0.5)
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    low = cv2.GaussianBlur(np.where(inside, grey, 0.0).astype(np.float32), (0, 0), sigma) / np.maximum(weight, 1e-3)
    vals = low[inside]
    ys, xs = np.nonzero(inside)
    k = int(np.argmin(vals))
    lumen_r = float(min(np.hypot(ys[k] - centre[0], xs[k] - centre[1]) / max(radius, 1e-9), 1.0))
    lumen_frac = float((vals < LUMEN_LEVEL * np.quantile(vals, 0.9)).mean())
    return lumen_r, lumen_frac


def set_stats(frames: list[tuple[np.ndarray, np.ndarray]], size_px: int) -> FrameStats:
    """Mean statistics of (rgb, mask) pairs, each first resized to (size_px, size_px)."""
    stats = [frame_stats(*resize_frame(rgb, mask, size_px)) for rgb, mask in frames]
    if not stats:
        raise ValueError("no frames to summarize")
    return FrameStats(profile=np.nanmean(np.stack([s.profile for s in stats]), axis=0),
                      lab_quantiles=np.mean([s.lab_quantiles for s in stats], axis=0),
                      specular=float(np.mean([s.specular for s in stats])),
                      noise=float(np.mean([s.noise for s in stats])),
                      sharpness=float(np.mean([s.sharpness for s in stats])),
                      view=np.quantile(np.stack([s.view[:, 0] for s in stats]), VIEW_QUANTILES, axis=0).T)


def distance_parts(a: FrameStats, b: FrameStats) -> dict[str, float]:
    """The six scaled parts of the distance (module doc)."""
    prof = np.abs(a.profile - b.profile)
    return {
        "profile": float(np.nanmean(prof) / SCALES["profile"]) if np.isfinite(prof).any() else 0.0,
        "colour": float(np.abs(a.lab_quantiles - b.lab_quantiles).mean() / SCALES["colour"]),
        "specular": abs(a.specular - b.specular) / SCALES["specular"],
        "noise": abs(a.noise - b.noise) / SCALES["noise"],
        "sharp": abs(math.log2(max(a.sharpness, 1e-6) / max(b.sharpness, 1e-6))),
        "view": float(np.abs(a.view - b.view).mean() / SCALES["view"]),
    }


def distance(a: FrameStats, b: FrameStats) -> float:
    """The sum of :func:`distance_parts` (0 for identical statistics)."""
    return float(sum(distance_parts(a, b).values()))
