"""Curves for the figures: ROC with a bootstrap confidence band, precision–recall.

The point curves come from scikit-learn (``roc_curve``, ``precision_recall_curve``). The ROC
band is pointwise: at each false-positive rate on a fixed grid, the 2.5th and 97.5th
percentiles of the true-positive rate over stratified bootstrap resamples (vertical
averaging, Fawcett, Pattern Recognition Letters 2006), computed from the same resample
weights as :mod:`radiopath.evaluate.bootstrap`, so no scikit-learn call per resample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from radiopath.evaluate._checks import as_labels, as_scores, check_ci, require_both_classes
from radiopath.evaluate.bootstrap import CHUNK_ELEMS, _seed_for, resample_weights
from radiopath.evaluate.metrics import ScoredSample

#: False-positive rates at which the band is evaluated.
FPR_GRID: np.ndarray = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ROCBand:
    """ROC curve of a model with a pointwise bootstrap band on :data:`FPR_GRID`."""

    fpr: np.ndarray
    tpr: np.ndarray
    grid: np.ndarray
    tpr_low: np.ndarray
    tpr_high: np.ndarray


def _roc_rows(sample: ScoredSample, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at each distinct threshold for each weight row, with a leading (0, 0)."""
    wy = w * sample.y
    pg = np.add.reduceat(wy, sample.group_starts, axis=1)
    ng = np.add.reduceat(w, sample.group_starts, axis=1) - pg
    tp, fp = np.cumsum(pg, axis=1), np.cumsum(ng, axis=1)
    tpr = tp / tp[:, -1:]
    fpr = fp / fp[:, -1:]
    zeros = np.zeros((w.shape[0], 1))
    return np.hstack([zeros, fpr]), np.hstack([zeros, tpr])


def roc_band(
    y: Any, prob: Any, n_boot: int = 2000, seed: int = 0, ci: float = 0.95, strata: Any = None
) -> ROCBand:
    """ROC curve plus a pointwise stratified-bootstrap band of its true-positive rate.

    ``strata`` (e.g. the center of each patient): resample within each stratum and outcome.
    """
    level = check_ci(ci)
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    require_both_classes(yy, "an ROC curve")
    fpr, tpr, _ = roc_curve(yy, pp)
    sample = ScoredSample.from_arrays(yy, pp, strata=strata)
    rng = np.random.default_rng(_seed_for(seed, sample))
    rows = max(1, int(CHUNK_ELEMS // sample.n))
    grid_tpr = np.empty((n_boot, FPR_GRID.size))
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        f, t = _roc_rows(sample, resample_weights(sample, rng, k))
        for i in range(k):
            grid_tpr[done + i] = np.interp(FPR_GRID, f[i], t[i])
        done += k
    alpha = (1 - level) / 2
    lo, hi = np.quantile(grid_tpr, [alpha, 1 - alpha], axis=0)
    return ROCBand(fpr, tpr, FPR_GRID, lo, hi)


@dataclass(frozen=True)
class PRCurve:
    """Precision–recall curve and the prevalence (the curve of a useless model)."""

    recall: np.ndarray
    precision: np.ndarray
    prevalence: float


def pr_curve(y: Any, prob: Any) -> PRCurve:
    """Precision–recall curve (scikit-learn's) with the prevalence baseline."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    require_both_classes(yy, "a precision-recall curve")
    precision, recall, _ = precision_recall_curve(yy, pp)
    return PRCurve(recall, precision, float(yy.mean()))
