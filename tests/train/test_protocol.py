"""The protocol: out-of-fold internal validation, frozen threshold, external never seen."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from feature_inputs import feature_cohort
from radiopath.compute import plan
from radiopath.evaluate.threshold import choose_threshold
from radiopath.models.model import RadiopathModel
from radiopath.run_config import HeadConfig, ModelSpec, ProtocolConfig, TrainConfig
from radiopath.train.protocol import run_model

CPU = plan("cpu", "fp32")
FAST = TrainConfig(epochs=25, min_epochs=5, patience=6, batch_size=16)


def _run(inputs, folds, name="fusion_concat", protocol=None):  # type: ignore[no-untyped-def]
    spec = ModelSpec.preset(name)
    return run_model(
        spec,
        lambda s: RadiopathModel(s, HeadConfig(), inputs.in_dims()),
        inputs,
        folds,
        FAST,
        protocol or ProtocolConfig(),
        CPU,
    )


def test_every_development_patient_is_predicted_once_out_of_fold() -> None:
    inputs, folds, oracle = feature_cohort()
    out = _run(inputs, folds)
    pred = out.predictions
    dev = pred[pred["cohort"] == "development"]
    assert sorted(dev["patient_id"]) == sorted(inputs.patient_id[:110])
    assert (dev["fold"].to_numpy() == folds[np.searchsorted(inputs.patient_id, dev["patient_id"])]).all()
    ext = pred[pred["cohort"] == "external"]
    assert len(ext) == 50 and (ext["fold"] == -1).all()
    assert pred["threshold"].nunique() == 1 and pred["prob"].between(0, 1).all()
    auc = roc_auc_score(dev["label"], dev["prob"])
    oracle_auc = roc_auc_score(inputs.label[:110], oracle[:110])
    assert auc > oracle_auc - 0.12, (auc, oracle_auc)


def test_external_labels_never_influence_anything() -> None:
    inputs, folds, _ = feature_cohort()
    a = _run(inputs, folds)
    flipped = inputs.subset(np.arange(len(inputs)))
    flipped.label[110:] = 1 - flipped.label[110:]  # every external label flipped
    b = _run(flipped, folds)
    assert a.threshold == b.threshold
    np.testing.assert_array_equal(a.predictions["prob"].to_numpy(), b.predictions["prob"].to_numpy())


def test_threshold_is_chosen_on_out_of_fold_predictions() -> None:
    inputs, folds, _ = feature_cohort()
    out = _run(inputs, folds, protocol=ProtocolConfig(threshold_rule="sensitivity", target_sensitivity=0.9))
    dev = out.predictions[out.predictions["fold"] >= 0]
    assert out.threshold == choose_threshold(dev["label"], dev["prob"], "sensitivity", 0.9)
    sens = ((dev["prob"] >= out.threshold) & (dev["label"] == 1)).sum() / (dev["label"] == 1).sum()
    assert sens >= 0.9


def test_unimodal_models_skip_patients_without_their_modality_fusion_flags_them() -> None:
    inputs, folds, _ = feature_cohort(missing_cytology=0.25, seed=1)
    no_slide = set(inputs.patient_id[~inputs.present("cytology")])
    cyto = _run(inputs, folds, "cytology").predictions
    assert no_slide and not (set(cyto["patient_id"]) & no_slide)
    fused = _run(inputs, folds, "fusion_gated").predictions
    flagged = set(fused.loc[fused["missing_modality"], "patient_id"])
    assert flagged == no_slide
    assert set(fused.loc[fused["patient_id"].isin(no_slide), "modalities"]) == {"us"}


@pytest.mark.parametrize("rule", ["youden", "sensitivity"])
def test_threshold_rules_against_brute_force(rule: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    thr = choose_threshold(y, p, rule, 0.8)
    cands = np.unique(p)
    sens = np.array([((p >= t) & (y == 1)).sum() / (y == 1).sum() for t in cands])
    spec = np.array([((p < t) & (y == 0)).sum() / (y == 0).sum() for t in cands])
    if rule == "youden":
        assert sens[cands == thr] + spec[cands == thr] == pytest.approx((sens + spec).max())
    else:
        assert thr == cands[sens >= 0.8].max()
    torch.manual_seed(0)


def test_certain_fold_models_give_an_external_probability_of_exactly_one() -> None:
    """Five models all saying 1.0 must average to 1.0, not 1.0000000149 (float32 fifths)."""
    inputs, folds, _ = feature_cohort()

    class Certain(RadiopathModel):
        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = super().forward(batch)
            return logits * 0 + 40.0  # sigmoid(40) is 1.0 in float32; keeps the graph for training

    out = run_model(
        ModelSpec.preset("cytology"),
        lambda s: Certain(s, HeadConfig(), inputs.in_dims()),
        inputs,
        folds,
        TrainConfig(epochs=2, min_epochs=1, patience=1, batch_size=32),
        ProtocolConfig(),
        CPU,
    )
    ext = out.predictions[out.predictions["cohort"] == "external"]
    assert len(ext) == 50 and (ext["prob"] == 1.0).all()
