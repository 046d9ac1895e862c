"""Statistical inference for AUCs and paired classifiers: DeLong (fast algorithm), McNemar, Holm.

* :func:`delong_roc_variance` / :func:`delong_covariance` — the variance (and, for several
  score vectors on the same patients, the covariance) of the empirical AUC by DeLong, DeLong &
  Clarke-Pearson, Biometrics 1988, computed with the O(N log N) midrank algorithm of Sun & Xu,
  IEEE Signal Processing Letters 2014 ("Fast implementation of DeLong's algorithm for comparing
  the areas under correlated receiver operating characteristic curves") instead of DeLong's
  O(m·n) structural components.
* :func:`auc_ci_delong` — AUC with a Wald interval ``AUC ± z·√var``, clipped to [0, 1] (as
  pROC does by default).
* :func:`delong_test` — paired test of two AUCs on the same patients, with the AUC difference
  and its confidence interval.
* :func:`mcnemar_test` — McNemar (Psychometrika 1947) for paired accuracies at a threshold:
  exact binomial test when fewer than 25 discordant pairs, else χ² with continuity correction
  (the convention of statsmodels' ``mcnemar``, to which the tests pin it).
* :func:`holm_adjust` — Holm's step-down adjustment (Scand. J. Statist. 1979) for a family of tests.

Why our own DeLong: scikit-learn has none, and the common copies of Sun & Xu's code handle
ties and more than two models inconsistently; this one is short and pinned by tests to the
closed form and to the bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom, chi2, norm, rankdata

from radiopath.evaluate._checks import (
    EvaluationError,
    as_labels,
    as_scores,
    check_ci,
    require_both_classes,
)


@dataclass(frozen=True)
class DeLongResult:
    """AUCs of ``k`` score vectors and the ``k × k`` DeLong covariance matrix of those AUCs."""

    auc: np.ndarray
    cov: np.ndarray
    n_pos: int
    n_neg: int


def _scores_2d(y: np.ndarray, scores: Any) -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise EvaluationError(f"scores: expected shape (n,) or (k, n), got {arr.shape}")
    for i, row in enumerate(arr):
        as_scores(row, y.size, name=f"scores[{i}]", unit_interval=False)
    return arr


def delong_covariance(y: Any, scores: Any) -> DeLongResult:
    """AUCs and their DeLong covariance for ``scores`` (shape ``(k, n)`` or ``(n,)``) on labels ``y``.

    Sun & Xu (2014): with midranks ``Tz`` of each score vector over all patients, ``Tx`` over
    the ``m`` positives and ``Ty`` over the ``n`` negatives, the structural components are
    ``V10 = (Tz[pos] − Tx)/n`` and ``V01 = 1 − (Tz[neg] − Ty)/m``; then
    ``AUC = mean(V10)`` and ``Cov = S10/m + S01/n`` with ``S`` the sample covariances
    (denominator m − 1, n − 1). Ties get half credit, as in the Mann–Whitney statistic.
    """
    yy = as_labels(y)
    m, n = require_both_classes(yy, "the DeLong variance")
    if m < 2 or n < 2:
        raise EvaluationError(
            f"the DeLong variance needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    s = _scores_2d(yy, scores)
    pos, neg = s[:, yy], s[:, ~yy]
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    auc = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return DeLongResult(auc=auc, cov=s10 / m + s01 / n, n_pos=m, n_neg=n)


def delong_roc_variance(y: Any, prob: Any) -> tuple[float, float]:
    """``(auc, variance)`` of the empirical AUC of ``prob`` for labels ``y`` (DeLong, Sun & Xu)."""
    r = delong_covariance(y, prob)
    return float(r.auc[0]), float(r.cov[0, 0])


@dataclass(frozen=True)
class AUCInterval:
    """AUC with its DeLong standard error and Wald confidence interval."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    ci: float


def auc_ci_delong(y: Any, prob: Any, ci: float = 0.95) -> AUCInterval:
    """AUC with a DeLong confidence interval ``AUC ± z·SE``, clipped to [0, 1]."""
    level = check_ci(ci)
    auc, var = delong_roc_variance(y, prob)
    se = float(np.sqrt(max(var, 0.0)))
    z = float(norm.ppf(0.5 + level / 2))
    return AUCInterval(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), level)


@dataclass(frozen=True)
class DeLongTestResult:
    """Paired DeLong comparison of two AUCs measured on the same patients."""

    auc_a: float
    auc_b: float
    diff: float  #: auc_a − auc_b
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    n_pos: int
    n_neg: int


def delong_test(y: Any, scores_a: Any, scores_b: Any, ci: float = 0.95) -> DeLongTestResult:
    """Two-sided paired DeLong test of ``AUC(a) = AUC(b)``, with the difference and its CI.

    ``var(diff) = Var(a) + Var(b) − 2·Cov(a, b)`` from :func:`delong_covariance`; identical
    scores give ``z = 0, p = 1``.
    """
    level = check_ci(ci)
    yy = as_labels(y)
    a = as_scores(scores_a, yy.size, "scores_a", unit_interval=False)
    b = as_scores(scores_b, yy.size, "scores_b", unit_interval=False)
    r = delong_covariance(yy, np.vstack([a, b]))
    diff = float(r.auc[0] - r.auc[1])
    var = float(r.cov[0, 0] + r.cov[1, 1] - 2 * r.cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    zq = float(norm.ppf(0.5 + level / 2))
    if se <= 1e-15:
        z, p = 0.0, 1.0
    else:
        z = diff / se
        p = float(min(1.0, 2.0 * norm.sf(abs(z))))
    return DeLongTestResult(
        float(r.auc[0]), float(r.auc[1]), diff, se, diff - zq * se, diff + zq * se, z, p, r.n_pos, r.n_neg
    )


class DeLong:
    """Class form: ``DeLong(ci=0.95)`` then ``.interval(y, prob)`` or ``.test(y, a, b)``."""

    def __init__(self, ci: float = 0.95) -> None:
        self.ci = check_ci(ci)

    def interval(self, y: Any, prob: Any) -> AUCInterval:
        return auc_ci_delong(y, prob, self.ci)

    def test(self, y: Any, scores_a: Any, scores_b: Any) -> DeLongTestResult:
        return delong_test(y, scores_a, scores_b, self.ci)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar test on paired correct/incorrect classifications of two models."""

    b: int  #: model a right, model b wrong
    c: int  #: model a wrong, model b right
    statistic: float  #: min(b, c) for the exact test, χ² otherwise
    p_value: float
    method: str  #: "exact binomial" or "chi-squared, continuity-corrected"


#: Below this many discordant pairs the exact binomial test is used.
MCNEMAR_EXACT_BELOW = 25


def mcnemar_test(y: Any, pred_a: Any, pred_b: Any, exact: bool | None = None) -> McNemarResult:
    """Paired McNemar test of the accuracies of two sets of 0/1 predictions for labels ``y``.

    ``exact=None`` chooses the exact binomial test when the discordant pairs number fewer
    than :data:`MCNEMAR_EXACT_BELOW`, else χ² with continuity correction; ``True``/``False``
    forces one. No discordant pairs gives ``p = 1``.
    """
    yy = as_labels(y)
    a = as_labels(pred_a, "pred_a")
    bb = as_labels(pred_b, "pred_b")
    if a.size != yy.size or bb.size != yy.size:
        raise EvaluationError(
            f"mcnemar_test: y, pred_a, pred_b must have one entry per patient, "
            f"got {yy.size}, {a.size}, {bb.size}"
        )
    ra, rb = a == yy, bb == yy
    b = int((ra & ~rb).sum())
    c = int((~ra & rb).sum())
    use_exact = (b + c) < MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    if b + c == 0:
        return McNemarResult(
            b, c, 0.0, 1.0, "exact binomial" if use_exact else "chi-squared, continuity-corrected"
        )
    if use_exact:
        p = float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))
        return McNemarResult(b, c, float(min(b, c)), p, "exact binomial")
    stat = (abs(b - c) - 1.0) ** 2 / (b + c)
    return McNemarResult(b, c, float(stat), float(chi2.sf(stat, 1)), "chi-squared, continuity-corrected")


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control); NaNs stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    k = order.size
    adj = np.maximum.accumulate((k - np.arange(k)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def __getattr__(name: str) -> Any:
    # The bootstrap lives in its own module; keep ``stats.bootstrap_metrics`` importable too.
    if name in {"bootstrap_metrics", "Bootstrap", "BootstrapResult"}:
        from radiopath.evaluate import bootstrap

        return getattr(bootstrap, name)
    raise AttributeError(name)
