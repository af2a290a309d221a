import numpy as np

from experiment.stats import bootstrap_ci, paired_bootstrap_ratio, summarize


def test_bootstrap_ci_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 0.5, 20)
    large = rng.normal(1.0, 0.5, 2000)
    m1, lo1, hi1 = bootstrap_ci(small, np.random.default_rng(1))
    m2, lo2, hi2 = bootstrap_ci(large, np.random.default_rng(1))
    assert lo1 < m1 < hi1 and lo2 < m2 < hi2
    assert (hi2 - lo2) < (hi1 - lo1) / 5  # width falls like 1/sqrt(n): sqrt(100) = 10
    # The 95% interval of a normal mean is about +-1.96 sigma/sqrt(n).
    assert abs((hi2 - lo2) - 2 * 1.96 * 0.5 / np.sqrt(2000)) < 0.01


def test_constant_values_have_a_zero_width_interval():
    m, lo, hi = bootstrap_ci([0.2] * 10, np.random.default_rng(0))
    assert m == lo == hi == 0.2


def test_paired_ratio_of_half_is_found():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.4, 200)
    r, lo, hi = paired_bootstrap_ratio(a, a * 0.5, np.random.default_rng(2))
    assert abs(r - 0.5) < 1e-12 and lo <= 0.5 <= hi


def test_summarize_adds_ci_only_for_ci_keys():
    per = [{"abs_rel": 0.1 * i, "l1_mm": float(i)} for i in range(1, 11)]
    s = summarize(per, ["abs_rel", "l1_mm"], np.random.default_rng(0))
    assert s["n"] == 10 and abs(s["abs_rel"] - 0.55) < 1e-12 and "abs_rel_ci" in s and "l1_mm_ci" not in s
