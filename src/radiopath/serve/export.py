"""``radiopath export RUN --out BUNDLE``: a finished run as a deployable bundle.

The bundle (layout in :mod:`radiopath.serve.bundle`) holds what scoring a new patient needs
and nothing about the study's patients: the fold models of every model (the primary model
first), each frozen backbone once (features mode), the fitted preprocessing, the frozen
thresholds, the input specification, a summary of the validation metrics, the versions, an
intended-use statement and, in ``configs/metadata.json`` (modelled on the MONAI bundle
specification), the sha256 of every file. It is built under a temporary name and moved into
place whole, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiopath.compute import ComputePlan, plan
from radiopath.errors import ConfigError, OutputExistsError
from radiopath.features.cache import preprocessing_code_version
from radiopath.features.deep import DEEP_CODE, make_extractor, weights_id
from radiopath.features.extract import family_key
from radiopath.io.atomic import atomic_dir, write_text
from radiopath.io.fingerprint import source_digest
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.models.checkpoint import save_tensors
from radiopath.run_config import RunConfig
from radiopath.runs import Run, layout, load_run
from radiopath.serve import bundle as B
from radiopath.serve.docs import bundle_readme, default_intended_use, input_spec, network_data_format

Say = Callable[[str], None]

#: Metrics summarised in the bundle (from RUN/metrics.json), per model and main cohort.
SUMMARY_METRICS = ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy", "brier")
REFERENCE = (
    "Deep learning-based multimodal radiopathomics for preoperative prediction of lymph node metastasis "
    "in papillary thyroid carcinoma. Scientific Reports (2026)."
)


@dataclass
class ExportResult:
    """What :func:`export_bundle` wrote."""

    bundle: Path
    fingerprint: str
    models: list[str]
    files: int
    bytes: int
    warnings: list[str] = field(default_factory=list)


def export_bundle(
    run: str | Path,
    out: str | Path,
    *,
    onnx: bool = False,
    version: str = "1.0.0",
    intended_use: str | None = None,
    authors: str = "not recorded",
    overwrite: bool = False,
    say: Say | None = None,
) -> ExportResult:
    """Make the run folder ``run`` into a bundle at ``out`` (see the module docstring).

    Args:
        onnx: also write ONNX graphs (backbones once, each fold's head; fp32).
        version: the bundle's own version (semantic versioning: bump it for every re-export).
        intended_use: the intended-use statement (default: :func:`default_intended_use`).

    Raises:
        ConfigError: not a finished run, a model without fold weights or threshold, or ONNX asked
            of a finetune run.
        OutputExistsError: ``out`` holds files and ``overwrite`` is off.
    """
    say = say or (lambda _m: None)
    r = load_run(run)
    _ = r.predictions  # a finished run (raises with the fix otherwise)
    out = Path(out)
    if out.resolve() == r.folder.resolve() or r.folder.resolve() in out.resolve().parents:
        raise ConfigError(f"--out {out} is inside the run folder; write the bundle elsewhere")
    if B.version_tuple(version) == ():
        raise ConfigError(f"--version {version!r} is not a version number like 1.0.0")
    if onnx and r.info.mode != "features":
        raise ConfigError(
            "--onnx exports frozen backbones and heads (features mode); this run fine-tunes its backbones — "
            "export it without --onnx"
        )
    models = [r.primary_model, *[m for m in r.models if m != r.primary_model]]
    for m in models:
        if m not in r.thresholds:
            raise ConfigError(f"{r.file(layout.THRESHOLDS)} has no threshold for '{m}'; finish the run first")
        r.fold_weights(m)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists and is not empty; choose another --out (or --overwrite)")
    warnings: list[str] = []
    method = r.config.harmonization.method
    if method != "none":
        warnings.append(
            f"the run's external centers were scored after transductive harmonisation ({method}); the "
            "bundle scores each patient as trained, without it (one patient has no center statistics), "
            "so its probabilities for those centers differ from the run's — use load_run(RUN).predict "
            "on a whole center to score it the way the run did"
        )
    with atomic_dir(out, overwrite=overwrite) as tmp:
        meta = _write(r, tmp, models, onnx, version, intended_use, authors, warnings, say)
    size = sum((out / f).stat().st_size for f in meta["files"])
    return ExportResult(out, meta["fingerprint"], models, len(meta["files"]) + 1, size, warnings)


def _write(
    r: Run,
    tmp: Path,
    models: list[str],
    onnx: bool,
    version: str,
    intended_use: str | None,
    authors: str,
    warnings: list[str],
    say: Say,
) -> dict[str, Any]:
    cfg = r.config.model_copy(deep=True)
    cfg.cache_dir = None
    backbones = _backbones(r, tmp, onnx, warnings, say) if r.info.mode == "features" else []
    if backbones:
        cfg.model.weights = backbones[0]["file"]
    entries = []
    for name in models:
        entry = _model(r, tmp, name, onnx, cfg)
        entries.append(entry)
        say(f"{name}: {len(entry['weights'])} fold model(s), threshold {entry['threshold']:.4f}")
    conf = tmp / B.CONFIGS
    conf.mkdir(parents=True)
    cfg.to_yaml(conf / layout.CONFIG)
    shutil.copyfile(r.file(layout.INPUTS), conf / layout.INPUTS)
    shutil.copyfile(r.file(layout.PREPROCESSING), conf / layout.PREPROCESSING)
    write_text(conf / layout.THRESHOLDS, json.dumps({m: r.thresholds[m] for m in models}, indent=2))
    metrics, note = _metrics(r, models)
    if note:
        warnings.append(note)
    meta = _metadata(r, cfg, models, entries, backbones, metrics, note, onnx, version, intended_use, authors)
    meta["warnings"] = list(warnings)
    docs = tmp / B.DOCS
    docs.mkdir(parents=True)
    write_text(docs / "README.md", bundle_readme(meta))
    files = {f: B.file_sha256(tmp / f) for f in B.listed_files(tmp)}
    meta["files"] = files
    meta["fingerprint"] = B.fingerprint(files)
    write_text(tmp / B.METADATA, json.dumps(meta, indent=1, allow_nan=False))
    return meta


def recorded_compute(r: Run) -> ComputePlan:
    """The compute plan the run extracted its features with (device type and precision)."""
    described = str(r.provenance.get("compute", "cpu"))
    device = described.split(",")[0].strip() or "cpu"
    amp = torch.bfloat16 if r.info.amp == "bf16" else None
    return ComputePlan(
        torch.device("cuda" if device.startswith("cuda") else "cpu"), amp, r.config.train.channels_last
    )


def _backbones(r: Run, tmp: Path, onnx: bool, warnings: list[str], say: Say) -> list[dict[str, Any]]:
    """Each frozen backbone of the run once: safetensors (and ONNX), rebuilt as training built it."""
    from radiopath.serve.onnx import export_backbone

    cfg = r.config
    used: dict[str, list[ImageModality]] = {}
    for key in r.info.in_dims:
        modality = MODALITIES.get(key)
        if isinstance(modality, ImageModality):
            used.setdefault(modality.backbone(cfg), []).append(modality)
    recorded = recorded_compute(r)
    out = []
    for name, modalities in used.items():
        for modality in modalities:
            deep = r.info.families.get(modality.key, {}).get("deep")
            if deep is not None and deep != family_key(modality, cfg, recorded):
                warnings.append(
                    f"the {modality.label} backbone could not be confirmed to be the one the run extracted "
                    "its features with (its weights file, or radiopath's extraction code, changed since "
                    "training); check that predict reproduces the run's external predictions"
                )
        try:
            ext = make_extractor(name, cfg.model.weights, plan("cpu", "fp32"), cfg.train.extract_batch_size)
        except ConfigError as exc:
            raise ConfigError(f"cannot rebuild the run's {name} backbone for the bundle: {exc}") from None
        safe = name.replace(":", "_").replace("/", "_")
        rel = f"{B.MODELS}/backbones/{safe}.safetensors"
        body = ext.backbone.body.state_dict()
        save_tensors(tmp / rel, body, {"backbone": name, "source": weights_id(name, cfg.model.weights)})
        entry: dict[str, Any] = {
            "name": name,
            "file": rel,
            "source_weights": weights_id(name, cfg.model.weights),
            "num_features": int(ext.num_features),
            "parameters": int(sum(t.numel() for t in body.values())),
            "modalities": [m.key for m in modalities],
            "batch_size": int(cfg.train.extract_batch_size),
        }
        if onnx:
            grel = f"{B.MODELS}/onnx/{safe}.onnx"
            size = min(m.input_size(cfg) for m in modalities)
            entry["onnx"] = grel
            entry["onnx_max_abs_diff"] = export_backbone(
                ext.backbone, tmp / grel, cfg.train.extract_batch_size, size
            )
        say(f"backbone {name}: stored once for {', '.join(m.label for m in modalities)}")
        out.append(entry)
    return out


def _model(r: Run, tmp: Path, name: str, onnx: bool, cfg: RunConfig) -> dict[str, Any]:
    from radiopath.serve.onnx import export_head

    spec = r.spec(name)
    weights, graphs, diffs = [], [], []
    for k, path in enumerate(r.fold_weights(name)):
        rel = f"{B.MODELS}/{name}/fold{k}.safetensors"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, tmp / rel)
        weights.append(rel)
    if onnx:
        for k, model in enumerate(r.fold_models(name, "cpu")):
            grel = f"{B.MODELS}/onnx/{name}/fold{k}.onnx"
            diffs.append(export_head(model, tmp / grel, r.info.in_dims, cfg))
            graphs.append(grel)
    entry: dict[str, Any] = {
        "name": name,
        "modalities": list(spec.modalities),
        "fusion": spec.fusion,
        "threshold": float(r.thresholds[name]),
        "threshold_rule": r.config.protocol.threshold_rule,
        "n_folds": len(weights),
        "weights": weights,
        "primary": name == r.primary_model,
    }
    if onnx:
        entry["onnx"] = graphs
        entry["onnx_max_abs_diff"] = float(max(diffs))
    return entry


def _metrics(r: Run, models: list[str]) -> tuple[dict[str, Any], str | None]:
    """Per model and main cohort (internal, external), the headline metrics with 95% CIs."""
    path = r.folder / "metrics.json"
    if not path.is_file():
        return {}, (
            f"{path} not found: the bundle carries no validation metrics; run `radiopath evaluate "
            f"{r.folder}` and export again"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    note = None
    pred_sha = B.file_sha256(r.folder / layout.PREDICTIONS)
    if data.get("predictions_sha256") not in (None, pred_sha):
        note = f"{path} was computed from other predictions than the run's; run `radiopath evaluate` again"
    out: dict[str, Any] = {}
    for row in data.get("metrics", []):
        if (
            row.get("scope") != "main"
            or row.get("model") not in models
            or row.get("metric") not in SUMMARY_METRICS
        ):
            continue
        cohort = out.setdefault(row["model"], {}).setdefault(
            row["cohort"], {"label": row.get("cohort_label"), "n": row.get("n"), "n_pos": row.get("n_pos")}
        )
        cohort[row["metric"]] = {k: _num(row.get(k)) for k in ("value", "ci_low", "ci_high")}
    return out, note


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def _metadata(
    r: Run,
    cfg: RunConfig,
    models: list[str],
    entries: list[dict[str, Any]],
    backbones: list[dict[str, Any]],
    metrics: dict[str, Any],
    metrics_note: str | None,
    onnx: bool,
    version: str,
    intended_use: str | None,
    authors: str,
) -> dict[str, Any]:
    import torchvision

    from radiopath import __version__

    required: dict[str, str] = {"torchvision": torchvision.__version__}
    if onnx:
        import onnxruntime

        required["onnxruntime"] = onnxruntime.__version__
    cohort = r.cohort
    dev = cohort[cohort["cohort"] == "development"]
    ext = cohort[cohort["cohort"] == "external"]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "schema": "radiopath-bundle",
        "format": B.BUNDLE_FORMAT,
        "name": r.folder.name,
        "version": version,
        "changelog": {version: f"exported from run '{r.folder.name}' on {now[:10]}"},
        "created": now,
        "radiopath_version": __version__,
        "pytorch_version": torch.__version__,
        "numpy_version": np.__version__,
        "required_packages_version": required,
        "task": "Preoperative prediction of lymph-node metastasis (LNM) in papillary thyroid carcinoma",
        "description": (
            "Fold ensemble of the study's models from two thyroid ultrasound views and the FNA liquid-based "
            f"cytology slide: {', '.join(models)} (primary: {r.primary_model}); probability of LNM and the "
            "decision at the threshold frozen on the development cohort's out-of-fold predictions."
        ),
        "authors": authors,
        "copyright": "not recorded",
        "intended_use": intended_use or default_intended_use(),
        "references": [REFERENCE],
        "data_source": {
            "development": {"patients": len(dev), "centers": sorted(map(str, dev["center"].unique()))},
            "external": {"patients": len(ext), "centers": sorted(map(str, ext["center"].unique()))},
        },
        "data_type": "ultrasound images (PNG, JPEG, TIFF, BMP, DICOM); cytology slides (SVS, NDPI, "
        "TIFF, …) or patch images",
        "primary_model": r.primary_model,
        "models": entries,
        "backbones": backbones,
        "onnx": onnx,
        "mode": r.info.mode,
        "precision": r.info.amp,
        "inputs": input_spec(cfg, r.info.to_dict(), r.preprocessing.to_dict(), r.cohort),
        "preprocessing": r.preprocessing.describe(),
        "network_data_format": network_data_format(cfg),
        "eval_metrics": metrics,
        "eval_metrics_note": metrics_note,
        "code": {"preprocessing": preprocessing_code_version(), "deep": source_digest(*DEEP_CODE)},
        "source_run": {
            "name": r.folder.name,
            "seed": cfg.protocol.seed,
            "predictions_sha256": B.file_sha256(r.folder / layout.PREDICTIONS),
            "data_sha256": (r.provenance.get("data_hashes") or {}).get("files_sha256"),
        },
    }
