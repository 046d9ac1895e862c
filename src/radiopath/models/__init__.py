"""Models: backbone registry, per-modality encoders, fusion registry, the full model, and the
radiomics signature (:mod:`.signature`, torch-free).

The names below are imported on first use, so ``radiopath.models.signature`` imports without torch.
"""

from __future__ import annotations

from radiopath.lazy import lazy_exports

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

__getattr__ = lazy_exports("radiopath.models", _EXPORTS)
