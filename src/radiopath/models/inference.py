"""Scoring patients with one model or a fold ensemble — the one code path for both.

The protocol scores external patients with :func:`ensemble_proba` and the run-loading API
scores new patients with the same function, so a loaded run reproduces the external
predictions of ``predictions.parquet`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from radiopath.compute import threads
from radiopath.models.model import RadiopathModel


@torch.inference_mode()
def predict_proba(
    model: RadiopathModel, inputs: Any, index: np.ndarray, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Probabilities (float64) for patients ``index`` of a ``PatientInputs`` (eval mode)."""
    model.eval().to(device)
    mods = list(model.spec.modalities)
    out = []
    with threads(1 if len(model.backbones) == 0 and device.type == "cpu" else None):
        for start in range(0, len(index), batch_size):
            batch = inputs.batch(index[start : start + batch_size], mods, device)
            out.append(torch.sigmoid(model(batch).float()).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def ensemble_proba(
    models: Sequence[RadiopathModel], inputs: Any, index: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability of the fold models and each fold's probabilities ``(n_folds, n)``.

    The mean is summed in float64 and divided once: float32 fifths (0.2000000030) would let
    five certain models average to 1.0000000149.
    """
    per_fold = (
        np.stack([predict_proba(m, inputs, index, device) for m in models])
        if models
        else np.zeros((0, len(index)))
    )
    return fold_mean(per_fold), per_fold


def fold_mean(per_fold: np.ndarray) -> np.ndarray:
    """The ensemble probability from ``(n_folds, n)`` fold probabilities (float64, clipped to [0, 1])."""
    total = np.zeros(per_fold.shape[1], np.float64)
    for row in per_fold:  # in fold order, so every caller adds in the same order
        total += row
    return np.clip(total / max(len(per_fold), 1), 0.0, 1.0)


def usable_patients(model_modalities: Sequence[str], inputs: Any) -> np.ndarray:
    """Patients a model scores: a single-modality model those with its modality; a fusion model
    everyone with at least one of its image modalities (a missing one is flagged)."""
    from radiopath.modalities import MODALITIES, ImageModality

    images = [m for m in model_modalities if isinstance(MODALITIES[m], ImageModality)] or list(
        model_modalities
    )
    return np.logical_or.reduce([inputs.present(m) for m in images])


def modality_presence(
    model_modalities: Sequence[str], inputs: Any, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For patients ``idx``: which of the model's modalities were present (``us+cytology``) and
    whether any was missing."""
    present = {m: inputs.present(m)[idx] for m in model_modalities}
    if not len(idx):
        return np.zeros(0, object), np.zeros(0, bool)
    missing = ~np.logical_and.reduce([present[m] for m in model_modalities])
    seen = np.asarray(
        ["+".join(m for m in model_modalities if present[m][i]) for i in range(len(idx))], object
    )
    return seen, missing
