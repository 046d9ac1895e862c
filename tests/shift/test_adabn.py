"""AdaBN in finetune mode: each external center scored with BatchNorm statistics of its own images.

The statistics are those of the center's present images (padding never counts), the model's
weights and the original model are untouched, development patients are scored as trained, the
run records what it did, the loaded run scores a table the same way, and a mode the method does
not fit is refused before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from radiopath.cohort import Cohort
from radiopath.errors import ConfigError
from radiopath.models.inference import predict_proba
from radiopath.preflight import check_options
from radiopath.report.shift import robustness_paragraph
from radiopath.runs import load_run
from radiopath.shift.adabn import adapt_batchnorm
from radiopath.synth import SynthConfig, synthesize
from radiopath.train.run import train_run
from runconfigs import tiny


class _Net(nn.Module):
    """A model with one BatchNorm backbone on the ultrasound, in the RadiopathModel shape."""

    def __init__(self) -> None:
        super().__init__()
        self.backbones = nn.ModuleDict({"us": nn.Sequential(nn.Flatten(), nn.BatchNorm1d(3))})
        self.backbone_amp = None

    def _backbone_features(self, m: str, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        return self.backbones[m](x.flatten(0, 1).float().mean((1, 2))).reshape(b, n, -1)


class _Inputs:
    def __init__(self, images: np.ndarray, mask: np.ndarray) -> None:
        self.arrays = {"us": images, "us_mask": mask}

    def batch(self, index: np.ndarray, mods: list[str], device: torch.device) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v[index]).to(device) for k, v in self.arrays.items()}


def test_the_statistics_are_the_centers_present_images_only() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(5.0, 2.0, (10, 2, 4, 4, 3)).astype(np.float32)  # 10 patients, 2 views
    mask = np.ones((10, 2), bool)
    mask[::2, 1] = False
    images[~mask] = 0.0  # padding, as PatientInputs holds it
    model = _Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt_batchnorm(model, _Inputs(images, mask), np.arange(10), torch.device("cpu"))
    bn = adapted.backbones["us"][1]
    present = images[mask].mean((1, 2))  # what the backbone's BatchNorm sees per present view
    np.testing.assert_allclose(bn.running_mean.numpy(), present.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), present.var(0, ddof=1), rtol=1e-4)
    assert not bn.training and bn.momentum is None
    for k, v in model.state_dict().items():  # the trained model is untouched
        torch.testing.assert_close(v, before[k])
    for k in ("weight", "bias"):
        torch.testing.assert_close(getattr(bn, k), getattr(model.backbones["us"][1], k))


def test_harmonization_must_fit_the_mode(tmp_path: Path) -> None:
    cfg = tiny(tmp_path)
    cfg.harmonization.method = "adabn"
    with pytest.raises(ConfigError, match=r"adabn.*features"):
        check_options(cfg)
    cfg.train.mode = "finetune"
    check_options(cfg)
    cfg.harmonization.method = "combat"
    with pytest.raises(ConfigError, match=r"combat.*finetune.*adabn"):
        check_options(cfg)


@pytest.mark.slow
def test_a_finetune_run_adapts_each_external_center_and_says_so(tmp_path: Path) -> None:
    cohort = synthesize(tmp_path / "c", SynthConfig(patients=36, seed=11, slide_um=400, workers=2))
    cfg = tiny(tmp_path / "cache", mode="finetune", epochs=2, min_epochs=2, batch_size=8)
    cfg.model.models = ["ultrasound"]
    cfg.harmonization.method = "adabn"
    cfg.harmonization.min_patients = 5
    run_dir = tmp_path / "run"
    train_run(cohort.manifest, run_dir, cfg)
    record = json.loads((run_dir / "adabn.json").read_text())
    rows = {r["center"]: r for r in record["models"]["ultrasound"]}
    assert record["method"] == "adabn" and set(rows) == {"Hospital B", "Hospital C"}
    assert all(r["adjusted"] and r["patients"] >= 5 for r in rows.values())

    run = load_run(run_dir)
    pred = run.predictions
    models = run.fold_models("ultrasound", torch.device("cpu"))
    inputs = run.inputs(Cohort.from_manifest(cohort.manifest).table)
    ids = list(inputs.patient_id)
    dev = pred[pred["fold"] >= 0]
    for k, model in enumerate(models):  # development patients: out-of-fold, as trained
        mine = dev[dev["fold"] == k]
        idx = np.array([ids.index(p) for p in mine["patient_id"]])
        np.testing.assert_allclose(
            predict_proba(model, inputs, idx, torch.device("cpu")), mine["prob"], atol=1e-6
        )
    ext = pred[pred["fold"] < 0]
    idx = np.array([ids.index(p) for p in ext["patient_id"]])
    plain = np.mean([predict_proba(m, inputs, idx, torch.device("cpu")) for m in models], 0)
    assert np.abs(plain - ext["prob"].to_numpy()).max() > 1e-4  # the external centers were adapted
    # the loaded run scores them as the protocol did
    again = run.score("ultrasound", inputs.subset(idx))
    np.testing.assert_allclose(again["prob"], ext["prob"], atol=1e-6)
    assert {r["center"] for r in run.last_harmonization if r["adjusted"]} == {"Hospital B", "Hospital C"}
    text = robustness_paragraph(run.config, run_dir)
    assert "AdaBN" in text and "transductive" in text and "Hospital B" in text
