"""Calibration intercept and slope pinned to statsmodels' logistic GLM; Wilson bins to statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from radiopath.evaluate import EvaluationError, calibration_bins, calibration_intercept_slope
from radiopath.evaluate.calibration import logit_clipped, slope_model, weighted_calibration


def _reference(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """statsmodels: intercept with logit(p) as offset; slope from logit(p) as the covariate."""
    x = logit_clipped(p)
    fam = sm.families.Binomial()
    citl = sm.GLM(y, np.ones((y.size, 1)), offset=x, family=fam, freq_weights=w).fit(tol=1e-12)
    slope = sm.GLM(y, sm.add_constant(x), family=fam, freq_weights=w).fit(tol=1e-12)
    return float(citl.params[0]), float(slope.params[1])


@pytest.mark.parametrize(
    ("shift", "scale", "seed"),
    [(0.0, 1.0, 0), (-0.8, 1.0, 1), (0.5, 0.5, 2), (0.0, 2.0, 3)],
)
def test_intercept_and_slope_equal_statsmodels(shift: float, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    lp = rng.normal(size=n) * 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(float)
    p = 1 / (1 + np.exp(-(shift + scale * lp)))  # miscalibrated predictions of a known kind
    got = calibration_intercept_slope(y, p)
    ref_int, ref_slope = _reference(y, p)
    assert got.intercept == pytest.approx(ref_int, abs=1e-8)
    assert got.slope == pytest.approx(ref_slope, abs=1e-8)


def test_weighted_rows_equal_statsmodels_frequency_weights() -> None:
    rng = np.random.default_rng(4)
    n = 150
    y = (rng.random(n) < 0.4).astype(float)
    p = np.clip(0.4 + 0.25 * (y - 0.4) + 0.2 * rng.normal(size=n), 0.01, 0.99)
    w = rng.integers(0, 4, size=(3, n)).astype(float)
    cal = weighted_calibration(y, p, w)
    for i in range(3):
        ref_int, ref_slope = _reference(y, p, w[i])
        assert cal.intercept[i] == pytest.approx(ref_int, abs=1e-6)
        assert cal.slope[i] == pytest.approx(ref_slope, abs=1e-6)


def test_known_miscalibration_is_recovered_on_a_large_sample() -> None:
    rng = np.random.default_rng(9)
    lp = rng.normal(size=40_000)
    y = rng.random(lp.size) < 1 / (1 + np.exp(-lp))
    perfect = calibration_intercept_slope(y, 1 / (1 + np.exp(-lp)))
    assert perfect.intercept == pytest.approx(0, abs=0.03) and perfect.slope == pytest.approx(1, abs=0.03)
    overfit = calibration_intercept_slope(y, 1 / (1 + np.exp(-2 * lp)))  # too extreme → slope ½
    assert overfit.slope == pytest.approx(0.5, abs=0.02)


def test_separation_gives_nan_not_a_huge_number() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    cal = weighted_calibration(y, p, np.ones((1, 6)))
    assert np.isnan(cal.slope[0])
    with pytest.raises(EvaluationError, match="both outcomes"):
        calibration_intercept_slope([1, 1], [0.3, 0.6])


def test_probabilities_of_exactly_0_and_1_are_finite() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    p = np.array([0.0, 1.0, 0.2, 0.7, 0.4, 0.6, 0.9, 0.1])
    got = calibration_intercept_slope(y, p)
    assert np.isfinite(got.intercept) and np.isfinite(got.slope)


def test_bins_use_wilson_intervals() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(200)
    y = rng.random(200) < p
    bins = calibration_bins(y, p, n_bins=10)
    assert bins.count.sum() == 200 and bins.count.size == 10
    order = np.argsort(p, kind="stable")
    first = order[: bins.count[0]]
    lo, hi = proportion_confint(int(y[first].sum()), first.size, method="wilson")
    assert bins.ci_low[0] == pytest.approx(lo) and bins.ci_high[0] == pytest.approx(hi)
    assert np.all(np.diff(bins.mean_predicted) > 0)


def test_slope_model_is_the_plotted_line() -> None:
    rng = np.random.default_rng(3)
    lp = rng.normal(size=300)
    y = (rng.random(300) < 1 / (1 + np.exp(-lp))).astype(float)
    p = 1 / (1 + np.exp(-lp))
    a, b = slope_model(y, p)
    ref = sm.GLM(y, sm.add_constant(logit_clipped(p)), family=sm.families.Binomial()).fit()
    assert (a, b) == pytest.approx(tuple(ref.params), abs=1e-7)
