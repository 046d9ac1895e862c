"""Harmonisation of a cohort's inputs: each center mapped onto the development reference from its own
unlabelled features, small centers recorded, the state saved and applied again exactly; and the
feature-shift measure that sees it (domain-classifier AUC, SMD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feature_inputs import feature_cohort
from radiopath.errors import ConfigError
from radiopath.models.inputs import PatientInputs
from radiopath.shift.domain import feature_shift
from radiopath.shift.harmonize import HarmonizationState, fit_harmonization, harmonize


@pytest.fixture()
def shifted() -> PatientInputs:
    """110 development patients (center A), 50 external (B) whose cytology features are shifted and
    scaled, as a scanner would, and whose labels are hidden."""
    inputs, _, _ = feature_cohort(dim=12, seed=4)
    ext = inputs.cohort == "external"
    cy = inputs.arrays["cytology"].copy()
    cy[ext] = 1.5 * cy[ext] + 2.0
    inputs.arrays["cytology"] = cy
    inputs.label = np.where(ext, np.nan, inputs.label)
    return inputs


def test_an_external_center_is_mapped_onto_the_development_reference(shifted: PatientInputs) -> None:
    before = feature_shift(shifted, "as extracted")
    row = before[(before["modality"] == "cytology") & (before["center"] == "B")].iloc[0]
    assert row["domain_auc"] > 0.95 and row["mean_abs_smd"] > 0.5
    us = before[(before["modality"] == "us") & (before["center"] == "B")].iloc[0]
    assert us["domain_auc"] < 0.75  # the ultrasound features were not shifted
    state = fit_harmonization(shifted, "standardize", min_patients=20)
    out = harmonize(shifted, state)
    ext = shifted.cohort == "external"
    dev_cy = shifted.arrays["cytology"][~ext].reshape(-1, 12)
    ext_cy = out.arrays["cytology"][ext].reshape(-1, 12)
    np.testing.assert_allclose(ext_cy.mean(0), dev_cy.mean(0), atol=1e-4)
    np.testing.assert_allclose(ext_cy.std(0), dev_cy.std(0), rtol=0.02)
    np.testing.assert_array_equal(out.arrays["cytology"][~ext], shifted.arrays["cytology"][~ext])  # reference
    after = feature_shift(out, "harmonized")
    assert after.set_index(["modality", "center"]).loc[("cytology", "B"), "domain_auc"] < 0.75
    rec = {(r["modality"], r["center"]): r for r in state.record}
    assert rec[("cytology", "A")]["adjusted"] is False and "reference" in rec[("cytology", "A")]["source"]
    assert rec[("cytology", "B")]["adjusted"] and rec[("cytology", "B")]["patients"] == 50
    assert rec[("cytology", "B")]["mean_scale"] == pytest.approx(1.5, rel=0.1)
    assert np.isnan(shifted.label[ext]).all()  # no label was needed


def test_saved_state_applies_the_same_and_small_centers_use_the_recorded_adjustment(
    shifted: PatientInputs, tmp_path: Path
) -> None:
    state = fit_harmonization(shifted, "combat", min_patients=20)
    full = harmonize(shifted, state)
    state.save(tmp_path)
    again = HarmonizationState.load(tmp_path)
    assert again is not None and again.method == "combat"
    ext = np.flatnonzero(shifted.cohort == "external")
    few = shifted.subset(ext[:5])  # five patients of B: fewer than min_patients, B is known
    out = harmonize(few, again)
    np.testing.assert_allclose(out.arrays["cytology"], full.arrays["cytology"][ext[:5]], atol=1e-5)
    assert "recorded adjustment" in next(r["source"] for r in again.record if r["modality"] == "cytology")
    stranger = shifted.subset(ext[:5])
    stranger.center = np.array(["Z"] * 5)
    said: list[str] = []
    out = harmonize(stranger, HarmonizationState.load(tmp_path), said.append)  # type: ignore[arg-type]
    np.testing.assert_array_equal(out.arrays["cytology"], stranger.arrays["cytology"])  # left as it is
    assert any("center Z" in s and "min_patients" in s for s in said)
    assert HarmonizationState.load(tmp_path / "nothing") is None


def test_several_development_centers_are_each_mapped_onto_the_pooled_reference(
    shifted: PatientInputs,
) -> None:
    shifted.center = np.where(
        np.arange(len(shifted)) < 55, "A1", np.where(shifted.cohort == "external", "B", "A2")
    )
    state = fit_harmonization(shifted, "standardize", min_patients=20)
    out = harmonize(shifted, state)
    a2 = shifted.center == "A2"
    assert not np.array_equal(out.arrays["cytology"][a2], shifted.arrays["cytology"][a2])
    assert {r["center"] for r in state.record if r["adjusted"]} == {"A1", "A2", "B"}
    with pytest.raises(ConfigError, match=r"harmonization\.method"):
        fit_harmonization(shifted, "quantile", 20)


def test_missing_feature_values_are_measured_and_harmonised_around(shifted: PatientInputs) -> None:
    """Handcrafted features can be missing (NaN: a region too small for a texture): the shift is
    still measured and every present value harmonised, the missing ones left missing."""
    cy = shifted.arrays["cytology"].copy()
    rng = np.random.default_rng(0)
    holes = rng.random(cy.shape) < 0.05
    cy[holes] = np.nan
    cy[..., 3] = np.nan  # a feature no instance has
    shifted.arrays["cytology"] = cy
    shift = feature_shift(shifted, "as extracted").set_index(["modality", "center"])
    assert shift.loc[("cytology", "B"), "domain_auc"] > 0.95  # the shift is still seen
    for method in ("standardize", "combat"):
        out = harmonize(shifted, fit_harmonization(shifted, method, min_patients=20)).arrays["cytology"]
        np.testing.assert_array_equal(np.isnan(out), np.isnan(cy))
        ext = shifted.cohort == "external"
        present = out[ext][..., [0, 1, 2, 4]].reshape(-1, 4)
        dev = cy[~ext][..., [0, 1, 2, 4]].reshape(-1, 4)
        np.testing.assert_allclose(
            np.nanmean(present, 0), np.nanmean(dev, 0), atol=0.15 if method == "combat" else 1e-3
        )
