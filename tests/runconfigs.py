"""Run configurations for tests (importable from any test module)."""

from __future__ import annotations

from pathlib import Path

from radiopath.run_config import RunConfig


def tiny(cache: Path, **train: object) -> RunConfig:
    """A run that takes seconds: ResNet-18 on 32-px inputs, 4 tiles, 3 folds, three models, deep
    features only, and no augmented feature passes (the handcrafted families and the passes
    multiply extraction; the tests that need them — the hybrid run, the three-stage identity,
    tests/features — ask for them)."""
    cfg = RunConfig()
    cfg.model.backbone = "resnet18"
    cfg.model.feature_set = "deep"
    cfg.model.weights = "none"
    cfg.model.models = ["ultrasound", "cytology", "fusion_concat"]
    cfg.model.head.dropout = 0.0
    cfg.model.head.modality_dropout = 0.0
    cfg.ultrasound.size = 32
    cfg.cytology.input_size = 32
    cfg.cytology.tiling.top_k = 4
    cfg.protocol.n_folds = 3
    cfg.train.epochs = 8
    cfg.train.min_epochs = 8
    cfg.train.augment_passes = 0
    cfg.cache_dir = str(cache)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def extraction_config(cache: Path, feature_set: object = "deep") -> RunConfig:
    """Extraction in seconds: ResNet-18 with random weights on 32-px inputs, 3 tiles per slide."""
    cfg = RunConfig()
    cfg.model.backbone = "resnet18"
    cfg.model.weights = "none"
    cfg.ultrasound.size = 32
    cfg.cytology.input_size = 32
    cfg.cytology.tiling.top_k = 3
    cfg.model.feature_set = feature_set  # type: ignore[assignment]
    cfg.cache_dir = str(cache)
    return cfg
