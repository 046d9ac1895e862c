"""Handcrafted ultrasound radiomics + the signature on real thyroid ultrasound (DDTI).

89 views of 73 cases; the label is the radiologist's TI-RADS category (0 = TR2/3, 1 = TR4a+),
not lymph-node status. Folds are grouped by case (StratifiedGroupKFold), five repeats of
5-fold CV (one split alone swings by about +-0.04); the signature chooses its penalty inside
each training fold. Beside it, on the same folds, the README's pixel baseline: a logistic
regression on the 32x32 thumbnail and a 32-bin intensity histogram (its L2 penalty chosen by
the same grouped inner CV).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radiopath.features.radiomics import processed_view_radiomics, radiomics_feature_names
from radiopath.io.images import read_image
from radiopath.models.signature import RadiomicsSignature
from radiopath.ultrasound import UltrasoundTransform
from support import real_path

REPEATS = 5


def ddti_features() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Radiomics (one row per view), pixel-baseline features, labels, cases, region sources."""
    root = real_path("ddti_thyroid_us")
    labels = pd.read_csv(root / "labels.csv")
    tf = UltrasoundTransform()
    rows, pixels, sources = [], [], []
    for rec in labels.itertuples():
        image = read_image(root / rec.image)
        mask = read_image(root / rec.mask)
        view = tf.process(image, mask=mask)
        result = processed_view_radiomics(view, mask=mask)
        rows.append(result.features)
        sources.append(result.region.source)
        grey = image[..., 0]
        thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).ravel() / 255.0
        hist = np.bincount(grey.ravel() // 8, minlength=32) / grey.size
        pixels.append(np.concatenate([thumb, hist]))
    X = pd.DataFrame(rows, columns=radiomics_feature_names())
    return X, np.array(pixels), labels["label"].to_numpy(), labels["case_id"].to_numpy(), sources


def pixel_model(inner: list) -> GridSearchCV:
    """Standardised pixels and histogram, L2 logistic regression, C by the given inner folds."""
    pipe = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=5000))
    grid = {"logisticregression__C": [0.001, 0.01, 0.1, 1.0]}
    return GridSearchCV(pipe, grid, scoring="roc_auc", cv=inner)


def case_auc(y: np.ndarray, groups: np.ndarray, prob: np.ndarray) -> float:
    """AUC over cases (patients): each case's views' probabilities averaged."""
    d = pd.DataFrame({"case": groups, "y": y, "p": prob}).groupby("case").mean()
    return float(roc_auc_score(d["y"], d["p"]))


@pytest.mark.real
@pytest.mark.slow
def test_radiomics_signature_beats_chance_and_pixels_on_ddti(record_property: pytest.RecordProperty) -> None:
    X, P, y, groups, sources = ddti_features()
    assert len(X) == 89 and len(np.unique(groups)) == 73
    assert sources.count("mask") == 87 and all(s in ("auto", "scan") for s in sources if s != "mask")
    assert X.notna().mean().min() > 0.95  # real numbers, not NaN columns
    A = X.to_numpy(float)
    names = list(X.columns)
    rad = {"image": [], "case": []}
    pix = {"image": [], "case": []}
    kept = []
    for rep in range(REPEATS):
        p_rad = np.zeros(len(y))
        p_pix = np.zeros(len(y))
        for train, test in StratifiedGroupKFold(5, shuffle=True, random_state=rep).split(A, y, groups):
            sig = RadiomicsSignature(seed=rep).fit(A[train], y[train], names, groups=groups[train])
            p_rad[test] = sig.predict_proba(A[test])[:, 1]
            kept.append(len(sig.selected_features()))
            inner = StratifiedGroupKFold(5, shuffle=True, random_state=rep)
            base = pixel_model(list(inner.split(P[train], y[train], groups[train]))).fit(P[train], y[train])
            p_pix[test] = base.predict_proba(P[test])[:, 1]
        for store, prob in ((rad, p_rad), (pix, p_pix)):
            store["image"].append(roc_auc_score(y, prob))
            store["case"].append(case_auc(y, groups, prob))
    for name, store in (("radiomics signature", rad), ("pixel baseline", pix)):
        for level in ("image", "case"):
            v = np.array(store[level])
            print(
                f"DDTI {name:20s} {level}-level out-of-fold AUC per repeat {np.round(v, 3).tolist()}: "
                f"mean {v.mean():.3f} ± {v.std():.3f}"
            )
    print(f"features used by the signature per fold: median {np.median(kept):.0f} of {A.shape[1]}")
    record_property("ddti_radiomics_auc", round(float(np.mean(rad["image"])), 3))
    record_property("ddti_pixel_auc", round(float(np.mean(pix["image"])), 3))
    assert np.mean(rad["image"]) >= 0.68
    assert np.mean(rad["case"]) >= 0.68
    assert 0.55 < np.mean(pix["image"]) < 0.8  # the baseline is real too
