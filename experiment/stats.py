"""Bootstrap confidence intervals over per-image metrics."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], rng: np.random.Generator, n_boot: int = 2000,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval ``(mean, lo, hi)``.

    Images are resampled with replacement ``n_boot`` times; the interval is the
    ``(1-level)/2`` and ``(1+level)/2`` quantiles of the resampled means (Efron and Tibshirani 1993).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return float(v.mean()), float(lo), float(hi)


def paired_bootstrap_ratio(a: Sequence[float], b: Sequence[float], rng: np.random.Generator,
                           n_boot: int = 2000, level: float = 0.95) -> tuple[float, float, float]:
    """Ratio of means ``mean(b) / mean(a)`` over the same images, with a paired bootstrap interval."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    ratios = b[idx].mean(axis=1) / np.maximum(a[idx].mean(axis=1), 1e-12)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [q, 1.0 - q])
    return float(b.mean() / max(a.mean(), 1e-12)), float(lo), float(hi)


def summarize(per_image: Sequence[Mapping[str, float]], keys: Sequence[str], rng: np.random.Generator,
              ci_keys: Sequence[str] = ("abs_rel", "rmse_mm", "delta1"), n_boot: int = 2000) -> dict:
    """Means of every metric in ``keys``; for ``ci_keys`` also ``<key>_ci`` = [lo, hi] (95%)."""
    out: dict = {"n": len(per_image)}
    for k in keys:
        vals = [float(m[k]) for m in per_image if k in m]
        if k in ci_keys:
            mean, lo, hi = bootstrap_ci(vals, rng, n_boot)
            out[k] = mean
            out[f"{k}_ci"] = [lo, hi]
        else:
            out[k] = float(np.nanmean(vals)) if vals else float("nan")
    return out
