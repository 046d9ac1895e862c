"""The run-loading API: a finished run folder opened read-only scores new patients exactly as
the protocol scored the external centers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from radiopath.errors import ConfigError
from radiopath.runs import PREDICT_COLUMNS, load_run
from radiopath.slides import open_slide
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("load_cohort") / "c",
        SynthConfig(patients=36, seed=12, slide_um=400, workers=2),
    )


@pytest.fixture(scope="module")
def run(cohort: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny(tmp_path_factory.mktemp("load_cache"))
    cfg.model.models = ["ultrasound", "fusion_concat"]
    out = tmp_path_factory.mktemp("load_run") / "run"
    train_run(cohort.manifest, out, cfg)
    return out


def test_a_loaded_run_reproduces_the_external_predictions(cohort: SynthResult, run: Path) -> None:
    r = load_run(run)
    assert r.primary_model == "fusion_concat" and r.models == ["ultrasound", "fusion_concat"]
    assert r.config.model.backbone == "resnet18" and r.info.mode == "features"
    assert set(r.preprocessing.states) >= {"us", "cytology"}
    folds = r.fold_models("fusion_concat")
    assert len(folds) == 3 and not folds[0].training
    assert all(isinstance(p, torch.Tensor) for p in folds[0].state_dict().values())
    new = r.predict(cohort.manifest)
    assert list(new.columns) == PREDICT_COLUMNS
    ext = r.predictions[r.predictions["cohort"] == "external"]
    both = ext.merge(new, on=["patient_id", "model"], suffixes=("_run", "_new"))
    assert len(both) == len(ext) > 0
    np.testing.assert_allclose(both["prob_new"], both["prob_run"], rtol=0, atol=1e-6)
    assert (both["decision"] == (both["prob_new"] >= both["threshold_new"]).astype(int)).all()
    assert (both["threshold_new"] == both["threshold_run"]).all()
    assert (both["prob_min"] <= both["prob_new"]).all() and (both["prob_new"] <= both["prob_max"]).all()
    assert (both["n_folds"] == 3).all() and both["prob_sd"].gt(0).any()


def test_new_patients_without_labels_and_without_a_slide(
    cohort: SynthResult, run: Path, tmp_path: Path
) -> None:
    manifest = pd.read_csv(cohort.manifest)
    new = manifest.head(4).copy()
    new["lnm"] = None
    new["cohort"] = "external"
    new.loc[1, "cytology"] = None  # one patient without a slide
    root = cohort.manifest.parent
    for col in ("us_1", "us_2", "us_1_mask", "us_2_mask", "cytology"):
        if col in new.columns:
            new[col] = [str(root / p) if isinstance(p, str) else None for p in new[col]]
    new.to_csv(tmp_path / "new.csv", index=False)
    pred = load_run(run).predict(tmp_path / "new.csv")
    fused = pred[pred["model"] == "fusion_concat"].set_index("patient_id")
    assert len(fused) == 4 and fused["prob"].between(0, 1).all()
    pid = new.loc[1, "patient_id"]
    assert fused.loc[pid, "missing_modality"] and fused.loc[pid, "modalities"] == "us"
    assert not fused.drop(index=pid)["missing_modality"].any()


def test_a_folder_that_is_not_a_finished_run_is_a_clear_error(tmp_path: Path, run: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        load_run(tmp_path)
    r = load_run(run)
    with pytest.raises(ConfigError, match="has no model 'cytology'"):
        r.fold_models("cytology")


def test_png_cytology_trains_with_an_mpp_table(cohort: SynthResult, tmp_path: Path) -> None:
    """Regression: a PNG or patch folder as cytology passed validate and tile --mpp-table, but
    could never be trained."""
    manifest = pd.read_csv(cohort.manifest)
    root = cohort.manifest.parent
    rows = []
    for rel in manifest["cytology"]:
        with open_slide(root / rel) as s:
            w, h = s.dimensions
            mpp = s.mpp
            region = s.read_region(0, 0, 0, w, h)
        png = tmp_path / f"{Path(rel).stem}.png"
        cv2.imwrite(str(png), np.ascontiguousarray(region[:, :, ::-1]))
        rows.append((png.name, mpp))
    manifest["cytology"] = [name for name, _ in rows]
    for col in ("us_1", "us_2", "us_1_mask", "us_2_mask"):
        if col in manifest.columns:
            manifest[col] = [str(root / p) if isinstance(p, str) else None for p in manifest[col]]
    manifest.to_csv(tmp_path / "png.csv", index=False)
    pd.DataFrame(rows, columns=["slide", "mpp"]).to_csv(tmp_path / "mpp.csv", index=False)
    cfg = tiny(tmp_path / "cache")
    cfg.model.models = ["cytology"]
    with pytest.raises(Exception, match="physical resolution"):
        train_run(tmp_path / "png.csv", tmp_path / "no_table", cfg)
    assert not (tmp_path / "no_table").exists()  # nothing half-written
    result = train_run(tmp_path / "png.csv", tmp_path / "with_table", cfg, mpp_table=tmp_path / "mpp.csv")
    assert result.predictions["prob"].between(0, 1).all() and len(result.predictions) == 36
