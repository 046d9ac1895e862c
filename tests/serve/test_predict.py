"""radiopath predict: the bundle reproduces the run's external predictions, bad rows are
reported while the others are scored, and the ONNX runtime agrees with torch in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bundles import new_patients
from radiopath.cli import app
from radiopath.runs import load_run
from radiopath.serve import load_bundle
from radiopath.serve.predict import OUTPUT_COLUMNS, predict_manifest

runner = CliRunner()


def test_predict_reproduces_the_runs_external_predictions(study, tmp_path: Path) -> None:
    rows = new_patients(study, tmp_path)
    rows.to_csv(tmp_path / "new.csv", index=False)  # no lnm and no cohort column
    out = tmp_path / "preds.csv"
    args = ["predict", str(study.bundle), str(tmp_path / "new.csv"), "--out", str(out)]
    res = runner.invoke(app, [*args, "--cache-dir", str(study.cache)])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(out)
    assert list(pred.columns) == OUTPUT_COLUMNS
    assert pred["model"].tolist()[:2] == ["fusion_concat", "ultrasound"]  # the primary model leads
    run = load_run(study.run).predictions
    both = run[run["cohort"] == "external"].merge(pred, on=["patient_id", "model"], suffixes=("_run", ""))
    assert len(both) == 2 * len(rows) > 0
    assert np.abs(both["prob"] - both["prob_run"]).max() < 1e-4
    assert (both["threshold"] == both["threshold_run"]).all()
    assert (both["decision"] == (both["prob"] >= both["threshold"]).astype(int)).all()
    assert (both["prob_min"] <= both["prob"] + 1e-12).all() and (
        both["prob"] <= both["prob_max"] + 1e-12
    ).all()
    assert both["prob_sd"].gt(0).all() and (both["n_folds"] == 3).all()
    assert not (tmp_path / "preds.failed.csv").exists()


def test_bad_rows_are_reported_and_the_others_scored(study, tmp_path: Path) -> None:
    rows = new_patients(study, tmp_path, n=4)
    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(rows.loc[1, "us_1"]).read_bytes()[:300])
    rows.loc[1, "us_1"] = str(broken)
    rows.loc[2, "us_2"] = str(tmp_path / "missing.png")
    rows.loc[3, "cytology"] = None  # scored, but flagged
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "preds.csv"
    args = ["predict", str(study.bundle), str(tmp_path / "new.csv"), "--out", str(out)]
    res = runner.invoke(app, [*args, "--cache-dir", str(study.cache)])
    assert res.exit_code == 0, res.output
    assert "2 of 4 patient(s) scored" in res.output and "2 row(s) failed" in res.output
    pred = pd.read_csv(out)
    assert sorted(pred["row"].unique()) == [1, 4]
    fused = pred[pred["model"] == "fusion_concat"].set_index("row")
    assert not fused.loc[1, "missing_modality"] and fused.loc[4, "missing_modality"]
    assert fused.loc[4, "modalities"] == "us"
    failed = pd.read_csv(tmp_path / "preds.failed.csv")
    assert failed["row"].tolist() == [2, 3] and failed["column"].tolist() == ["us_1", "us_2"]
    assert "truncated or corrupt PNG" in failed.loc[0, "error"] and "not found" in failed.loc[1, "error"]
    assert failed["patient_id"].tolist() == rows.loc[[1, 2], "patient_id"].tolist()
    # --strict makes any failure an error; nothing scorable at all is always one
    assert runner.invoke(app, [*args, "--strict", "--cache-dir", str(study.cache)]).exit_code == 2
    rows.loc[[0, 3], "us_1"] = str(broken)
    rows.loc[:, "cytology"] = None
    rows.to_csv(tmp_path / "none.csv", index=False)
    res = runner.invoke(
        app, ["predict", str(study.bundle), str(tmp_path / "none.csv"), "--out", str(tmp_path / "x.csv")]
    )
    assert res.exit_code == 2 and "none of the 4 row(s) could be scored" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_a_slide_without_resolution_fails_alone(study, tmp_path: Path) -> None:
    """Rows that pass validation but fail while inputs are made are found row by row."""
    import cv2

    rows = new_patients(study, tmp_path, n=2)
    png = tmp_path / "slide.png"
    cv2.imwrite(str(png), np.full((600, 600, 3), 200, np.uint8))  # an image records no µm/px
    rows.loc[0, "cytology"] = str(png)
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = predict_manifest(load_bundle(study.bundle), tmp_path / "new.csv", cache_dir=study.cache)
    assert [f.row for f in result.failures] == [1]
    assert "resolution" in result.failures[0].error and "--mpp-table" in result.failures[0].fix
    assert result.predictions["row"].unique().tolist() == [2]


@pytest.mark.parametrize("model", ["fusion_concat", "ultrasound"])
def test_onnx_runtime_agrees_with_torch_fp32(study, tmp_path: Path, model: str) -> None:
    rows = new_patients(study, tmp_path, n=6)
    rows.loc[5, "cytology"] = None  # the missing-modality path too
    rows.to_csv(tmp_path / "new.csv", index=False)
    torch_fp32 = predict_manifest(
        load_bundle(study.bundle),
        tmp_path / "new.csv",
        models=[model],
        precision="fp32",
        cache_dir=study.cache,
    ).predictions
    onnx = predict_manifest(
        load_bundle(study.bundle, runtime="onnx"), tmp_path / "new.csv", models=[model], cache_dir=study.cache
    ).predictions
    both = torch_fp32.merge(onnx, on=["patient_id", "model"], suffixes=("_torch", "_onnx"))
    assert len(both) == 6
    for col in ("prob", "prob_min", "prob_max"):
        assert np.abs(both[f"{col}_torch"] - both[f"{col}_onnx"]).max() < 1e-3
    assert (both["decision_torch"] == both["decision_onnx"]).all()


def test_onnx_runtime_is_fp32_only(study) -> None:
    from radiopath.serve import BundleError

    with pytest.raises(BundleError, match="fp32"):
        load_bundle(study.bundle, runtime="onnx").compute(precision="bf16")


def test_one_patient_without_a_slide_gets_a_flagged_fused_prediction(study, tmp_path: Path) -> None:
    """Regression: a table in which nobody had a slide made no cytology arrays, and the fusion
    model failed with KeyError 'cytology' instead of scoring the patient as missing it."""
    rows = new_patients(study, tmp_path, n=1)
    rows.loc[0, "cytology"] = None
    rows.to_csv(tmp_path / "one.csv", index=False)
    result = predict_manifest(load_bundle(study.bundle), tmp_path / "one.csv", cache_dir=study.cache)
    assert not result.failures
    pred = result.predictions.set_index("model")
    assert list(pred.index) == ["fusion_concat", "ultrasound"]
    assert pred.loc["fusion_concat", "missing_modality"] and pred.loc["fusion_concat", "modalities"] == "us"
    assert 0 < pred.loc["fusion_concat", "prob"] < 1
