"""The report's multi-center shift section, the methods paragraph on robustness, and the CLI flags
that choose the evaluation (--recalibrate, --proportion-ci, --conformal-alpha)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.evaluate import evaluate_run
from radiopath.report import write_report
from radiopath.run_config import RunConfig
from radiopath.shift.domain import COLUMNS

runner = CliRunner()


@pytest.fixture()
def shifted_run(sim_run: Path, tmp_path: Path) -> Path:
    """The simulated run with the files a features-mode run writes about shift and harmonisation."""
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    rows = [
        ["as extracted", "cytology", "Center C", "external", 130, 400, 0.97, 0.95, 0.99, 1.84, 4.1],
        ["as extracted", "us", "Center C", "external", 130, 400, 0.58, 0.51, 0.65, 0.12, 0.4],
        ["harmonized (combat)", "cytology", "Center C", "external", 130, 400, 0.55, 0.48, 0.62, 0.05, 0.2],
    ]
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(run / "shift.parquet", index=False)
    acq = pd.DataFrame(
        {
            "center": ["Center C", "Center C"],
            "cohort": ["external", "external"],
            "modality": ["us", "cytology"],
            "views": [16, np.nan],
            "brightness_ratio": [0.64, np.nan],
            "contrast_ratio": [0.72, np.nan],
            "slides_judged": [np.nan, 110],
            "laplacian_ratio": [np.nan, 0.043],
            "sharpness_z": [np.nan, -33.0],
            "blur_relative_share": [np.nan, 1.0],
            "warn": [True, True],
        }
    )
    acq.to_parquet(run / "acquisition.parquet", index=False)
    record = [
        {"modality": "cytology", "center": "Center A", "cohort": "development", "patients": 220,
         "source": "its own unlabelled features in this table", "adjusted": True, "instances": 1760,
         "mean_abs_shift_sd": 0.11, "mean_scale": 0.98},
        {"modality": "cytology", "center": "Center C", "cohort": "external", "patients": 130,
         "source": "its own unlabelled features in this table", "adjusted": True, "instances": 1040,
         "mean_abs_shift_sd": 0.93, "mean_scale": 0.61},
        {"modality": "cytology", "center": "Center D", "cohort": "external", "patients": 9,
         "source": "not harmonised: fewer than 20 patients", "adjusted": False},
    ]  # fmt: skip
    meta = {
        "method": "combat",
        "min_patients": 20,
        "modalities": ["cytology"],
        "adjustments": [],
        "record": record,
    }
    (run / "harmonization.json").write_text(json.dumps(meta), encoding="utf-8")
    cfg = RunConfig()
    cfg.harmonization.method = "combat"
    cfg.to_yaml(run / "config.yaml")
    return run


def _section(html: str, name: str, end: str) -> str:
    return html.split(f'id="{name}"')[1].split(f'id="{end}"')[0]


def test_shift_section_shows_each_centers_shift_beside_the_primary_models_results(shifted_run: Path) -> None:
    ev = evaluate_run(shifted_run, n_boot=20, write=False, conformal_alpha=None)
    html = write_report(shifted_run, evaluation=ev, figures=False).read_text(encoding="utf-8")
    shift = _section(html, "shift", "confusion")
    assert "0.97<br>" in shift and "0.95–0.99" in shift and "1.84" in shift  # domain AUC with CI, mean |SMD|
    auc = ev.metric("fusion_concat", "external/Center C", "auc")["value"]
    assert f"{auc:.3f}" in shift  # the primary model's result at that center, beside its shift
    assert "0.04 (z -33.0); 100% of tiles relatively blurred" in shift and "0.64 / 0.72" in shift
    assert "Harmonisation used (combat): transductive" in shift and "fewer than 20 patients" in shift
    methods = _section(html, "methods", "tripod")
    assert "Harmonisation (transductive, label-free): ComBat with empirical Bayes" in methods
    assert "Adjusted: Center A cytology (220 patients), Center C cytology (130 patients)" in methods
    assert "left unchanged: Center D cytology" in methods
    assert "2 augmented pass(es)" in methods and "Class weighting of the loss: none" in methods
    assert 'id="updating"' not in html  # model updating only when asked for


def test_cli_flags_choose_the_evaluation_and_the_report_follows(sim_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    args = [
        "evaluate",
        str(run),
        "--n-boot",
        "20",
        "--proportion-ci",
        "clopper-pearson",
        "--conformal-alpha",
        "0.2",
    ]
    result = runner.invoke(app, [*args, "--recalibrate"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["settings"]
    assert saved["proportion_ci"] == "Clopper-Pearson" and saved["conformal_alpha"] == 0.2
    assert saved["recalibration"]["folds"] == 5 and (run / "tables" / "recalibration.csv").is_file()
    result = runner.invoke(app, ["report", str(run), "--n-boot", "20"])  # as evaluated: updating shown
    assert result.exit_code == 0, result.output
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Model updating, not external validation" in html and "α = 0.2" in html
    result = runner.invoke(
        app, ["report", str(run), "--n-boot", "20", "--no-recalibrate", "--conformal-alpha", "0"]
    )
    assert result.exit_code == 0, result.output
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="updating"' not in html and "conformal_alpha=None" in html
    saved = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["settings"]
    assert saved["recalibration"] is None and saved["proportion_ci"] == "Clopper-Pearson"  # kept
    bad = runner.invoke(app, ["evaluate", str(run), "--proportion-ci", "agresti"])
    assert bad.exit_code == 2 and "clopper-pearson" in bad.output
