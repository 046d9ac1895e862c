"""Building a study model from the configuration: the one factory for training and loading.

Features mode: encoders and fusion on cached features (the backbone lives in the feature
stage). Finetune mode: the same plus one backbone per image modality (or one shared), which
training starts from ``model.weights`` and loading fills from the checkpoint.
"""

from __future__ import annotations

import torch

from radiopath.modalities import MODALITIES, ImageModality
from radiopath.models.backbones import Backbone, create_backbone
from radiopath.models.model import RadiopathModel
from radiopath.models.weights import NONE
from radiopath.run_config import ModelSpec, RunConfig


def build_model(
    spec: ModelSpec,
    cfg: RunConfig,
    in_dims: dict[str, int],
    *,
    blocks: dict[str, list[tuple[str, int, int]]] | None = None,
    channels_last: bool = True,
    init_weights: str | None = None,
) -> RadiopathModel:
    """The model ``spec`` of a run with configuration ``cfg``.

    Args:
        in_dims: per modality, the size of one instance's input vector (features mode) or
            of the clinical vector.
        blocks: per modality, the feature families' column ranges (a hybrid feature set);
            each is standardised and projected on its own.
        init_weights: finetune mode: the backbones' starting weights (default
            ``cfg.model.weights``; ``"none"`` when a checkpoint will be loaded anyway).
    """
    if spec.head == "signature":
        from radiopath.models.signature_head import SignatureModel

        return SignatureModel(spec, cfg.model.signature, in_dims)
    if cfg.train.mode == "features":
        return RadiopathModel(spec, cfg.model.head, in_dims, blocks=blocks)
    weights = init_weights or cfg.model.weights
    backbones: dict[str, Backbone] = {}
    for key in spec.modalities:
        modality = MODALITIES[key]
        if not isinstance(modality, ImageModality):
            continue
        if cfg.model.shared_backbone and backbones:
            backbones[key] = next(iter(backbones.values()))
            continue
        bb = create_backbone(modality.backbone(cfg), weights if weights else NONE)
        backbones[key] = bb.to(memory_format=torch.channels_last) if channels_last else bb
    dims = {**in_dims, **{m: b.num_features for m, b in backbones.items()}}
    return RadiopathModel(spec, cfg.model.head, dims, backbones)
