"""Feature sets: deep, handcrafted and hybrid side by side, named, cached by content, measured
the same in worker processes as in this one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiopath.cohort import Cohort
from radiopath.compute import plan
from radiopath.errors import ConfigError
from radiopath.features import extract_features
from radiopath.features.families import FAMILIES, families_for
from radiopath.modalities import StageContext
from radiopath.models.model import RadiopathModel
from radiopath.run_config import ModelSpec, RunConfig
from radiopath.synth import SynthResult
from runconfigs import extraction_config

CPU = plan("cpu", "fp32")


def _cfg(cache: Path, feature_set: object) -> RunConfig:
    return extraction_config(cache, feature_set)


def test_feature_sets_name_the_families_they_mean() -> None:
    assert [f.name for f in families_for("us", "deep")] == ["deep"]
    assert [f.name for f in families_for("us", "handcrafted")] == ["radiomics"]
    assert [f.name for f in families_for("cytology", "hybrid")] == ["deep", "pathomics"]
    cfg = RunConfig.from_dict({"model": {"feature_set": {"ultrasound": "handcrafted", "cytology": "hybrid"}}})
    assert (
        cfg.model.feature_set_of("us") == "handcrafted" and cfg.model.feature_set_of("cytology") == "hybrid"
    )
    with pytest.raises(ConfigError, match="feature_set must be one of"):
        RunConfig.from_dict({"model": {"feature_set": "radiomics"}})
    with pytest.raises(ConfigError, match="unknown modalities"):
        RunConfig.from_dict({"model": {"feature_set": {"elastography": "deep"}}})
    assert set(RunConfig.model_fields) >= {"radiomics", "pathomics"}  # each family's options section
    assert set(FAMILIES) == {"deep", "radiomics", "pathomics"}


def test_hybrid_features_stack_named_blocks_each_standardised_in_the_fold(
    small_cohort: SynthResult, tmp_path: Path
) -> None:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    cfg = _cfg(tmp_path / "cache", {"ultrasound": "hybrid", "cytology": "handcrafted"})
    fs = extract_features(cohort.table, cfg, CPU, StageContext(tmp_path / "cache", workers=1))
    us = fs.blocks["us"]
    assert [b.family for b in us] == ["deep", "radiomics"] and us[0].stop == 512 == us[1].start
    assert fs.features["us"].shape[1] == us[1].stop and us[1].names[0].startswith("original_")
    cy = fs.blocks["cytology"]
    assert [b.family for b in cy] == ["pathomics"] and any("nucle" in n for n in cy[0].names)
    names = fs.feature_names("cytology")
    assert names[0].startswith("pathomics:") and len(names) == fs.features["cytology"].shape[1]
    inputs = fs.inputs(cohort.table)
    assert inputs.blocks["us"] == [("deep", 0, 512), ("radiomics", 512, us[1].stop)]
    model = RadiopathModel(
        ModelSpec.preset("fusion_concat"), cfg.model.head, inputs.in_dims(), blocks=inputs.blocks
    )
    assert model.standardize["us"].out_dim == 2 * cfg.model.head.pca_dim  # each block projected on its own
    model.fit_standardizers(inputs.arrays, np.arange(10))
    assert len(model.standardize["us"].parts) == 2
    # the handcrafted numbers are real measurements, not padding
    pathomics = fs.features["cytology"]
    assert np.isfinite(pathomics).mean() > 0.8 and np.nanstd(pathomics, 0).max() > 0


@pytest.mark.slow
def test_handcrafted_features_measured_in_worker_processes_equal_the_serial_ones(
    small_cohort: SynthResult, tmp_path: Path
) -> None:
    cohort = Cohort.from_manifest(small_cohort.manifest)
    serial = extract_features(
        cohort.table, _cfg(tmp_path / "a", "handcrafted"), CPU, StageContext(tmp_path / "a", workers=1)
    )
    parallel = extract_features(
        cohort.table, _cfg(tmp_path / "b", "handcrafted"), CPU, StageContext(tmp_path / "b", workers=2)
    )
    for key in ("us", "cytology"):
        np.testing.assert_array_equal(serial.features[key], parallel.features[key])
    again = extract_features(
        cohort.table, _cfg(tmp_path / "a", "handcrafted"), CPU, StageContext(tmp_path / "a", workers=1)
    )
    assert again.stats["us_radiomics_computed"] == 0 and again.stats["cytology_pathomics_computed"] == 0
