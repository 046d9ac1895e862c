"""Models: backbone registry, per-modality encoders, fusion registry and the full model."""

from radiopath.models.backbones import BACKBONES, Backbone, create_backbone
from radiopath.models.fusion import FUSIONS, create_fusion
from radiopath.models.model import ModelSpec, RadiopathModel

__all__ = [
    "BACKBONES",
    "FUSIONS",
    "Backbone",
    "ModelSpec",
    "RadiopathModel",
    "create_backbone",
    "create_fusion",
]
