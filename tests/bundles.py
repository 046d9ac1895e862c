"""A small deployable study for the serve tests: cohort, trained run, evaluation, bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from radiopath.evaluate import evaluate_run
from radiopath.run_config import RunConfig
from radiopath.serve import export_bundle
from radiopath.synth import SynthConfig, SynthResult, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny


@dataclass
class Study:
    cohort: SynthResult
    run: Path
    bundle: Path
    cache: Path


def build_study(root: Path) -> Study:
    """30 synthetic patients, the tiny run (ultrasound and fusion_concat) on the default feature set
    (hybrid: the bundle computes the handcrafted features too), evaluated, exported with ONNX."""
    cohort = synthesize(root / "cohort", SynthConfig(patients=30, seed=11, slide_um=360, workers=2))
    cfg = tiny(root / "cache")
    cfg.model.models = ["ultrasound", "fusion_concat"]
    cfg.model.feature_set = RunConfig().model.feature_set
    train_run(cohort.manifest, root / "run", cfg)
    evaluate_run(root / "run", n_boot=20)
    export_bundle(root / "run", root / "bundle", onnx=True)
    return Study(cohort, root / "run", root / "bundle", root / "predict-cache")


def new_patients(study: Study, folder: Path, n: int | None = None, cohort: str = "external") -> pd.DataFrame:
    """Rows of the study's manifest as new patients: absolute paths, no lnm or cohort column."""
    manifest = pd.read_csv(study.cohort.manifest)
    rows = manifest[manifest["cohort"] == cohort]
    rows = (rows.head(n) if n else rows).drop(columns=["lnm", "cohort"]).reset_index(drop=True)
    base = study.cohort.manifest.parent
    for col in ("us_1", "us_2", "us_1_mask", "us_2_mask", "cytology"):
        if col in rows.columns:
            rows[col] = [str(base / p) if isinstance(p, str) else None for p in rows[col]]
    folder.mkdir(parents=True, exist_ok=True)
    return rows
