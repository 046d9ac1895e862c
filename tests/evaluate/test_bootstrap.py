"""The vectorised stratified bootstrap: strata, reproducibility, pairing, and agreement with a plain loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from radiopath.evaluate import Bootstrap, EvaluationError, bootstrap_metrics
from radiopath.evaluate.bootstrap import bootstrap_samples, resample_weights
from radiopath.evaluate.metrics import METRIC_NAMES, ScoredSample, weighted_metrics


def _data(n: int = 250, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.45
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + 1.1 * y - 0.3)))


def test_resamples_are_stratified_counts() -> None:
    y, p = _data()
    s = ScoredSample.from_arrays(y, p)
    w = resample_weights(s, np.random.default_rng(0), 50)
    assert w.shape == (50, y.size)
    assert np.all(w[:, s.y].sum(axis=1) == y.sum()) and np.all(w[:, ~s.y].sum(axis=1) == (~y).sum())
    assert np.all(w == np.round(w)) and w.min() >= 0


def test_each_resample_equals_sklearn_on_the_expanded_sample() -> None:
    """Weights ↔ indices: the kernels on a row of counts = sklearn on the patients drawn that many times."""
    y, p = _data(120, 1)
    s = ScoredSample.from_arrays(y, p)
    w = resample_weights(s, np.random.default_rng(7), 4)
    for row in w:
        idx = np.repeat(s.order, row.astype(int))  # canonical column j is patient s.order[j]
        got = weighted_metrics(s, row[None, :], ("auc", "auprc"))
        assert got["auc"][0] == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)
        assert got["auprc"][0] == pytest.approx(average_precision_score(y[idx], p[idx]), abs=1e-12)


def test_same_seed_same_intervals_and_paired_across_models() -> None:
    y, p = _data()
    a = bootstrap_metrics(y, p, 0.5, n_boot=300, seed=4)
    b = bootstrap_metrics(y, p, 0.5, n_boot=300, seed=4)
    assert a.estimates == b.estimates
    # a second model on the same patients sees the same resamples: the per-patient counts agree
    other = np.random.default_rng(9).random(y.size)
    s1, s2 = ScoredSample.from_arrays(y, p), ScoredSample.from_arrays(y, other)
    w1 = resample_weights(s1, np.random.default_rng(1), 5)
    w2 = resample_weights(s2, np.random.default_rng(1), 5)
    per_patient_1 = np.empty_like(w1)
    per_patient_1[:, s1.order] = w1
    per_patient_2 = np.empty_like(w2)
    per_patient_2[:, s2.order] = w2
    np.testing.assert_array_equal(per_patient_1, per_patient_2)


def test_intervals_bracket_the_estimate_and_shrink_with_n() -> None:
    small = bootstrap_metrics(*_data(100, 2), n_boot=400, seed=0)
    large = bootstrap_metrics(*_data(1600, 2), n_boot=400, seed=0)
    for m in METRIC_NAMES:
        e = small[m]
        assert e.ci_low <= e.value <= e.ci_high, m
        assert large[m].ci_high - large[m].ci_low < e.ci_high - e.ci_low, m


def test_chunking_does_not_change_the_distribution_shape() -> None:
    y, p = _data(300, 3)
    s = ScoredSample.from_arrays(y, p)
    one = bootstrap_samples(s, ("auc",), n_boot=400, seed=2, chunk_elems=10**9)["auc"]
    many = bootstrap_samples(s, ("auc",), n_boot=400, seed=2, chunk_elems=300 * 7)["auc"]
    assert one.shape == many.shape == (400,)
    assert one.std() == pytest.approx(many.std(), rel=0.2)  # different streams, same distribution


def test_undefined_resamples_are_counted_not_hidden() -> None:
    # threshold so high that most resamples call nobody positive → PPV undefined there
    y = np.array([0] * 30 + [1] * 30)
    p = np.r_[np.linspace(0.0, 0.5, 30), np.linspace(0.3, 0.9, 29), [0.99]]
    r = bootstrap_metrics(y, p, threshold=0.99, n_boot=300, seed=0, metrics=("ppv",))
    assert 0 < r["ppv"].n_undefined < 300


def test_class_form_and_errors() -> None:
    y, p = _data(60, 5)
    assert (
        Bootstrap(n_boot=100, seed=3, metrics=("auc",))(y, p).estimates
        == bootstrap_metrics(y, p, n_boot=100, seed=3, metrics=("auc",)).estimates
    )
    with pytest.raises(EvaluationError, match="both outcomes"):
        bootstrap_metrics([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(EvaluationError, match="n_boot"):
        bootstrap_metrics(y, p, n_boot=0)


def test_center_strata_keep_every_center_and_outcome_count() -> None:
    """The pooled external bootstrap resamples within center × outcome: the mix of centers is kept."""
    y, p = _data(300, 6)
    center = np.where(np.arange(300) < 120, "Center C", "Center D")
    s = ScoredSample.from_arrays(y, p, strata=center)
    w = resample_weights(s, np.random.default_rng(0), 40)
    c_canon = center[s.order]
    for c in ("Center C", "Center D"):
        for outcome in (True, False):
            cell = (c_canon == c) & (s.y == outcome)
            assert np.all(w[:, cell].sum(axis=1) == cell.sum()), (c, outcome)
    # plain outcome strata, by contrast, let the centers' shares drift between resamples
    w_plain = resample_weights(ScoredSample.from_arrays(y, p), np.random.default_rng(0), 40)
    in_c = (center == "Center C")[ScoredSample.from_arrays(y, p).order]
    assert np.ptp(w_plain[:, in_c].sum(axis=1)) > 0


def test_one_stratum_is_the_plain_outcome_bootstrap() -> None:
    y, p = _data(200, 8)
    s_plain = ScoredSample.from_arrays(y, p)
    s_one = ScoredSample.from_arrays(y, p, strata=np.zeros(200))
    np.testing.assert_array_equal(
        resample_weights(s_plain, np.random.default_rng(3), 10),
        resample_weights(s_one, np.random.default_rng(3), 10),
    )
    r = bootstrap_metrics(y, p, 0.5, n_boot=200, seed=1, strata=np.where(np.arange(200) % 3, "a", "b"))
    assert r.n_strata == 2 and bootstrap_metrics(y, p, n_boot=50).n_strata == 1
    for m in METRIC_NAMES:
        assert r[m].ci_low <= r[m].value <= r[m].ci_high, m


def test_given_calls_replace_the_threshold() -> None:
    y, p = _data(200, 9)
    calls = p >= 0.37
    a = bootstrap_metrics(y, p, 0.37, n_boot=100, seed=2, metrics=("accuracy", "f1"))
    b = bootstrap_metrics(y, p, n_boot=100, seed=2, metrics=("accuracy", "f1"), calls=calls)
    assert a.estimates == b.estimates and np.isnan(b.threshold)
    with pytest.raises(EvaluationError, match="calls"):
        bootstrap_metrics(y, p, calls=calls[:-1])
