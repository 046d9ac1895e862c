"""Binary-outcome performance metrics, computed on *weighted* patients by one set of kernels.

Every metric here is a function of per-patient weights ``W`` of shape ``(B, n)``: a row of
ones gives the ordinary point estimate, a row of multinomial counts gives one bootstrap
resample. The probabilities are sorted once (:class:`ScoredSample`); after that each
resample costs a few passes over a ``(B, n)`` array, which is why the 2,000-resample
bootstrap of :mod:`radiopath.evaluate.bootstrap` needs no Python loop (scikit-learn's metric
functions would re-sort the scores for every resample, and cannot batch).

Definitions (all reproduce scikit-learn's on unweighted data; the tests pin that):

* AUC — Mann–Whitney form, ties count ½ (Hanley & McNeil 1982), = ``roc_auc_score``.
* AUCPR — average precision, Σ (Rₖ − Rₖ₋₁)·Pₖ over distinct thresholds, = ``average_precision_score``.
* accuracy, sensitivity, specificity, PPV, NPV, F1 — at a fixed threshold, "positive" means
  ``prob >= threshold``.
* Brier score — mean (prob − y)² (Brier 1950).
* calibration intercept and slope — see :mod:`radiopath.evaluate.calibration`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radiopath.evaluate._checks import EvaluationError, as_labels, as_scores, check_threshold
from radiopath.evaluate.calibration import weighted_calibration

#: Every metric, in the order tables show them.
METRIC_NAMES: tuple[str, ...] = (
    "auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "auprc",
    "brier",
    "cal_intercept",
    "cal_slope",
)
#: Printable names.
METRIC_LABELS: dict[str, str] = {
    "auc": "AUC",
    "accuracy": "Accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
    "auprc": "AUCPR",
    "brier": "Brier",
    "cal_intercept": "Cal. intercept",
    "cal_slope": "Cal. slope",
    # used by the clinical-utility tables
    "positive_rate": "Positive rate",
    "negative_rate": "Negative rate",
    "fn_rate": "False negatives / patients",
}
#: Metrics that depend on the decision threshold.
THRESHOLD_METRICS: frozenset[str] = frozenset(
    {
        "accuracy",
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "f1",
        "positive_rate",
        "negative_rate",
        "fn_rate",
    }
)
#: Metrics that need the ranking of all scores (and both classes).
RANK_METRICS: frozenset[str] = frozenset({"auc", "auprc"})
_CALIBRATION = frozenset({"cal_intercept", "cal_slope"})
KNOWN_METRICS: frozenset[str] = frozenset(METRIC_LABELS)


@dataclass(frozen=True)
class ScoredSample:
    """One cohort's labels and probabilities, sorted by decreasing probability (the canonical order).

    Build it with :meth:`from_arrays`; weights passed to :func:`weighted_metrics` are in the
    canonical order (``order[j]`` is the original position of canonical column ``j``).
    """

    y: np.ndarray  #: bool labels, canonical order
    prob: np.ndarray  #: probabilities, decreasing
    order: np.ndarray  #: canonical position → original index
    group_starts: np.ndarray  #: first canonical position of each run of equal probabilities
    threshold: float  #: NaN when the calls were given (e.g. nested thresholds), not a threshold
    pred: np.ndarray  #: the calls: ``prob >= threshold`` or as given, canonical order
    strata: np.ndarray | None = None  #: resampling strata (int codes, canonical order), e.g. centers

    @classmethod
    def from_arrays(
        cls, y: Any, prob: Any, threshold: float = 0.5, calls: Any = None, strata: Any = None
    ) -> ScoredSample:
        """Validate and sort; ``y`` is 0/1, ``prob`` probabilities in [0, 1].

        ``calls``: optional 0/1 decisions per patient that replace ``prob >= threshold`` (the
        threshold is then NaN), e.g. calls made at thresholds chosen without the patient's fold.
        ``strata``: optional group of each patient (any hashable labels, e.g. centers): the
        bootstrap then resamples within each stratum × outcome cell.
        """
        yy = as_labels(y)
        pp = as_scores(prob, yy.size)
        if yy.size == 0:
            raise EvaluationError("no patients: metrics need at least one labelled patient")
        order = np.argsort(-pp, kind="stable")
        p_sorted = pp[order]
        starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
        if calls is None:
            thr = check_threshold(threshold)
            pred = p_sorted >= thr
        else:
            c = as_labels(calls, "calls")
            if c.size != yy.size:
                raise EvaluationError(f"calls: expected {yy.size} decisions (one per label), got {c.size}")
            thr, pred = float("nan"), c[order]
        codes = None
        if strata is not None:
            st = np.asarray(strata)
            if st.ndim != 1 or st.size != yy.size:
                raise EvaluationError(
                    f"strata: expected {yy.size} labels (one per patient), got shape {st.shape}"
                )
            codes = np.unique(st, return_inverse=True)[1].reshape(-1)[order]
        return cls(yy[order], p_sorted, order, starts, thr, pred, codes)

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def n_pos(self) -> int:
        return int(self.y.sum())

    @property
    def n_neg(self) -> int:
        return self.n - self.n_pos

    def with_threshold(self, threshold: float) -> ScoredSample:
        """The same sample with another decision threshold."""
        thr = check_threshold(threshold)
        return ScoredSample(
            self.y, self.prob, self.order, self.group_starts, thr, self.prob >= thr, self.strata
        )

    def with_calls(self, calls: Any) -> ScoredSample:
        """The same sample with given 0/1 calls (original patient order) instead of a threshold."""
        c = as_labels(calls, "calls")
        if c.size != self.n:
            raise EvaluationError(f"calls: expected {self.n} decisions (one per patient), got {c.size}")
        return ScoredSample(
            self.y, self.prob, self.order, self.group_starts, float("nan"), c[self.order], self.strata
        )

    def ones(self) -> np.ndarray:
        """Unit weights, shape ``(1, n)``: the point estimate."""
        return np.ones((1, self.n))


def _check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    names = tuple(metrics)
    unknown = [m for m in names if m not in KNOWN_METRICS]
    if unknown:
        raise EvaluationError(f"unknown metric(s) {unknown}; choose from {sorted(KNOWN_METRICS)}")
    return names


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den == 0 (a metric undefined for that resample, e.g. PPV with no positives)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _rank_metrics(s: ScoredSample, w: np.ndarray, want: set[str]) -> dict[str, np.ndarray]:
    """AUC and average precision for each row of ``w`` from per-tie-group positive/negative weights."""
    wy = w * s.y
    if s.group_starts.size == s.n:  # no ties: every column is its own group
        pg, ng = wy, w - wy
    else:
        pg = np.add.reduceat(wy, s.group_starts, axis=1)
        ng = np.add.reduceat(w, s.group_starts, axis=1) - pg
    tp = np.cumsum(pg, axis=1)  # positives with prob >= this group's value
    fp = np.cumsum(ng, axis=1)
    wp, wn = tp[:, -1], fp[:, -1]
    out: dict[str, np.ndarray] = {}
    if "auc" in want:
        # each positive in group g beats the negatives strictly below it and ties with half of its group
        below = wn[:, None] - fp
        out["auc"] = _safe_div(np.einsum("bg,bg->b", pg, below + 0.5 * ng), wp * wn)
    if "auprc" in want:
        precision = _safe_div(tp, tp + fp)
        precision = np.where(np.isnan(precision), 0.0, precision)  # zero-weight groups add nothing
        out["auprc"] = _safe_div(np.einsum("bg,bg->b", pg, precision), wp)
    return out


def _threshold_metrics(s: ScoredSample, w: np.ndarray, want: set[str]) -> dict[str, np.ndarray]:
    yp = s.y.astype(float)
    pr = s.pred.astype(float)
    # four matrix-vector products (BLAS gemv); a skinny gemm is slower here
    tp, fn = w @ (yp * pr), w @ (yp * (1 - pr))
    fp, tn = w @ ((1 - yp) * pr), w @ ((1 - yp) * (1 - pr))
    total = tp + fn + fp + tn
    table = {
        "accuracy": lambda: _safe_div(tp + tn, total),
        "sensitivity": lambda: _safe_div(tp, tp + fn),
        "specificity": lambda: _safe_div(tn, tn + fp),
        "ppv": lambda: _safe_div(tp, tp + fp),
        "npv": lambda: _safe_div(tn, tn + fn),
        "f1": lambda: _safe_div(2 * tp, 2 * tp + fp + fn),
        "positive_rate": lambda: _safe_div(tp + fp, total),
        "negative_rate": lambda: _safe_div(tn + fn, total),
        "fn_rate": lambda: _safe_div(fn, total),
    }
    return {name: fn_() for name, fn_ in table.items() if name in want}


def weighted_metrics(
    sample: ScoredSample, weights: np.ndarray, metrics: Sequence[str] = METRIC_NAMES
) -> dict[str, np.ndarray]:
    """Each requested metric for every row of ``weights`` (shape ``(B, n)``, canonical order).

    Returns ``{metric: array of shape (B,)}``; a metric undefined for a row (PPV when nothing
    is called positive, AUC with one class) is NaN there.
    """
    names = _check_metrics(metrics)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if w.shape[1] != sample.n:
        raise EvaluationError(f"weights: expected {sample.n} columns (one per patient), got {w.shape[1]}")
    want = set(names)
    out: dict[str, np.ndarray] = {}
    if want & RANK_METRICS:
        out.update(_rank_metrics(sample, w, want))
    if want & THRESHOLD_METRICS:
        out.update(_threshold_metrics(sample, w, want))
    if "brier" in want:
        resid2 = (sample.prob - sample.y) ** 2
        out["brier"] = _safe_div(w @ resid2, w.sum(axis=1))
    if want & _CALIBRATION:
        cal = weighted_calibration(sample.y, sample.prob, w, slope="cal_slope" in want)
        out["cal_intercept"] = cal.intercept
        if "cal_slope" in want:
            out["cal_slope"] = cal.slope
    return {m: out[m] for m in names}


def binary_metrics(
    y: Any, prob: Any, threshold: float = 0.5, metrics: Sequence[str] = METRIC_NAMES, calls: Any = None
) -> dict[str, float]:
    """Point estimates of ``metrics`` for labels ``y`` (0/1) and probabilities ``prob``.

    ``threshold``: a patient is called positive when ``prob >= threshold``; ``calls``: 0/1
    decisions per patient to score instead (e.g. made at nested thresholds). Metrics that are
    undefined on these data (e.g. AUC when only one outcome occurs) are NaN.

    >>> binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)["auc"]
    0.75
    """
    s = ScoredSample.from_arrays(y, prob, threshold, calls=calls)
    vals = weighted_metrics(s, s.ones(), metrics)
    return {k: float(v[0]) for k, v in vals.items()}


def confusion_counts(y: Any, prob: Any, threshold: float) -> dict[str, int]:
    """``tp, fp, tn, fn`` at ``prob >= threshold``."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    pred = pp >= check_threshold(threshold)
    return {
        "tp": int((pred & yy).sum()),
        "fp": int((pred & ~yy).sum()),
        "tn": int((~pred & ~yy).sum()),
        "fn": int((~pred & yy).sum()),
    }


class BinaryMetrics:
    """Class form of :func:`binary_metrics` (configure once, call on many cohorts), à la MONAI.

    >>> BinaryMetrics(threshold=0.5, metrics=("auc", "sensitivity"))([0, 1], [0.2, 0.7])
    {'auc': 1.0, 'sensitivity': 1.0}
    """

    def __init__(self, threshold: float = 0.5, metrics: Sequence[str] = METRIC_NAMES) -> None:
        self.threshold = check_threshold(threshold)
        self.metrics = _check_metrics(metrics)

    def __call__(self, y: Any, prob: Any) -> dict[str, float]:
        return binary_metrics(y, prob, self.threshold, self.metrics)
