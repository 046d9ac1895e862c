"""SIGKILL at points of tile, extract and train: the rerun (or --resume) ends with exactly what
an uninterrupted run gives, and no half-written file is ever trusted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiopath.features import FeatureSet
from radiopath.run_config import RunConfig
from radiopath.stages import extract_cohort
from radiopath.synth import SynthConfig, SynthResult, synthesize
from runconfigs import tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("kill") / "c", SynthConfig(patients=30, seed=13, slide_um=400, workers=2)
    )


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "radiopath", *map(str, args)]


def _run(*args: object) -> None:
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 600) -> bool:
    """Start ``args``; SIGKILL it as soon as ``ready()``; True if it was killed mid-way."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            if proc.poll() is not None:
                return False  # finished before the kill point
            time.sleep(0.05)
        raise AssertionError("kill point never reached")
    finally:
        if proc.poll() is None:
            proc.kill()


def _no_partials(root: Path) -> None:
    assert not [p for p in root.rglob("*.partial*")], "a half-written file survived the rerun"


def test_kill_during_tiling_then_rerun(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    tiny(tmp_path / "cache").to_yaml(cfg)
    _run("tile", cohort.manifest, "--out", tmp_path / "ref", "--config", cfg)
    out = tmp_path / "killed"
    killed = _kill_when(
        _cli("tile", cohort.manifest, "--out", out, "--config", cfg),
        lambda: len(list(out.glob("slides/*/summary.json"))) >= 5,
    )
    assert killed and not (out / "tiles.parquet").exists()
    _run("tile", cohort.manifest, "--out", out, "--config", cfg)
    cols = ["patient_id", "rank", "x", "y", "level", "size", "score"]
    ref = pd.read_parquet(tmp_path / "ref" / "tiles.parquet")[cols]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tiles.parquet")[cols], ref)
    _no_partials(out)


def test_kill_during_extraction_then_rerun(cohort: SynthResult, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    tiny(tmp_path / "ref_cache").to_yaml(cfg)
    extract_cohort(cohort.manifest, tmp_path / "ref", RunConfig.from_yaml(cfg))  # the uninterrupted reference
    cache = tmp_path / "cache"
    out = tmp_path / "feats"
    killed = _kill_when(
        _cli("extract", cohort.manifest, "--out", out, "--config", cfg, "--cache-dir", cache),
        lambda: any((cache / "features").rglob("*.safetensors")) if (cache / "features").exists() else False,
    )
    assert killed and not (out / "features.json").exists()
    _run("extract", cohort.manifest, "--out", out, "--config", cfg, "--cache-dir", cache)
    table = pd.read_csv(cohort.manifest)
    a, b = FeatureSet.load(out).inputs(table), FeatureSet.load(tmp_path / "ref").inputs(table)
    for key in ("us", "cytology"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    # a temporary file the killed writer left in the shared cache is never read (entries are
    # renamed into place whole); results are identical above
    _no_partials(out)


def test_kill_during_training_then_resume(cohort: SynthResult, tmp_path: Path) -> None:
    """Killed inside a fold of the second model: the first finished, this one is mid-way."""
    cfg = tiny(tmp_path / "cache")
    cfg.model.models = ["ultrasound", "fusion_concat"]
    cfg.protocol.n_folds = 2
    cfg.train.epochs = cfg.train.min_epochs = 20
    cfg.to_yaml(tmp_path / "cfg.yaml")
    root, ref = tmp_path, tmp_path / "ref"
    _run("train", cohort.manifest, "--out", ref, "--config", root / "cfg.yaml")
    point = "checkpoints/fusion_concat/fold1/checkpoint.safetensors"
    run = root / "killed"
    killed = _kill_when(
        _cli("train", cohort.manifest, "--out", run, "--config", root / "cfg.yaml"),
        lambda: (run / point).exists(),
    )
    assert killed and not (run / "predictions.parquet").exists()
    _run("train", cohort.manifest, "--out", run, "--resume")
    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "predictions.parquet"),
        pd.read_parquet(ref / "predictions.parquet"),
        check_exact=False,
        atol=1e-6,
    )
    _no_partials(run)
