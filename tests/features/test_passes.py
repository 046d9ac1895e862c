"""Augmented passes of features mode: development groups only, seeded by content (the same in any
cohort, order or process), cached, and stored in the FEATS folder so ``train --features`` trains on
exactly what the one-go run trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiopath.cohort import Cohort
from radiopath.compute import plan
from radiopath.errors import ConfigError
from radiopath.features import FeatureSet, extract_features
from radiopath.features.passes import augmented_family_key, pass_rng
from radiopath.modalities import MODALITIES, StageContext
from radiopath.preflight import check_features
from radiopath.synth import SynthResult
from runconfigs import extraction_config

CPU = plan("cpu", "fp32")
pytestmark = pytest.mark.slow


_config = extraction_config


@pytest.fixture(scope="module")
def extracted(
    small_cohort: SynthResult, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Cohort, FeatureSet, Path]:
    cache = tmp_path_factory.mktemp("pass_cache")
    cohort = Cohort.from_manifest(small_cohort.manifest)
    return (
        cohort,
        extract_features(cohort.table, _config(cache), CPU, StageContext(cache), augment=True),
        cache,
    )


def test_development_groups_get_two_passes_and_external_ones_their_clean_features(
    extracted: tuple[Cohort, FeatureSet, Path],
) -> None:
    cohort, fs, _ = extracted
    dev_ids = set(cohort.table.loc[cohort.table["cohort"] == "development", "patient_id"])
    for key in ("us", "cytology"):
        rows = fs.index[fs.index["modality"] == key]
        dev = rows["patient_id"].isin(dev_ids).to_numpy()
        aug = fs.augmented[key][:, rows["row"].to_numpy()]
        clean = fs.features[key][rows["row"].to_numpy()]
        assert aug.shape == (2, len(rows), clean.shape[1])
        np.testing.assert_array_equal(aug[:, ~dev], np.stack([clean[~dev]] * 2))
        moved = np.abs(aug[:, dev] - clean[dev]).mean(-1)
        assert (moved > 1e-4).all() and not np.allclose(aug[0, dev], aug[1, dev])  # each pass its own draw
    inputs = fs.inputs(cohort.table)
    assert inputs.n_passes == 2 and inputs.augmented["cytology"].shape[:2] == (2, len(cohort))


def test_passes_are_cached_and_do_not_depend_on_who_else_is_in_the_cohort(
    extracted: tuple[Cohort, FeatureSet, Path],
) -> None:
    cohort, fs, cache = extracted
    cfg = _config(cache)
    again = extract_features(cohort.table, cfg, CPU, StageContext(cache), augment=True)
    assert again.stats["us_deep_augmented_computed"] == 0 and again.stats["cytology_computed"] == 0
    dev = cohort.table[cohort.table["cohort"] == "development"]
    part = dev.iloc[::-1].iloc[:4]  # another cohort, another order: a process's share of the groups
    cold = cache.parent / "cold_cache"
    sub = extract_features(part, _config(cold), CPU, StageContext(cold), augment=True)
    for key in ("us", "cytology"):
        a = fs.index[fs.index["modality"] == key].set_index(["patient_id", "slot"])["row"]
        b = sub.index[sub.index["modality"] == key].set_index(["patient_id", "slot"])["row"]
        both = b.index
        np.testing.assert_array_equal(sub.augmented[key][:, b.loc[both]], fs.augmented[key][:, a.loc[both]])
    us = MODALITIES["us"]
    assert augmented_family_key(fs.families["us"]["deep"], us, cfg) != augmented_family_key(
        fs.families["us"]["deep"], us, cfg.model_copy(update={"ultrasound": cfg.ultrasound.model_copy(
            update={"augment": cfg.ultrasound.augment.model_copy(update={"gain": 0.3})})})
    )  # fmt: skip
    assert (
        pass_rng("k", 1).integers(1 << 30)
        == pass_rng("k", 1).integers(1 << 30)
        != pass_rng("k", 2).integers(1 << 30)
    )


def test_the_feats_folder_keeps_the_passes_and_train_checks_their_number(
    extracted: tuple[Cohort, FeatureSet, Path], tmp_path: Path
) -> None:
    cohort, fs, _ = extracted
    back = FeatureSet.load(fs.save(tmp_path / "feats"))
    for key in fs.augmented:
        np.testing.assert_array_equal(back.augmented[key], fs.augmented[key])
    assert set(back.shift["modality"]) == {"us", "cytology"} and back.shift["warn"].any()
    cfg = back.config.model_copy(deep=True)
    check_features(back, cfg, cohort.table, CPU)
    cfg.train.augment_passes = 3
    with pytest.raises(ConfigError, match="augment_passes"):
        check_features(back, cfg, cohort.table, CPU)
    cache = Path(cfg.cache_dir or ".")
    scored = extract_features(cohort.table, cfg, CPU, StageContext(cache), preprocessing=back.preprocessing)
    assert scored.augmented == {} and scored.shift.empty  # prediction: no passes, no acquisition check
