"""A registry of image backbones with timm's seam: unpooled feature maps, then the head.

Like timm (``timm/models/_registry.py``, ``timm/models/resnet.py``), each entry point is a
small function, and every backbone splits

* ``forward_features(x) -> (B, C, h, w)`` — the unpooled map of the last stage (what Grad-CAM
  explains), from
* ``forward_head(fmap) -> (B, C)`` — global average pooling (what feature extraction and the
  heads consume); ``forward(x)`` is the two in a row.

Each entry carries its own input normalisation (``mean``/``std``, applied inside the module,
so callers pass float images in ``[0, 1]`` and a saved model carries its preprocessing) and
``target_layer``: the dotted name of its last convolutional block, the default Grad-CAM
target; :meth:`Backbone.layer_names` lists the coarser-to-finer alternatives.
torchvision's ResNet-18/34/50/101/152 (He et al., CVPR 2016) are built in — ResNet-101 is the
study's choice — and any timm model is accepted as ``timm:<name>`` when timm is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from radiopath.errors import ConfigError
from radiopath.models import weights as W

#: ImageNet normalisation of the torchvision ResNets (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A feature extractor: float images in ``[0, 1]`` in, feature maps or pooled vectors out.

    Attributes:
        body: the network up to its last stage (no pooling, no classifier).
        num_features: channels of the last stage (= pooled feature size).
        name: the registry name.
        target_layer: dotted module name (within this module) of the last convolutional block.
    """

    def __init__(
        self,
        body: nn.Module,
        num_features: int,
        name: str,
        mean: Sequence[float],
        std: Sequence[float],
        target_layer: str,
        stages: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.body = body
        self.num_features = num_features
        self.name = name
        self.target_layer = target_layer
        self.stages = tuple(stages)
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] → the unpooled (B, C, h, w) map of the last stage."""
        return self.body((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) → (B, C) by global average pooling."""
        return fmap.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] → pooled (B, C) features."""
        return self.forward_head(self.forward_features(x))

    def layer(self, name: str | None = None) -> nn.Module:
        """The submodule ``name`` (default: :attr:`target_layer`).

        Raises:
            ConfigError: no such layer (the message lists :meth:`layer_names`).
        """
        name = name or self.target_layer
        try:
            return self.get_submodule(name)
        except AttributeError:
            raise ConfigError(
                f"backbone {self.name} has no layer '{name}'; choose one of {self.layer_names()}"
            ) from None

    def layer_names(self) -> list[str]:
        """Candidate Grad-CAM layers, finest (earliest stage) to coarsest (the default)."""
        return (
            [*self.stages, self.target_layer] if self.target_layer not in self.stages else list(self.stages)
        )


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without its pooling and classifier (parameter names unchanged)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(resnet, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: how to build it from a weights choice."""

    name: str
    build: Callable[[str], Backbone]


BACKBONES: dict[str, BackboneEntry] = {}


def register(name: str) -> Callable[[Callable[[str], Backbone]], Callable[[str], Backbone]]:
    """Decorator: register an entry point ``fn(weights) -> Backbone`` under ``name``."""

    def deco(fn: Callable[[str], Backbone]) -> Callable[[str], Backbone]:
        BACKBONES[name] = BackboneEntry(name, fn)
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
    last = len(model.layer4) - 1
    stages = [f"body.layer{i}" for i in (2, 3)] + ["body.layer4"]
    return Backbone(
        ResNetTrunk(model), dim, arch, IMAGENET_MEAN, IMAGENET_STD, f"body.layer4.{last}", stages=stages
    )


for _arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    register(_arch)(lambda weights, _a=_arch: _torchvision_resnet(_a, weights))


class _TimmBody(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _timm_backbone(name: str, weights: str) -> Backbone:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"backbone 'timm:{name}' needs timm: pip install timm") from None
    if weights == W.IMAGENET:
        raise ConfigError("timm backbones load pretrained weights from a file here: pass --weights PATH")
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        raise ConfigError(f"timm has no model '{name}' ({exc})") from None
    if weights != W.NONE:
        W.apply_file_weights(model, weights)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    info = getattr(model, "feature_info", None)
    modules = [f"body.model.{i['module']}" for i in info] if info else []
    target = modules[-1] if modules else "body.model"
    return Backbone(
        _TimmBody(model),
        int(model.num_features),
        f"timm:{name}",
        cfg.get("mean", IMAGENET_MEAN),
        cfg.get("std", IMAGENET_STD),
        target,
        stages=modules[-3:],
    )


def create_backbone(name: str = "resnet101", weights: str = W.NONE) -> Backbone:
    """Build a registered backbone (or ``timm:<name>``) with ``none``/``imagenet``/file weights.

    Raises:
        ConfigError: unknown name (the message lists the registry), or weights unavailable.
    """
    if name.startswith("timm:"):
        return _timm_backbone(name.split(":", 1)[1], weights)
    check_backbone_name(name)
    return BACKBONES[name].build(weights)


def check_backbone_name(name: str) -> None:
    """Raise :class:`ConfigError` naming the registry unless ``name`` is registered or ``timm:…``."""
    if name.startswith("timm:") and len(name) > 5:
        return
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{name}'; choose one of {sorted(BACKBONES)} or 'timm:<name>'")
