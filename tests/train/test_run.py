"""Whole runs on a small synthetic cohort: the run folder, the three stages against one go,
options checked before anything is written, caching, resume, finetune, DDP on fp32 and bf16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from radiopath.cli import app
from radiopath.errors import ConfigError, OutputExistsError
from radiopath.run_config import RunConfig
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("run_cohort") / "c",
        SynthConfig(patients=36, seed=11, slide_um=400, workers=2),
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_run_folder_contract_and_feature_cache(cohort: SynthResult, cache: Path, tmp_path: Path) -> None:
    result = train_run(cohort.manifest, tmp_path / "run", tiny(cache))
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "provenance.json",
        "cohort.parquet",
        "folds.csv",
        "preprocessing.json",
        "inputs.json",
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
    saved = RunConfig.from_yaml(run / "config.yaml")
    assert saved == tiny(cache).resolved() and saved.protocol.primary_model == "fusion_concat"
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
    other.model.models = ["ultrasound"]
    other.train.epochs = 9
    with pytest.raises(ConfigError, match=r"train\.epochs: 8 -> 9") as info:
        train_run(cohort.manifest, tmp_path / "run", other, resume=True)
    assert str(info.value).count("->") == 1  # only the option the user changed is named
    with pytest.raises(ConfigError, match="no run to resume"):
        train_run(cohort.manifest, tmp_path / "never-made", cfg, resume=True)
    assert not (tmp_path / "never-made").exists()
    again = train_run(cohort.manifest, tmp_path / "run", other, overwrite=True)
    assert RunConfig.from_yaml(tmp_path / "run" / "config.yaml").train.epochs == 9 and len(again.predictions)


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
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_process_ddp_matches_one_process(
    cohort: SynthResult, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, precision: str
) -> None:
    """torchrun with 2 CPU processes (gloo) vs one process: same predictions within 1e-4.

    Dropout and modality dropout are off (their random masks depend on how a batch is split);
    each global batch is split across ranks and the loss rescaled so gradients are identical.
    Regression (bf16 CPUs differed by 0.0025): features must not depend on batch composition
    and the heads run in fp32 — so bf16 is forced here, natively or emulated, on every CPU.
    Each run starts from its own empty cache: the ranks really split the extraction.
    """
    cfg = tiny(tmp_path_factory.mktemp(f"ddp_cache_{precision}"))
    cfg.model.models = ["fusion_concat"]
    cfg.train.precision = precision  # type: ignore[assignment]
    cfg.to_yaml(tmp_path / "cfg.yaml")
    single_cfg = cfg.model_copy(deep=True)
    single_cfg.cache_dir = str(tmp_path / "single_cache")
    single = train_run(cohort.manifest, tmp_path / "one", single_cfg)
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


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def test_three_stages_give_the_predictions_of_one_go(
    cohort: SynthResult, cache: Path, tmp_path: Path
) -> None:
    """tile → extract → train --features, and train alone, with one --config: identical predictions."""
    cfg = tiny(cache, augment_passes=2)  # the default: extract caches passes that train draws from
    cfg.model.models = ["cytology", "fusion_concat"]
    cfg.cache_dir = str(tmp_path / "stage_cache")  # nothing cached: each way does its own work
    cfg.to_yaml(tmp_path / "cfg.yaml")
    m, c = cohort.manifest, tmp_path / "cfg.yaml"
    _cli("tile", m, "--out", tmp_path / "tiles", "--config", c)
    assert pd.read_parquet(tmp_path / "tiles" / "tiles.parquet").groupby("patient_id").size().max() == 4
    _cli("extract", m, "--out", tmp_path / "feats", "--tiles", tmp_path / "tiles", "--config", c)
    for name in (
        "features.json",
        "preprocessing.json",
        "index.parquet",
        "us.safetensors",
        "cytology.safetensors",
    ):
        assert (tmp_path / "feats" / name).exists(), name
    _cli("train", m, "--out", tmp_path / "staged", "--features", tmp_path / "feats", "--config", c)
    other = tmp_path / "cfg2.yaml"
    cfg.cache_dir = str(tmp_path / "one_go_cache")
    cfg.to_yaml(other)
    _cli("train", m, "--out", tmp_path / "one_go", "--config", other)
    staged = pd.read_parquet(tmp_path / "staged" / "predictions.parquet")
    one_go = pd.read_parquet(tmp_path / "one_go" / "predictions.parquet")
    pd.testing.assert_frame_equal(staged, one_go, check_exact=True)
    assert json.loads((tmp_path / "staged" / "preprocessing.json").read_text()) == json.loads(
        (tmp_path / "one_go" / "preprocessing.json").read_text()
    )
    # a features folder made with other options is refused before anything is written
    cfg.ultrasound.size = 48
    cfg.to_yaml(tmp_path / "cfg3.yaml")
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(m),
            "--out",
            str(tmp_path / "bad"),
            "--features",
            str(tmp_path / "feats"),
            "--config",
            str(tmp_path / "cfg3.yaml"),
        ],
    )
    assert result.exit_code == 2 and "ultrasound.size: 32 -> 48" in result.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backbone", "resnet99"], "unknown backbone 'resnet99'"),
        (["--weights", "imagnet"], "weights must be 'none', 'imagenet' or a path"),
        (["--weights", "missing.safetensors"], "weights file missing.safetensors not found"),
        (["--models", "ultrasound,fusion_cat"], "unknown model 'fusion_cat'"),
        (["--primary", "cytology", "--models", "ultrasound"], "primary_model 'cytology' is not among"),
        (["--folds", "40"], "40-fold cross-validation needs at least 40"),
        (["--device", "gpu"], "device must be auto, cpu, cuda"),
    ],
)
def test_bad_options_fail_before_anything_is_written(
    cohort: SynthResult, cache: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    tiny(cache).to_yaml(tmp_path / "cfg.yaml")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["train", str(cohort.manifest), "--out", str(out), "--config", str(tmp_path / "cfg.yaml"), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " "), result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_bad_yaml_key_fails_before_anything_is_written(cohort: SynthResult, tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("model:\n  backbon: resnet18\n")
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(cohort.manifest),
            "--out",
            str(tmp_path / "run"),
            "--config",
            str(tmp_path / "cfg.yaml"),
        ],
    )
    assert result.exit_code == 2 and "model.backbon" in result.output and not (tmp_path / "run").exists()


def test_a_flag_left_out_never_overrides_the_yaml(tmp_path: Path) -> None:
    """Regression: `synth --config c.yaml` replaced the file's patients and seed by the flag defaults."""
    from radiopath.config import merge_options
    from radiopath.synth import SynthConfig

    (tmp_path / "c.yaml").write_text("patients: 42\nseed: 5\n")
    cfg = merge_options(SynthConfig, tmp_path / "c.yaml", {"patients": None, "seed": None, "us_signal": 0.5})
    assert (cfg.patients, cfg.seed, cfg.us_signal) == (42, 5, 0.5)
    cfg = merge_options(SynthConfig, tmp_path / "c.yaml", {"patients": 7})
    assert (cfg.patients, cfg.seed) == (7, 5)
