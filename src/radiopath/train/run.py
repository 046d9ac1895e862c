"""A study run: manifest in, run folder out (DESIGN.md's contract).

``RUN/`` holds::

    config.yaml            the fully resolved RunConfig (written first)
    provenance.json        versions, seed, compute plan, data hashes, timings
    cohort.parquet         the validated cohort (ids, centers, cohorts, labels, modalities)
    folds.csv              the patient-level folds (external / unlabelled = -1)
    preprocessing.json     the fitted ultrasound transform and stain target (for the bundle)
    ultrasound_flags.csv   views the ultrasound transform flagged (no scan area, …)
    checkpoints/<model>/fold<k>/   last/best weights, optimizer, loop state (safetensors)
    checkpoints/<model>/predictions.parquet   that model's predictions, when it is done
    predictions.parquet    every model's predictions: the hub for metrics and reports
    thresholds.json        the frozen threshold of each model
    logs/                  TensorBoard event files (and MLflow, when installed)

``resume=True`` continues a killed run: finished models are read back, the model in
progress continues from its last epoch checkpoint, and the final predictions are identical
to an uninterrupted run's (every epoch is seeded on its own).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from radiopath.cohort import Cohort
from radiopath.cohort.schema import BOX_COLUMNS, PATH_COLUMNS
from radiopath.errors import ConfigError, OutputExistsError
from radiopath.io.atomic import atomic_path, write_text
from radiopath.models.backbones import Backbone, create_backbone
from radiopath.models.model import ModelSpec, RadiopathModel
from radiopath.slides.stain import HEDAugmenter
from radiopath.train import distributed as dist
from radiopath.train.config import RunConfig
from radiopath.train.device import ComputePlan, plan
from radiopath.train.features import default_cache_dir, file_digest
from radiopath.train.inputs import PreparedInputs, prepare_inputs
from radiopath.train.loop import Augment
from radiopath.train.protocol import PREDICTION_COLUMNS, run_model
from radiopath.ultrasound import UltrasoundTransform

Say = Callable[[str], None]
FeatureProgress = Callable[[str, int, int], None]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    predictions: pd.DataFrame
    thresholds: dict[str, float]
    seconds: float


def train_run(
    manifest: str | Path,
    out: str | Path,
    config: RunConfig | None = None,
    resume: bool = False,
    say: Say | None = None,
    feature_progress: FeatureProgress | None = None,
) -> RunResult:
    """Run the whole protocol for every model of ``config`` and write the run folder.

    Raises:
        OutputExistsError: ``out`` already holds a run and ``resume`` is False.
        ConfigError: ``resume`` with a config that differs from the saved one.
        ManifestError: the manifest has errors (every one is listed).
    """
    start = time.perf_counter()
    say = say or (lambda _m: None)
    run_dir = Path(out)
    cfg = _resolve_config(run_dir, config, resume)
    compute = plan(cfg.train.device, cfg.train.precision, cfg.train.channels_last)
    dist.init(compute.device.type)
    if compute.device.type == "cuda" and dist.is_active():
        compute = ComputePlan(
            torch.device("cuda", torch.cuda.current_device()), compute.amp_dtype, compute.channels_last
        )
    cohort = Cohort.from_manifest(manifest)
    for w in cohort.warnings:
        say(f"warning: {w}")
    with dist.main_first():
        if dist.is_main():
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_yaml(run_dir / "config.yaml")
            _write_table(run_dir / "cohort.parquet", _cohort_record(cohort))
    say(f"compute: {compute.describe()}; {dist.world_size()} process(es)")
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    prepared = prepare_inputs(cohort, cfg, compute, cache_root, say, feature_progress)
    folds = cohort.folds(cfg.protocol.n_folds, cfg.protocol.seed).to_numpy()
    if dist.is_main():
        _write_table(
            run_dir / "folds.csv", pd.DataFrame({"patient_id": cohort.table["patient_id"], "fold": folds})
        )
        _write_preprocessing(run_dir, prepared)
    outcomes = []
    in_dims = prepared.inputs.in_dims()
    logger = _Logger(run_dir / "logs", cfg) if dist.is_main() else None
    for spec in cfg.model.specs():
        done = run_dir / "checkpoints" / spec.name / "predictions.parquet"
        if resume and done.exists():
            outcomes.append(pd.read_parquet(done))
            say(f"{spec.name}: done earlier, predictions read back")
            continue
        outcome = run_model(
            spec,
            _factory(cfg, in_dims, compute),
            prepared.inputs,
            folds,
            cfg.train,
            cfg.protocol,
            compute,
            run_dir,
            augment=_finetune_augment(cfg) if cfg.train.mode == "finetune" else None,
            progress=say,
        )
        if logger is not None:
            logger.model_done(spec, outcome.predictions, run_dir)
        if dist.is_main():
            _write_table(done, outcome.predictions)
        outcomes.append(outcome.predictions)
    predictions = pd.concat(outcomes, ignore_index=True)[PREDICTION_COLUMNS]
    thresholds = {
        m: float(t) for m, t in predictions.groupby("model", sort=False)["threshold"].first().items()
    }
    seconds = time.perf_counter() - start
    if dist.is_main():
        _write_table(run_dir / "predictions.parquet", predictions)
        write_text(run_dir / "thresholds.json", json.dumps(thresholds, indent=2))
        _write_provenance(run_dir, manifest, cohort, cfg, compute, prepared, seconds)
    dist.barrier()
    return RunResult(run_dir, predictions, thresholds, seconds)


def _factory(
    cfg: RunConfig, in_dims: dict[str, int], compute: ComputePlan
) -> Callable[[ModelSpec], RadiopathModel]:
    """Heads on cached features, or (finetune) heads plus fresh backbones for every fold."""
    head = cfg.model.head
    if cfg.train.mode == "features":
        return lambda spec: RadiopathModel(spec, head, in_dims)

    def make(spec: ModelSpec) -> RadiopathModel:
        backbones: dict[str, Backbone] = {}
        for m in spec.modalities:
            if m == "clinical":
                continue
            if cfg.model.shared_backbone and backbones:
                backbones[m] = next(iter(backbones.values()))
                continue
            name = cfg.model.backbone if m == "us" else (cfg.model.cytology_backbone or cfg.model.backbone)
            bb = create_backbone(name, cfg.model.weights)
            backbones[m] = bb.to(memory_format=torch.channels_last) if compute.channels_last else bb
        dims = {**in_dims, **{m: b.num_features for m, b in backbones.items()}}
        return RadiopathModel(spec, head, dims, backbones)

    return make


def _finetune_augment(cfg: RunConfig) -> Augment:
    """Training augmentation of images: the ultrasound transform's own augmentation per view,
    HED stain jitter plus flips and 90° rotations per tile (cytology has no orientation)."""
    tf = UltrasoundTransform(cfg.ultrasound)
    hed = HEDAugmenter()

    def augment(batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        for m in ("us", "cytology"):
            if m not in batch or batch[m].dtype != torch.uint8:
                continue
            arr = batch[m].numpy().copy()
            present = batch[f"{m}_mask"].numpy()
            for i, j in zip(*np.nonzero(present), strict=True):
                if m == "us":
                    arr[i, j] = tf.augment(arr[i, j], rng)
                else:
                    tile = np.rot90(hed(arr[i, j], rng), int(rng.integers(4)))
                    arr[i, j] = tile[:, ::-1] if rng.random() < 0.5 else tile
            batch[m] = torch.from_numpy(arr)
        return batch

    return augment


def _resolve_config(run_dir: Path, config: RunConfig | None, resume: bool) -> RunConfig:
    saved = run_dir / "config.yaml"
    if saved.exists():
        if not resume:
            raise OutputExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
            )
        previous = RunConfig.from_yaml(saved)
        if config is not None and config.model_dump() != previous.model_dump():
            diff = _diff(previous.model_dump(), config.model_dump())
            raise ConfigError(
                f"--resume with options that differ from {saved}: {', '.join(diff[:6])}; "
                "resume with the saved options (omit --config) or start a new run folder"
            )
        return previous
    if resume and run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} has no config.yaml, so there is no run to resume; start a new run")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise OutputExistsError(f"{run_dir} exists and is not empty; choose another --out")
    return config or RunConfig()


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _cohort_record(cohort: Cohort) -> pd.DataFrame:
    """The cohort as stored in the run: paths relative to the manifest, boxes as text."""
    t = cohort.table.copy()
    root = cohort.manifest.resolve().parent
    for col in PATH_COLUMNS:
        t[col] = [
            str(Path(p).relative_to(root))
            if isinstance(p, str) and Path(p).is_relative_to(root)
            else (p if isinstance(p, str) else None)
            for p in t[col]
        ]
    for col in BOX_COLUMNS.values():
        t[col] = [",".join(map(str, b)) if isinstance(b, tuple) else None for b in t[col]]
    t["lnm"] = t["lnm"].astype("Float64")
    return t


def _write_table(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


def _write_preprocessing(run_dir: Path, prepared: PreparedInputs) -> None:
    state = {
        "ultrasound": prepared.ultrasound_state,
        "stain": prepared.stain_state,
        "tiles": str(prepared.tiles_path) if prepared.tiles_path else None,
        "clinical_columns": prepared.inputs.clinical_columns,
        "in_dims": prepared.inputs.in_dims(),
    }
    write_text(run_dir / "preprocessing.json", json.dumps(state, indent=1))
    _write_table(run_dir / "ultrasound_flags.csv", prepared.view_flags)


def _write_provenance(
    run_dir: Path,
    manifest: str | Path,
    cohort: Cohort,
    cfg: RunConfig,
    compute: ComputePlan,
    prepared: PreparedInputs,
    seconds: float,
) -> None:
    import torchvision

    from radiopath import __version__

    files = hashlib.sha256()
    for col in PATH_COLUMNS:
        for p in cohort.table[col]:
            if isinstance(p, str) and Path(p).is_file():
                files.update(file_digest(p, full=col != "cytology").encode())
    prov = {
        "radiopath": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "seed": cfg.protocol.seed,
        "compute": compute.describe(),
        "processes": dist.world_size(),
        "manifest": str(Path(manifest).resolve()),
        "data_hashes": {
            "manifest_sha256": hashlib.sha256(Path(manifest).read_bytes()).hexdigest(),
            "files_sha256": files.hexdigest(),
        },
        "feature_cache": prepared.cache_stats,
        "command": " ".join(sys.argv),
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text(run_dir / "provenance.json", json.dumps(prov, indent=2))


def _history(ckpt: Path) -> list[dict[str, float]]:
    from safetensors import safe_open

    with safe_open(str(ckpt), "pt") as f:
        return list(json.loads(f.metadata()["state"]).get("history", []))


class _Logger:
    """TensorBoard (if the ``tensorboard`` package is present) and MLflow (if installed)."""

    def __init__(self, root: Path, cfg: RunConfig) -> None:
        self.root = root
        self.cfg = cfg
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer_cls: Any = SummaryWriter
        except ImportError:
            self.writer_cls = None
        try:
            import mlflow

            self.mlflow: Any = mlflow
        except ImportError:
            self.mlflow = None

    def model_done(self, spec: ModelSpec, predictions: pd.DataFrame, run_dir: Path) -> None:
        """Write each fold's training curves from its saved loop state."""
        if self.writer_cls is not None:
            for ckpt in sorted((run_dir / "checkpoints" / spec.name).glob("fold*/checkpoint.safetensors")):
                fold = ckpt.parent.name
                history = _history(ckpt)
                writer = self.writer_cls(log_dir=str(self.root / spec.name / fold))
                for rec in history:
                    for key in ("train_loss", "val_loss", "val_auc", "lr"):
                        if key in rec and rec[key] == rec[key]:
                            writer.add_scalar(key, rec[key], int(rec["epoch"]))
                writer.close()
        if self.mlflow is not None:
            with self.mlflow.start_run(run_name=f"{run_dir.name}/{spec.name}"):
                self.mlflow.log_params(
                    {
                        "model": spec.name,
                        "fusion": spec.fusion,
                        "backbone": self.cfg.model.backbone,
                        "seed": self.cfg.protocol.seed,
                    }
                )
                oof = predictions[predictions["fold"] >= 0]
                if oof["label"].nunique() == 2:
                    from sklearn.metrics import roc_auc_score

                    self.mlflow.log_metric("oof_auc", float(roc_auc_score(oof["label"], oof["prob"])))
