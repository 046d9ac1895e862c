"""Metric kernels pinned to scikit-learn, unweighted and weighted, with ties and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from radiopath.evaluate import BinaryMetrics, EvaluationError, binary_metrics, confusion_counts
from radiopath.evaluate.metrics import ScoredSample, weighted_metrics


def _data(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.3 * y - 0.4)))
    if ties:
        p = np.round(p, 1)  # many tied scores, including ties across classes
    return y.astype(int), p


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_point_metrics_equal_sklearn(ties: bool, threshold: float) -> None:
    y, p = _data(500, 1, ties)
    got = binary_metrics(y, p, threshold)
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert got["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert got["specificity"] == pytest.approx(tn / (tn + fp))
    assert got["ppv"] == pytest.approx(precision_score(y, pred))
    assert got["npv"] == pytest.approx(tn / (tn + fn))
    assert got["f1"] == pytest.approx(f1_score(y, pred))
    assert confusion_counts(y, p, threshold) == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def test_weighted_rows_equal_sklearn_sample_weight() -> None:
    """A row of counts is a resample: every row must equal sklearn on the same sample weights."""
    y, p = _data(300, 2, ties=True)
    s = ScoredSample.from_arrays(y, p, 0.45)
    w = np.random.default_rng(0).integers(0, 4, size=(5, y.size)).astype(float)
    vals = weighted_metrics(s, w)
    for i in range(5):
        sw = np.empty(y.size)
        sw[s.order] = w[i]  # weights are in canonical (sorted) order; sklearn wants the original order
        pred = (p >= 0.45).astype(int)
        assert vals["auc"][i] == pytest.approx(roc_auc_score(y, p, sample_weight=sw), abs=1e-12)
        assert vals["auprc"][i] == pytest.approx(average_precision_score(y, p, sample_weight=sw), abs=1e-12)
        assert vals["brier"][i] == pytest.approx(brier_score_loss(y, p, sample_weight=sw), abs=1e-12)
        assert vals["sensitivity"][i] == pytest.approx(recall_score(y, pred, sample_weight=sw))
        assert vals["ppv"][i] == pytest.approx(precision_score(y, pred, sample_weight=sw))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=4, max_size=40).filter(
        lambda rows: 0 < sum(r[0] for r in rows) < len(rows)
    )
)
def test_auc_and_ap_equal_sklearn_on_any_small_sample(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows], dtype=int)
    p = np.array([r[1] for r in rows], dtype=float) / 6  # coarse scores: ties everywhere
    got = binary_metrics(y, p, metrics=("auc", "auprc"))
    assert got["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert got["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_undefined_metrics_are_nan_not_errors() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.4]
    got = binary_metrics(y, p, threshold=0.9)  # nobody called positive
    assert np.isnan(got["ppv"]) and got["sensitivity"] == 0.0 and got["specificity"] == 1.0
    one_class = binary_metrics([1, 1, 1], [0.2, 0.5, 0.9], threshold=0.5)
    assert np.isnan(one_class["auc"]) and np.isnan(one_class["cal_slope"])
    assert one_class["sensitivity"] == pytest.approx(2 / 3)


def test_class_form_matches_function() -> None:
    y, p = _data(80, 4, ties=False)
    m = BinaryMetrics(threshold=0.4, metrics=("auc", "f1"))
    assert m(y, p) == binary_metrics(y, p, 0.4, ("auc", "f1"))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], "not 0 or 1"),
        ([0, 1, 1], [0.1, 1.2, 0.3], "in [0, 1]"),
        ([0, 1, 1], [0.1, 0.2], "expected 3 scores"),
        ([0, 1, np.nan], [0.1, 0.2, 0.3], "unknown outcome"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
    ],
)
def test_bad_inputs_raise_clear_errors(y: list, p: list, message: str) -> None:
    with pytest.raises(EvaluationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        binary_metrics(y, p)


def test_unknown_metric_and_bad_threshold_are_named() -> None:
    with pytest.raises(EvaluationError, match="unknown metric"):
        binary_metrics([0, 1], [0.2, 0.8], metrics=("auc", "kappa"))
    with pytest.raises(EvaluationError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], threshold=1.5)
