"""Whole runs on a small synthetic cohort: the run folder, caching, resume, finetune, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from radiopath.errors import ConfigError, OutputExistsError
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.config import RunConfig
from radiopath.train.run import train_run


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("run_cohort") / "c",
        SynthConfig(patients=36, seed=11, slide_um=400, workers=2),
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def tiny(cache: Path, **train: object) -> RunConfig:
    """A run that takes seconds: ResNet-18 on 32-px inputs, 4 tiles, 3 folds, two models."""
    cfg = RunConfig()
    cfg.model.backbone = "resnet18"
    cfg.model.weights = "none"
    cfg.model.models = ["ultrasound", "cytology", "fusion_concat"]
    cfg.model.head.dropout = 0.0
    cfg.model.head.modality_dropout = 0.0
    cfg.ultrasound.size = 32
    cfg.cytology.input_size = 32
    cfg.cytology.tiling.top_k = 4
    cfg.protocol.n_folds = 3
    cfg.train.epochs = 8
    cfg.train.min_epochs = 8
    cfg.cache_dir = str(cache)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_run_folder_contract_and_feature_cache(cohort: SynthResult, cache: Path, tmp_path: Path) -> None:
    result = train_run(cohort.manifest, tmp_path / "run", tiny(cache))
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "provenance.json",
        "cohort.parquet",
        "folds.csv",
        "preprocessing.json",
        "predictions.parquet",
        "thresholds.json",
        "ultrasound_flags.csv",
    ):
        assert (run / name).exists(), name
    pred = pd.read_parquet(run / "predictions.parquet")
    assert list(pred.columns) == [
        "patient_id",
        "center",
        "cohort",
        "model",
        "fold",
        "prob",
        "label",
        "threshold",
        "modalities",
        "missing_modality",
    ]
    assert set(pred["model"]) == {"ultrasound", "cytology", "fusion_concat"}
    dev = pred[(pred["cohort"] == "development") & (pred["model"] == "fusion_concat")]
    ext = pred[(pred["cohort"] == "external") & (pred["model"] == "fusion_concat")]
    assert len(dev) == 22 and set(dev["fold"]) == {0, 1, 2} and len(ext) == 14 and set(ext["fold"]) == {-1}
    assert RunConfig.from_yaml(run / "config.yaml") == tiny(cache)
    ckpts = sorted((run / "checkpoints" / "fusion_concat").glob("fold*/best.safetensors"))
    assert len(ckpts) == 3
    assert list((run / "logs" / "fusion_concat" / "fold0").glob("events.out.tfevents.*"))
    prov = yaml.safe_load((run / "provenance.json").read_text())
    assert prov["seed"] == 0 and len(prov["data_hashes"]["manifest_sha256"]) == 64
    assert prov["feature_cache"]["us_computed"] == 72  # first run: every view computed
    # a second run with another model reuses every cached feature and gives the same predictions
    cfg = tiny(cache)
    cfg.model.models = ["fusion_concat"]
    again = train_run(cohort.manifest, tmp_path / "run2", cfg)
    prov2 = yaml.safe_load((tmp_path / "run2" / "provenance.json").read_text())
    assert prov2["feature_cache"]["us_computed"] == 0 and prov2["feature_cache"]["cytology_computed"] == 0
    a = result.predictions[result.predictions["model"] == "fusion_concat"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, again.predictions)


def test_an_existing_run_is_never_overwritten(cohort: SynthResult, cache: Path, tmp_path: Path) -> None:
    cfg = tiny(cache)
    cfg.model.models = ["ultrasound"]
    train_run(cohort.manifest, tmp_path / "run", cfg)
    with pytest.raises(OutputExistsError, match="--resume"):
        train_run(cohort.manifest, tmp_path / "run", cfg)
    other = tiny(cache)
    other.train.epochs = 9
    with pytest.raises(ConfigError, match=r"train\.epochs: 8 -> 9"):
        train_run(cohort.manifest, tmp_path / "run", other, resume=True)


def test_resume_after_a_kill_gives_the_uninterrupted_predictions(
    cohort: SynthResult, cache: Path, tmp_path: Path
) -> None:
    cfg = tiny(cache)
    full = train_run(cohort.manifest, tmp_path / "full", cfg)

    class Killed(Exception):
        pass

    def die(msg: str) -> None:
        if msg.startswith("cytology fold 2/3"):
            raise Killed

    with pytest.raises(Killed):
        train_run(cohort.manifest, tmp_path / "killed", cfg, say=die)
    assert (tmp_path / "killed" / "checkpoints" / "ultrasound" / "predictions.parquet").exists()
    assert not (tmp_path / "killed" / "predictions.parquet").exists()
    said: list[str] = []
    resumed = train_run(cohort.manifest, tmp_path / "killed", resume=True, say=said.append)
    assert "ultrasound: done earlier, predictions read back" in said
    pd.testing.assert_frame_equal(full.predictions, resumed.predictions, check_exact=False, atol=1e-6)


def test_finetune_mode_trains_backbones_end_to_end(cohort: SynthResult, cache: Path, tmp_path: Path) -> None:
    cfg = tiny(cache, mode="finetune", epochs=2, min_epochs=2, batch_size=8)
    cfg.model.models = ["fusion_gated"]
    cfg.cytology.tiling.top_k = 2
    result = train_run(cohort.manifest, tmp_path / "ft", cfg)
    pred = result.predictions
    assert len(pred) == 36 and pred["prob"].between(0, 1).all() and pred["prob"].std() > 0
    from safetensors.torch import load_file

    best = load_file(str(tmp_path / "ft" / "checkpoints" / "fusion_gated" / "fold0" / "best.safetensors"))
    assert any(k.startswith("backbones.us.body.layer4") for k in best)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(cohort: SynthResult, cache: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo) vs one process: same predictions within 1e-4.

    Dropout and modality dropout are off (their random masks depend on how a batch is split);
    each global batch is split across ranks and the loss rescaled so gradients are identical.
    """
    cfg = tiny(cache)
    cfg.model.models = ["fusion_concat"]
    cfg.to_yaml(tmp_path / "cfg.yaml")
    single = train_run(cohort.manifest, tmp_path / "one", cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "radiopath",
        "train",
        str(cohort.manifest),
        "--out",
        str(tmp_path / "two"),
        "--config",
        str(tmp_path / "cfg.yaml"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    prov = yaml.safe_load((tmp_path / "two" / "provenance.json").read_text())
    assert prov["processes"] == 2
    two = pd.read_parquet(tmp_path / "two" / "predictions.parquet")
    assert (two["patient_id"].to_numpy() == single.predictions["patient_id"].to_numpy()).all()
    diff = np.abs(two["prob"].to_numpy() - single.predictions["prob"].to_numpy()).max()
    assert diff < 1e-4, diff
