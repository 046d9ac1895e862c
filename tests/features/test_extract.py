"""The extraction stage: preprocessing fitted on development only, features keyed by content,
a FEATS folder that round-trips, and a cache that heals a damaged entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiopath.cohort import Cohort
from radiopath.compute import plan
from radiopath.errors import OutputExistsError
from radiopath.features import FeatureCache, FeatureSet, extract_features
from radiopath.features.preprocessing import development_rows, fit_preprocessing
from radiopath.modalities import MODALITIES, StageContext
from radiopath.run_config import RunConfig
from radiopath.synth import SynthResult
from runconfigs import extraction_config

CPU = plan("cpu", "fp32")


def tiny_config(cache: Path) -> RunConfig:
    return extraction_config(cache)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="module")
def extracted(small_cohort: SynthResult, cache: Path) -> tuple[Cohort, FeatureSet]:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    cfg = tiny_config(cache)
    return cohort, extract_features(cohort.table, cfg, CPU, StageContext(cache))


def test_every_view_and_tile_is_indexed_with_its_content_key(extracted: tuple[Cohort, FeatureSet]) -> None:
    cohort, fs = extracted
    idx = fs.index
    us, cy = idx[idx["modality"] == "us"], idx[idx["modality"] == "cytology"]
    n_views = int(cohort.table[["us_1", "us_2"]].notna().sum().sum())
    assert len(us) == n_views == len(fs.features["us"]) and set(us["view"]) <= {"us_1", "us_2"}
    assert len(cy) == len(fs.features["cytology"]) and cy["rank"].between(0, 2).all()
    assert cy[["x", "y", "level", "size"]].notna().all().all()
    assert (us["group"].str.len() == 32).all() and us["group"].is_unique  # one content key per view
    assert cy.groupby("group")["patient_id"].nunique().eq(1).all()  # a slide's tiles share its key
    inputs = fs.inputs(cohort.table)
    assert inputs.arrays["us"].shape == (len(cohort), 2, 512)
    assert inputs.arrays["cytology"].shape == (len(cohort), 3, 512)
    np.testing.assert_array_equal(inputs.arrays["us_mask"].sum(), n_views)


def test_second_extraction_is_all_cache_and_a_damaged_entry_heals(
    small_cohort: SynthResult, extracted: tuple[Cohort, FeatureSet], cache: Path
) -> None:
    cohort, first = extracted
    cfg = tiny_config(cache)
    again = extract_features(cohort.table, cfg, CPU, StageContext(cache))
    assert again.stats["us_computed"] == 0 and again.stats["cytology_computed"] == 0
    for key in first.features:
        np.testing.assert_array_equal(first.features[key], again.features[key])
    victim = first.index[first.index["modality"] == "us"]["group"].iloc[0]
    entry = FeatureCache(cache, first.families["us"]["deep"]).path(victim)
    entry.write_bytes(b"torn write")
    healed = extract_features(cohort.table, cfg, CPU, StageContext(cache))
    np.testing.assert_array_equal(healed.features["us"], first.features["us"])
    assert FeatureCache(cache, first.families["us"]["deep"]).get(victim) is not None


def test_the_features_folder_round_trips_and_is_never_written_over_other_files(
    extracted: tuple[Cohort, FeatureSet], tmp_path: Path
) -> None:
    cohort, fs = extracted
    fs.save(tmp_path / "feats")
    back = FeatureSet.load(tmp_path / "feats")
    a, b = fs.inputs(cohort.table), back.inputs(cohort.table)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert back.preprocessing.states == fs.preprocessing.states and back.cohort_key() == fs.cohort_key()
    fs.save(tmp_path / "feats")  # rerunnable: replaces its own folder
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a features folder"):
        fs.save(tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_preprocessing_is_fitted_on_development_patients_only(small_cohort: SynthResult, cache: Path) -> None:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    cfg = tiny_config(cache)
    cfg.ultrasound.intensity.standardize = True
    cfg.cytology.stain_normalization = "reinhard"
    table = cohort.table
    ctx = StageContext(cache)
    prepared = {k: MODALITIES[k].prepare(table, cfg, ctx) for k in ("us", "cytology")}  # type: ignore[attr-defined]
    full = fit_preprocessing(table, cfg, prepared, ["us", "cytology"])
    dev = development_rows(table)
    assert (~dev).any()
    # the external patients' images swapped for other development images: nothing fitted moves
    swapped = table.copy()
    donors = table[dev].iloc[: int((~dev).sum())]
    for col in ("us_1", "us_2", "cytology"):
        swapped.loc[~dev, col] = donors[col].to_numpy()
    prepared_s = {k: MODALITIES[k].prepare(swapped, cfg, ctx) for k in ("us", "cytology")}  # type: ignore[attr-defined]
    assert fit_preprocessing(swapped, cfg, prepared_s, ["us", "cytology"]).states == full.states
    assert full.states["us"]["standardizer"]["centers"]  # something was fitted
    assert full.states["cytology"]["stain"]["method"] == "reinhard"
    dev_centers = set(table.loc[dev, "center"])
    assert set(full.states["us"]["standardizer"]["centers"]) == dev_centers


def test_caches_are_keyed_by_content_not_by_patient_id(
    small_cohort: SynthResult, cache: Path, tmp_path: Path
) -> None:
    """Two cohorts whose patient ids repeat must never share an entry unless their files are the same."""
    cfg = tiny_config(cache)
    base = Cohort.from_manifest(small_cohort.manifest)
    first = extract_features(base.table, cfg, CPU, StageContext(cache))
    # the same files under new ids: every entry is a hit, the features follow the files
    renamed = base.table.copy()
    renamed["patient_id"] = [f"X{i:03d}" for i in range(len(renamed))]
    again = extract_features(renamed, cfg, CPU, StageContext(cache))
    assert again.stats["us_computed"] == 0 and again.stats["cytology_computed"] == 0
    # the same ids with two patients' files exchanged: their features are exchanged too
    swapped = base.table.copy()
    cols = ["us_1", "us_2", "us_1_box", "us_2_box", "us_1_mask", "us_2_mask", "cytology"]
    swapped.loc[[0, 1], cols] = base.table.loc[[1, 0], cols].to_numpy()
    swapped.loc[[0, 1], "center"] = base.table.loc[[1, 0], "center"].to_numpy()
    out = extract_features(swapped, cfg, CPU, StageContext(cache)).inputs(swapped)
    ref = first.inputs(base.table)
    for key in ("us", "cytology"):
        np.testing.assert_array_equal(out.arrays[key][0], ref.arrays[key][1])
        np.testing.assert_array_equal(out.arrays[key][1], ref.arrays[key][0])
