"""Class-conditional split-conformal risk sets: the quantile convention, coverage, empty sets, the table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiopath.evaluate import Evaluation, EvaluationError, evaluate_run
from radiopath.evaluate.conformal import (
    MondrianConformal,
    conformal_quantile,
    conformal_rank,
    cross_conformal_sets,
    set_summary,
)


def test_quantile_is_the_ceil_n_plus_1_rank() -> None:
    scores = np.arange(1, 10) / 10  # 0.1 … 0.9, n = 9
    assert conformal_quantile(scores, 0.1) == 0.9  # ⌈10 · 0.9⌉ = 9th smallest
    assert conformal_quantile(scores, 0.2) == 0.8  # ⌈10 · 0.8⌉ = 8th
    assert conformal_quantile(scores, 0.25) == 0.8  # ⌈7.5⌉ = 8th
    assert conformal_quantile(scores[:8], 0.1) == math.inf  # ⌈9 · 0.9⌉ = 9 > 8: too few for α = 0.1
    assert conformal_rank(19, 0.05) == 19  # 20 · 0.95 is 19 exactly, not 19.000000000000004 → 20
    assert conformal_rank(99, 0.1) == 90
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(5, 400))
        pct = int(rng.choice([5, 10, 20, 30]))  # α in percent, so the reference is exact integer arithmetic
        s = np.round(rng.random(n), 2)  # with ties
        # the definition: the smallest score t with #{scores ≤ t} ≥ (n + 1)(1 − α)
        ok = [t for t in np.unique(s) if (s <= t).sum() * 100 >= (n + 1) * (100 - pct)]
        got = conformal_quantile(s, pct / 100)
        assert got == (min(ok) if ok else math.inf), (n, pct)
        if ok:  # numpy's "higher" quantile at k/n, in some published snippets, is never below it
            assert np.quantile(s, conformal_rank(n, pct / 100) / n, method="higher") >= got


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable patients: outcome, then a risk score that depends on it."""
    y = rng.random(n) < 0.4
    p = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.2 + 1.5 * y - 0.6)))
    return y, p


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_class_conditional_coverage_holds_on_exchangeable_data(alpha: float) -> None:
    """Mean coverage of each class is ⌈(n_c+1)(1−α)⌉/(n_c+1) ≥ 1 − α (Vovk et al. 2005, Mondrian CP)."""
    rng = np.random.default_rng(1)
    cov = {True: [], False: []}
    expected = {True: [], False: []}
    for _ in range(2000):
        y_cal, p_cal = _draw(rng, 150)
        y, p = _draw(rng, 400)
        cp = MondrianConformal(alpha).fit(y_cal, p_cal)
        hit = cp.predict_sets(p).covers(y)
        for c in (True, False):
            cov[c].append(hit[y == c].mean())
            n_c = int((y_cal == c).sum())
            expected[c].append(conformal_rank(n_c, alpha) / (n_c + 1))
    for c in (True, False):
        mean = float(np.mean(cov[c]))
        se = float(np.std(cov[c], ddof=1) / np.sqrt(len(cov[c])))
        # 2,000 calibrations: the Monte-Carlo SE of the mean is about 0.001; allow 4 SE
        assert mean >= 1 - alpha - 4 * se, (c, mean)  # the guarantee
        assert mean == pytest.approx(float(np.mean(expected[c])), abs=4 * se), c  # and it is tight


def test_sets_in_probability_terms_and_empty_sets_are_reported() -> None:
    y_cal = np.r_[np.zeros(50), np.ones(50)]
    p_cal = np.r_[np.linspace(0.02, 0.2, 50), np.linspace(0.8, 0.98, 50)]  # well separated classes
    cp = MondrianConformal(0.1).fit(y_cal, p_cal)
    assert cp.n_ == (50, 50)
    assert cp.threshold_neg_ == pytest.approx(np.sort(p_cal[:50])[45])  # ⌈51 · 0.9⌉ = 46th
    sets = cp.predict_sets([0.05, 0.5, 0.95])
    assert sets.kind().tolist() == ["LNM− only", "empty", "LNM+ only"]  # 0.5 looks like neither class
    summ = set_summary([0, 1, 1], sets)
    assert summ["n_empty"] == 1 and summ["share_empty"] == pytest.approx(1 / 3)
    assert summ["coverage_pos"] == 0.5 and summ["coverage_neg"] == 1.0
    wide = MondrianConformal(0.1).fit(y_cal, np.full(100, 0.5))  # a model without skill: always both
    assert wide.predict_sets([0.5]).kind().tolist() == ["uncertain (both)"]
    with pytest.raises(EvaluationError, match="alpha"):
        MondrianConformal(1.5)
    with pytest.raises(EvaluationError, match="fit"):
        MondrianConformal().predict_sets([0.5])


def test_cross_conformal_sets_do_not_use_the_fold_own_labels() -> None:
    rng = np.random.default_rng(2)
    y, p = _draw(rng, 300)
    fold = rng.integers(0, 5, 300)
    sets = cross_conformal_sets(y, p, fold, 0.1)
    y2 = y.copy()
    y2[fold == 3] = ~y2[fold == 3]  # changing fold 3's outcomes leaves fold 3's own sets alone
    sets2 = cross_conformal_sets(y2, p, fold, 0.1)
    in3 = fold == 3
    np.testing.assert_array_equal(sets.has_neg[in3], sets2.has_neg[in3])
    np.testing.assert_array_equal(sets.has_pos[in3], sets2.has_pos[in3])
    assert not np.array_equal(sets.has_neg[~in3], sets2.has_neg[~in3])


def test_conformal_table_of_the_simulated_run(sim_run: Path, sim_eval: Evaluation) -> None:
    c = sim_eval.conformal
    assert sim_eval.settings["conformal_alpha"] == 0.1
    keys = set(c["cohort"])
    assert {"internal", "external", "external/Center C", "external/Center D", "internal/Center A"} <= keys
    internal = c[c["cohort"] == "internal"]
    assert (internal["calibrated_on"] == "other development folds (cross-conformal)").all()
    assert (internal["coverage_pos"] >= 0.85).all() and (internal["coverage_neg"] >= 0.85).all()
    shares = c[["share_neg_only", "share_pos_only", "share_uncertain", "share_empty"]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    # external sets are calibrated on all development OOF predictions of the model
    pred = pd.read_parquet(sim_run / "predictions.parquet")
    dev = pred[(pred["model"] == "fusion_concat") & (pred["cohort"] == "development")]
    cp = MondrianConformal(0.1).fit(dev["label"], dev["prob"])
    row = c[(c["model"] == "fusion_concat") & (c["cohort"] == "external/Center C")].iloc[0]
    assert row["threshold_neg"] == cp.threshold_neg_ and row["threshold_pos"] == cp.threshold_pos_
    ext = pred[(pred["model"] == "fusion_concat") & (pred["center"] == "Center C") & pred["label"].notna()]
    hit = cp.predict_sets(ext["prob"]).covers(ext["label"])
    assert row["coverage"] == pytest.approx(hit.mean()) and row["n"] == len(ext)
    assert row["coverage_low"] <= row["coverage"] <= row["coverage_high"] and row["ci_method"] == "Wilson"
    flagged = c[c["below_target"] != ""]
    assert (flagged[["coverage_pos_high", "coverage_neg_high"]].min(axis=1) < 0.9).all()
    assert (sim_run / "tables" / "conformal.csv").is_file()


def test_conformal_can_be_switched_off(sim_run: Path) -> None:
    ev = evaluate_run(sim_run, n_boot=20, conformal_alpha=None, write=False)
    assert ev.conformal.empty and "conformal" not in ev.tables()
    with pytest.raises(EvaluationError, match="alpha"):
        evaluate_run(sim_run, n_boot=20, conformal_alpha=0.0, write=False)
