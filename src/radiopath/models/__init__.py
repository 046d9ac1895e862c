"""Models: backbone registry, per-modality encoders, fusion registry, the full model, and the
radiomics signature (:mod:`.signature`, torch-free).

The names below are imported on first use, so ``radiopath.models.signature`` imports without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BACKBONES": "radiopath.models.backbones",
    "Backbone": "radiopath.models.backbones",
    "create_backbone": "radiopath.models.backbones",
    "FUSIONS": "radiopath.models.fusion",
    "create_fusion": "radiopath.models.fusion",
    "RadiopathModel": "radiopath.models.model",
    "ModelSpec": "radiopath.run_config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'radiopath.models' has no attribute {name!r}")
