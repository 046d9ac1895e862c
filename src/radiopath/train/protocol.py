"""The study protocol: five-fold patient-level CV, a frozen threshold, then external validation.

For every model of the study (unimodal baselines and fusion models alike):

1. each development fold *k* is predicted by a model trained on the other folds (with an
   inner validation split of those folds for early stopping) — the out-of-fold (OOF)
   predictions are the internal validation;
2. the decision threshold is chosen on the OOF predictions and frozen;
3. each external patient (and any unlabelled development patient) is predicted by the
   ensemble of the fold models (mean probability), never seen in training or tuning.

All models share the same folds and the same inner splits, so their OOF predictions are
paired patient by patient (what DeLong's paired test needs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedShuffleSplit

from radiopath.compute import ComputePlan, stable_seed
from radiopath.errors import ConfigError
from radiopath.evaluate.predictions import REQUIRED as REQUIRED_PREDICTION_COLUMNS
from radiopath.evaluate.threshold import choose_threshold
from radiopath.models.inference import fold_mean, modality_presence, usable_patients
from radiopath.models.inputs import PatientInputs
from radiopath.models.model import ModelSpec, RadiopathModel
from radiopath.run_config import ProtocolConfig, TrainConfig
from radiopath.train.loop import Augment, predict, train_fold
from radiopath.train.signature import fit_signature_fold

#: predictions.parquet: the columns radiopath.evaluate requires, plus which inputs were present
PREDICTION_COLUMNS = [*REQUIRED_PREDICTION_COLUMNS, "modalities", "missing_modality"]

__all__ = [
    "PREDICTION_COLUMNS",
    "ModelOutcome",
    "ProtocolConfig",
    "inner_split",
    "prediction_frame",
    "run_model",
]


@dataclass
class ModelOutcome:
    """Predictions of one model and the threshold frozen for it."""

    spec: ModelSpec
    predictions: pd.DataFrame
    threshold: float
    #: AdaBN (``adapt_min_patients``): per external center, whether it was adapted and why
    adaptation: list[dict[str, Any]] | None = None


ModelFactory = Callable[[ModelSpec], RadiopathModel]
Progress = Callable[[str], None]


def inner_split(
    train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the training folds into (fit, early-stopping validation)."""
    sss = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    fit, val = next(sss.split(np.zeros(len(train_idx)), labels[train_idx].astype(int)))
    return train_idx[fit], train_idx[val]


def run_model(
    spec: ModelSpec,
    make_model: ModelFactory,
    inputs: PatientInputs,
    folds: np.ndarray,
    train: TrainConfig,
    protocol: ProtocolConfig,
    compute: ComputePlan,
    run_dir: Path | None = None,
    augment: Augment | None = None,
    progress: Progress | None = None,
    adapt_min_patients: int | None = None,
) -> ModelOutcome:
    """Cross-validate one model, freeze its threshold, and predict the external patients.

    Args:
        folds: per patient, 0..n_folds-1 for labelled development patients, -1 otherwise.
        run_dir: where fold checkpoints go (``checkpoints/<model>/fold<k>``); enables resume.
        adapt_min_patients: finetune mode with ``harmonization.method: adabn``: each fold model
            scores every external center with at least this many patients after AdaBN on that
            center's images (:mod:`radiopath.shift.adabn`); development predictions never are.
    """
    for m in spec.modalities:
        if m not in inputs.modalities:
            raise ConfigError(f"model '{spec.name}' needs {m} inputs, but no patient has them")
    # a unimodal model sees the patients with its modality; a fusion model everyone (flagged)
    usable = usable_patients(spec.modalities, inputs)
    labelled_dev = (folds >= 0) & usable
    oof = np.full(len(inputs), np.nan)
    per_fold: list[np.ndarray] = []
    adaptation: list[dict[str, Any]] | None = None
    to_ensemble = usable & (folds < 0)
    n_folds = int(folds.max()) + 1
    for k in range(n_folds):
        train_idx = np.flatnonzero(labelled_dev & (folds != k))
        test_idx = np.flatnonzero(labelled_dev & (folds == k))
        fit_idx, val_idx = inner_split(
            train_idx, inputs.label, train.inner_val_fraction, stable_seed(protocol.seed, "inner", k)
        )
        torch.manual_seed(stable_seed(protocol.seed, spec.name, k))
        model = make_model(spec)
        ckpt = run_dir / "checkpoints" / spec.name / f"fold{k}" if run_dir is not None else None
        if spec.head == "signature":
            result = fit_signature_fold(
                model, inputs, train_idx, stable_seed(protocol.seed, spec.name, k), ckpt
            )  # type: ignore[arg-type]
        else:
            result = train_fold(
                model,
                inputs,
                fit_idx,
                val_idx,
                train,
                stable_seed(protocol.seed, spec.name, k, "loop"),
                compute,
                ckpt,
                augment,
            )
        oof[test_idx] = predict(model, inputs, test_idx, compute)
        if to_ensemble.any() and adapt_min_patients is not None and model.backbones:
            from radiopath.shift.adabn import adapted_fold_predictions

            model.backbone_amp = compute.amp_dtype
            probs, adaptation = adapted_fold_predictions(
                [model], inputs, np.flatnonzero(to_ensemble), compute.device, adapt_min_patients
            )
            per_fold.append(probs[0])
        elif to_ensemble.any():
            per_fold.append(predict(model, inputs, np.flatnonzero(to_ensemble), compute))
        if progress and spec.head == "signature":
            progress(f"{spec.name} fold {k + 1}/{n_folds}: signature fitted")
        elif progress:
            progress(
                f"{spec.name} fold {k + 1}/{n_folds}: best epoch {result.best_epoch + 1}, "
                f"val loss {result.best_val_loss:.3f}"
            )
    ensemble = np.full(len(inputs), np.nan)
    if to_ensemble.any():
        ensemble[to_ensemble] = fold_mean(np.stack(per_fold))
    threshold = choose_threshold(
        inputs.label[labelled_dev], oof[labelled_dev], protocol.threshold_rule, protocol.target_sensitivity
    )
    frames = [
        prediction_frame(spec, inputs, np.flatnonzero(labelled_dev), oof, folds, threshold),
        prediction_frame(spec, inputs, np.flatnonzero(to_ensemble), ensemble, None, threshold),
    ]
    return ModelOutcome(spec, pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS], threshold, adaptation)


def prediction_frame(
    spec: ModelSpec,
    inputs: PatientInputs,
    idx: np.ndarray,
    prob: np.ndarray,
    folds: np.ndarray | None,
    threshold: float,
) -> pd.DataFrame:
    """Rows of ``predictions.parquet`` for patients ``idx`` (``folds`` None: the fold ensemble, -1)."""
    seen, missing = modality_presence(spec.modalities, inputs, idx)
    return pd.DataFrame(
        {
            "patient_id": inputs.patient_id[idx],
            "center": inputs.center[idx],
            "cohort": inputs.cohort[idx],
            "model": spec.name,
            "fold": folds[idx] if folds is not None else np.full(len(idx), -1),
            "prob": prob[idx],
            "label": inputs.label[idx],
            "threshold": threshold,
            "modalities": seen,
            "missing_modality": missing,
        }
    )
