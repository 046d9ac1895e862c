"""`radiopath validate --preview DIR`: before/after contact sheets and a table of flags."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.cohort import Cohort
from radiopath.io.images import read_image
from radiopath.synth import SynthConfig, synthesize
from radiopath.ultrasound.preview import PANEL, sample_patients, write_preview
from support import real_path

runner = CliRunner()


def test_validate_preview_on_a_cohort_with_marks(tmp_path: Path) -> None:
    cohort = synthesize(
        tmp_path / "c",
        SynthConfig(
            patients=6, seed=4, workers=1, missing_cytology=1.0, marks_positive=1.0, marks_negative=1.0
        ),
    )
    out = tmp_path / "preview"
    result = runner.invoke(
        app, ["validate", str(cohort.manifest), "--preview", str(out), "--preview-patients", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "preview: 6 view(s), 6 with marks removed, 0 without a scan area, 0 unreadable" in result.output
    sheet = read_image(out / "contact_sheet.png")
    assert sheet.shape == (46 + 3 * PANEL, 4 * PANEL, 3)
    table = pd.read_csv(out / "preview.csv")
    assert len(table) == 6 and set(table["view"]) == {"us_1", "us_2"}
    assert table["scan_found"].all() and (table["scan_box"] == "72,44,456,364").all()
    assert (table["calipers"] >= 2).all() and (table["mark_pixels"] > 200).all()
    # every center is in the sample
    assert table["center"].nunique() == 3


def test_preview_of_real_ddti_images_with_their_masks(tmp_path: Path) -> None:
    folder = real_path("ddti_thyroid_us")
    labels = pd.read_csv(folder / "labels.csv")
    manifest = pd.DataFrame(
        {
            "patient_id": [f"DDTI{i:03d}" for i in range(len(labels))],
            "center": ["DDTI"] * len(labels),
            "cohort": ["development"] * len(labels),
            "lnm": labels["label"],  # TI-RADS >= 4, a stand-in label for the sheet's caption
            "us_1": [str(folder / p) for p in labels["image"]],
            "us_1_mask": [str(folder / p) for p in labels["mask"]],
        }
    )
    path = tmp_path / "ddti.csv"
    manifest.to_csv(path, index=False)
    table = Cohort.from_manifest(path, check_files=False).table
    preview = write_preview(table, tmp_path / "preview", patients=10)
    assert preview.views == 10 and preview.no_scan_area == 0 and preview.errors == 0
    flags = pd.read_csv(preview.table)
    assert len(flags) == 10 and set(flags["region"]) <= {"mask", "scan"}
    assert read_image(preview.sheet).shape == (46 + 10 * PANEL, 4 * PANEL, 3)


def test_sampling_spreads_over_centers_and_skips_patients_without_images() -> None:
    table = pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(12)],
            "center": ["A"] * 8 + ["B"] * 3 + ["C"],
            "us_1": ["x.png"] * 11 + [None],
            "us_2": [None] * 12,
        }
    )
    picked = sample_patients(table, 6, seed=0)
    assert picked["center"].value_counts().to_dict() == {"A": 3, "B": 3}
    assert sample_patients(table, 6, seed=0)["patient_id"].tolist() == picked["patient_id"].tolist()


def test_preview_is_skipped_when_the_manifest_has_errors(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("patient_id,center,cohort,lnm,us_1\nP1,A,development,1,missing.png\n")
    result = runner.invoke(app, ["validate", str(bad), "--preview", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "preview not written: fix the errors first" in result.output
    assert not (tmp_path / "p").exists()
