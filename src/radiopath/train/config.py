"""Moved to :mod:`radiopath.run_config` (importable without torch); kept for existing imports."""

from radiopath.modalities.cytology import CytologyConfig
from radiopath.run_config import (
    DEFAULT_MODELS,
    HeadConfig,
    ModelConfig,
    ModelSpec,
    ProtocolConfig,
    RunConfig,
    TrainConfig,
    fast_profile,
)

__all__ = [
    "DEFAULT_MODELS",
    "CytologyConfig",
    "HeadConfig",
    "ModelConfig",
    "ModelSpec",
    "ProtocolConfig",
    "RunConfig",
    "TrainConfig",
    "fast_profile",
]
