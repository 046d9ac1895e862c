"""DeLong (fast algorithm) against its closed form and the bootstrap; McNemar and Holm against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from radiopath.evaluate import (
    DeLong,
    EvaluationError,
    auc_ci_delong,
    bootstrap_metrics,
    delong_covariance,
    delong_roc_variance,
    delong_test,
    holm_adjust,
    mcnemar_test,
)


def naive_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong 1988 written out: structural components from all m·n pairs (the slow closed form)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (k, m, n)
    v10 = psi.mean(axis=2)  # per positive
    v01 = psi.mean(axis=1)  # per negative
    auc = v10.mean(axis=1)
    k = scores.shape[0]
    s10 = np.array(
        [[np.sum((v10[a] - auc[a]) * (v10[b] - auc[b])) / (m - 1) for b in range(k)] for a in range(k)]
    )
    s01 = np.array(
        [[np.sum((v01[a] - auc[a]) * (v01[b] - auc[b])) / (n - 1) for b in range(k)] for a in range(k)]
    )
    return auc, s10 / m + s01 / n


def test_hand_worked_case_with_a_tie() -> None:
    # positives 0.8, 0.6, 0.4; negatives 0.6, 0.3, 0.2 (one tie, at 0.6, worth 1/2).
    # V10 (per positive) = 1, 5/6, 2/3 → AUC = 5/6; S10 = var(V10) = 1/36.
    # V01 (per negative) = 1/2, 1, 1 → S01 = var(V01) = 1/12.
    # Var(AUC) = S10/m + S01/n = (1/36)/3 + (1/12)/3 = 1/27.
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.8, 0.6, 0.4, 0.6, 0.3, 0.2])
    auc, var = delong_roc_variance(y, p)
    assert auc == pytest.approx(5 / 6, abs=1e-15)
    assert var == pytest.approx(1 / 27, abs=1e-15)


def test_second_hand_worked_case_perfect_separation_has_zero_variance() -> None:
    auc, var = delong_roc_variance([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert auc == 1.0 and var == 0.0


def test_fast_algorithm_equals_closed_form_for_correlated_models() -> None:
    rng = np.random.default_rng(5)
    n = 120
    y = (rng.random(n) < 0.35).astype(int)
    base = rng.normal(size=n) + y
    scores = np.vstack(
        [
            np.round(base + rng.normal(size=n), 1),  # ties
            base + 0.5 * rng.normal(size=n),
            rng.normal(size=n),  # no signal
        ]
    )
    fast = delong_covariance(y, scores)
    auc, cov = naive_delong(y, scores)
    np.testing.assert_allclose(fast.auc, auc, atol=1e-12)
    np.testing.assert_allclose(fast.cov, cov, atol=1e-12)
    for k in range(3):
        assert fast.auc[k] == pytest.approx(roc_auc_score(y, scores[k]), abs=1e-12)


def test_delong_variance_agrees_with_bootstrap_on_a_large_sample() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    y = rng.random(n) < 0.4
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    _, var = delong_roc_variance(y, p)
    boot = bootstrap_metrics(y, p, n_boot=2000, seed=1, metrics=("auc",))
    # bootstrap SD has ~1.6% relative Monte-Carlo error at B = 2000
    assert boot["auc"].se == pytest.approx(np.sqrt(var), rel=0.08)


def test_paired_test_statistic_and_interval() -> None:
    rng = np.random.default_rng(2)
    n = 200
    y = (rng.random(n) < 0.5).astype(int)
    a = rng.normal(size=n) + 1.2 * y
    b = a + rng.normal(size=n) * 1.5  # noisier copy: correlated, lower AUC
    r = delong_test(y, a, b)
    auc, cov = naive_delong(y, np.vstack([a, b]))
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert r.diff == pytest.approx(auc[0] - auc[1], abs=1e-12)
    assert r.z == pytest.approx((auc[0] - auc[1]) / se, rel=1e-10)
    assert r.p_value == pytest.approx(2 * norm.sf(abs(r.z)), rel=1e-10)
    assert r.ci_low == pytest.approx(r.diff - 1.959963984540054 * se, rel=1e-9)
    assert r.ci_low < r.diff < r.ci_high
    same = delong_test(y, a, a)
    assert same.diff == 0 and same.p_value == 1.0 and same.z == 0.0
    assert DeLong().test(y, a, b) == r


def test_auc_interval_is_wald_and_clipped() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.3, 0.35, 0.8, 0.7, 0.9, 0.2, 0.4])
    iv = auc_ci_delong(y, p)
    auc, var = delong_roc_variance(y, p)
    assert iv.auc == auc and iv.se == pytest.approx(np.sqrt(var))
    assert iv.ci_high == min(1.0, auc + 1.959963984540054 * np.sqrt(var))
    assert 0.0 <= iv.ci_low <= iv.auc <= iv.ci_high <= 1.0


def test_delong_needs_two_of_each_class() -> None:
    with pytest.raises(EvaluationError, match="both outcomes"):
        delong_roc_variance([1, 1, 1], [0.2, 0.3, 0.4])
    with pytest.raises(EvaluationError, match="at least 2 positives"):
        delong_roc_variance([1, 0, 0], [0.2, 0.3, 0.4])


def _paired(b: int, c: int, both_right: int = 30, both_wrong: int = 7) -> tuple[np.ndarray, ...]:
    """Labels and two predictions with exactly b (only A right) and c (only B right) discordant pairs."""
    y = np.ones(b + c + both_right + both_wrong, dtype=int)
    a_right = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    b_right = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    return y, a_right.astype(int), b_right.astype(int)


@pytest.mark.parametrize(("b", "c"), [(3, 9), (0, 5), (12, 12), (30, 14), (8, 40)])
def test_mcnemar_equals_statsmodels(b: int, c: int) -> None:
    y, pa, pb = _paired(b, c)
    r = mcnemar_test(y, pa, pb)
    exact = b + c < 25
    ref = sm_mcnemar([[30, b], [c, 7]], exact=exact, correction=True)
    assert (r.b, r.c) == (b, c)
    assert r.method.startswith("exact" if exact else "chi")
    assert r.statistic == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_mcnemar_forced_modes_and_no_discordance() -> None:
    y, pa, pb = _paired(10, 20)
    assert mcnemar_test(y, pa, pb, exact=True).p_value == pytest.approx(
        sm_mcnemar([[30, 10], [20, 7]], exact=True).pvalue
    )
    assert mcnemar_test(y, pa, pb, exact=False).p_value == pytest.approx(
        sm_mcnemar([[30, 10], [20, 7]], exact=False, correction=True).pvalue
    )
    y0, p0, _ = _paired(0, 0)
    assert mcnemar_test(y0, p0, p0).p_value == 1.0


def test_holm_equals_statsmodels_and_keeps_nan() -> None:
    p = [0.01, 0.04, 0.03, 0.20, 0.0005]
    np.testing.assert_allclose(holm_adjust(p), multipletests(p, method="holm")[1])
    out = holm_adjust([0.02, np.nan, 0.01])
    np.testing.assert_allclose(out[[0, 2]], multipletests([0.02, 0.01], method="holm")[1])
    assert np.isnan(out[1])
