"""Calibration of predicted risks: intercept (calibration-in-the-large) and slope, and binned curves.

Definitions follow Van Calster et al., "Calibration: the Achilles heel of predictive
analytics", BMC Medicine 2019 (after Cox, Biometrika 1958). With ``x = logit(prob)``:

* **calibration slope** β from the logistic regression ``logit P(y=1) = a + β·x``; 1 is ideal,
  < 1 means predictions are too extreme (typical of overfitting), > 1 too moderate;
* **calibration intercept** α (calibration-in-the-large) from ``logit P(y=1) = α + x`` with
  ``x`` as an offset (slope fixed at 1); 0 is ideal, < 0 means risks are overestimated.

Both are fitted by Newton–Raphson on *weighted* patients, vectorised over rows of weights, so
the bootstrap fits 2,000 resamples at once (why not scikit-learn/statsmodels: they fit one
model per call and have no offset term in scikit-learn). The tests pin the fits to
statsmodels' ``GLM(Binomial)``. A resample whose fit does not converge (complete separation)
gives NaN, never a huge number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logit

from radiopath.evaluate._checks import as_labels, as_scores, require_both_classes

#: Probabilities are clipped to [EPS, 1 − EPS] before the logit, so 0 and 1 stay finite.
EPS = 1e-8
_MAX_ITER = 100
_TOL = 1e-10
#: Bootstrap resamples stop at this step size: far below any CI width, and saves Newton steps.
_TOL_RESAMPLE = 1e-7
_MAX_HALVINGS = 30
_DIVERGED = 1e4  # |slope| or |intercept| beyond this means separation: the MLE does not exist


@dataclass(frozen=True)
class CalibrationArrays:
    """Fitted intercepts and slopes for each row of weights (NaN where the fit failed)."""

    intercept: np.ndarray
    slope: np.ndarray


@dataclass(frozen=True)
class CalibrationResult:
    """Calibration intercept (ideal 0) and slope (ideal 1) of one set of predictions."""

    intercept: float
    slope: float


def logit_clipped(prob: np.ndarray) -> np.ndarray:
    """``logit(clip(prob, EPS, 1 − EPS))``."""
    return logit(np.clip(prob, EPS, 1.0 - EPS))


def _loglik(w: np.ndarray, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    return np.einsum("bn,bn->b", w, y * eta - np.logaddexp(0.0, eta))


def _fit_intercept(
    w: np.ndarray, y: np.ndarray, x: np.ndarray, start: float = 0.0, tol: float = _TOL
) -> np.ndarray:
    """α in ``logit P = α + x`` for each row of ``w`` (1-D Newton; concave, so plain steps converge)."""
    a = np.full(w.shape[0], float(start))
    wy = w @ y
    mu = np.empty_like(w)
    for _ in range(_MAX_ITER):
        np.add(a[:, None], x, out=mu)
        expit(mu, out=mu)
        grad = wy - np.einsum("bn,bn->b", w, mu)
        mu *= 1.0 - mu
        hess = np.einsum("bn,bn->b", w, mu)
        step = np.divide(grad, hess, out=np.zeros_like(grad), where=hess > 0)
        step = np.clip(step, -5.0, 5.0)  # keeps the first steps sane when risks are far off
        a = a + step
        if np.all(np.abs(step) < tol) or np.all(np.abs(a) > _DIVERGED):
            break
    a[(np.abs(a) > _DIVERGED) | ~np.isfinite(a)] = np.nan
    return a


def _newton_slope_step(
    w: np.ndarray, y: np.ndarray, design: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Newton step (da, db) of the two-parameter logistic fit at (a, b), for each row of ``w``.

    ``design`` is ``(x, x²)``. The sums are matrix–vector products (BLAS ``gemv``): a
    skinny ``gemm`` is slower here and, multithreaded on a busy machine, much slower.
    """
    x, x2 = design
    mu = np.multiply(b[:, None], x)
    mu += a[:, None]
    expit(mu, out=mu)
    r = y - mu  # residuals
    r *= w
    mu -= mu * mu  # mu·(1 − mu)
    mu *= w  # weighted variances
    g0, g1 = r.sum(axis=1), r @ x
    h00, h01, h11 = mu.sum(axis=1), mu @ x, mu @ x2
    det = h00 * h11 - h01 * h01
    ok = det > 1e-12 * np.maximum(h00 * h11, 1e-300)
    safe = np.where(ok, det, 1.0)
    da = np.where(ok, (h11 * g0 - h01 * g1) / safe, np.nan)
    db = np.where(ok, (h00 * g1 - h01 * g0) / safe, np.nan)
    return da, db


def _fit_slope_fast(
    w: np.ndarray, y: np.ndarray, x: np.ndarray, start: tuple[float, float], max_iter: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain Newton from ``start`` (the full-sample fit, close to every resample's optimum).

    Returns (a, b, converged); rows that did not settle are redone by :func:`_fit_slope`.
    """
    nb = w.shape[0]
    a, b = np.full(nb, start[0]), np.full(nb, start[1])
    design = (x, x * x)
    conv = np.zeros(nb, dtype=bool)
    for _ in range(max_iter):
        da, db = _newton_slope_step(w, y, design, a, b)
        a, b = a + da, b + db
        conv = (np.abs(da) < _TOL_RESAMPLE) & (np.abs(db) < _TOL_RESAMPLE)
        if conv.all() or not np.isfinite(da).any():
            break
    conv &= np.isfinite(a) & np.isfinite(b) & (np.abs(a) < _DIVERGED) & (np.abs(b) < _DIVERGED)
    return a, b, conv


def _fit_slope(w: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, β) in ``logit P = a + β·x`` for each row of ``w``: Newton with step halving (robust path)."""
    nb = w.shape[0]
    a, b = np.zeros(nb), np.ones(nb)
    design = (x, x * x)
    ll = _loglik(w, y, a[:, None] + b[:, None] * x)
    done = np.zeros(nb, dtype=bool)
    failed = np.zeros(nb, dtype=bool)  # singular information: separation, or all predictions equal
    for _ in range(_MAX_ITER):
        da, db = _newton_slope_step(w, y, design, a, b)
        stuck = (~np.isfinite(da) | ~np.isfinite(db)) & ~done
        failed |= stuck
        da[stuck | done] = 0.0
        db[stuck | done] = 0.0
        scale = np.ones(nb)
        for _h in range(_MAX_HALVINGS):  # concave log-likelihood: halve until it does not drop
            new_a, new_b = a + scale * da, b + scale * db
            new_ll = _loglik(w, y, new_a[:, None] + new_b[:, None] * x)
            worse = new_ll < ll - 1e-9 * np.abs(ll)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2.0, scale)
        a, b, ll = new_a, new_b, new_ll
        small = (np.abs(scale * da) < _TOL) & (np.abs(scale * db) < _TOL) & ~stuck
        diverged = (np.abs(a) > _DIVERGED) | (np.abs(b) > _DIVERGED) | stuck
        done |= small | diverged
        if done.all():
            break
    bad = ~done | failed | (np.abs(a) > _DIVERGED) | (np.abs(b) > _DIVERGED) | ~np.isfinite(b)
    a[bad] = np.nan
    b[bad] = np.nan
    return a, b


def weighted_calibration(
    y: np.ndarray, prob: np.ndarray, weights: np.ndarray, slope: bool = True
) -> CalibrationArrays:
    """Intercept and slope for each row of ``weights`` (shape ``(B, n)``); rows with one class → NaN."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    yf = np.asarray(y, dtype=float)
    x = logit_clipped(np.asarray(prob, dtype=float))
    wp = w @ yf
    both = (wp > 0) & (wp < w.sum(axis=1))
    intercept = np.full(w.shape[0], np.nan)
    slopes = np.full(w.shape[0], np.nan)
    if not both.any():
        return CalibrationArrays(intercept, slopes)
    wb = w[both]
    ones = np.ones((1, w.shape[1]))
    # Start every row at the full-sample fit: resamples sit close to it, so Newton needs few steps.
    a0 = _fit_intercept(ones, yf, x)[0]
    intercept[both] = _fit_intercept(wb, yf, x, start=0.0 if np.isnan(a0) else a0, tol=_TOL_RESAMPLE)
    if slope:
        s_a, s_b = _fit_slope(ones, yf, x)
        if np.isfinite(s_b[0]):
            _, b, conv = _fit_slope_fast(wb, yf, x, (float(s_a[0]), float(s_b[0])))
        else:
            b, conv = np.zeros(wb.shape[0]), np.zeros(wb.shape[0], dtype=bool)
        if not conv.all():
            b[~conv] = _fit_slope(wb[~conv], yf, x)[1]
        slopes[both] = b
    return CalibrationArrays(intercept, slopes)


def calibration_intercept_slope(y: Any, prob: Any) -> CalibrationResult:
    """Calibration intercept (calibration-in-the-large, ideal 0) and slope (ideal 1).

    ``y``: 0/1 outcomes; ``prob``: predicted probabilities. Raises
    :class:`~radiopath.evaluate._checks.EvaluationError` when only one outcome occurs.
    """
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    require_both_classes(yy, "calibration")
    cal = weighted_calibration(yy, pp, np.ones((1, yy.size)))
    return CalibrationResult(float(cal.intercept[0]), float(cal.slope[0]))


@dataclass(frozen=True)
class CalibrationBins:
    """Observed vs. predicted risk in groups of patients (for calibration plots)."""

    mean_predicted: np.ndarray
    observed: np.ndarray
    ci_low: np.ndarray  #: Wilson 95% interval of the observed proportion
    ci_high: np.ndarray
    count: np.ndarray


def calibration_bins(y: Any, prob: Any, n_bins: int = 10, z: float = 1.959964) -> CalibrationBins:
    """Quantile groups of predicted risk (at most ``n_bins``, at least 5 patients each).

    Observed proportions carry Wilson score intervals (Wilson, JASA 1927), which stay inside
    [0, 1] for small groups.
    """
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    k = int(max(1, min(n_bins, yy.size // 5)))
    order = np.argsort(pp, kind="stable")
    groups = np.array_split(order, k)
    mp, obs, lo, hi, cnt = [], [], [], [], []
    for g in groups:
        n = g.size
        phat = float(yy[g].mean())
        centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        mp.append(float(pp[g].mean()))
        obs.append(phat)
        lo.append(max(0.0, centre - half))
        hi.append(min(1.0, centre + half))
        cnt.append(n)
    return CalibrationBins(np.array(mp), np.array(obs), np.array(lo), np.array(hi), np.array(cnt))


def recalibration_curve(intercept: float, slope: float, grid: np.ndarray) -> np.ndarray:
    """Observed risk implied by the logistic recalibration fit ``expit(a + β·logit(p))`` on ``grid``.

    ``intercept`` here is the ``a`` of the slope model (not calibration-in-the-large).
    """
    return expit(intercept + slope * logit_clipped(grid))


def slope_model(y: Any, prob: Any) -> tuple[float, float]:
    """(a, β) of ``logit P(y=1) = a + β·logit(prob)`` — the line a calibration plot draws."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    require_both_classes(yy, "calibration")
    a, b = _fit_slope(np.ones((1, yy.size)), yy.astype(float), logit_clipped(pp))
    return float(a[0]), float(b[0])
