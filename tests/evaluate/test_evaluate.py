"""evaluate_run on a simulated run folder: files, numbers against references, round trip, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.evaluate import Evaluation, EvaluationError, evaluate_run, load_evaluation
from radiopath.evaluate.evaluate import TABLES
from radiopath.evaluate.metrics import METRIC_NAMES
from radiopath.evaluate.nested import NESTED_METRICS
from radiopath.evaluate.stats import delong_test


def test_writes_metrics_json_and_every_table(sim_run: Path, sim_eval: Evaluation) -> None:
    data = json.loads((sim_run / "metrics.json").read_text())
    assert data["settings"]["n_boot"] == 200 and data["settings"]["seed"] == 3  # protocol.seed of the run
    assert data["settings"]["seed_source"] == "config.yaml protocol.seed"
    for name in TABLES:
        table = pd.read_csv(sim_run / "tables" / f"{name}.csv")
        assert len(table) > 0, name
    main = pd.read_csv(sim_run / "tables" / "table_main.csv")
    assert len(main) == 4 * 2  # four models × (internal, external pooled)
    assert main["AUC"].str.match(r"^0\.\d{3} \(0\.\d{3}–0\.\d{3}\)$").all()


def test_metrics_match_references_on_the_raw_predictions(sim_run: Path, sim_eval: Evaluation) -> None:
    pred = pd.read_parquet(sim_run / "predictions.parquet")
    ext_c = pred[(pred["model"] == "cytology") & (pred["center"] == "Center C") & pred["label"].notna()]
    r = sim_eval.metric("cytology", "external/Center C", "auc")
    assert r["value"] == pytest.approx(roc_auc_score(ext_c["label"], ext_c["prob"]), abs=1e-12)
    assert r["n"] == len(ext_c) and r["ci_method"] == "DeLong"
    dev = pred[(pred["model"] == "fusion_concat") & (pred["cohort"] == "development")]
    thr = dev["threshold"].iloc[0]
    sens = ((dev["prob"] >= thr) & (dev["label"] == 1)).sum() / (dev["label"] == 1).sum()
    # the frozen threshold on the OOF predictions it was chosen on: the secondary figure
    pooled = sim_eval.metric("fusion_concat", "internal", "sensitivity_pooled_threshold")
    assert pooled["value"] == pytest.approx(sens) and not pooled["primary"]
    m = sim_eval.metrics
    rows = m[(m["model"] == "fusion_concat") & (m["cohort"] == "internal")]
    assert list(rows["metric"]) == list(METRIC_NAMES) + [f"{k}_pooled_threshold" for k in NESTED_METRICS]
    assert (rows["ci_low"] <= rows["value"]).all() and (rows["value"] <= rows["ci_high"]).all()
    external = m[(m["model"] == "fusion_concat") & (m["cohort"] == "external")]
    assert list(external["metric"]) == list(METRIC_NAMES)  # external: frozen threshold only
    assert set(external["threshold_basis"].dropna()) == {"frozen"}


def test_every_row_says_how_its_interval_was_made(sim_eval: Evaluation) -> None:
    m = sim_eval.metrics
    method = dict(zip(m["metric"], m["ci_method"], strict=False))
    for name in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        assert method[name] == "Wilson", name
        assert method[f"{name}_pooled_threshold"] == "Wilson", name
    assert method["auc"] == "DeLong"
    pooled = m[m["cohort"].isin(["internal", "external"]) & m["metric"].isin(["f1", "brier", "auprc"])]
    assert (pooled["ci_method"] == "bootstrap percentile, center-stratified").all()  # two centers each
    one_center = m[(m["cohort"] == "external/Center C") & (m["metric"] == "brier")]
    assert (one_center["ci_method"] == "bootstrap percentile").all()
    props = m[m["ci_method"] == "Wilson"]
    assert (props["value"] == props["k"] / props["denominator"]).all()
    data = json.loads((sim_eval.run / "metrics.json").read_text())
    assert data["schema_version"] == 2 and data["settings"]["proportion_ci"] == "Wilson"
    assert {"ci_method", "threshold_basis", "primary"} <= set(data["metrics"][0])


def test_unlabelled_patients_are_counted_but_not_scored(sim_eval: Evaluation) -> None:
    r = sim_eval.metric("ultrasound", "external", "auc")
    assert r["n_unlabelled"] == 6  # SimulatedRun.unlabelled_external
    flow = sim_eval.cohort_flow
    ext = flow[(flow["cohort"] == "external") & (flow["center"] == "(all)")].iloc[0]
    assert ext["patients"] - ext["labelled"] == 6 and flow["source"].iloc[0].endswith("cohort.parquet")


def test_default_comparisons_are_fusion_vs_baselines_with_holm(sim_run: Path, sim_eval: Evaluation) -> None:
    c = sim_eval.comparisons
    pairs = set(zip(c["model_a"], c["model_b"], strict=True))
    assert pairs == {(f, s) for f in ("fusion_concat", "fusion_late") for s in ("ultrasound", "cytology")}
    assert set(c["cohort"]) == {"internal", "external"}
    # the cytology comparisons are paired on patients with a cytology prediction only
    pred = pd.read_parquet(sim_run / "predictions.parquet")
    dev = pred[(pred["cohort"] == "development") & pred["label"].notna()]
    wide = dev.pivot(index="patient_id", columns="model", values="prob").dropna(subset=["cytology"])
    labels = dev.drop_duplicates("patient_id").set_index("patient_id")["label"].reindex(wide.index)
    ref = delong_test(labels.to_numpy(), wide["fusion_concat"].to_numpy(), wide["cytology"].to_numpy())
    row = c[
        (c["cohort"] == "internal") & (c["model_a"] == "fusion_concat") & (c["model_b"] == "cytology")
    ].iloc[0]
    assert row["n"] == len(wide) and row["delong_p"] == pytest.approx(ref.p_value, rel=1e-9)
    for _, block in c.groupby("cohort"):
        assert (block["delong_p_holm"] >= block["delong_p"] - 1e-15).all()


def test_clinical_utility_threshold_is_chosen_on_development(sim_eval: Evaluation) -> None:
    u = sim_eval.clinical_utility
    rows = u[(u["model"] == "fusion_concat") & u["rule"].str.startswith("sensitivity")]
    internal = rows[rows["cohort"] == "internal"].iloc[0]
    assert internal["sensitivity"] >= 0.90 and internal["sensitivity"] < 0.92
    assert rows["threshold"].nunique() == 1  # frozen, applied unchanged to the external centers
    assert internal["spared_per_100"] + internal["dissections_per_100"] == pytest.approx(100)
    assert internal["spared_per_100_low"] <= internal["spared_per_100"] <= internal["spared_per_100_high"]


def test_json_round_trip_and_staleness(sim_run: Path, sim_eval: Evaluation, tmp_path: Path) -> None:
    back = Evaluation.from_json(sim_run / "metrics.json")
    pd.testing.assert_frame_equal(back.comparisons, sim_eval.comparisons, check_dtype=False)
    assert back.main_table().equals(sim_eval.main_table())
    assert load_evaluation(sim_run) is not None
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    df = pd.read_parquet(run / "predictions.parquet")
    df.loc[0, "prob"] = 0.5
    df.to_parquet(run / "predictions.parquet")
    assert load_evaluation(run) is None  # predictions changed: metrics.json no longer describes them


def test_explicit_pairs_and_bad_options(sim_run: Path) -> None:
    ev = evaluate_run(sim_run, n_boot=20, pairs=[("cytology", "ultrasound")], write=False)
    assert set(ev.comparisons["model_a"]) == {"cytology"}
    with pytest.raises(EvaluationError, match=r"model\(s\) \['nope'\]"):
        evaluate_run(sim_run, n_boot=20, pairs=[("nope", "cytology")], write=False)
    with pytest.raises(EvaluationError, match="sensitivity"):
        evaluate_run(sim_run, n_boot=20, sensitivity=1.5, write=False)


def test_single_class_center_gives_notes_not_a_crash(sim_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    df = pd.read_parquet(run / "predictions.parquet")
    df.loc[(df["center"] == "Center D") & (df["label"] == 1), "label"] = np.nan  # only negatives left at D
    df.to_parquet(run / "predictions.parquet")
    ev = evaluate_run(run, n_boot=20, write=False)
    r = ev.metric("fusion_late", "external/Center D", "specificity")
    # a proportion with a denominator keeps its binomial interval, even without a bootstrap
    assert r["ci_method"] == "Wilson" and r["ci_low"] <= r["value"] <= r["ci_high"] < 1
    assert np.isnan(ev.metric("fusion_late", "external/Center D", "sensitivity")["value"])  # 0 / 0
    assert np.isnan(ev.metric("fusion_late", "external/Center D", "brier")["ci_low"])
    assert np.isnan(ev.metric("fusion_late", "external/Center D", "auc")["value"])
    assert any("Center D" in n and "intervals only for proportions" in n for n in ev.notes)


def test_cli_evaluate_and_clean_error(sim_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    result = CliRunner().invoke(
        app, ["evaluate", str(run), "--n-boot", "20", "--pair", "fusion_late:cytology"]
    )
    assert result.exit_code == 0, result.output
    assert "fusion_late" in result.output and (run / "tables" / "comparisons.csv").is_file()
    bad = CliRunner().invoke(app, ["evaluate", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "radiopath train" in bad.output and "Traceback" not in bad.output


def test_development_only_run_has_no_external_rows_and_figures_still_build(tmp_path: Path) -> None:
    from radiopath.evaluate import figures as F
    from radiopath.evaluate.predictions import load_predictions
    from radiopath.evaluate.simulate import SimulatedRun, simulate_run

    run = simulate_run(tmp_path / "dev_only", SimulatedRun(seed=1, external={}, gallery=False))
    ev = evaluate_run(run, n_boot=30, write=False)
    assert set(ev.metrics["cohort"]) == {"internal", "internal/Center A", "internal/Center B"}
    assert set(ev.comparisons["cohort"]) == {"internal"}
    df = load_predictions(run)
    for fig in (
        F.roc_figure(ev, df, 20),
        F.calibration_figure(ev, df),
        F.decision_figure(ev),
        F.utility_figure(ev),
        F.forest_figure(ev),
        F.confusion_figure(ev),
    ):
        assert len(fig.axes) >= 1
