"""An ultrasound-only study on real thyroid ultrasound (DDTI), folds grouped by case.

DDTI's labels are a radiologist's TI-RADS category, not lymph-node status, and the set is
small (73 cases): this checks that real images flow through the whole protocol and reports
the AUC; it is not a performance claim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from radiopath.io.images import read_image
from radiopath.train.config import fast_profile
from radiopath.train.run import train_run
from support import real_path


def ddti_manifest(folder: Path) -> Path:
    """One row per case (patient): up to two views with their masks; blank masks left out."""
    root = real_path("ddti_thyroid_us")
    labels = pd.read_csv(root / "labels.csv")
    rows = []
    for case, g in labels.groupby("case_id", sort=True):
        row = {
            "patient_id": f"DDTI-{case}",
            "center": "DDTI",
            "cohort": "development",
            "lnm": int(g["label"].iloc[0]),
            "us_1": "",
            "us_2": "",
            "us_1_mask": "",
            "us_2_mask": "",
        }
        for k, rec in enumerate(g.head(2).itertuples(), start=1):
            row[f"us_{k}"] = str(root / rec.image)
            if read_image(root / rec.mask).max() > 0:
                row[f"us_{k}_mask"] = str(root / rec.mask)
        rows.append(row)
    path = folder / "ddti.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_ultrasound_only_run_on_ddti(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    manifest = ddti_manifest(tmp_path)
    cfg = fast_profile()
    cfg.model.models = ["ultrasound"]
    cfg.cache_dir = str(tmp_path / "cache")
    result = train_run(manifest, tmp_path / "run", cfg)
    pred = result.predictions
    assert len(pred) == 73 and pred["patient_id"].is_unique and set(pred["fold"]) == set(range(5))
    folds = pd.read_csv(tmp_path / "run" / "folds.csv")
    assert folds["patient_id"].is_unique  # a case (all its images) sits in exactly one fold
    flags = pd.read_csv(tmp_path / "run" / "ultrasound_flags.csv")
    views = pd.read_csv(manifest)[["us_1", "us_2"]].notna().to_numpy().sum()
    no_scan = flags["flags"].fillna("").str.contains("no_scan_area").sum()
    assert no_scan <= 0.1 * views, f"{no_scan} of {views} DDTI views without a scan area"
    auc = roc_auc_score(pred["label"], pred["prob"])
    record_property("ddti_ultrasound_auc", round(auc, 3))
    print(f"DDTI ultrasound-only out-of-fold AUC: {auc:.3f} (73 cases, TI-RADS labels)")
    assert np.isfinite(auc) and len(np.unique(pred["prob"])) > 60  # real scores, not a constant
