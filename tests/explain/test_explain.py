"""``radiopath explain`` on finished runs (features and finetune mode): the maps explain the
model that made each prediction, the folder and summary hold what the report reads, errors
are clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.cohort import Cohort
from radiopath.errors import ConfigError
from radiopath.explain import choose_patients, default_models, explain_run
from radiopath.report import write_report
from radiopath.runs import load_run
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("explain_cohort") / "c",
        SynthConfig(patients=36, seed=11, slide_um=400, workers=2),
    )


@pytest.fixture(scope="module")
def run(cohort: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny(tmp_path_factory.mktemp("explain_cache"))
    cfg.cytology.input_size = 64  # layer2 of ResNet-18 then gives an 8x8 map per tile
    out = tmp_path_factory.mktemp("explain_run") / "run"
    train_run(cohort.manifest, out, cfg)
    return out


@pytest.fixture(scope="module")
def explained(run: Path) -> dict:
    return explain_run(run, n=4, target_layer="body.layer2", n_boot=200).summary


def test_the_maps_explain_the_predictions_of_the_run(run: Path, explained: dict) -> None:
    folder = run / "explain"
    patients = pd.read_csv(folder / "patients.csv", dtype={"patient_id": str})
    pred = load_run(run).predictions
    both = patients.merge(pred, on=["patient_id", "model"], suffixes=("", "_run"))
    assert len(both) == len(patients) == 4 * 3  # three models, each patient once
    # development patients by their out-of-fold model, external ones by the fold ensemble
    np.testing.assert_allclose(both["prob"], both["prob_run"], rtol=0, atol=1e-6)
    assert (both["fold"] == both["fold_run"]).all() and set(both["cohort"]) <= {"development", "external"}
    assert set(both["explained_class"]) <= {"LNM", "no LNM"}
    assert ((both["decision"] == 1) == (both["explained_class"] == "LNM")).all()
    # a TP, FN, TN and FP of the primary model each, where the run has them
    primary = both[both["model"] == "fusion_concat"]
    cells = set(zip(primary["label"].astype(int), primary["decision"], strict=True))
    assert len(cells) >= 3


def test_summary_holds_every_check_per_model(run: Path, explained: dict) -> None:
    summary = json.loads((run / "explain" / "summary.json").read_text())
    assert summary == json.loads(json.dumps(explained))
    assert summary["target_layers"] == {"us": "body.layer2", "cytology": "body.layer2"}
    assert summary["cam_grid"] == {"us": [4, 4], "cytology": [8, 8]}
    models = summary["models"]
    assert list(models) == ["fusion_concat", "ultrasound", "cytology"] == default_models(load_run(run))
    assert models["ultrasound"]["nuclear_enrichment"] is None
    assert models["ultrasound"]["nuclear_enrichment_randomized"] is None
    for name in ("fusion_concat", "cytology"):
        block = models[name]
        for key in ("nuclear_enrichment", "nuclear_enrichment_randomized"):
            e = block[key]
            assert set(e) == {"mean", "ci_low", "ci_high", "n"} and 0 < e["mean"] < 10 and e["n"] >= 1
        tiles = block["deletion"]["tiles"]
        # compared over the steps every explained bag has (top_k = 4; a slide may give fewer)
        assert tiles["n_patients"] == 4 and 2 <= tiles["steps"] <= 4
        for order in ("cam", "attention", "random"):
            curve = tiles[f"curve_{order}"]
            assert len(curve) == tiles["steps"] and all(0 <= v <= 1 for v in curve)
        assert tiles["curve_cam"][0] == tiles["curve_random"][0]  # same bag before removing
    us = models["ultrasound"]["deletion"]["ultrasound"]
    assert us["fractions"] == [0.1, 0.25, 0.5] and us["steps"] == 4
    contrib = models["fusion_concat"]["modality_contribution"]
    assert set(contrib) >= {"all", "development", "external"}
    assert contrib["all"]["us"]["abs_delta"]["n"] == 36  # every patient, from the cached features
    share = contrib["all"]["us"]["share"]["mean"] + contrib["all"]["cytology"]["share"]["mean"]
    assert share == pytest.approx(1.0, abs=1e-3)
    assert models["cytology"]["modality_contribution"] is None


def test_tiles_pictures_and_gallery(run: Path, explained: dict) -> None:
    folder = run / "explain"
    tiles = pd.read_csv(folder / "tiles.csv", dtype={"patient_id": str})
    assert set(tiles["model"]) == {"fusion_concat", "cytology"}
    per = tiles.groupby(["model", "patient_id"])["attention"].sum()
    np.testing.assert_allclose(per, 1.0, atol=1e-5)  # attention over a patient's tiles
    assert (tiles["cam_mass"] >= 0).all() and tiles["nuclei"].gt(0).mean() > 0.5
    gallery = json.loads((folder / "gallery.json").read_text())
    assert len(gallery) == 4 and {g["model"] for g in gallery} == {"fusion_concat"}
    for g in gallery:
        with Image.open(run / g["image"]) as im:
            assert im.size[0] > 900 and im.format == "JPEG"
    assert len(list((folder / "slides" / "cytology").glob("*_cam.png"))) == 4
    assert (folder / "enrichment.png").is_file() and (folder / "deletion.png").is_file()
    html = write_report(run, n_boot=100).read_text()
    assert "12. Explanations: Grad-CAM" in html and "randomised twin" in html and "Adebayo" in html
    assert html.count('alt="Grad-CAM fusion_concat') == 4 and "Gallery" in html


def test_patient_choice_is_seeded_and_covers_the_outcomes(run: Path, cohort: SynthResult) -> None:
    from radiopath.cohort import Cohort

    table = Cohort.from_manifest(cohort.manifest).table
    r = load_run(run)
    a, b = choose_patients(r, table, 8, seed=0), choose_patients(r, table, 8, seed=0)
    assert a == b and len(set(a)) == 8 and choose_patients(r, table, 8, seed=1) != a


def test_bad_options_are_clean_errors(run: Path, explained: dict) -> None:
    with pytest.raises(ConfigError, match="no such model"):
        explain_run(run, models=["fusion_gated"])
    with pytest.raises(ConfigError, match="not in the run's cohort"):
        explain_run(run, patients=["nobody"])
    result = CliRunner().invoke(app, ["explain", str(run), "--target-layer", "body.layer9", "--n", "1"])
    assert result.exit_code == 2 and "body.layer3" in result.output and "Traceback" not in result.output
    assert (run / "explain" / "summary.json").is_file()  # the earlier folder is left as it was


def test_finetune_runs_are_explained_fold_by_fold(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "cache")
    cfg.train.mode = "finetune"
    cfg.train.epochs = cfg.train.min_epochs = 1
    cfg.protocol.n_folds = 2
    cfg.model.models = ["fusion_concat"]
    train_run(cohort.manifest, tmp_path / "run", cfg)
    summary = explain_run(tmp_path / "run", n=2, pictures=False, n_boot=100).summary
    assert summary["mode"] == "finetune" and summary["cam_grid"]["cytology"] == [1, 1]
    patients = pd.read_csv(tmp_path / "run" / "explain" / "patients.csv", dtype={"patient_id": str})
    pred = load_run(tmp_path / "run").predictions
    both = patients.merge(pred, on=["patient_id", "model"], suffixes=("", "_run"))
    # the fold backbones see each patient's images in other batches than in training
    np.testing.assert_allclose(both["prob"], both["prob_run"], rtol=0, atol=1e-4)
    block = summary["models"]["fusion_concat"]
    assert block["nuclear_enrichment_randomized"]["n"] >= 1 and block["deletion"]["tiles"]["n_patients"] == 2


def test_a_hybrid_harmonised_run_is_explained_through_the_input_it_scored(
    cohort: SynthResult, tmp_path: Path
) -> None:
    """Hybrid features (deep + handcrafted side by side) after per-center standardisation: the
    explained forward is the run's scored input, so every probability is the run's own, and the
    maps come from the deep block with the handcrafted block held at its values."""
    cfg = tiny(tmp_path / "cache")
    cfg.model.feature_set = "hybrid"
    cfg.model.models = ["cytology", "fusion_concat"]
    cfg.harmonization.method = "standardize"
    cfg.harmonization.min_patients = 3
    train_run(cohort.manifest, tmp_path / "run", cfg)
    r = load_run(tmp_path / "run")
    assert any(rec["adjusted"] for rec in r.harmonization.record)  # some center really was moved
    summary = explain_run(tmp_path / "run", n=4, gallery=1, n_boot=100).summary
    patients = pd.read_csv(tmp_path / "run" / "explain" / "patients.csv", dtype={"patient_id": str})
    both = patients.merge(r.predictions, on=["patient_id", "model"], suffixes=("", "_run"))
    assert len(both) == 4 * 2  # the checks cover every explained patient, the pictures one
    assert len(json.loads((tmp_path / "run" / "explain" / "gallery.json").read_text())) == 1
    assert len(list((tmp_path / "run" / "explain" / "panels").rglob("*.jpg"))) == 2  # both models
    assert "hybrid" in summary["feature_sets"]["cytology"]
    np.testing.assert_allclose(both["prob"], both["prob_run"], rtol=0, atol=1e-6)
    tiles = pd.read_csv(tmp_path / "run" / "explain" / "tiles.csv", dtype={"patient_id": str})
    assert np.isfinite(tiles["cam_mass"]).all() and (tiles["cam_mass"] > 0).any()
    block = summary["models"]["fusion_concat"]
    assert block["nuclear_enrichment"]["n"] >= 1 and block["deletion"]["tiles"]["n_patients"] >= 1
    # the trained model's deletion curves start from its own probability
    primary = both[both["model"] == "fusion_concat"]
    assert np.isfinite(primary["deletion_tiles_cam_drop"]).all()
    # how much of each modality's evidence is the backbone's block and how much the handcrafted one
    fams = block["feature_family_contribution"]["cytology"]["all"]
    deep, nuclear = fams["cytology:deep"], fams["cytology:pathomics"]
    assert set(fams) == {"cytology:deep", "cytology:pathomics"}
    assert deep["abs_delta"]["mean"] > 0 and nuclear["abs_delta"]["mean"] > 0
    assert deep["share"]["mean"] + nuclear["share"]["mean"] == pytest.approx(1)
    rows = pd.read_csv(tmp_path / "run" / "explain" / "blocks.csv", dtype={"patient_id": str})
    cyto = rows[rows["model"] == "cytology"]
    assert len(cyto) == cyto["patient_id"].nunique() > 4  # the whole cohort, each patient once
    # a block "at its training mean" is exactly that: missing maps to the fold's mean
    head = r.fold_models("cytology")[0]
    inputs = r.inputs(Cohort.from_manifest(cohort.manifest).table)
    b = inputs.batch(np.flatnonzero(inputs.present("cytology"))[:3], ["cytology"], torch.device("cpu"))
    (_, a, z) = next(blk for blk in r.info.blocks["cytology"] if blk[0] == "pathomics")
    std = head.standardize["cytology"]
    part = next(p for span, p in zip(std.spans, std.parts, strict=True) if span == (a, z))
    at_mean, missing = b["cytology"].clone(), b["cytology"].clone()
    at_mean[..., a:z], missing[..., a:z] = part.mean, float("nan")
    with torch.no_grad():
        want, got = head({**b, "cytology": at_mean}), head({**b, "cytology": missing})
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_run_without_deep_features_is_refused_with_the_reason(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "cache")
    cfg.model.feature_set = "handcrafted"
    cfg.model.models = ["cytology"]
    train_run(cohort.manifest, tmp_path / "run", cfg)
    with pytest.raises(ConfigError, match="handcrafted"):
        explain_run(tmp_path / "run", n=2, pictures=False)
