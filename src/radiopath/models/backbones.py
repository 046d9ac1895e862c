"""A registry of image backbones that turn a batch of images into pooled feature vectors.

Like timm's ``_registry``: each entry point is a small function; every backbone exposes
``forward_features(x) -> (B, D)`` (global-average-pooled) and ``num_features``. torchvision's
ResNet-18/34/50/101/152 (He et al., 2016) are built in — ResNet-101 is the study's choice —
and any timm model name is accepted as ``timm:<name>`` when timm is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from radiopath.errors import ConfigError
from radiopath.models import weights as W

#: ImageNet normalisation every registered backbone expects (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A feature extractor: uint8-range images in, pooled features out.

    Normalisation lives inside the module, so callers pass ``float`` images in ``[0, 1]``
    and saved models carry their own preprocessing.
    """

    def __init__(self, body: nn.Module, num_features: int, name: str) -> None:
        super().__init__()
        self.body = body
        self.num_features = num_features
        self.name = name
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] → (B, D)."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


BackboneFactory = Callable[[str], Backbone]
BACKBONES: dict[str, BackboneFactory] = {}


def register(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    def deco(fn: BackboneFactory) -> BackboneFactory:
        BACKBONES[name] = fn
        return fn

    return deco


def _torchvision_resnet(arch: str, weights: str) -> Backbone:
    import torchvision.models as tvm

    enum_cls = tvm.get_model_weights(arch)
    tv_weights = W.imagenet_weights(enum_cls) if weights == W.IMAGENET else None
    model = tvm.get_model(arch, weights=tv_weights)
    if weights not in (W.NONE, W.IMAGENET):
        W.apply_file_weights(model, weights)
    dim = model.fc.in_features
    model.fc = nn.Identity()
    return Backbone(model, dim, arch)


for _arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    register(_arch)(lambda weights, _a=_arch: _torchvision_resnet(_a, weights))


def _timm_backbone(name: str, weights: str) -> Backbone:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"backbone 'timm:{name}' needs timm: pip install timm") from None
    if weights == W.IMAGENET:
        raise ConfigError("timm backbones load pretrained weights from a file here: pass --weights PATH")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if weights != W.NONE:
        W.apply_file_weights(model, weights)
    return Backbone(model, int(model.num_features), f"timm:{name}")


def create_backbone(name: str = "resnet101", weights: str = W.NONE) -> Backbone:
    """Build a registered backbone (or ``timm:<name>``) with ``none``/``imagenet``/file weights.

    Raises:
        ConfigError: unknown name (the message lists the registry), or weights unavailable.
    """
    if name.startswith("timm:"):
        return _timm_backbone(name.split(":", 1)[1], weights)
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{name}'; choose one of {sorted(BACKBONES)} or 'timm:<name>'")
    return BACKBONES[name](weights)
