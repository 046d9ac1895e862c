"""How far each center's features are from the development cohort's — measured without labels.

Two numbers per center and image modality, on the patient-level features (each patient's
instances averaged), standardised and projected on the first :data:`N_COMPONENTS` principal
components of the development patients (the view a fold model's head gets):

* **domain-classifier AUC** — how well an L2 logistic regression tells the center's patients
  from the development patients, out of fold (stratified :data:`N_FOLDS`-fold
  cross-validation; DeLong 95% CI). 0.5: indistinguishable; 1.0: every patient's center can
  be read off its features. The classifier two-sample test of Lopez-Paz & Oquab ("Revisiting
  classifier two-sample tests", ICLR 2017), the "proxy A-distance" of Ben-David et al. (2007).
* **standardised mean difference** (SMD) — ``(mean_center − mean_development) / sd_development``
  per component; the mean |SMD| over the components and the largest one (Austin, "Balance
  diagnostics for comparing the distribution of baseline covariates between treatment groups
  in propensity-score matched samples", Stat Med 28, 2009: |SMD| > 0.1 is a notable imbalance).

A development center (when there are several) is compared with the other development centers.
Outcomes are never used: a shift found here is acquisition (or case mix), and it is what
augmentation (``train.augment_passes``) and harmonisation (``harmonization.method``) act on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from radiopath.cohort.schema import DEVELOPMENT

N_COMPONENTS = 16
N_FOLDS = 5
#: Fewest patients on each side for a center to be compared.
MIN_PATIENTS = 10

COLUMNS = [
    "features",
    "modality",
    "center",
    "cohort",
    "patients",
    "reference_patients",
    "domain_auc",
    "domain_auc_low",
    "domain_auc_high",
    "mean_abs_smd",
    "max_abs_smd",
]


def patient_features(inputs: object, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """``(patients with the modality (P,) bool, their mean instance features (P, D))``."""
    x = inputs.arrays[modality]  # type: ignore[attr-defined]
    mask = inputs.arrays[f"{modality}_mask"].astype(bool)  # type: ignore[attr-defined]
    if x.ndim == 2:
        return mask, x.astype(np.float64)
    count = mask.sum(1)
    mean = (x * mask[..., None]).sum(1) / np.maximum(count, 1)[:, None]
    return count > 0, mean.astype(np.float64)


def _project(ref: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise on ``ref`` and project on its first principal axes. Missing or non-finite
    entries (a handcrafted feature a region could not give) count as the reference mean, as in
    :func:`radiopath.models.standardize.fit_standardizer`; SVD of NaN does not converge."""
    clean = [np.where(np.isfinite(a), a, np.nan) for a in (ref, *others)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean 0, sd 1 below
        mu, sd = np.nanmean(clean[0], 0), np.nanstd(clean[0], 0)
    mu = np.nan_to_num(mu, nan=0.0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-8), sd, 1.0)
    z = [np.nan_to_num((a - mu) / sd, nan=0.0) for a in clean]
    _, _, vt = np.linalg.svd(z[0], full_matrices=False)
    comp = vt[: min(N_COMPONENTS, len(vt))].T
    return [a @ comp for a in z]


def domain_auc(ref: np.ndarray, other: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Out-of-fold AUC (and DeLong 95% CI) of an L2 logistic regression telling ``other`` from ``ref``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from radiopath.evaluate.stats import auc_ci_delong

    x = np.concatenate([ref, other])
    y = np.r_[np.zeros(len(ref)), np.ones(len(other))]
    folds = StratifiedKFold(min(N_FOLDS, len(ref), len(other)), shuffle=True, random_state=seed)
    clf = LogisticRegression(C=1.0, max_iter=2000)
    score = cross_val_predict(clf, x, y, cv=folds, method="decision_function")
    r = auc_ci_delong(y == 1, score)
    return r.auc, r.ci_low, r.ci_high


def feature_shift(inputs: object, label: str = "as extracted", seed: int = 0) -> pd.DataFrame:
    """Per image modality and center: domain-classifier AUC and SMDs against development (:data:`COLUMNS`)."""
    rows = []
    center = np.asarray(inputs.center).astype(str)  # type: ignore[attr-defined]
    cohort = np.asarray(inputs.cohort).astype(str)  # type: ignore[attr-defined]
    dev = cohort == DEVELOPMENT
    for m in inputs.modalities:  # type: ignore[attr-defined]
        if inputs.arrays[m].ndim != 3:  # type: ignore[attr-defined]
            continue
        has, feats = patient_features(inputs, m)
        for c in sorted(set(center[has])):
            mine = has & (center == c)
            ref = has & dev & (center != c)
            if mine.sum() < MIN_PATIENTS or ref.sum() < MIN_PATIENTS:
                continue
            zr, zc = _project(feats[ref], feats[mine])
            sd = np.where(zr.std(0) > 1e-8, zr.std(0), 1.0)
            smd = np.abs((zc.mean(0) - zr.mean(0)) / sd)
            auc, lo, hi = domain_auc(zr, zc, seed)
            rows.append(
                [
                    label,
                    m,
                    c,
                    DEVELOPMENT if (dev & (center == c)).any() else str(cohort[mine][0]),
                    int(mine.sum()),
                    int(ref.sum()),
                    auc,
                    lo,
                    hi,
                    float(smd.mean()),
                    float(smd.max()),
                ]
            )
    return pd.DataFrame(rows, columns=COLUMNS)
