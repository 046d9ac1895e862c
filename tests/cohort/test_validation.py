"""validate_manifest: every problem in one pass, each with row, column and fix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from manifests import clean_manifest, write_png
from radiopath.cohort import Cohort, validate_manifest
from radiopath.errors import ManifestError


def _edit(manifest: Path, **cells: dict[int, str]) -> None:
    """Set cells: _edit(path, lnm={3: 'yes'}) sets row 3 (1-based) of column lnm."""
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for col, by_row in cells.items():
        if col not in df.columns:
            df[col] = ""
        for row, value in by_row.items():
            df.loc[row - 1, col] = value
    df.to_csv(manifest, index=False)


def _find(report, column: str | None, row: int | None, text: str):  # type: ignore[no-untyped-def]
    hits = [p for p in report.problems if p.column == column and p.row == row and text in p.message]
    assert hits, f"no problem '{text}' at row {row}, column {column}; got:\n" + "\n".join(
        map(str, report.problems)
    )
    return hits[0]


def test_clean_manifest_is_valid_and_typed(tmp_path: Path) -> None:
    report = validate_manifest(clean_manifest(tmp_path))
    assert report.ok, [str(p) for p in report.problems]
    t = report.table
    assert len(t) == 20 and str(t["lnm"].dtype) == "Int8"
    assert Path(t.loc[0, "us_1"]).is_absolute() and Path(t.loc[0, "us_1"]).exists()
    assert t.loc[0, "us_1_box"] == (4, 4, 40, 30) and t.loc[1, "us_1_box"] is None
    assert t.loc[0, "cytology"].endswith("slides/s.tiff") and pd.isna(t.loc[1, "cytology"])
    assert t["clin_age"].dtype == float and t.loc[2, "clin_age"] == 42.0


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path, n=15)
    (tmp_path / "us" / "p3_1.png").write_bytes((tmp_path / "us" / "p3_1.png").read_bytes()[:100])  # truncated
    shutil.copy(tmp_path / "us" / "p5_2.png", tmp_path / "us" / "p6_2.png")  # same image, two patients
    big_mask = np.zeros((10, 10), np.uint8)
    big_mask[2:5, 2:5] = 255
    Image.fromarray(big_mask).save(tmp_path / "us" / "small_mask.png")
    _edit(
        manifest,
        us_1={2: "us/missing.png"},
        lnm={4: "yes", 8: "2"},
        patient_id={7: "P004"},  # duplicate of row 5, same center
        cohort={9: "Development", 14: "test"},
        us_2={10: ""},
        us_1_box={11: "1,2,3", 12: "0,0,500,20"},
        us_2_mask={13: "us/small_mask.png"},
    )
    _edit(manifest, us_1={10: ""}, cytology={10: ""})  # row 10: no modality at all
    _edit(manifest, patient_id={15: "P001"}, center={15: "B"})  # P001 in centers A and B
    report = validate_manifest(manifest)
    assert not report.ok
    _find(report, "us_1", 2, "not found")
    _find(report, "us_1", 4, "truncated")  # p3 is the 4th patient
    _find(report, "lnm", 4, "'yes'")
    _find(report, "lnm", 8, "'2'")
    _find(report, "us_2", 7, "same image content")
    dup = _find(report, "patient_id", 7, "duplicate patient_id 'P004'")
    assert "row 5" in dup.message and dup.line == 8  # CSV line = row + 1 (header)
    fix = _find(report, "cohort", 9, "'Development'").fix
    assert "development" in fix
    _find(report, "cohort", 14, "'test'")
    _find(report, None, 10, "no modality")
    _find(report, "us_1_box", 11, "four numbers")
    _find(report, "us_1_box", 12, "outside")
    _find(report, "us_2_mask", 13, "mask is 10x10 px")
    _find(report, "center", 15, "two centers")
    assert all(p.fix for p in report.problems)
    with pytest.raises(ManifestError) as info:
        Cohort.from_manifest(manifest)
    assert len(info.value.problems) == len(report.errors) >= 14
    assert "row 2 (line 3), column us_1" in str(info.value)


def test_missing_and_unknown_columns(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False).rename(
        columns={"lnm": "LNM status", "clin_age": "age"}
    )
    df.to_csv(manifest, index=False)
    report = validate_manifest(manifest)
    missing = _find(report, "lnm", None, "required column 'lnm' is missing")
    assert "LNM status" in missing.fix
    age = _find(report, "age", None, "not part of the manifest contract")
    assert age.severity == "warning" and "clin_age" in age.fix


def test_single_class_is_an_error_and_too_few_per_class_a_warning(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path)
    _edit(manifest, lnm={i: "0" for i in range(1, 14)})
    report = validate_manifest(manifest)
    assert any("single class" in p.message and p.severity == "error" for p in report.problems)
    _edit(manifest, lnm={1: "1", 2: "1"})
    report = validate_manifest(manifest)
    assert report.ok  # trainable with fewer folds: a warning here, an error when folds are made
    assert any("only 2 patient(s) with lnm=1" in p.message for p in report.warnings)
    assert not validate_manifest(manifest, n_folds=2).warnings


def test_strict_rejects_paths_leaving_the_folder(tmp_path: Path) -> None:
    study = tmp_path / "study"
    manifest = clean_manifest(study)
    outside = tmp_path / "elsewhere"
    write_png(outside / "x.png", seed=99)
    write_png(outside / "y.png", seed=98)
    os.symlink(outside / "y.png", study / "us" / "link.png")
    _edit(manifest, us_1={2: "../elsewhere/x.png", 3: "us/link.png", 4: str(outside / "x.png")})
    _edit(manifest, us_1={5: "us/../us/p4_1.png"})  # '..' that stays inside is fine
    assert not any(
        p.column == "us_1" and p.severity == "error"
        for p in validate_manifest(manifest).problems
        if "leaves" in p.message
    )
    report = validate_manifest(manifest, strict=True)
    assert "'..'" in _find(report, "us_1", 2, "leaves the manifest's folder").message
    assert "symbolic link" in _find(report, "us_1", 3, "leaves the manifest's folder").message
    assert "absolute path" in _find(report, "us_1", 4, "leaves the manifest's folder").message
    assert not [p for p in report.problems if p.row == 5 and "leaves" in p.message]


def test_parquet_manifest_and_semicolon_csv(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    df["lnm"] = df["lnm"].astype(float)  # Parquet writers often store labels as floats
    df.to_parquet(tmp_path / "manifest.parquet")
    report = validate_manifest(tmp_path / "manifest.parquet")
    assert report.ok and report.table["lnm"].tolist()[:2] == [0, 1]
    assert all(p.line is None for p in report.problems)
    df.to_csv(tmp_path / "excel.csv", sep=";", index=False)
    assert validate_manifest(tmp_path / "excel.csv").ok


def test_unreadable_manifest_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        validate_manifest(tmp_path / "nope.csv")
    (tmp_path / "m.xlsx").write_bytes(b"PK")
    with pytest.raises(ManifestError, match=r"save it as \.csv or \.parquet"):
        validate_manifest(tmp_path / "m.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="the manifest is empty"):
        validate_manifest(tmp_path / "empty.csv")


def test_development_patient_without_label_is_a_warning(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path)
    _edit(manifest, lnm={3: ""})
    report = validate_manifest(manifest)
    assert report.ok
    w = _find(report, "lnm", 3, "left out of cross-validation")
    assert w.severity == "warning"
    cohort = Cohort.from_manifest(manifest)
    assert cohort.folds(n_splits=3)["P002"] == -1
