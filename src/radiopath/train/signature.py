"""Fitting a radiomics-signature fold model inside the protocol (no epochs, no inner split:
the signature's own inner cross-validation chooses its penalty on the training folds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from radiopath.io.atomic import write_text
from radiopath.modalities import MODALITIES
from radiopath.models import checkpoint as ckpt_io
from radiopath.models.inputs import PatientInputs
from radiopath.models.signature_head import SignatureModel
from radiopath.train.loop import FoldResult

#: The fitted signature of a fold, beside its weights (what the report lists).
SIGNATURE_FILE = "signature.json"


def fit_signature_fold(
    model: SignatureModel, inputs: PatientInputs, train_idx: np.ndarray, seed: int, ckpt_dir: Path | None
) -> FoldResult:
    """Fit ``model`` on ``train_idx`` (or read it back from ``ckpt_dir`` when done before)."""
    if ckpt_dir is not None and (ckpt_dir / ckpt_io.BEST).is_file() and (ckpt_dir / SIGNATURE_FILE).is_file():
        ckpt_io.load_weights(model, ckpt_dir / ckpt_io.BEST)
        model.state_json = json.loads((ckpt_dir / SIGNATURE_FILE).read_text(encoding="utf-8"))
        return FoldResult(0, float("nan"), 1)
    names = []
    for m in model.spec.modalities:
        label = MODALITIES[m].label
        dim = inputs.arrays[m].shape[-1]
        own = inputs.feature_names.get(m) or [f"{m}_{i}" for i in range(dim)]
        names += [f"{label}:{n}" for n in own]
    model.fit(inputs.arrays, inputs.label, train_idx, names, seed)
    if ckpt_dir is not None:
        ckpt_io.save_weights(ckpt_dir / ckpt_io.BEST, model)
        write_text(ckpt_dir / SIGNATURE_FILE, json.dumps(model.state_json, indent=1))
    return FoldResult(0, float("nan"), 1)
