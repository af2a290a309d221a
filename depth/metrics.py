"""Depth metrics: the one implementation that training, evaluation and benchmarks use (numpy).

Per image, over valid pixels (``mask > 0``, ``0 < gt <= max_depth_mm``, finite), after an optional
per-image scale alignment of the prediction (``align``: "none"; "median": ``s = median(gt) /
median(pred)``, as monocular benchmarks do; "lsq": the least-squares scale ``s = sum(pred * gt) /
sum(pred^2)``), and after clipping the prediction to ``[1e-3, max_depth_mm]``:

- the Eigen set (Eigen, Puhrsch, Fergus 2014): ``abs_rel = mean(|p - g| / g)``, ``sq_rel =
  mean((p - g)^2 / g)`` (mm), ``rmse_mm = sqrt(mean((p - g)^2))``, ``rmse_log = sqrt(mean((log p -
  log g)^2))``, ``delta_k = mean(max(p/g, g/p) < 1.25^k)`` for k = 1, 2, 3;
- the SimCol3D set (Rau et al. 2023): ``l1_mm = mean(|p - g|)``, ``median_rel = median(|p - g| / g)``.

Each per-image dict also holds ``n_valid`` (pixels) and ``scale`` (the alignment factor, 1 for
"none"). :func:`aggregate` gives means over images that have valid pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from colonsim.errors import InputError

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse_mm", "rmse_log", "delta1", "delta2", "delta3", "l1_mm", "median_rel")
ALIGN_MODES = ("none", "median", "lsq")
MIN_PRED_MM = 1e-3


def compute_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, *,
                    align: str = "none", max_depth_mm: float = 200.0) -> dict[str, float]:
    """Metrics of one image.

    Args:
        pred: (H, W) predicted depth, mm.
        gt: (H, W) ground-truth depth, mm; 0 (or non-finite) = invalid.
        mask: (H, W) field mask, nonzero inside; None = everywhere.
        align: "none", "median" or "lsq" (see module doc).
        max_depth_mm: ground truth beyond this is ignored, and predictions are clipped to it.
    Returns a dict with METRIC_KEYS, ``n_valid`` and ``scale``; metrics are NaN without valid pixels.
    """
    if align not in ALIGN_MODES:
        raise InputError(f"unknown align mode {align!r}; expected one of {', '.join(ALIGN_MODES)}")
    pred = np.asarray(pred, dtype=np.float64).squeeze()
    gt = np.asarray(gt, dtype=np.float64).squeeze()
    if pred.shape != gt.shape:
        raise InputError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    valid = np.isfinite(gt) & (gt > 0) & (gt <= max_depth_mm) & np.isfinite(pred)
    if mask is not None:
        mask = np.asarray(mask).squeeze()
        if mask.shape != gt.shape:
            raise InputError(f"mask {mask.shape} and ground truth {gt.shape} differ in size")
        valid &= mask > 0
    n = int(valid.sum())
    if n == 0:
        return {**{k: float("nan") for k in METRIC_KEYS}, "n_valid": 0, "scale": float("nan")}
    p, g = pred[valid], gt[valid]
    scale = 1.0
    if align == "median":
        scale = float(np.median(g) / max(np.median(p), MIN_PRED_MM))
    elif align == "lsq":
        scale = float(np.sum(p * g) / max(np.sum(p * p), 1e-12))
    p = np.clip(p * scale, MIN_PRED_MM, max_depth_mm)
    err = p - g
    rel = np.abs(err) / g
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(rel.mean()),
        "sq_rel": float((err ** 2 / g).mean()),
        "rmse_mm": float(np.sqrt((err ** 2).mean())),
        "rmse_log": float(np.sqrt(((np.log(p) - np.log(g)) ** 2).mean())),
        "delta1": float((ratio < 1.25).mean()),
        "delta2": float((ratio < 1.25 ** 2).mean()),
        "delta3": float((ratio < 1.25 ** 3).mean()),
        "l1_mm": float(np.abs(err).mean()),
        "median_rel": float(np.median(rel)),
        "n_valid": n,
        "scale": scale,
    }


def aggregate(per_image: Sequence[dict[str, float]]) -> dict[str, float]:
    """Means of METRIC_KEYS over the images that had valid pixels (NaN if none had)."""
    rows = [m for m in per_image if m.get("n_valid", 1) > 0]
    if not rows:
        return {k: float("nan") for k in METRIC_KEYS}
    return {k: float(np.mean([m[k] for m in rows])) for k in METRIC_KEYS}
