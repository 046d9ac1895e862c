"""Fusion registry and pooling: shapes, gradients, masks and missing modalities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radiopath.models.fusion import FUSIONS
from radiopath.models.model import PRESETS, RadiopathModel, _drop_modalities
from radiopath.models.pooling import GatedAttentionPool, MeanPool
from radiopath.run_config import HeadConfig, ModelSpec

DIMS = {"us": 12, "cytology": 10, "clinical": 3}


def _batch(b: int = 6, k: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {
        "us": torch.randn(b, 2, DIMS["us"], generator=g),
        "us_mask": torch.ones(b, 2, dtype=torch.bool),
        "cytology": torch.randn(b, k, DIMS["cytology"], generator=g),
        "cytology_mask": torch.ones(b, k, dtype=torch.bool),
        "clinical": torch.randn(b, DIMS["clinical"], generator=g),
        "clinical_mask": torch.ones(b, dtype=torch.bool),
    }
    batch["us_mask"][1, 1] = False  # one view missing
    batch["cytology_mask"][2, 3:] = False  # fewer tiles
    batch["cytology_mask"][3] = False  # no slide at all
    return batch


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("clinical", [False, True])
def test_every_model_gives_one_finite_logit_per_patient_and_learns(name: str, clinical: bool) -> None:
    spec = ModelSpec.preset(name, clinical=clinical)
    torch.manual_seed(0)
    model = RadiopathModel(spec, HeadConfig(), DIMS)
    batch = _batch()
    model.train()
    logits = model(batch)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    logits.sum().backward()
    encoders_with_grad = [
        m
        for m in spec.modalities
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders[m].parameters())
    ]
    assert set(encoders_with_grad) == set(spec.modalities)


@pytest.mark.parametrize("fusion", [f for f in FUSIONS if f != "none"])
def test_a_patient_without_a_slide_still_gets_a_prediction_that_ignores_padding(fusion: str) -> None:
    spec = ModelSpec(name=f"f_{fusion}", modalities=["us", "cytology"], fusion=fusion)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = RadiopathModel(spec, HeadConfig(), DIMS).eval()
    batch = _batch()
    with torch.no_grad():
        before = model(batch)
        batch["cytology"][3] = 1000.0  # garbage behind the mask of the patient without a slide
        batch["cytology"][2, 4] = -1000.0  # and behind a padded tile
        after = model(batch)
    assert torch.isfinite(before[3])
    assert torch.allclose(before, after)


def test_unimodal_models_see_only_their_modality() -> None:
    torch.manual_seed(0)
    model = RadiopathModel(ModelSpec.preset("ultrasound"), HeadConfig(), DIMS).eval()
    batch = _batch()
    with torch.no_grad():
        a = model(batch)
        batch["cytology"] += 5.0
        assert torch.equal(a, model(batch))


def test_gated_attention_pool_weights() -> None:
    torch.manual_seed(0)
    pool = GatedAttentionPool(8)
    x = torch.randn(3, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    z, w = pool(x, mask)
    assert torch.allclose(w.sum(1), torch.tensor([1.0, 1.0, 0.0]))
    assert (w[~mask] == 0).all() and torch.equal(z[2], torch.zeros(8))
    z_mean, w_mean = MeanPool()(x, mask)
    assert torch.allclose(z_mean[0], x[0, :2].mean(0))
    assert torch.allclose(w_mean.sum(1), torch.tensor([1.0, 1.0, 0.0]))


def test_modality_dropout_never_hides_every_modality() -> None:
    torch.manual_seed(0)
    present = {"us": torch.ones(5000, dtype=torch.bool), "cytology": torch.rand(5000) < 0.7}
    kept = _drop_modalities(present, p=0.9)
    assert (kept["us"] | kept["cytology"]).all()
    both = present["us"] & present["cytology"]
    dropped = both & ~(kept["us"] & kept["cytology"])
    assert 0.85 < dropped.sum() / both.sum() < 0.95  # p of the patients with both lose one
    assert not (kept["cytology"] & ~present["cytology"]).any()  # never invents a modality


def test_input_statistics_come_from_the_training_patients_only() -> None:
    torch.manual_seed(0)
    model = RadiopathModel(ModelSpec.preset("fusion_concat", clinical=True), HeadConfig(pca_dim=4), DIMS)
    batch = _batch()
    batch["clinical"][0, 0] = float("nan")
    arrays = {k: v.numpy() for k, v in batch.items()}
    train = np.array([0, 1, 2, 4])  # patient 3 and 5 are held out
    model.fit_standardizers(arrays, train)
    present = arrays["us"][train][arrays["us_mask"][train]]
    np.testing.assert_allclose(model.standardize["us"].parts[0].mean.numpy(), present.mean(0), atol=1e-6)
    assert torch.isfinite(model.standardize["clinical"].parts[0].mean).all()
    # held-out patients never shape the statistics: change them, refit, same buffers
    arrays["us"][3] += 100.0
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("standardize.")}
    model.fit_standardizers(arrays, train)
    for k, v in model.state_dict().items():
        if k.startswith("standardize."):
            assert torch.equal(v, before[k]), k
    # the projection keeps pca_dim orthonormal axes
    comp = model.standardize["us"].parts[0].components
    assert comp.shape == (DIMS["us"], 4)
    torch.testing.assert_close(comp.T @ comp, torch.eye(4), atol=1e-5, rtol=0)


def test_heads_run_in_fp32_even_under_autocast() -> None:
    """Heads on cached features compute in fp32 whatever the backbones' precision."""
    torch.manual_seed(0)
    model = RadiopathModel(ModelSpec.preset("fusion_gated"), HeadConfig(), DIMS).eval()
    model.backbone_amp = torch.bfloat16
    with torch.no_grad():
        logits = model(_batch())
    assert logits.dtype == torch.float32
