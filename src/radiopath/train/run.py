"""A study run: manifest in, run folder out (the layout is in :mod:`radiopath.runs.layout`).

Three stages, each rerunnable alone, or all in one go:

* ``radiopath tile`` → ``TILES/`` (reused with ``--tiles``),
* ``radiopath extract`` → ``FEATS/`` (reused with ``--features``),
* ``radiopath train`` → ``RUN/``; without ``--features`` it tiles and extracts itself, with
  the same code, into the shared content-keyed cache — the same predictions either way.

Everything that can be checked is checked before the run folder exists
(:mod:`radiopath.preflight`), and inputs are prepared (tiles, features) before it is
created, so a bad option, file or cohort never leaves a half-run behind. ``resume=True``
continues a killed run: finished models are read back, the model in progress continues
from its last epoch checkpoint, and the final predictions are identical to an uninterrupted
run's (every epoch is seeded on its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from radiopath import distributed as dist
from radiopath.cohort import Cohort
from radiopath.cohort.schema import BOX_COLUMNS, PATH_COLUMNS
from radiopath.compute import ComputePlan, plan
from radiopath.errors import ConfigError, OutputExistsError
from radiopath.features.cache import default_cache_dir
from radiopath.features.extract import extract_features, load_images
from radiopath.features.preprocessing import Preprocessing
from radiopath.features.store import FeatureSet, cohort_key, options_diff, source_table
from radiopath.io.atomic import atomic_path, write_text
from radiopath.io.fingerprint import digest, file_sha256
from radiopath.io.lock import folder_lock
from radiopath.modalities import MODALITIES, ImageModality, StageContext
from radiopath.models import checkpoint as ckpt_io
from radiopath.models.factory import build_model
from radiopath.models.inputs import PatientInputs
from radiopath.models.model import RadiopathModel
from radiopath.preflight import check_options, check_run
from radiopath.run_config import ModelSpec, RunConfig
from radiopath.runs import layout
from radiopath.runs.run import InputsInfo
from radiopath.shift.domain import feature_shift
from radiopath.shift.harmonize import fit_harmonization, harmonize
from radiopath.train.loop import Augment
from radiopath.train.protocol import PREDICTION_COLUMNS, run_model

Say = Callable[[str], None]
#: Domain-classifier AUC from which a center's feature shift is printed as a warning.
SHIFT_WARN_AUC = 0.8
FeatureProgress = Callable[[str, int, int], None]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    predictions: pd.DataFrame
    thresholds: dict[str, float]
    seconds: float


@dataclass
class _Prepared:
    inputs: PatientInputs
    preprocessing: Preprocessing
    flags: pd.DataFrame
    families: dict[str, dict[str, str]]
    stats: dict[str, Any]
    data_key: str
    feature_names: dict[str, list[str]]
    acquisition: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def train_run(
    manifest: str | Path,
    out: str | Path,
    config: RunConfig | None = None,
    resume: bool = False,
    say: Say | None = None,
    feature_progress: FeatureProgress | None = None,
    *,
    features: str | Path | None = None,
    tiles: str | Path | None = None,
    mpp_table: str | Path | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Run the whole protocol for every model of ``config`` and write the run folder.

    Args:
        features: a ``radiopath extract`` folder to train on (features mode).
        tiles: a ``radiopath tile`` folder to take the slides' tiles from.
        mpp_table: CSV ``slide,mpp`` with the resolution of slides that lack it.
        overwrite: replace an existing run folder instead of refusing.

    Raises:
        OutputExistsError: ``out`` already holds a run and neither ``resume`` nor ``overwrite``.
        ConfigError: a bad option or input (named), or ``resume`` with differing options.
        ManifestError: the manifest has errors (every one is listed).
    """
    start = time.perf_counter()
    say = say or (lambda _m: None)
    run_dir = Path(out)
    cfg = _resolve_config(run_dir, config, resume, overwrite).resolved()
    compute = plan(cfg.train.device, cfg.train.precision, cfg.train.channels_last)
    dist.init(compute.device.type)
    if compute.device.type == "cuda" and dist.is_active():
        compute = ComputePlan(
            torch.device("cuda", torch.cuda.current_device()), compute.amp_dtype, compute.channels_last
        )
    check_options(cfg, tiles=tiles)  # options first: cheap, and the user's own typing
    cohort = Cohort.from_manifest(manifest)
    for w in cohort.warnings:
        say(str(w))
    feature_set = FeatureSet.load(features) if features is not None else None
    check_run(cfg, cohort, compute, features=feature_set)
    say(f"compute: {compute.describe()}; {dist.world_size()} process(es)")
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    ctx = StageContext(root, Path(tiles) if tiles else None, mpp_table, workers=_workers(), say=say)
    fingerprint = data_fingerprint(cohort.table)
    if resume:
        check_same_data(run_dir, fingerprint)
    # --- nothing was written before this line; from here on the run folder is locked ---------
    with _locked(run_dir) if dist.is_main() else contextlib.nullcontext():
        if dist.is_main():  # the folder may have changed since the first look: check again, locked
            _resolve_config(run_dir, config, resume, overwrite)
            _sweep_partials(run_dir)
        prepared = _prepare(cohort, cfg, compute, ctx, feature_set, feature_progress)
        job = _Job(manifest, run_dir, cfg, config, cohort, compute, prepared, fingerprint, say, start)
        return _train_locked(job, resume, overwrite, features, tiles, mpp_table)


@dataclass
class _Job:
    """Everything decided before the run folder is touched."""

    manifest: str | Path
    run_dir: Path
    cfg: RunConfig
    config: RunConfig | None  # as the caller gave it (for the check under the lock)
    cohort: Cohort
    compute: ComputePlan
    prepared: _Prepared
    fingerprint: pd.DataFrame
    say: Say
    start: float


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[Path]:
    """The run folder's lock (``RUN/.lock``), held by rank 0 while the run prepares and writes.

    A folder this call created is removed again when the run fails before writing anything
    into it (a tiling or extraction error), so the corrected command starts cleanly.
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(run_dir, layout.LOCK, what="run") as lock:
            yield lock
    except BaseException:
        if created and all(p.name == layout.LOCK for p in run_dir.iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train_locked(
    job: _Job,
    resume: bool,
    overwrite: bool,
    features: str | Path | None,
    tiles: str | Path | None,
    mpp_table: str | Path | None,
) -> RunResult:
    manifest, run_dir, cfg, cohort, compute, prepared, say = (
        job.manifest,
        job.run_dir,
        job.cfg,
        job.cohort,
        job.compute,
        job.prepared,
        job.say,
    )
    with dist.main_first():
        if dist.is_main():
            if overwrite and not resume:
                _empty(run_dir)
            cfg.to_yaml(run_dir / layout.CONFIG)
            _write_table(run_dir / layout.COHORT, _cohort_record(cohort))
            _write_table(run_dir / layout.FINGERPRINT, job.fingerprint)
    folds = cohort.folds(cfg.protocol.n_folds, cfg.protocol.seed).to_numpy()
    if dist.is_main():
        _write_table(
            run_dir / layout.FOLDS, pd.DataFrame({"patient_id": cohort.table["patient_id"], "fold": folds})
        )
        _write_inputs(run_dir, cfg, compute, prepared)
    inputs = _shift_and_harmonize(run_dir, cfg, prepared, say)
    outcomes = []
    in_dims = inputs.in_dims()
    logger = _Logger(run_dir / layout.LOGS, cfg) if dist.is_main() else None
    adaptation: dict[str, list[dict[str, Any]]] = {}
    for spec in cfg.model.specs():
        done = layout.model_predictions(run_dir, spec.name)
        if resume and done.exists():
            outcomes.append(pd.read_parquet(done))
            say(f"{spec.name}: done earlier, predictions read back")
            continue
        outcome = run_model(
            spec,
            _factory(cfg, in_dims, compute, inputs.blocks),
            inputs,
            folds,
            cfg.train,
            cfg.protocol,
            compute,
            run_dir,
            augment=_finetune_augment(cfg) if cfg.train.mode == "finetune" else None,
            progress=say,
            adapt_min_patients=cfg.harmonization.min_patients
            if cfg.harmonization.method == "adabn"
            else None,
        )
        if outcome.adaptation is not None:
            adaptation[spec.name] = outcome.adaptation
            done_centers = [r["center"] for r in outcome.adaptation if r["adjusted"]]
            say(
                f"{spec.name}: AdaBN (transductive: each center's own unlabelled images) for "
                f"{', '.join(done_centers) or 'no center'}"
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
    seconds = time.perf_counter() - job.start
    if dist.is_main():
        _write_table(run_dir / layout.PREDICTIONS, predictions)
        write_text(run_dir / layout.THRESHOLDS, json.dumps(thresholds, indent=2))
        if cfg.harmonization.method == "adabn":
            previous = _read_json(run_dir / layout.ADABN).get("models", {})  # models done before a resume
            record = {
                "method": "adabn",
                "min_patients": cfg.harmonization.min_patients,
                "models": {**previous, **adaptation},
            }
            write_text(run_dir / layout.ADABN, json.dumps(record, indent=2))
        _write_provenance(run_dir, manifest, cfg, compute, prepared, seconds, features, tiles, mpp_table)
    dist.barrier()
    return RunResult(run_dir, predictions, thresholds, seconds)


def _shift_and_harmonize(run_dir: Path, cfg: RunConfig, prepared: _Prepared, say: Say) -> PatientInputs:
    """Measure each center's feature shift (no labels) and, with ``harmonization.method``,
    harmonise the features per center; both are written to the run folder."""
    inputs = prepared.inputs
    if cfg.train.mode != "features":
        return inputs
    tables = [feature_shift(inputs, "as extracted", cfg.protocol.seed)]
    method = cfg.harmonization.method
    if method != "none":
        state = fit_harmonization(inputs, method, cfg.harmonization.min_patients)
        inputs = harmonize(inputs, state, say)
        adjusted = [f"{r['center']} ({r['modality']})" for r in state.record if r["adjusted"]]
        say(
            f"harmonization ({method}, transductive: each center's own unlabelled features): "
            f"{', '.join(adjusted) or 'no center'} adjusted to the development reference"
        )
        tables.append(feature_shift(inputs, f"harmonized ({method})", cfg.protocol.seed))
        if dist.is_main():
            state.save(run_dir)
    shift = pd.concat(tables, ignore_index=True)
    for r in shift[shift["features"] == "as extracted"].itertuples():
        if r.domain_auc >= SHIFT_WARN_AUC and r.cohort != "development":
            say(
                f"warning: {r.center}: its {MODALITIES[r.modality].label} features tell it apart from the "
                f"development cohort (domain AUC {r.domain_auc:.2f}, mean |SMD| {r.mean_abs_smd:.2f}); see "
                "the report's feature-shift table"
            )
    if dist.is_main():
        _write_table(run_dir / layout.SHIFT, shift)
        _write_table(run_dir / layout.ACQUISITION, prepared.acquisition)
    return inputs


def _workers() -> int:
    import os

    return (os.cpu_count() or 1) if dist.is_main() else 1


def _prepare(
    cohort: Cohort,
    cfg: RunConfig,
    compute: ComputePlan,
    ctx: StageContext,
    feature_set: FeatureSet | None,
    progress: FeatureProgress | None,
) -> _Prepared:
    """Model inputs: from a features folder, extracted now (features mode), or images (finetune)."""
    table = cohort.table
    if cfg.train.mode == "finetune":
        inputs, state, flags = load_images(table, cfg, ctx)
        key = cohort_key(source_table(table, list(_present_images(table))))
        return _Prepared(inputs, state, flags, {}, {}, key, {})
    if feature_set is None:
        with dist.main_first():  # rank 0 tiles first; the others then find every slide done
            feature_set = extract_features(table, cfg, compute, ctx, progress=progress, augment=True)
    else:
        counts = ", ".join(f"{k} {len(v)}" for k, v in feature_set.features.items())
        ctx.say(f"features: {counts} instances read back")
    return _Prepared(
        feature_set.inputs(table),
        feature_set.preprocessing,
        feature_set.flags(),
        dict(feature_set.families),
        dict(feature_set.stats),
        feature_set.cohort_key(),
        {m: feature_set.feature_names(m) for m in feature_set.features},
        feature_set.shift,
    )


def _present_images(table: pd.DataFrame) -> list[str]:
    return [k for k, m in MODALITIES.items() if isinstance(m, ImageModality) and m.present(table).any()]


def _factory(
    cfg: RunConfig,
    in_dims: dict[str, int],
    compute: ComputePlan,
    blocks: dict[str, list[tuple[str, int, int]]] | None = None,
) -> Callable[[ModelSpec], RadiopathModel]:
    """Heads on cached features, or (finetune) heads plus fresh backbones for every fold."""
    return lambda spec: build_model(spec, cfg, in_dims, blocks=blocks, channels_last=compute.channels_last)


def _finetune_augment(cfg: RunConfig) -> Augment:
    """Training augmentation of images, per modality (``ImageModality.augment``)."""

    def augment(batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        for key, modality in MODALITIES.items():
            if key not in batch or batch[key].dtype != torch.uint8 or not isinstance(modality, ImageModality):
                continue
            arr = batch[key].numpy().copy()
            present = batch[f"{key}_mask"].numpy()
            for i, j in zip(*np.nonzero(present), strict=True):
                arr[i, j] = modality.augment(arr[i, j], rng, cfg)
            batch[key] = torch.from_numpy(arr)
        return batch

    return augment


def _resolve_config(
    run_dir: Path,
    config: RunConfig | None,
    resume: bool,
    overwrite: bool,
    ignore: tuple[str, ...] = (layout.LOCK,),
) -> RunConfig:
    """The options of the run, checked against a saved run folder; writes nothing."""
    saved = run_dir / layout.CONFIG
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"{run_dir} is a file, not a folder; choose another --out")
    if resume:
        if not saved.exists():
            raise ConfigError(
                f"{run_dir} holds no run to resume (no {layout.CONFIG}); start it without --resume"
            )
        previous = RunConfig.from_yaml(saved)
        if config is not None:
            diff = options_diff(previous.model_dump(mode="json"), config.resolved().model_dump(mode="json"))
            if diff:
                raise ConfigError(
                    f"--resume with options that differ from {saved}: {', '.join(diff[:6])}; "
                    "resume with the saved options (omit --config and option flags) or start a new run folder"
                )
        return previous
    if run_dir.exists() and any(p.name not in ignore for p in run_dir.iterdir()) and not overwrite:
        if saved.exists():
            raise OutputExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                "or choose another --out"
            )
        raise OutputExistsError(f"{run_dir} exists and is not empty; choose another --out (or --overwrite)")
    return config or RunConfig()


def _sweep_partials(run_dir: Path) -> None:
    """Remove temporary files a killed writer left (never read: results are renamed into place).

    Safe here because the folder is locked: no other process is writing it.
    """
    for p in run_dir.rglob("*.partial*"):
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _empty(run_dir: Path) -> None:
    """Remove a replaced run's files (not the lock we hold)."""
    for p in run_dir.iterdir():
        if p.name == layout.LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def data_fingerprint(table: pd.DataFrame) -> pd.DataFrame:
    """Per patient: center, cohort, label, the content key of every modality's input files and a
    digest of the clinical covariates — what ``--resume`` checks has not changed."""
    fp = source_table(table, _present_images(table))
    fp["lnm"] = table["lnm"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    clin = [c for c in table.columns if c.startswith("clin_")]
    if clin:
        fp["clinical"] = [digest(list(map(str, r))) for r in table[clin].itertuples(index=False)]
    return fp


def check_same_data(run_dir: Path, current: pd.DataFrame) -> None:
    """Refuse to resume a run whose data changed since it started, saying what changed."""
    path = run_dir / layout.FINGERPRINT
    if not path.is_file():
        return  # a run from before fingerprints: nothing to compare
    stored = pd.read_parquet(path)
    changes = describe_data_changes(stored, current)
    if changes:
        lines = "\n".join(f"  - {c}" for c in changes[:15])
        more = f"\n  … and {len(changes) - 15} more" if len(changes) > 15 else ""
        raise ConfigError(
            f"--resume refused: the data changed since the run in {run_dir} started:\n{lines}{more}\n"
            "a resumed run must see the data it started with; restore the data, or start a new run "
            "folder (or --overwrite this one)"
        )


def describe_data_changes(stored: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Human sentences for every difference between two data fingerprints."""
    a = stored.set_index("patient_id")
    b = current.set_index("patient_id")
    out = []
    added, removed = b.index.difference(a.index), a.index.difference(b.index)
    if len(added):
        out.append(f"{len(added)} patient(s) added: {', '.join(map(str, added[:5]))}")
    if len(removed):
        out.append(f"{len(removed)} patient(s) removed: {', '.join(map(str, removed[:5]))}")
    both = a.index.intersection(b.index)
    for col in sorted(set(a.columns) | set(b.columns)):
        if col not in a.columns or col not in b.columns:
            out.append(f"column {col} {'appeared' if col in b.columns else 'disappeared'}")
            continue
        x, y = a.loc[both, col], b.loc[both, col]
        differ = ~((x == y) | (x.isna() & y.isna()))
        if differ.any():
            what = {
                "lnm": "labels",
                "center": "centers",
                "cohort": "cohorts",
                "clinical": "clinical covariates",
            }
            pids = list(map(str, both[differ.to_numpy()][:5]))
            name = what.get(col, f"{col} input files")
            out.append(f"{name} changed for {int(differ.sum())} patient(s): {', '.join(pids)}")
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


def _write_inputs(run_dir: Path, cfg: RunConfig, compute: ComputePlan, prepared: _Prepared) -> None:
    prepared.preprocessing.save(run_dir / layout.PREPROCESSING)
    info = InputsInfo(
        cfg.train.mode,
        prepared.inputs.in_dims(),
        prepared.families,
        prepared.inputs.clinical_columns,
        "bf16" if compute.amp_dtype == torch.bfloat16 else "fp32",
        prepared.inputs.blocks,
        prepared.feature_names,
    )
    write_text(run_dir / layout.INPUTS, json.dumps(info.to_dict(), indent=1))
    _write_table(run_dir / layout.FLAGS, prepared.flags)


def _write_provenance(
    run_dir: Path,
    manifest: str | Path,
    cfg: RunConfig,
    compute: ComputePlan,
    prepared: _Prepared,
    seconds: float,
    features: str | Path | None,
    tiles: str | Path | None,
    mpp_table: str | Path | None,
) -> None:
    import torchvision

    from radiopath import __version__

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
        "features": str(Path(features).resolve()) if features else None,
        "tiles": str(Path(tiles).resolve()) if tiles else None,
        "mpp_table": str(Path(mpp_table).resolve()) if mpp_table else None,
        "data_hashes": {
            "manifest_sha256": file_sha256(Path(manifest)),
            "files_sha256": prepared.data_key,
        },
        "feature_cache": prepared.stats,
        "command": " ".join(sys.argv),
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text(run_dir / layout.PROVENANCE, json.dumps(prov, indent=2))


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
            for ckpt in sorted(layout.model_dir(run_dir, spec.name).glob(f"fold*/{ckpt_io.TRAINING_STATE}")):
                fold = ckpt.parent.name
                writer = self.writer_cls(log_dir=str(self.root / spec.name / fold))
                for rec in ckpt_io.loop_history(ckpt.parent):
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


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object written earlier by this run, or {} when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
