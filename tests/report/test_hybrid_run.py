"""`radiopath train --feature-set hybrid` runs the whole protocol, and the report names the feature
set of each modality and what the radiomics signature selected (issue 13's end-to-end bar)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.report.features import signatures
from radiopath.synth import SynthConfig, synthesize
from runconfigs import tiny

pytestmark = pytest.mark.slow


def test_a_hybrid_run_through_the_cli_is_reported_with_its_feature_sets_and_signature(tmp_path: Path) -> None:
    cohort = synthesize(tmp_path / "c", SynthConfig(patients=36, seed=11, slide_um=400, workers=2))
    tiny(tmp_path / "cache").to_yaml(tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    args = ["train", str(cohort.manifest), "--out", str(run), "--config", str(tmp_path / "cfg.yaml")]
    args += ["--feature-set", "hybrid", "--models", "fusion_concat,fusion_signature"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    pred = pd.read_parquet(run / "predictions.parquet")
    assert set(pred["model"]) == {"fusion_concat", "fusion_signature"} and pred["prob"].between(0, 1).all()
    blocks = json.loads((run / "inputs.json").read_text())["blocks"]
    assert [b[0] for b in blocks["us"]] == ["deep", "radiomics"]
    assert [b[0] for b in blocks["cytology"]] == ["deep", "pathomics"]
    sig = json.loads((run / "checkpoints" / "fusion_signature" / "fold0" / "signature.json").read_text())
    assert sig["selected"] and len(sig["names"]) > len(sig["selected"])

    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "11. Features and radiomics signatures" in html
    assert "deep (" in html and "radiomics (" in html and "pathomics (" in html
    assert "fusion_signature" in html
    (listed,) = signatures(run)  # the selected features, most often selected first
    assert listed["model"] == "fusion_signature" and listed["rows"][0]["feature"] in html
    assert "hybrid" in html  # the methods name the feature set
