"""Conformal risk sets: class-conditional (Mondrian) split-conformal prediction sets for LNM.

Instead of one call at a threshold, each patient gets the set of outcomes the model cannot
rule out at error rate α: ``{LNM−}``, ``{LNM+}``, both (``uncertain``: the model cannot
decide for this patient) or neither (``empty``: the patient's risk looks unlike both
calibration classes). Split-conformal prediction (Vovk, Gammerman & Shafer, "Algorithmic
Learning in a Random World", 2005; Angelopoulos & Bates, "A gentle introduction to conformal
prediction and distribution-free uncertainty quantification", 2021/2023) turns any model
into such sets with a finite-sample guarantee; the *Mondrian*, class-conditional form
(Vovk et al. 2005, §4.5; Angelopoulos & Bates §4.1) calibrates each outcome separately, so

    P(y ∈ C(x) | y = c) ≥ 1 − α   for c ∈ {LNM−, LNM+},

which matters here: metastases are a minority, and a marginal guarantee could be met by
covering the negatives alone.

Calibration: the nonconformity score of outcome ``c`` is ``1 − p̂(c | x)`` (``p`` for LNM−,
``1 − p`` for LNM+). For the ``n_c`` calibration patients with outcome ``c``, ``q̂_c`` is the
``⌈(n_c + 1)(1 − α)⌉``-th smallest score (``+∞`` when that rank exceeds ``n_c``: too few
patients for this α, the set always contains ``c``). Outcome ``c`` enters a patient's set
when its score is ``≤ q̂_c``; in probabilities, LNM− when ``p ≤ q̂_0`` and LNM+ when
``p ≥ 1 − q̂_1``.

The guarantee needs the new patients to be exchangeable with the calibration patients within
each outcome. External centers need not be (another scanner, another population): their
empirical coverage is exactly what shows whether the guarantee carried over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiopath.evaluate._checks import EvaluationError, as_labels, as_scores, require_both_classes
from radiopath.evaluate.predictions import DEVELOPMENT, EXTERNAL, CohortSpec, labelled
from radiopath.evaluate.proportions import METHODS as PROPORTION_METHODS
from radiopath.evaluate.proportions import check_method, proportion_ci

#: Default error rate: sets contain the true outcome for at least 90% of each class.
ALPHA = 0.1
SET_NAMES: tuple[str, ...] = ("LNM− only", "LNM+ only", "uncertain (both)", "empty")


def check_alpha(alpha: float) -> float:
    """An error rate strictly between 0 and 1."""
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise EvaluationError(f"alpha: the conformal error rate must be in (0, 1), e.g. 0.1; got {alpha!r}")
    return a


def conformal_rank(n: int, alpha: float) -> int:
    """``⌈(n + 1)(1 − α)⌉``: the rank of the calibration score that bounds the set (may exceed ``n``).

    A tolerance of 1e-9 keeps exact products exact (``(19 + 1)·0.95`` is 19, not 19.000000000000004).
    """
    return math.ceil((n + 1) * (1.0 - check_alpha(alpha)) - 1e-9)


def conformal_quantile(scores: Any, alpha: float) -> float:
    """The ``⌈(n + 1)(1 − α)⌉``-th smallest of ``scores``; ``+∞`` when that rank exceeds ``n``."""
    s = np.sort(np.asarray(scores, dtype=float).ravel())
    if s.size == 0 or not np.isfinite(s).all():
        raise EvaluationError("conformal_quantile: needs at least one finite calibration score")
    k = conformal_rank(s.size, alpha)
    return float("inf") if k > s.size else float(s[k - 1])


@dataclass(frozen=True)
class ConformalSets:
    """Prediction sets of several patients: which outcomes each set contains."""

    has_neg: np.ndarray  #: bool: LNM− is in the set
    has_pos: np.ndarray  #: bool: LNM+ is in the set

    @property
    def size(self) -> np.ndarray:
        return self.has_neg.astype(int) + self.has_pos.astype(int)

    def kind(self) -> np.ndarray:
        """Per patient: one of :data:`SET_NAMES`."""
        out = np.full(self.has_neg.size, SET_NAMES[3], dtype=object)
        out[self.has_neg & ~self.has_pos] = SET_NAMES[0]
        out[self.has_pos & ~self.has_neg] = SET_NAMES[1]
        out[self.has_neg & self.has_pos] = SET_NAMES[2]
        return out

    def covers(self, y: Any) -> np.ndarray:
        """bool per patient: the set contains the true outcome."""
        yy = as_labels(y)
        return np.where(yy, self.has_pos, self.has_neg)


class MondrianConformal:
    """Class-conditional split-conformal sets for a binary risk model (scikit-learn style).

    ``fit(y, prob)`` on calibration patients learns ``q_`` (per-class score quantiles) and
    ``n_`` (calibration patients per class); ``predict_sets(prob)`` gives the sets.

    >>> cp = MondrianConformal(alpha=0.2).fit([0, 0, 0, 0, 1, 1, 1, 1], [.1, .2, .3, .6, .4, .7, .8, .9])
    >>> cp.threshold_neg_, cp.threshold_pos_  # LNM− when p ≤ 0.6; LNM+ when p ≥ 0.4
    (0.6, 0.4)
    >>> cp.predict_sets([0.05, 0.5, 0.95]).kind().tolist()
    ['LNM− only', 'uncertain (both)', 'LNM+ only']
    """

    def __init__(self, alpha: float = ALPHA) -> None:
        self.alpha = check_alpha(alpha)

    def fit(self, y: Any, prob: Any) -> MondrianConformal:
        yy = as_labels(y)
        pp = as_scores(prob, yy.size)
        require_both_classes(yy, "class-conditional conformal calibration")
        neg_scores, pos_scores = pp[~yy], 1.0 - pp[yy]
        self.q_ = (conformal_quantile(neg_scores, self.alpha), conformal_quantile(pos_scores, self.alpha))
        self.n_ = (int(neg_scores.size), int(pos_scores.size))
        return self

    @property
    def threshold_neg_(self) -> float:
        """LNM− is in the set when ``prob <= threshold_neg_`` (``inf``: always)."""
        return self.q_[0]

    @property
    def threshold_pos_(self) -> float:
        """LNM+ is in the set when ``prob >= threshold_pos_`` (``-inf``: always); rounded as computed."""
        return 1.0 - self.q_[1]

    def predict_sets(self, prob: Any) -> ConformalSets:
        if not hasattr(self, "q_"):
            raise EvaluationError("MondrianConformal: call fit(y, prob) on calibration patients first")
        p = np.asarray(prob, dtype=float)
        pp = as_scores(p, p.size)
        return ConformalSets(has_neg=pp <= self.q_[0], has_pos=(1.0 - pp) <= self.q_[1])


def conformal_sets(
    y_cal: Any, prob_cal: Any, prob: Any, alpha: float = ALPHA
) -> tuple[ConformalSets, MondrianConformal]:
    """Calibrate on ``(y_cal, prob_cal)``, then the sets of ``prob``; returns (sets, fitted calibrator)."""
    cp = MondrianConformal(alpha).fit(y_cal, prob_cal)
    return cp.predict_sets(prob), cp


def cross_conformal_sets(y: Any, prob: Any, fold: Any, alpha: float = ALPHA) -> ConformalSets:
    """Sets for every patient of a cross-validated cohort, each calibrated on the *other* folds.

    Internal coverage is then measured on patients that did not calibrate their own set (the
    conformal counterpart of nested thresholds). Each fold's set is a split-conformal set
    with its own guarantee; pooled, the coverage is close to, though not provably at least,
    ``1 − α`` (cross-conformal prediction, Vovk, Ann Math Artif Intell 2015;74:9–28).
    """
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    ff = np.asarray(fold).astype(int)
    if ff.shape != yy.shape or np.unique(ff).size < 2:
        raise EvaluationError("cross_conformal_sets: needs one fold per patient and at least 2 folds")
    has_neg = np.zeros(yy.size, dtype=bool)
    has_pos = np.zeros(yy.size, dtype=bool)
    for k in np.unique(ff):
        test = ff == k
        sets, _ = conformal_sets(yy[~test], pp[~test], pp[test], alpha)
        has_neg[test], has_pos[test] = sets.has_neg, sets.has_pos
    return ConformalSets(has_neg, has_pos)


def set_summary(y: Any, sets: ConformalSets) -> dict[str, float | int]:
    """Coverage (all, per class) and the distribution of set kinds among patients ``y``."""
    yy = as_labels(y)
    cov = sets.covers(yy)
    kind = sets.kind()
    n, n_pos = int(yy.size), int(yy.sum())
    out: dict[str, float | int] = {
        "n": n,
        "n_pos": n_pos,
        "n_neg": n - n_pos,
        "covered": int(cov.sum()),
        "covered_pos": int(cov[yy].sum()),
        "covered_neg": int(cov[~yy].sum()),
    }
    for key, name in zip(("n_neg_only", "n_pos_only", "n_uncertain", "n_empty"), SET_NAMES, strict=True):
        out[key] = int((kind == name).sum())
    for key in ("neg_only", "pos_only", "uncertain", "empty"):
        out[f"share_{key}"] = out[f"n_{key}"] / n if n else float("nan")
    out["coverage"] = out["covered"] / n if n else float("nan")
    out["coverage_pos"] = out["covered_pos"] / n_pos if n_pos else float("nan")
    out["coverage_neg"] = out["covered_neg"] / (n - n_pos) if n - n_pos else float("nan")
    out["mean_set_size"] = float(sets.size.mean()) if n else float("nan")
    return out


def conformal_table(
    df: pd.DataFrame,
    specs: Sequence[CohortSpec],
    models: Sequence[str],
    alpha: float = ALPHA,
    ci: float = 0.95,
    proportion_method: str = "wilson",
) -> tuple[pd.DataFrame, list[str]]:
    """Coverage and set sizes per model and cohort: external patients get sets calibrated on all
    development out-of-fold predictions; development patients get cross-conformal sets (calibrated
    on the other folds). Coverages carry binomial intervals (``proportion_method``).
    """
    a = check_alpha(alpha)
    method = check_method(proportion_method)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for model in models:
        of_model = df[df["model"] == model]
        dev = labelled(of_model[(of_model["cohort"] == DEVELOPMENT) & (of_model["fold"] >= 0)])
        y_dev = dev["label"].to_numpy() == 1.0
        if y_dev.sum() == 0 or (~y_dev).sum() == 0:
            notes.append(f"conformal sets of {model}: the development cohort lacks an outcome; none computed")
            continue
        cp = MondrianConformal(a).fit(y_dev, dev["prob"].to_numpy())
        if math.isinf(cp.q_[0]) or math.isinf(cp.q_[1]):
            notes.append(
                f"conformal sets of {model}: too few development patients of one outcome for α = {a:g} "
                f"(need at least {math.ceil((1 - a) / a)} per outcome); that outcome is in every set"
            )
        dev_sets = None
        if np.unique(dev["fold"]).size >= 2:
            try:
                dev_sets = cross_conformal_sets(y_dev, dev["prob"].to_numpy(), dev["fold"].to_numpy(), a)
            except EvaluationError as exc:
                notes.append(f"conformal sets of {model}, internal: {exc}")
        else:
            notes.append(
                f"conformal sets of {model}: one development fold, no internal (cross-conformal) coverage"
            )
        ext = labelled(of_model[of_model["cohort"] == EXTERNAL])
        ext_sets = cp.predict_sets(ext["prob"].to_numpy()) if len(ext) else None
        for spec in specs:
            if spec.cohort == DEVELOPMENT:
                pool, sets, how = dev, dev_sets, "other development folds (cross-conformal)"
            else:
                pool, sets, how = ext, ext_sets, "all development out-of-fold predictions"
            if sets is None or pool.empty:
                continue
            keep = np.ones(len(pool), dtype=bool)
            if spec.center is not None:
                keep = (pool["center"] == spec.center).to_numpy()
            if not keep.any():
                continue
            y = pool["label"].to_numpy()[keep] == 1.0
            part = ConformalSets(sets.has_neg[keep], sets.has_pos[keep])
            summ = set_summary(y, part)
            row: dict[str, Any] = {
                "model": model,
                "cohort": spec.key,
                "cohort_label": spec.label,
                "scope": spec.scope,
                "center": spec.center,
                "alpha": a,
                "target_coverage": 1 - a,
                "calibrated_on": how,
                "n_cal_neg": cp.n_[0],
                "n_cal_pos": cp.n_[1],
                "threshold_neg": cp.threshold_neg_ if spec.cohort == EXTERNAL else np.nan,
                "threshold_pos": cp.threshold_pos_ if spec.cohort == EXTERNAL else np.nan,
                **summ,
                "ci_method": PROPORTION_METHODS[method],
            }
            for key, k, n in (
                ("coverage", summ["covered"], summ["n"]),
                ("coverage_pos", summ["covered_pos"], summ["n_pos"]),
                ("coverage_neg", summ["covered_neg"], summ["n_neg"]),
            ):
                lo, hi = proportion_ci(k, n, ci, method)
                row[f"{key}_low"], row[f"{key}_high"] = float(lo), float(hi)
            # a class whose whole interval lies below the target: the guarantee did not carry over
            row["below_target"] = ", ".join(
                name
                for name, key in (("LNM+", "coverage_pos"), ("LNM−", "coverage_neg"))
                if np.isfinite(row[f"{key}_high"]) and row[f"{key}_high"] < 1 - a
            )
            rows.append(row)
    return pd.DataFrame(rows), notes
