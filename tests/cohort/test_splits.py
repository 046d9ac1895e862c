"""Patient-level folds: no patient in two folds, prevalence kept, external never folded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifests import clean_manifest
from radiopath.cohort import Cohort, assign_folds
from radiopath.errors import ConfigError


@st.composite
def cohorts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Patients with 1-3 samples each (e.g. several images of one case), labels per patient."""
    n_patients = draw(st.integers(200, 500))
    prevalence = draw(st.floats(0.2, 0.6))
    n_centers = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    n_splits = draw(st.sampled_from([3, 5]))
    rng = np.random.default_rng(seed)
    y_pat = (rng.random(n_patients) < prevalence).astype(int)
    y_pat[:n_splits] = 1
    y_pat[n_splits : 2 * n_splits] = 0
    centers_pat = rng.integers(0, n_centers, n_patients)
    reps = rng.integers(1, 4, n_patients)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], reps)
    labels = np.repeat(y_pat, reps)
    centers = np.repeat(centers_pat, reps)
    return labels, groups, centers, n_splits, seed


@settings(max_examples=60, deadline=None)
@given(cohorts())
def test_no_patient_in_two_folds_and_prevalence_kept(data: tuple) -> None:
    labels, groups, centers, n_splits, seed = data
    strata = np.char.add(centers.astype(str), labels.astype(str))
    folds = assign_folds(labels, groups, n_splits=n_splits, seed=seed, strata=strata)
    assert set(np.unique(folds)) == set(range(n_splits))
    per_patient = pd.Series(folds).groupby(groups).nunique()
    assert per_patient.max() == 1  # every sample of a patient in one fold
    patient_fold = pd.Series(folds, index=groups).groupby(level=0).first()
    patient_label = pd.Series(labels, index=groups).groupby(level=0).first()
    overall = patient_label.mean()
    for k in range(n_splits):
        members = patient_label[patient_fold == k]
        off = abs(members.mean() - overall)
        assert off * len(members) <= 2.5  # at most ~2 positive patients away from the ideal count
        assert off <= 0.06, (k, members.mean(), overall, len(members))  # within a few points


def test_folds_are_seeded() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.4).astype(int)
    g = np.array([f"p{i}" for i in range(200)])
    a, b = assign_folds(y, g, seed=1), assign_folds(y, g, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, assign_folds(y, g, seed=2))


def test_too_few_patients_of_a_class_is_a_clear_error() -> None:
    y = np.array([1, 1, 1] + [0] * 20)
    g = np.array([f"p{i}" for i in range(23)])
    with pytest.raises(ConfigError, match="only 3 patient\\(s\\) with lnm=1 for 5-fold"):
        assign_folds(y, g, n_splits=5)
    assert set(assign_folds(y, g, n_splits=3)) == {0, 1, 2}


def test_cohort_folds_cover_development_only_and_balance_centers(tmp_path: Path) -> None:
    manifest = clean_manifest(tmp_path, n=60)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    df.loc[:19, "center"] = "A1"
    df.loc[20:39, "center"] = "A2"  # development spans two centers
    df.loc[:39, "cohort"] = "development"
    df.to_csv(manifest, index=False)
    cohort = Cohort.from_manifest(manifest)
    folds = cohort.folds(n_splits=4, seed=3)
    table = cohort.table.set_index("patient_id")
    assert (folds[table["cohort"] == "external"] == -1).all()
    dev = folds[table["cohort"] == "development"]
    assert set(dev) == {0, 1, 2, 3}
    counts = pd.crosstab(dev, table.loc[dev.index, "center"])
    assert (counts.max() - counts.min()).max() <= 2  # each center spread evenly over folds
    assert folds.equals(cohort.folds(n_splits=4, seed=3))
