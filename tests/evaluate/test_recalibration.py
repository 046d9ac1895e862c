"""Recalibration as model updating: fits pinned to statsmodels, cross-fitting, the labelled table, skips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from radiopath.evaluate import Evaluation, EvaluationError, evaluate_run
from radiopath.evaluate.calibration import calibration_intercept_slope, logit_clipped
from radiopath.evaluate.recalibration import (
    LogisticRecalibration,
    crossfit_recalibration,
    eligibility,
    stratified_folds,
)
from radiopath.evaluate.simulate import SimulatedRun, simulate_run


def _shifted(
    seed: int, n: int = 600, shift: float = -1.0, scale: float = 1.6
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes from true risks; predictions shifted and too extreme (a known miscalibration)."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(size=n) - 0.3
    y = rng.random(n) < 1 / (1 + np.exp(-lp))
    return y, 1 / (1 + np.exp(-(shift + scale * lp)))


def test_fits_equal_statsmodels() -> None:
    y, p = _shifted(0)
    x = logit_clipped(p)
    fam = sm.families.Binomial()
    citl = sm.GLM(y.astype(float), np.ones((y.size, 1)), offset=x, family=fam).fit(tol=1e-12)
    full = sm.GLM(y.astype(float), sm.add_constant(x), family=fam).fit(tol=1e-12)
    r1 = LogisticRecalibration("intercept").fit(y, p)
    assert r1.slope_ == 1.0 and r1.intercept_ == pytest.approx(citl.params[0], abs=1e-8)
    r2 = LogisticRecalibration("logistic").fit(y, p)
    assert (r2.intercept_, r2.slope_) == pytest.approx(tuple(full.params), abs=1e-8)
    np.testing.assert_allclose(r2.predict_proba(p), full.predict(sm.add_constant(x)), atol=1e-10)
    # updated risks are calibrated on the data they were fitted on (the score equations)
    assert calibration_intercept_slope(y, r1.predict_proba(p)).intercept == pytest.approx(0, abs=1e-7)
    after = calibration_intercept_slope(y, r2.predict_proba(p))
    assert after.slope == pytest.approx(1, abs=1e-6)
    with pytest.raises(EvaluationError, match="fit"):
        LogisticRecalibration().predict_proba(p)
    with pytest.raises(EvaluationError, match="'intercept' or 'logistic'"):
        LogisticRecalibration("isotonic")


def test_cross_fitting_never_scores_a_fold_with_its_own_labels() -> None:
    y, p = _shifted(1)
    cf = crossfit_recalibration(y, p, "logistic", n_folds=5, seed=3)
    assert sorted(np.unique(cf.fold)) == [0, 1, 2, 3, 4]
    for j in range(5):  # each fold's risks come from the plain fit on the *other* folds
        held = cf.fold == j
        ref = LogisticRecalibration("logistic").fit(y[~held], p[~held])
        np.testing.assert_allclose(cf.prob[held], ref.predict_proba(p[held]), atol=1e-12)
        assert cf.slopes[j] == pytest.approx(ref.slope_) and cf.intercepts[j] == pytest.approx(ref.intercept_)
    in_sample = LogisticRecalibration("logistic").fit(y, p).predict_proba(p)
    assert not np.allclose(cf.prob, in_sample)  # not the in-sample fit
    again = crossfit_recalibration(y, p, "logistic", n_folds=5, seed=3)
    np.testing.assert_array_equal(again.prob, cf.prob)  # reproducible from the seed


def test_updating_repairs_a_known_miscalibration_out_of_sample() -> None:
    y, p = _shifted(2, n=800)
    before = calibration_intercept_slope(y, p)
    assert before.intercept > 0.6 and before.slope < 0.75  # risks too low and too extreme
    citl = crossfit_recalibration(y, p, "intercept", 5, seed=0)
    logi = crossfit_recalibration(y, p, "logistic", 5, seed=0)
    assert abs(calibration_intercept_slope(y, citl.prob).intercept) < 0.1
    after = calibration_intercept_slope(y, logi.prob)
    assert abs(after.intercept) < 0.1 and abs(after.slope - 1) < 0.1
    assert np.mean((logi.prob - y) ** 2) < np.mean((p - y) ** 2)  # Brier improves


def test_folds_and_eligibility() -> None:
    y = np.r_[np.ones(23), np.zeros(61)].astype(bool)
    f = stratified_folds(y, 5, 0)
    assert np.ptp(np.bincount(f)) <= 1 and np.ptp(np.bincount(f[y])) <= 1
    assert eligibility(12, 40) == ""
    assert "fewer than the 50" in eligibility(10, 30)
    assert "8 patients with LNM" in eligibility(8, 60)
    with pytest.raises(EvaluationError, match="n_folds"):
        crossfit_recalibration(y[:30], np.linspace(0.1, 0.9, 30), "intercept", n_folds=9)


@pytest.fixture(scope="module")
def recal_eval(sim_run: Path) -> Evaluation:
    return evaluate_run(sim_run, n_boot=20, recalibrate=True, write=False, conformal_alpha=None)


def test_recalibration_table_of_the_simulated_run(recal_eval: Evaluation) -> None:
    r = recal_eval.recalibration
    assert recal_eval.settings["recalibration"] == {"folds": 5, "min_patients": 50, "min_events": 10}
    centers = r[r["cohort"] != "external"]
    assert set(centers["cohort"]) == {"external/Center C", "external/Center D"}
    assert set(r["update"]) == {"none", "intercept", "logistic"} and (r["status"] == "done").all()
    for (_cohort, _model), block in centers.groupby(["cohort", "model"]):
        by = block.set_index("update")
        # the frozen model's row is the external validation itself, unchanged
        assert np.isnan(by.loc["none", "fitted_slope"])
        assert abs(by.loc["intercept", "cal_intercept"]) < abs(by.loc["none", "cal_intercept"])
        assert by.loc["intercept", "fitted_slope"] == 1.0
        assert abs(by.loc["intercept", "auc"] - by.loc["none", "auc"]) < 0.02  # monotone within each fold
    none_c = centers[(centers["update"] == "none") & (centers["model"] == "fusion_concat")]
    row = none_c[none_c["cohort"] == "external/Center C"].iloc[0]
    for m in ("accuracy", "sensitivity", "auc", "brier"):
        assert row[m] == pytest.approx(recal_eval.metric("fusion_concat", "external/Center C", m)["value"])
    assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
    pooled = r[(r["cohort"] == "external") & (r["model"] == "fusion_concat")]
    assert set(pooled["update"]) == {"none", "intercept", "logistic"}
    center_n = centers[(centers["model"] == "fusion_concat") & (centers["update"] == "none")]["n"].sum()
    assert (pooled["n"] == center_n).all()  # both centers, each with its own update
    assert "recalibration" in recal_eval.tables()


def test_small_center_is_skipped_with_its_reason_and_updating_is_off_by_default(
    sim_eval: Evaluation, tmp_path: Path
) -> None:
    assert sim_eval.recalibration.empty and sim_eval.settings["recalibration"] is None
    assert not (sim_eval.run / "tables" / "recalibration.csv").exists()
    run = simulate_run(
        tmp_path / "small", SimulatedRun(seed=4, external={"Center C": 130, "Center E": 30}, gallery=False)
    )
    ev = evaluate_run(run, n_boot=20, recalibrate=True, write=False, conformal_alpha=None)
    r = ev.recalibration
    e = r[r["cohort"] == "external/Center E"]
    assert (e["status"] == "skipped").all() and e["reason"].str.contains("fewer than the 50").all()
    assert any("Center E skipped" in n for n in ev.notes)
    pooled = r[(r["cohort"] == "external") & (r["update"] == "logistic")]
    c = r[(r["cohort"] == "external/Center C") & (r["update"] == "logistic")]
    assert (pooled["n"].to_numpy() == c["n"].to_numpy()).all()  # the pooled block holds updated centers only
