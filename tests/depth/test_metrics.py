import math

import numpy as np
import pytest

from colonsim.errors import InputError
from depth.metrics import METRIC_KEYS, aggregate, compute_metrics

GT = np.array([[10.0, 20.0], [40.0, 0.0]])      # 0 = invalid
PRED = np.array([[12.0, 18.0], [50.0, 99.0]])
MASK = np.ones((2, 2), np.uint8)


def test_eigen_and_simcol_sets_match_hand_values():
    m = compute_metrics(PRED, GT, MASK, align="none")
    p, g = np.array([12.0, 18.0, 50.0]), np.array([10.0, 20.0, 40.0])
    assert m["n_valid"] == 3
    assert m["abs_rel"] == pytest.approx((0.2 + 0.1 + 0.25) / 3)
    assert m["sq_rel"] == pytest.approx((4 / 10 + 4 / 20 + 100 / 40) / 3)
    assert m["rmse_mm"] == pytest.approx(math.sqrt((4 + 4 + 100) / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean(np.log(p / g) ** 2)))
    # ratios 1.2, 1.111, 1.25: 1.25 is not < 1.25
    assert m["delta1"] == pytest.approx(2 / 3)
    assert m["delta2"] == m["delta3"] == 1.0
    assert m["l1_mm"] == pytest.approx((2 + 2 + 10) / 3)
    assert m["median_rel"] == pytest.approx(0.2)


def test_median_alignment_uses_median_ratio():
    m = compute_metrics(PRED, GT, MASK, align="median")
    s = 20.0 / 18.0  # median(gt) / median(pred)
    assert m["scale"] == pytest.approx(s)
    p = np.array([12.0, 18.0, 50.0]) * s
    g = np.array([10.0, 20.0, 40.0])
    assert m["abs_rel"] == pytest.approx(np.mean(np.abs(p - g) / g))
    # a prediction off by a constant factor is perfect after alignment
    assert compute_metrics(3.0 * GT + (GT == 0), GT, MASK, align="median")["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_lsq_alignment_is_least_squares_scale():
    m = compute_metrics(PRED, GT, MASK, align="lsq")
    p, g = np.array([12.0, 18.0, 50.0]), np.array([10.0, 20.0, 40.0])
    s = (p @ g) / (p @ p)
    assert m["scale"] == pytest.approx(s)
    assert m["rmse_mm"] == pytest.approx(math.sqrt(np.mean((s * p - g) ** 2)))


def test_mask_and_depth_cap_exclude_pixels():
    mask = np.array([[1, 0], [1, 1]], np.uint8)
    m = compute_metrics(PRED, GT, mask, max_depth_mm=30.0)  # drops (0,1) by mask and 40 mm by the cap
    assert m["n_valid"] == 1
    assert m["abs_rel"] == pytest.approx(0.2)
    empty = compute_metrics(PRED, GT, np.zeros((2, 2)))
    assert empty["n_valid"] == 0 and math.isnan(empty["abs_rel"])


def test_aggregate_is_mean_over_images_with_valid_pixels():
    a = compute_metrics(PRED, GT, MASK)
    b = compute_metrics(GT + (GT == 0), GT, MASK)
    c = compute_metrics(PRED, GT, np.zeros((2, 2)))
    agg = aggregate([a, b, c])
    assert set(agg) == set(METRIC_KEYS)
    assert agg["abs_rel"] == pytest.approx(a["abs_rel"] / 2)
    assert b["delta1"] == 1.0


def test_size_mismatch_and_bad_align_are_errors():
    with pytest.raises(InputError, match="differ in size"):
        compute_metrics(np.ones((3, 3)), GT, None)
    with pytest.raises(InputError, match="align"):
        compute_metrics(PRED, GT, MASK, align="mean")
