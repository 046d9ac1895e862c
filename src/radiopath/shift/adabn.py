"""AdaBN: label-free adaptation of finetuned backbones to each center's images (finetune mode).

Li, Wang, Shi, Hou & Liu, "Adaptive Batch Normalization for practical domain adaptation",
Pattern Recognition 80 (2018): a network trained on one domain keeps its weights, and only the
running mean and variance of its BatchNorm layers are re-estimated on the target domain's
images. Here the target domain is one center: before a fold model scores a center's patients,
a copy of it gets BatchNorm statistics computed from that center's own unlabelled images —
every present view and tile of the patients it is about to score, never padding — and scores
them with it. Like per-center feature harmonisation (:mod:`radiopath.shift.harmonize`) it is
transductive and needs a minimum number of patients per center: a smaller center is scored by
the unadapted model, and every decision is recorded.

Backbones without BatchNorm (most ViTs, ConvNeXt's LayerNorm) have nothing to adapt; the
record says so.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from radiopath.models.inference import fold_mean, predict_proba

#: Images per backbone pass while the statistics are gathered.
BATCH_IMAGES = 64
METHOD = "adabn"


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    backbones = getattr(model, "backbones", None)
    if backbones is None:
        return []
    return [m for m in backbones.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the model's backbones have BatchNorm statistics to adapt."""
    return bool(_batchnorms(model))


@torch.no_grad()
def adapt_batchnorm(model: Any, inputs: Any, index: np.ndarray, device: torch.device) -> Any:
    """A copy of ``model`` whose backbones' BatchNorm running statistics are those of the
    present images of patients ``index`` (cumulative average over all of them, no gradients,
    weights unchanged); ``model`` itself is untouched."""
    adapted = copy.deepcopy(model).eval().to(device)
    norms = _batchnorms(adapted)
    if not norms:
        return adapted
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every image counts equally
        bn.train()
    for m in adapted.backbones:
        if m not in inputs.arrays:
            continue
        # near-equal chunks: the cumulative average weighs every chunk alike, so every image counts
        # (almost exactly) the same
        total = int(np.asarray(inputs.arrays[f"{m}_mask"])[index].astype(bool).sum())
        sizes = [len(c) for c in np.array_split(np.arange(total), max(1, -(-total // BATCH_IMAGES)))]
        pending: list[torch.Tensor] = []
        for start in range(0, len(index), 8):
            batch = inputs.batch(index[start : start + 8], [m], device)
            pending.append(batch[m][batch[f"{m}_mask"].bool()])  # present views or tiles, never padding
            images = torch.cat(pending)
            while sizes and len(images) >= sizes[0]:
                chunk, images = images[: sizes[0]], images[sizes.pop(0) :]
                if len(chunk) >= 2:  # BatchNorm in train mode needs two values per channel
                    adapted._backbone_features(m, chunk.unsqueeze(0))  # the model's own input path
            pending = [images]
    for bn in norms:
        bn.eval()
    return adapted


def adapted_fold_predictions(
    models: Sequence[Any],
    inputs: Any,
    index: np.ndarray,
    device: torch.device,
    min_patients: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Per fold model, the probabilities of patients ``index`` (``(n_folds, n)``), each center
    with at least ``min_patients`` of them scored by the model adapted to that center (AdaBN),
    the others by the model as trained; and the record of what was done per center."""
    centers = np.asarray(inputs.center).astype(str)[index]
    out = np.zeros((len(models), len(index)))
    record: list[dict[str, Any]] = []
    bn = bool(models) and has_batchnorm(models[0])
    for c in sorted(set(centers)):
        rows = np.flatnonzero(centers == c)
        adapt = bn and len(rows) >= min_patients
        for k, model in enumerate(models):
            scorer = adapt_batchnorm(model, inputs, index[rows], device) if adapt else model
            out[k, rows] = predict_proba(scorer, inputs, index[rows], device)
        record.append(
            {
                "center": c,
                "modality": "all backbones",
                "patients": len(rows),
                "adjusted": bool(adapt),
                "source": (
                    "BatchNorm statistics of this center's own images"
                    if adapt
                    else "the backbones have no BatchNorm"
                    if not bn
                    else f"fewer than {min_patients} patients: scored as trained"
                ),
            }
        )
    return out, record


def adapted_ensemble(
    models: Sequence[Any], inputs: Any, index: np.ndarray, device: torch.device, min_patients: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """:func:`adapted_fold_predictions` and their fold mean, as
    :func:`~radiopath.models.inference.ensemble_proba` gives them without adaptation."""
    per_fold, record = adapted_fold_predictions(models, inputs, index, device, min_patients)
    return fold_mean(per_fold), per_fold, record
