"""Clinical utility: decision curves (net benefit) and the neck dissections a model would spare.

Decision curve analysis (Vickers & Elkin, Med Decis Making 2006; Vickers, van Calster &
Steyerberg, BMJ 2016): at a threshold probability ``pt`` — the risk at which a surgeon would
just be willing to do a lymph-node dissection — the net benefit of acting on the model is

    NB(pt) = TP/N − FP/N · pt / (1 − pt)

(true positives per patient, minus false positives weighted by the harm-to-benefit odds
that ``pt`` implies). "Treat all" is ``prev − (1 − prev)·pt/(1 − pt)``; "treat none" is 0. A
model is useful over the range of ``pt`` where its curve lies above both.

For surgery planning the question is concrete: at a sensitivity the surgeon insists on
(e.g. 90% of metastases still sent to dissection), how many dissections per 100 patients does
the model spare, and how many metastases does it miss? :func:`threshold_for_sensitivity`
picks that threshold (on the development data) and :func:`utility_at_threshold` counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from radiopath.evaluate._checks import EvaluationError, as_labels, as_scores, check_threshold

#: Default threshold probabilities of a decision curve: 1% … 99%.
DEFAULT_THRESHOLDS: np.ndarray = np.round(np.arange(0.01, 1.0, 0.01), 2)


def _check_thresholds(thresholds: Any) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all((t > 0) & (t < 1)):
        raise EvaluationError("thresholds: decision-curve thresholds must lie strictly between 0 and 1")
    return t


def net_benefit(y: Any, prob: Any, thresholds: Any = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating patients with ``prob >= pt``, for each ``pt`` in ``thresholds``."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    t = _check_thresholds(thresholds)
    if yy.size == 0:
        raise EvaluationError("net_benefit: no patients")
    pos = np.sort(pp[yy])
    neg = np.sort(pp[~yy])
    tp = pos.size - np.searchsorted(pos, t, side="left")  # positives with prob >= t
    fp = neg.size - np.searchsorted(neg, t, side="left")
    n = yy.size
    return tp / n - fp / n * t / (1 - t)


def net_benefit_treat_all(y: Any, thresholds: Any = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating everyone: ``prev − (1 − prev)·pt/(1 − pt)``."""
    yy = as_labels(y)
    t = _check_thresholds(thresholds)
    prev = float(yy.mean())
    return prev - (1 - prev) * t / (1 - t)


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit of each model and of the default strategies over ``thresholds``."""

    thresholds: np.ndarray
    models: dict[str, np.ndarray]
    treat_all: np.ndarray
    treat_none: np.ndarray
    n: int
    prevalence: float


def decision_curve(y: Any, probs: Mapping[str, Any], thresholds: Any = DEFAULT_THRESHOLDS) -> DecisionCurve:
    """Decision curves of several models evaluated on the same patients ``y``."""
    yy = as_labels(y)
    t = _check_thresholds(thresholds)
    models = {name: net_benefit(yy, p, t) for name, p in probs.items()}
    return DecisionCurve(
        t, models, net_benefit_treat_all(yy, t), np.zeros_like(t), int(yy.size), float(yy.mean())
    )


def threshold_for_sensitivity(y: Any, prob: Any, sensitivity: float) -> float:
    """The highest threshold ``t`` at which ``prob >= t`` still flags at least ``sensitivity`` of positives.

    Raising the threshold spares more dissections, so the highest admissible one is the
    most useful; it is the k-th largest probability among the positives, k = ⌈sens·n_pos⌉.
    """
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    target = check_threshold(sensitivity, "sensitivity")
    pos = np.sort(pp[yy])[::-1]
    if pos.size == 0:
        raise EvaluationError("threshold_for_sensitivity: no positive patients to reach a sensitivity on")
    k = max(1, int(np.ceil(target * pos.size - 1e-9)))
    return float(pos[k - 1])


@dataclass(frozen=True)
class Utility:
    """What acting on ``prob >= threshold`` means per 100 patients (versus dissecting everyone)."""

    threshold: float
    n: int
    n_pos: int
    sensitivity: float
    specificity: float
    dissections_per_100: float  #: patients the model sends to dissection
    spared_per_100: float  #: dissections avoided (model-negative patients)
    unnecessary_spared_per_100: float  #: avoided dissections in patients without metastasis (TN)
    missed_per_100: float  #: metastases not dissected (FN)


def utility_at_threshold(y: Any, prob: Any, threshold: float) -> Utility:
    """Dissections done, spared and metastases missed per 100 patients at ``prob >= threshold``."""
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    t = check_threshold(threshold)
    if yy.size == 0:
        raise EvaluationError("utility_at_threshold: no patients")
    pred = pp >= t
    tp = int((pred & yy).sum())
    fn = int((~pred & yy).sum())
    tn = int((~pred & ~yy).sum())
    fp = int((pred & ~yy).sum())
    n = yy.size
    per100 = 100.0 / n
    return Utility(
        threshold=t,
        n=n,
        n_pos=tp + fn,
        sensitivity=tp / (tp + fn) if tp + fn else float("nan"),
        specificity=tn / (tn + fp) if tn + fp else float("nan"),
        dissections_per_100=(tp + fp) * per100,
        spared_per_100=(tn + fn) * per100,
        unnecessary_spared_per_100=tn * per100,
        missed_per_100=fn * per100,
    )


class NetBenefit:
    """Class form of :func:`net_benefit` with fixed thresholds."""

    def __init__(self, thresholds: Any = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = _check_thresholds(thresholds)

    def __call__(self, y: Any, prob: Any) -> np.ndarray:
        return net_benefit(y, prob, self.thresholds)
