"""Wilson and Clopper–Pearson intervals pinned to statsmodels; the 59/59 = 1.000 (1.000–1.000) bug."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from radiopath.evaluate import EvaluationError, bootstrap_metrics
from radiopath.evaluate.proportions import (
    ProportionCI,
    clopper_pearson_interval,
    proportion_ci,
    proportion_metrics,
    wilson_interval,
)

GRID = [
    (k, n) for n in (1, 2, 5, 17, 59, 200, 1000) for k in sorted({0, 1, n // 3, n // 2, n - 1, n}) if k >= 0
]


@pytest.mark.parametrize(("method", "reference"), [("wilson", "wilson"), ("clopper-pearson", "beta")])
@pytest.mark.parametrize("ci", [0.95, 0.9, 0.99])
def test_intervals_equal_statsmodels(method: str, reference: str, ci: float) -> None:
    k = np.array([g[0] for g in GRID])
    n = np.array([g[1] for g in GRID])
    lo, hi = proportion_ci(k, n, ci, method)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - ci, method=reference)
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)
    assert np.all(lo <= k / n) and np.all(k / n <= hi)


def test_59_of_59_is_not_reported_as_1_000_to_1_000() -> None:
    """Regression: a perfect sensitivity got the bootstrap interval (1.000–1.000)."""
    y = np.r_[np.ones(59), np.zeros(41)]
    p = np.r_[np.linspace(0.6, 0.99, 59), np.linspace(0.01, 0.7, 41)]
    boot = bootstrap_metrics(y, p, threshold=0.5, n_boot=300, seed=0, metrics=("sensitivity",))
    assert boot["sensitivity"].ci_low == boot["sensitivity"].ci_high == 1.0  # what we used to report
    lo, hi = wilson_interval(59, 59)
    assert float(hi) == 1.0 and float(lo) == pytest.approx(0.93887, abs=1e-5)
    lo_cp, _ = clopper_pearson_interval(59, 59)
    assert float(lo_cp) == pytest.approx(0.93939, abs=1e-5)  # exact: (0.025)^(1/59)
    assert float(lo_cp) == pytest.approx(0.025 ** (1 / 59), abs=1e-12)


def test_zero_denominator_is_nan_and_bad_counts_raise() -> None:
    lo, hi = proportion_ci(0, 0)
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(EvaluationError, match="0 <= k <= n"):
        proportion_ci(5, 3)
    with pytest.raises(EvaluationError, match="unknown interval method"):
        proportion_ci(1, 3, method="wald")


def test_proportion_metrics_from_counts() -> None:
    counts = {"tp": 40, "fn": 10, "tn": 30, "fp": 20}
    est = proportion_metrics(counts, ("sensitivity", "specificity", "ppv", "npv", "accuracy"))
    assert (est["sensitivity"].k, est["sensitivity"].n) == (40, 50)
    assert (est["ppv"].k, est["ppv"].n) == (40, 60)
    assert est["accuracy"].value == pytest.approx(0.7) and est["accuracy"].method == "Wilson"
    ref = proportion_confint(30, 40, method="wilson")
    assert (est["npv"].ci_low, est["npv"].ci_high) == pytest.approx(ref, abs=1e-12)
    nobody = proportion_metrics({"tp": 0, "fn": 5, "tn": 5, "fp": 0}, ("ppv",))["ppv"]
    assert np.isnan(nobody.value) and np.isnan(nobody.ci_low)
    with pytest.raises(EvaluationError, match="not a proportion"):
        proportion_metrics(counts, ("auc",))


def test_class_form() -> None:
    cp = ProportionCI(ci=0.9, method="exact")
    assert cp.label == "Clopper-Pearson"
    assert cp(3, 10) == pytest.approx(proportion_confint(3, 10, alpha=0.1, method="beta"), abs=1e-12)
