"""The per-center acquisition checks where users meet them: ``radiopath validate`` (ultrasound
brightness and contrast) and ``radiopath tile`` (slide sharpness against the development slides)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.cohort import Cohort
from radiopath.shift.acquisition import ultrasound_acquisition
from radiopath.synth import SynthResult

runner = CliRunner()


def test_ultrasound_acquisition_sees_each_centers_gain_and_gamma(small_cohort: SynthResult) -> None:
    table = Cohort.from_manifest(small_cohort.manifest).table
    acq = ultrasound_acquisition(table).set_index("center")
    assert acq.loc["Hospital A", "brightness_ratio"] == 1.0 and not acq.loc["Hospital A", "warn"]
    # B: gain 1.15, gamma 0.85 (brighter); C: gain 0.85, gamma 1.2 (darker, less spread)
    assert (
        acq.loc["Hospital B", "brightness_ratio"] > 1.25 and acq.loc["Hospital C", "brightness_ratio"] < 0.8
    )
    assert acq.loc["Hospital C", "contrast_ratio"] < acq.loc["Hospital B", "contrast_ratio"]
    assert acq.loc[["Hospital B", "Hospital C"], "warn"].all()


def test_validate_warns_per_center_and_can_be_told_not_to(small_cohort: SynthResult) -> None:
    result = runner.invoke(app, ["validate", str(small_cohort.manifest)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "center Hospital C: its ultrasound is darker" in out and "center Hospital A" not in out
    quiet = runner.invoke(app, ["validate", str(small_cohort.manifest), "--no-acquisition"])
    assert quiet.exit_code == 0 and "acquisition:" not in quiet.output


@pytest.mark.slow
def test_tile_writes_the_sharpness_reference_and_warns_about_blurred_centers(
    small_cohort: SynthResult, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    result = runner.invoke(app, ["tile", str(small_cohort.manifest), "--out", str(out), "--top-k", "4"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "sharpness.json").read_text(encoding="utf-8"))
    by = {c["center"]: c for c in record["centers"]}
    assert record["reference"]["n_slides"] >= 3 and by["Hospital A"]["warn"] is False
    assert by["Hospital B"]["laplacian_ratio"] < by["Hospital C"]["laplacian_ratio"] < 0.5
    text = " ".join(result.output.split())
    assert "center Hospital B: its slides are much blurrier than the development slides" in text
