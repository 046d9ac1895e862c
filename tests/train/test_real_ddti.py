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
from radiopath.run_config import fast_profile
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


def _pixel_baseline(manifest: Path, folds: pd.DataFrame) -> np.ndarray:
    """Out-of-fold probabilities of the README's pixel baseline on the run's own folds: an L2
    logistic regression on each case's mean 32x32 thumbnail and 32-bin histogram."""
    import cv2
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table = pd.read_csv(manifest)
    rows = []
    for rec in table.itertuples():
        feats = []
        for p in (rec.us_1, rec.us_2):
            if isinstance(p, str) and p:
                grey = read_image(p)[..., 0]
                thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).ravel() / 255.0
                feats.append(
                    np.concatenate([thumb, np.bincount(grey.ravel() // 8, minlength=32) / grey.size])
                )
        rows.append(np.mean(feats, axis=0))
    x, y = np.array(rows), table["lnm"].to_numpy()
    fold = folds.set_index("patient_id").loc[table["patient_id"], "fold"].to_numpy()
    prob = np.zeros(len(y))
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        pipe = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=5000))
        model = GridSearchCV(
            pipe, {"logisticregression__C": [0.001, 0.01, 0.1, 1.0]}, scoring="roc_auc", cv=4
        )
        prob[te] = model.fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
    return prob


@pytest.mark.slow
@pytest.mark.real
def test_handcrafted_radiomics_signature_on_ddti_through_the_pipeline(tmp_path: Path) -> None:
    """Issue 13's bar: ultrasound-only handcrafted features reach an out-of-fold AUC of at least
    0.68 on DDTI, folds by case, as the mean of 5 repeats of 5-fold CV — with the pixel baseline
    on the same folds beside it."""
    manifest = ddti_manifest(tmp_path)
    cfg = fast_profile()
    cfg.model.models = ["ultrasound_signature"]
    cfg.model.feature_set = "handcrafted"
    cfg.cache_dir = str(tmp_path / "cache")
    ours, base = [], []
    for seed in range(5):
        cfg.protocol.seed = seed
        result = train_run(manifest, tmp_path / f"run{seed}", cfg)
        pred = result.predictions
        assert len(pred) == 73 and set(pred["fold"]) == set(range(5))
        ours.append(roc_auc_score(pred["label"], pred["prob"]))
        folds = pd.read_csv(tmp_path / f"run{seed}" / "folds.csv")
        labels = pd.read_csv(manifest)["lnm"].to_numpy()
        base.append(roc_auc_score(labels, _pixel_baseline(manifest, folds)))
    print(f"DDTI handcrafted signature AUC per repeat {np.round(ours, 3)}, mean {np.mean(ours):.3f}")
    print(f"pixel baseline on the same folds {np.round(base, 3)}, mean {np.mean(base):.3f}")
    assert np.mean(ours) >= 0.68, (ours, base)
    sig = (
        tmp_path / "run0" / "checkpoints" / "ultrasound_signature" / "fold0" / "signature.json"
    ).read_text()
    assert "ultrasound:radiomics:original_" in sig  # features are named, IBSI style
