"""Recalibration of the frozen model at an external center: model *updating*, with that center's labels.

A model validated at a new hospital often ranks patients well but is miscalibrated there (a
different case mix or scanner shifts every risk). The standard remedy is to update the model
with a few of the new center's outcomes, in increasing order of how much is re-estimated
(Steyerberg, "Clinical Prediction Models", 2nd ed. 2019, ch. 20; Van Calster et al., BMC
Medicine 2019;17:230; Janssen et al., J Clin Epidemiol 2008;61:76–86):

1. **intercept only** (calibration-in-the-large): ``logit p' = α + logit p``; corrects the
   average risk, keeps the spread;
2. **intercept + slope** (logistic recalibration): ``logit p' = a + β·logit p``; also
   corrects predictions that are too extreme (β < 1) or too moderate (β > 1).

Both are monotone maps of the frozen model's risk, so the ranking of patients — and hence the
AUC — cannot change within one fitted map. They use the center's own labels, so they are not
external validation any more: results are reported *next to* the frozen model's, never
instead of them, and labelled as updating.

Scoring an update on the patients it was fitted on would flatter it. Here it is cross-fitted
inside the center: the center's labelled patients are split into ``K`` folds stratified by
outcome; the update for fold ``j`` is fitted on the other folds and applied to fold ``j``; the
updated risks of all folds are then scored together. With cross-fitting each fold has its own
fitted map, so the pooled AUC can move slightly. Centers with fewer than ``min_patients``
patients or ``min_events`` patients in the rarer outcome are skipped, with the reason given.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from radiopath.evaluate._checks import EvaluationError, as_labels, as_scores, require_both_classes
from radiopath.evaluate.calibration import calibration_intercept_slope, logit_clipped, slope_model
from radiopath.evaluate.metrics import binary_metrics, confusion_counts
from radiopath.evaluate.predictions import EXTERNAL, labelled
from radiopath.evaluate.proportions import proportion_metrics

#: The updating methods, in order of complexity, with their printable names.
METHODS: dict[str, str] = {
    "none": "frozen model (no update)",
    "intercept": "intercept only (calibration-in-the-large)",
    "logistic": "intercept + slope (logistic recalibration)",
}
#: Defaults for a center to be updated.
N_FOLDS = 5
MIN_PATIENTS = 50
MIN_EVENTS = 10


def _check_method(method: str) -> str:
    if method not in ("intercept", "logistic"):
        raise EvaluationError(f"recalibration method must be 'intercept' or 'logistic', got {method!r}")
    return method


class LogisticRecalibration:
    """``logit p' = intercept_ + slope_·logit p``, fitted by maximum likelihood (scikit-learn style).

    ``method="intercept"`` fixes ``slope_ = 1`` and fits the intercept with ``logit p`` as an
    offset; ``method="logistic"`` fits both.

    >>> r = LogisticRecalibration("intercept").fit([0, 1, 1, 0, 1], [0.2, 0.4, 0.6, 0.3, 0.5])
    >>> r.slope_, round(r.intercept_, 3)
    (1.0, 0.888)
    """

    def __init__(self, method: str = "logistic") -> None:
        self.method = _check_method(method)

    def fit(self, y: Any, prob: Any) -> LogisticRecalibration:
        yy = as_labels(y)
        pp = as_scores(prob, yy.size)
        require_both_classes(yy, "recalibration")
        if self.method == "intercept":
            self.intercept_ = calibration_intercept_slope(yy, pp).intercept
            self.slope_ = 1.0
        else:
            self.intercept_, self.slope_ = slope_model(yy, pp)
        if not (np.isfinite(self.intercept_) and np.isfinite(self.slope_)):
            raise EvaluationError(
                f"recalibration ({self.method}): the fit does not exist on these patients "
                "(the outcomes are perfectly separated by the predicted risk)"
            )
        return self

    def predict_proba(self, prob: Any) -> np.ndarray:
        """Updated risks of ``prob``."""
        if not hasattr(self, "slope_"):
            raise EvaluationError("LogisticRecalibration: call fit(y, prob) first")
        p = np.asarray(prob, dtype=float)
        pp = as_scores(p, p.size)
        return expit(self.intercept_ + self.slope_ * logit_clipped(pp))


def stratified_folds(y: Any, n_folds: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """Fold of each patient (0…n_folds−1), outcome-stratified, reproducible from ``seed``."""
    yy = as_labels(y)
    rng = np.random.default_rng(seed)
    folds = np.empty(yy.size, dtype=int)
    offset = 0
    for cls in (True, False):
        members = rng.permutation(np.flatnonzero(yy == cls))
        folds[members] = (np.arange(members.size) + offset) % n_folds
        offset += members.size  # continue the round-robin so fold sizes stay balanced overall
    return folds


@dataclass(frozen=True)
class CrossFitted:
    """Cross-fitted updated risks of one center and the fitted maps of each fold."""

    prob: np.ndarray  #: updated risk of each patient, from the map fitted without the patient's fold
    fold: np.ndarray
    intercepts: np.ndarray  #: per fold
    slopes: np.ndarray  #: per fold
    method: str


def crossfit_recalibration(
    y: Any, prob: Any, method: str = "logistic", n_folds: int = N_FOLDS, seed: Any = 0
) -> CrossFitted:
    """Update ``prob`` by ``method``, fitting on ``n_folds − 1`` folds and applying to the held-out one."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    _check_method(method)
    n_pos, n_neg = require_both_classes(yy, "recalibration")
    if n_folds < 2 or n_folds > min(n_pos, n_neg):
        raise EvaluationError(
            f"recalibration: n_folds must be between 2 and the smaller outcome count ({min(n_pos, n_neg)}), "
            f"got {n_folds}"
        )
    fold = stratified_folds(yy, n_folds, seed)
    out = np.empty(yy.size)
    intercepts, slopes = np.empty(n_folds), np.empty(n_folds)
    for j in range(n_folds):
        test = fold == j
        fit = LogisticRecalibration(method).fit(yy[~test], pp[~test])
        out[test] = fit.predict_proba(pp[test])
        intercepts[j], slopes[j] = fit.intercept_, fit.slope_
    return CrossFitted(out, fold, intercepts, slopes, method)


def center_seed(seed: int, center: str) -> np.random.SeedSequence:
    """The folds of a center depend on the run's seed and the center's name only (same for every model)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(str(center).encode("utf-8"))])


def eligibility(
    n_pos: int, n_neg: int, min_patients: int = MIN_PATIENTS, min_events: int = MIN_EVENTS
) -> str:
    """``""`` when a center may be updated, else the reason it is skipped."""
    n = n_pos + n_neg
    if n < min_patients:
        return f"{n} labelled patients, fewer than the {min_patients} required for updating"
    if min(n_pos, n_neg) < min_events:
        rarer = "with LNM" if n_pos <= n_neg else "without LNM"
        return (
            f"{min(n_pos, n_neg)} patients {rarer}, fewer than the {min_events} events required for updating"
        )
    return ""


_SCORED = ("auc", "brier", "cal_intercept", "cal_slope")
_PROPS = ("accuracy", "sensitivity", "specificity")


def _scores(y: np.ndarray, p: np.ndarray, threshold: float, ci: float, method: str) -> dict[str, Any]:
    out: dict[str, Any] = dict(binary_metrics(y, p, threshold, metrics=_SCORED))
    for name, e in proportion_metrics(confusion_counts(y, p, threshold), _PROPS, ci, method).items():
        out[name], out[f"{name}_low"], out[f"{name}_high"] = e.value, e.ci_low, e.ci_high
    return out


def recalibration_table(
    df: pd.DataFrame,
    models: Sequence[str],
    thresholds: Mapping[str, float],
    n_folds: int = N_FOLDS,
    seed: int = 0,
    min_patients: int = MIN_PATIENTS,
    min_events: int = MIN_EVENTS,
    ci: float = 0.95,
    proportion_method: str = "wilson",
) -> tuple[pd.DataFrame, list[str]]:
    """Each external center × model: the frozen model, then both updates, cross-fitted in the center.

    Accuracy, sensitivity and specificity are at the model's frozen threshold (with binomial
    intervals); AUC, Brier and calibration intercept/slope are of the (updated) risks. A last
    block pools the cross-fitted risks of the centers that were updated (each with its own map).
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    ext = labelled(df[df["cohort"] == EXTERNAL])
    pooled: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for center in sorted(ext["center"].unique()):
        for model in models:
            sub = ext[(ext["center"] == center) & (ext["model"] == model)]
            if sub.empty:
                continue
            y = sub["label"].to_numpy() == 1.0
            p = sub["prob"].to_numpy()
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            base = {
                "model": model,
                "cohort": f"external/{center}",
                "center": center,
                "n": int(y.size),
                "n_pos": n_pos,
                "threshold": float(thresholds[model]),
                "n_folds": n_folds,
            }
            reason = eligibility(n_pos, n_neg, min_patients, min_events)
            fits: dict[str, CrossFitted] = {}
            if not reason:
                try:
                    for method in ("intercept", "logistic"):
                        fits[method] = crossfit_recalibration(
                            y, p, method, n_folds, center_seed(seed, center)
                        )
                except EvaluationError as exc:
                    reason, fits = str(exc), {}
            if reason:
                rows.append(
                    {
                        **base,
                        "update": "none",
                        "update_label": METHODS["none"],
                        "status": "skipped",
                        "reason": reason,
                        **_scores(y, p, thresholds[model], ci, proportion_method),
                    }
                )
                notes.append(f"recalibration of {model} at {center} skipped: {reason}")
                continue
            for method in METHODS:
                upd = p if method == "none" else fits[method].prob
                fitted = {}
                if method != "none":
                    f = fits[method]
                    fitted = {
                        "fitted_intercept": float(f.intercepts.mean()),
                        "fitted_intercept_min": float(f.intercepts.min()),
                        "fitted_intercept_max": float(f.intercepts.max()),
                        "fitted_slope": float(f.slopes.mean()),
                        "fitted_slope_min": float(f.slopes.min()),
                        "fitted_slope_max": float(f.slopes.max()),
                    }
                pooled.setdefault((model, method), []).append((y, upd))
                rows.append(
                    {
                        **base,
                        "update": method,
                        "update_label": METHODS[method],
                        "status": "done",
                        "reason": "",
                        **fitted,
                        **_scores(y, upd, thresholds[model], ci, proportion_method),
                    }
                )
    for (model, method), parts in pooled.items():
        y = np.concatenate([a for a, _ in parts])
        upd = np.concatenate([b for _, b in parts])
        rows.append(
            {
                "model": model,
                "cohort": "external",
                "center": None,
                "n": int(y.size),
                "n_pos": int(y.sum()),
                "threshold": float(thresholds[model]),
                "n_folds": n_folds,
                "update": method,
                "update_label": METHODS[method],
                "status": "done",
                "reason": f"pooled over the {len(parts)} updated center(s), each with its own update",
                **_scores(y, upd, thresholds[model], ci, proportion_method),
            }
        )
    return pd.DataFrame(rows), notes
