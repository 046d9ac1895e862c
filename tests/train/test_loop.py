"""One-fold training: reproducible, resumable after a kill, early-stopped on inner validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from feature_inputs import feature_cohort
from radiopath.compute import plan
from radiopath.models.model import RadiopathModel
from radiopath.run_config import HeadConfig, ModelSpec, TrainConfig
from radiopath.train.loop import predict, train_fold

CPU = plan("cpu", "fp32")
CFG = TrainConfig(epochs=12, min_epochs=12, patience=50, batch_size=16)


def _train(inputs, ckpt: Path | None, on_epoch=None, seed: int = 3):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = RadiopathModel(ModelSpec.preset("fusion_concat"), HeadConfig(), inputs.in_dims())
    fit, val = np.arange(0, 80), np.arange(80, 110)
    result = train_fold(model, inputs, fit, val, CFG, seed, CPU, ckpt, on_epoch=on_epoch)
    return model, result, predict(model, inputs, np.arange(110, 160), CPU)


def test_same_seed_same_model() -> None:
    inputs, _, _ = feature_cohort()
    _, r1, p1 = _train(inputs, None)
    _, r2, p2 = _train(inputs, None)
    assert np.array_equal(p1, p2) and r1.best_epoch == r2.best_epoch
    _, _, p3 = _train(inputs, None, seed=4)
    assert not np.array_equal(p1, p3)


def test_resume_after_a_kill_ends_with_the_same_predictions(tmp_path: Path) -> None:
    inputs, _, _ = feature_cohort()
    _, full, p_full = _train(inputs, tmp_path / "uninterrupted")

    class Killed(Exception):
        pass

    def kill_at_7(epoch: int, record: dict) -> None:  # type: ignore[type-arg]
        if epoch == 7:
            raise Killed

    with pytest.raises(Killed):
        _train(inputs, tmp_path / "killed", on_epoch=kill_at_7)
    assert (tmp_path / "killed" / "checkpoint.safetensors").exists()
    _, resumed, p_resumed = _train(inputs, tmp_path / "killed")
    assert resumed.epochs_run == full.epochs_run == 12
    assert [h["epoch"] for h in resumed.history] == list(range(12))
    np.testing.assert_allclose(p_resumed, p_full, rtol=0, atol=1e-6)
    # a finished fold is read back, not retrained
    _, _, p_again = _train(inputs, tmp_path / "killed", on_epoch=kill_at_7)
    np.testing.assert_allclose(p_again, p_full, atol=1e-6)


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    inputs, _, _ = feature_cohort(n=160, n_dev=110)
    torch.manual_seed(0)
    model = RadiopathModel(ModelSpec.preset("ultrasound"), HeadConfig(dropout=0.0), inputs.in_dims())
    cfg = TrainConfig(epochs=200, min_epochs=5, patience=5, lr=0.05, batch_size=16)
    result = train_fold(model, inputs, np.arange(80), np.arange(80, 110), cfg, 0, CPU)
    losses = [h["val_loss"] for h in result.history]
    assert result.epochs_run < 200  # stopped early
    assert result.best_epoch == int(np.argmin(losses))
    assert result.epochs_run == result.best_epoch + 1 + 5  # patience epochs after the best
