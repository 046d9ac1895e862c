"""Nested decision thresholds: internal threshold metrics without choosing the threshold on the same data.

A run freezes each model's threshold on its pooled out-of-fold (OOF) predictions. Scoring the
same OOF predictions at that threshold reuses the data twice — once to choose the cut, once to
judge it — which flatters accuracy, sensitivity and specificity (the cut is the best one *for
these patients*). The honest internal estimate repeats the choice inside the cross-validation:
for each development fold ``k`` the threshold is chosen by the run's own rule on the OOF
predictions of the *other* folds, and applied to fold ``k``; the pooled calls are then scored
once. This is the cross-validation of the whole modelling procedure, threshold included
(Varma & Simon, BMC Bioinformatics 2006;7:91; Hastie, Tibshirani & Friedman, "The Elements
of Statistical Learning", 2009, §7.10.2, "the wrong and the right way to do cross-validation").

External patients are unaffected: they are scored at the frozen threshold, which never saw them.

The rule is the training stage's own (:func:`radiopath.evaluate.threshold.choose_threshold`:
Youden's J, or the highest threshold reaching a target sensitivity), so the nested thresholds
differ from the frozen one only by which patients they were chosen on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radiopath.errors import ConfigError
from radiopath.evaluate._checks import EvaluationError, as_labels, as_scores
from radiopath.evaluate.metrics import METRIC_LABELS
from radiopath.evaluate.predictions import DEVELOPMENT, labelled
from radiopath.evaluate.threshold import choose_threshold

#: Suffix of the secondary internal metrics computed at the frozen (pooled out-of-fold) threshold.
POOLED_SUFFIX = "_pooled_threshold"
#: Internal threshold metrics reported both ways (nested: primary; pooled: secondary).
NESTED_METRICS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")


def pooled_name(metric: str) -> str:
    """``accuracy`` → ``accuracy_pooled_threshold``: the secondary, pooled-threshold figure."""
    return f"{metric}{POOLED_SUFFIX}"


def base_metric(name: str) -> str:
    """``accuracy_pooled_threshold`` → ``accuracy``; other names unchanged."""
    return name[: -len(POOLED_SUFFIX)] if name.endswith(POOLED_SUFFIX) else name


def metric_label(name: str) -> str:
    """Printable name of a metric row, including the secondary pooled-threshold ones."""
    base = base_metric(name)
    label = METRIC_LABELS.get(base, base)
    return f"{label} (pooled-OOF threshold)" if base != name else label


@dataclass(frozen=True)
class NestedThresholds:
    """Thresholds chosen without each fold, and the calls they make on that fold."""

    calls: np.ndarray  #: bool, one per patient (input order): prob >= threshold of the patient's fold
    thresholds: dict[int, float]  #: fold → threshold chosen on the other folds
    n_train: dict[int, int]  #: fold → patients the threshold was chosen on
    rule: str
    target_sensitivity: float

    def threshold_of(self, fold: Any) -> np.ndarray:
        """The nested threshold applied to each patient of ``fold`` (array of fold numbers)."""
        f = np.asarray(fold)
        return np.array([self.thresholds[int(k)] for k in f], dtype=float)


def nested_thresholds(
    y: Any, prob: Any, fold: Any, rule: str = "youden", target_sensitivity: float = 0.9
) -> NestedThresholds:
    """For each fold ``k``: the threshold chosen by ``rule`` on the other folds, applied to fold ``k``.

    ``y``: 0/1 outcomes, ``prob``: out-of-fold probabilities, ``fold``: the fold that scored
    each patient (at least two distinct folds). Raises
    :class:`~radiopath.evaluate._checks.EvaluationError` when a fold's complement lacks an outcome.
    """
    yy = as_labels(y)
    pp = as_scores(prob, yy.size)
    ff = np.asarray(fold)
    if ff.shape != yy.shape:
        raise EvaluationError(f"fold: expected one fold per patient ({yy.size}), got shape {ff.shape}")
    ff = ff.astype(int)
    folds = np.unique(ff)
    if folds.size < 2:
        raise EvaluationError(
            "nested thresholds need out-of-fold predictions from at least 2 folds, "
            f"got folds {folds.tolist()}"
        )
    thresholds: dict[int, float] = {}
    n_train: dict[int, int] = {}
    for k in folds:
        train = ff != k
        try:
            thresholds[int(k)] = choose_threshold(
                yy[train].astype(float), pp[train], rule, target_sensitivity
            )
        except ConfigError as exc:
            raise EvaluationError(f"nested threshold for fold {int(k)}: {exc}") from None
        n_train[int(k)] = int(train.sum())
    t = np.array([thresholds[int(k)] for k in ff], dtype=float)
    return NestedThresholds(pp >= t, thresholds, n_train, rule, float(target_sensitivity))


class NestedThreshold:
    """Class form of :func:`nested_thresholds`: fix the rule once, apply to many models.

    >>> nt = NestedThreshold("youden")
    >>> r = nt([0, 1, 0, 1, 0, 1], [0.2, 0.8, 0.3, 0.7, 0.1, 0.9], [0, 0, 1, 1, 2, 2])
    >>> r.thresholds  # fold 1's cut comes from folds 0 and 2, whose lowest positive is 0.8
    {0: 0.7, 1: 0.8, 2: 0.7}
    >>> r.calls.tolist()  # so fold 1's positive at 0.7 is missed: the pooled cut would have hit it
    [False, True, False, False, False, True]
    """

    def __init__(self, rule: str = "youden", target_sensitivity: float = 0.9) -> None:
        self.rule, self.target_sensitivity = rule, float(target_sensitivity)

    def __call__(self, y: Any, prob: Any, fold: Any) -> NestedThresholds:
        return nested_thresholds(y, prob, fold, self.rule, self.target_sensitivity)


@dataclass(frozen=True)
class NestedCalls:
    """Nested-threshold calls of every model on its labelled development patients."""

    calls: dict[str, pd.Series]  #: model → bool calls indexed by patient_id
    table: pd.DataFrame  #: one row per model × fold: the threshold chosen without that fold
    notes: list[str]

    def for_patients(self, model: str, patient_ids: Sequence[str]) -> np.ndarray | None:
        """The calls of ``model`` for ``patient_ids`` (in that order), or None when not available."""
        c = self.calls.get(model)
        if c is None:
            return None
        got = c.reindex(list(patient_ids))
        if got.isna().any():
            return None
        return got.to_numpy(dtype=bool)


def nested_calls(
    df: pd.DataFrame,
    models: Sequence[str],
    thresholds: Mapping[str, float],
    rule: str,
    target_sensitivity: float,
) -> NestedCalls:
    """:func:`nested_thresholds` for each model's labelled out-of-fold development rows of ``df``.

    Also checks that the rule, applied to all folds together, gives back the run's frozen
    threshold; when it does not (the run used another rule than the one recorded), a note says so.
    """
    calls: dict[str, pd.Series] = {}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    dev_all = df[(df["cohort"] == DEVELOPMENT) & (df["fold"] >= 0)]
    for model in models:
        dev = labelled(dev_all[dev_all["model"] == model])
        if dev.empty:
            continue
        y = dev["label"].to_numpy() == 1.0
        p = dev["prob"].to_numpy()
        try:
            nt = nested_thresholds(y, p, dev["fold"].to_numpy(), rule, target_sensitivity)
        except EvaluationError as exc:
            notes.append(
                f"{model}: no nested thresholds ({exc}); its internal threshold metrics use the frozen "
                "threshold, chosen on the same out-of-fold predictions"
            )
            continue
        calls[model] = pd.Series(nt.calls, index=dev["patient_id"].to_numpy())
        frozen = float(thresholds[model])
        pooled = choose_threshold(y.astype(float), p, rule, target_sensitivity)
        if abs(pooled - frozen) > 1e-6:
            notes.append(
                f"{model}: the rule {rule!r} on all out-of-fold predictions gives {pooled:.4f}, not the "
                f"frozen threshold {frozen:.4f}; the nested thresholds use {rule!r} as recorded"
            )
        fold = dev["fold"].to_numpy()
        for k, t in nt.thresholds.items():
            scored = fold == k
            yk, ck = y[scored], nt.calls[scored]
            rows.append(
                {
                    "model": model,
                    "fold": k,
                    "threshold": t,
                    "frozen_threshold": frozen,
                    "rule": rule,
                    "target_sensitivity": target_sensitivity if rule == "sensitivity" else np.nan,
                    "n_chosen_on": nt.n_train[k],
                    "n_scored": int(scored.sum()),
                    "n_pos_scored": int(yk.sum()),
                    "accuracy_in_fold": float((ck == yk).mean()),
                }
            )
    return NestedCalls(calls, pd.DataFrame(rows), notes)
