"""Nested thresholds: internal threshold metrics no longer use a threshold chosen on the same predictions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from radiopath.evaluate import Evaluation, EvaluationError, evaluate_run
from radiopath.evaluate.nested import NestedThreshold, nested_thresholds
from radiopath.evaluate.simulate import SimulatedRun, simulate_run
from radiopath.evaluate.threshold import choose_threshold


def _loop(y: np.ndarray, p: np.ndarray, fold: np.ndarray, rule: str, target: float) -> np.ndarray:
    """The reference: one choose_threshold per fold on the others, written out."""
    calls = np.zeros(y.size, dtype=bool)
    for k in np.unique(fold):
        t = choose_threshold(y[fold != k], p[fold != k], rule, target)
        calls[fold == k] = p[fold == k] >= t
    return calls


@pytest.mark.parametrize(("rule", "target"), [("youden", 0.9), ("sensitivity", 0.85)])
def test_calls_equal_the_explicit_loop(rule: str, target: float) -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    p = 1 / (1 + np.exp(-(rng.normal(size=300) + 1.2 * y - 0.5)))
    fold = rng.integers(0, 5, 300)
    nt = nested_thresholds(y, p, fold, rule, target)
    np.testing.assert_array_equal(nt.calls, _loop(y.astype(float), p, fold, rule, target))
    assert sorted(nt.thresholds) == [0, 1, 2, 3, 4]
    assert nt.n_train[2] == int((fold != 2).sum())
    np.testing.assert_array_equal(nt.threshold_of(fold[:3]), [nt.thresholds[int(k)] for k in fold[:3]])
    assert NestedThreshold(rule, target)(y, p, fold).thresholds == nt.thresholds


def test_nested_threshold_removes_the_optimism_of_choosing_on_the_same_predictions() -> None:
    """Regression: internal accuracy was scored at a threshold chosen on the same OOF predictions.

    On scores that carry no signal, the pooled Youden threshold still finds a cut that looks
    better than chance on the patients it was chosen on; the nested one does not.
    """
    rng = np.random.default_rng(1)
    pooled, nested = [], []
    for _ in range(30):
        y = rng.random(300) < 0.5
        p = rng.random(300)
        fold = rng.integers(0, 5, 300)
        t = choose_threshold(y.astype(float), p, "youden")
        pooled.append(((p >= t) == y).mean())
        nested.append((nested_thresholds(y, p, fold).calls == y).mean())
    assert np.mean(pooled) > 0.525  # optimistic (0.534): the cut was tuned on these very patients
    assert abs(np.mean(nested) - 0.5) < 0.015  # honest (0.501; SE of the mean 0.006): chance stays chance
    assert np.mean(pooled) - np.mean(nested) > 0.02


def test_errors_name_the_problem() -> None:
    with pytest.raises(EvaluationError, match="at least 2 folds"):
        nested_thresholds([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], [0, 0, 0, 0])
    with pytest.raises(EvaluationError, match=r"fold 0: .*both classes"):  # fold 1 holds positives only
        nested_thresholds([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])


def test_internal_rows_are_nested_and_pooled_rows_are_secondary(sim_run: Path, sim_eval: Evaluation) -> None:
    pred = pd.read_parquet(sim_run / "predictions.parquet")
    dev = pred[(pred["model"] == "fusion_concat") & (pred["cohort"] == "development")]
    dev = dev.sort_values("patient_id")
    y, p, fold = dev["label"].to_numpy() == 1, dev["prob"].to_numpy(), dev["fold"].to_numpy()
    calls = _loop(y.astype(float), p, fold, "youden", 0.9)
    frozen = p >= dev["threshold"].iloc[0]
    for name, ref, ref_pooled in (
        ("accuracy", (calls == y).mean(), (frozen == y).mean()),
        ("sensitivity", calls[y].mean(), frozen[y].mean()),
        ("specificity", (~calls[~y]).mean(), (~frozen[~y]).mean()),
    ):
        row = sim_eval.metric("fusion_concat", "internal", name)
        assert row["value"] == pytest.approx(ref, abs=1e-12) and row["threshold_basis"] == "nested"
        assert bool(row["primary"]) and np.isnan(row["threshold"])
        sec = sim_eval.metric("fusion_concat", "internal", f"{name}_pooled_threshold")
        assert sec["value"] == pytest.approx(ref_pooled, abs=1e-12) and sec["threshold_basis"] == "pooled_oof"
    # a development center is scored with the same per-patient nested calls
    a = dev["center"].to_numpy() == "Center A"
    row = sim_eval.metric("fusion_concat", "internal/Center A", "accuracy")
    assert row["value"] == pytest.approx((calls[a] == y[a]).mean(), abs=1e-12)
    nt = sim_eval.nested_thresholds
    assert set(nt["model"]) == set(sim_eval.models) and (nt["rule"] == "youden").all()
    assert len(nt[nt["model"] == "fusion_concat"]) == 5
    assert not any("gives" in n and "not the frozen threshold" in n for n in sim_eval.notes)
    # the main table and the comparison table say which is which
    main = sim_eval.main_table()
    assert set(main.loc[main["cohort"].str.startswith("Internal"), "threshold metrics at"]) == {
        "nested thresholds (chosen on the other folds)"
    }
    comp = sim_eval.threshold_comparison()
    r = comp[
        (comp["cohort"] == "internal") & (comp["model"] == "fusion_concat") & (comp["metric"] == "accuracy")
    ]
    assert r["optimism"].iloc[0] == pytest.approx((frozen == y).mean() - (calls == y).mean())


def test_internal_mcnemar_uses_the_nested_calls(sim_run: Path, sim_eval: Evaluation) -> None:
    pred = pd.read_parquet(sim_run / "predictions.parquet")
    dev = pred[(pred["cohort"] == "development") & pred["label"].notna()]
    wide = dev.pivot(index="patient_id", columns="model", values="prob")[
        ["fusion_late", "ultrasound"]
    ].dropna()
    c = sim_eval.comparisons
    row = c[
        (c["cohort"] == "internal") & (c["model_a"] == "fusion_late") & (c["model_b"] == "ultrasound")
    ].iloc[0]
    assert row["calls"] == "nested"
    d = dev[dev["model"] == "fusion_late"].set_index("patient_id").loc[wide.index]
    calls = _loop(d["label"].to_numpy(), d["prob"].to_numpy(), d["fold"].to_numpy(), "youden", 0.9)
    assert row["accuracy_a"] == pytest.approx((calls == (d["label"].to_numpy() == 1)).mean())
    assert set(c.loc[c["cohort"] == "external", "calls"]) == {"frozen"}


def test_the_run_rule_is_read_from_config_and_checked(tmp_path: Path) -> None:
    run = simulate_run(
        tmp_path / "sens",
        SimulatedRun(seed=2, threshold_rule="sensitivity", target_sensitivity=0.85, gallery=False),
    )
    ev = evaluate_run(run, n_boot=20, write=False, conformal_alpha=None)
    assert ev.settings["threshold_rule"] == "sensitivity" and ev.settings["target_sensitivity"] == 0.85
    nt = ev.nested_thresholds
    assert (nt["rule"] == "sensitivity").all() and (nt["target_sensitivity"] == 0.85).all()
    assert not any("not the frozen threshold" in n for n in ev.notes)
    # config says youden, but the thresholds were frozen by the sensitivity rule: say so
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["protocol"]["threshold_rule"] = "youden"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    ev2 = evaluate_run(run, n_boot=20, write=False, conformal_alpha=None)
    assert any("not the frozen threshold" in n for n in ev2.notes)
    cfg["protocol"]["threshold_rule"] = "f1"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(EvaluationError, match=r"invalid configuration\n  - protocol\.threshold_rule"):
        evaluate_run(run, n_boot=20, write=False)


def test_one_fold_falls_back_to_the_pooled_threshold_with_a_note(sim_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    df = pd.read_parquet(run / "predictions.parquet")
    df.loc[df["cohort"] == "development", "fold"] = 0
    df.to_parquet(run / "predictions.parquet")
    ev = evaluate_run(run, n_boot=20, write=False, conformal_alpha=None)
    row = ev.metric("fusion_concat", "internal", "accuracy")
    assert row["threshold_basis"] == "pooled_oof"
    assert "accuracy_pooled_threshold" not in set(ev.metrics["metric"])
    assert any("no nested thresholds" in n for n in ev.notes)
