"""The signature as a fold model: its torch forward is the scikit-learn signature's score, its
weights round-trip through safetensors, and it only ever sees its training fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from feature_inputs import feature_cohort
from radiopath.models import checkpoint as ckpt_io
from radiopath.models.factory import build_model
from radiopath.models.signature import RadiomicsSignature
from radiopath.models.signature_head import SignatureModel, patient_vectors
from radiopath.run_config import ModelSpec, RunConfig


def _fitted(inputs, idx: np.ndarray) -> SignatureModel:  # type: ignore[no-untyped-def]
    cfg = RunConfig()
    cfg.model.signature.n_bags = 5
    spec = ModelSpec.preset("fusion_signature")
    model = build_model(spec, cfg, inputs.in_dims())
    assert isinstance(model, SignatureModel)
    names = [f"{m}:{i}" for m in spec.modalities for i in range(inputs.arrays[m].shape[-1])]
    model.fit(inputs.arrays, inputs.label, idx, names, seed=3)
    return model


def test_the_torch_forward_is_the_signature_score_with_missing_inputs() -> None:
    inputs, _, _ = feature_cohort(n=120, n_dev=90, dim=6, k=4, missing_cytology=0.2)
    inputs.arrays["us"][5, 1] = np.nan  # a measurement that failed on one view
    train = np.arange(90)
    model = _fitted(inputs, train)
    ref = RadiomicsSignature.from_state(model.state_json)
    x = patient_vectors(inputs.arrays, ["us", "cytology"], np.arange(120))
    assert np.isnan(x[~inputs.present("cytology")][:, 6:]).all()  # no slide: NaN, filled by the median
    with torch.no_grad():
        logits = model(inputs.batch(np.arange(120), ["us", "cytology"], torch.device("cpu"))).double().numpy()
    np.testing.assert_allclose(logits, ref.decision_function(x), rtol=0, atol=1e-5)
    assert ref.selected_features() and all(
        name.split(":")[0] in {"us", "cytology"} for name, *_ in ref.selected_features()
    )


def test_weights_round_trip_and_external_patients_never_shape_the_fit(tmp_path: Path) -> None:
    inputs, _, _ = feature_cohort(n=120, n_dev=90, dim=6, k=4)
    model = _fitted(inputs, np.arange(90))
    ckpt_io.save_weights(tmp_path / "w.safetensors", model)
    again = build_model(ModelSpec.preset("fusion_signature"), RunConfig(), inputs.in_dims())
    ckpt_io.load_weights(again, tmp_path / "w.safetensors")
    batch = inputs.batch(np.arange(120), ["us", "cytology"], torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(model(batch), again(batch))
    moved = inputs.subset(np.arange(120))
    moved.arrays["us"][90:] += 50.0  # external patients' features: nothing fitted may move
    moved.label[90:] = 1 - moved.label[90:]
    other = _fitted(moved, np.arange(90))
    for name in ("median", "mean", "scale", "coef", "intercept"):
        torch.testing.assert_close(getattr(other, name), getattr(model, name))
