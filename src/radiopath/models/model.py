"""The full model: optional backbones → per-modality encoders → fusion → one LNM logit.

The same module serves both training modes: in ``features`` mode the batch carries cached
backbone features (B, N, D) and ``backbones`` is empty; in ``finetune`` mode it carries
images (B, N, H, W, 3) and the backbones run inside ``forward``. Modalities come from the
registry (:mod:`radiopath.modalities`): an image modality is a set of instances (views,
tiles) encoded and pooled; a vector modality (clinical) goes through a small MLP.

Precision: backbones may run under bf16 autocast (:attr:`backbone_amp`); everything after
them — standardisation, encoders, fusion — always runs in fp32. Heads on cached features are
tiny, and fp32 makes their results independent of the processor and of how a batch is split
between processes.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from radiopath.errors import ConfigError
from radiopath.modalities import MODALITIES, ImageModality
from radiopath.models.backbones import Backbone
from radiopath.models.encoders import ClinicalEncoder, InstanceSetEncoder
from radiopath.models.fusion import create_fusion
from radiopath.models.standardize import BlockStandardizer
from radiopath.run_config import HeadConfig, ModelSpec, model_presets

#: Named models of a study (from the modality registry): unimodal baselines and fusions.
PRESETS = model_presets()
#: Image modalities (registry keys), in order.
IMAGE_MODALITIES: tuple[str, ...] = tuple(k for k, m in MODALITIES.items() if isinstance(m, ImageModality))

__all__ = ["IMAGE_MODALITIES", "PRESETS", "HeadConfig", "ModelSpec", "RadiopathModel"]


def is_image(modality: str) -> bool:
    return isinstance(MODALITIES[modality], ImageModality)


class RadiopathModel(nn.Module):
    """Encoders for ``spec.modalities`` + the fusion; backbones only in finetune mode."""

    def __init__(
        self,
        spec: ModelSpec,
        head: HeadConfig,
        in_dims: dict[str, int],
        backbones: dict[str, Backbone] | None = None,
        blocks: dict[str, list[tuple[str, int, int]]] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.head_cfg = head
        self.backbones = nn.ModuleDict(backbones or {})
        self.backbone_amp: torch.dtype | None = None
        standardize: dict[str, BlockStandardizer] = {}
        encoders: dict[str, nn.Module] = {}
        for m in spec.modalities:
            if m not in in_dims:
                raise ConfigError(f"model '{spec.name}' needs {m} inputs, but the cohort has none")
            if m not in self.backbones:
                k = head.pca_dim if is_image(m) else None
                spans = [(a, b) for _, a, b in (blocks or {}).get(m, [])] or [(0, in_dims[m])]
                standardize[m] = BlockStandardizer(spans, k)
            dim = standardize[m].out_dim if m in standardize else in_dims[m]
            if is_image(m):
                modality = MODALITIES[m]
                assert isinstance(modality, ImageModality)
                encoders[m] = InstanceSetEncoder(dim, head.dim, modality.pooling(head), head.dropout)
            else:
                encoders[m] = ClinicalEncoder(dim, head.dim, head.dropout)
        self.standardize = nn.ModuleDict(standardize)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = create_fusion(
            spec.fusion,
            list(spec.modalities),
            head.dim,
            dropout=head.dropout,
            late_mode=head.late_mode,
            hidden=head.hidden,
            rank=head.bilinear_rank,
        )
        self.last_instance_weights: dict[str, torch.Tensor] = {}

    def fit_standardizers(
        self,
        arrays: dict[str, np.ndarray],
        index: np.ndarray,
        augmented: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Fit every input standardisation on the patients ``index`` (a training fold) only.

        Means and sds are taken over present instances (padding and missing views are
        ignored); the projection keeps ``head.pca_dim`` principal components. ``augmented``
        (A, P, N, D) per modality: the augmented passes count as instances too.
        """
        for m, module in self.standardize.items():
            present = arrays[f"{m}_mask"][index].astype(bool)
            rows = arrays[m][index][present]
            if augmented and m in augmented:
                rows = np.concatenate([rows, *(a[index][present] for a in augmented[m])])
            module.fit(rows)

    def present(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Which patients have each modality: (B,) bool per modality."""
        out = {}
        for m in self.spec.modalities:
            mask = batch[f"{m}_mask"]
            out[m] = mask.any(1) if mask.ndim == 2 else mask
        return out

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager[None]:
        if self.backbone_amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.backbone_amp)

    def _backbone_features(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """Finetune mode: (B, N, H, W, 3) uint8 images → (B, N, D) fp32 features."""
        b, n = x.shape[:2]
        flat = x.flatten(0, 1)
        if flat.dtype == torch.uint8:
            flat = images_to_input(flat)
        with self._autocast(flat.device.type):
            feats = self.backbones[m](flat)
        return feats.float().reshape(b, n, -1)

    def embed(
        self,
        batch: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor],
        *,
        features_given: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Per-modality patient embeddings (B, dim), fp32.

        ``features_given``: the image modalities of ``batch`` already hold backbone features
        (B, N, D), in finetune mode too (see :meth:`forward_head`).
        """
        emb: dict[str, torch.Tensor] = {}
        for m in self.spec.modalities:
            if m in self.backbones:
                x = batch[m].float() if features_given else self._backbone_features(m, batch[m])
            else:
                x = self.standardize[m](batch[m])
            if not is_image(m):
                emb[m] = self.encoders[m](x)
                continue
            emb[m], weights = self.encoders[m](x, batch[f"{m}_mask"] & present[m].unsqueeze(1))
            self.last_instance_weights[m] = weights.detach()
        return emb

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,) for a batch dict: ``<modality>`` and ``<modality>_mask`` per modality."""
        present = self.present(batch)
        if self.training and self.head_cfg.modality_dropout > 0 and len(present) > 1:
            present = _drop_modalities(present, self.head_cfg.modality_dropout)
        return self.fusion(self.embed(batch, present), present)

    def forward_head(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,) from backbone features: :meth:`forward` after the backbones.

        Every image modality of ``batch`` carries pooled backbone features (B, N, D) — what
        features mode feeds anyway, and in finetune mode the output of :attr:`backbones`.
        Explanations run the backbone themselves (to capture a layer's activations) and
        finish here, so the gradient flows through the model's own standardisation,
        encoders and fusion. Eval behaviour: no modality dropout.
        """
        present = self.present(batch)
        return self.fusion(self.embed(batch, present, features_given=True), present)


def images_to_input(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float in [0, 1], channels_last (same memory, no copy)."""
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def _drop_modalities(present: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Modality dropout: for each patient with more than one modality, hide one at random
    with probability ``p`` (never the last one), so the fused model learns to cope alone."""
    names = list(present)
    stacked = torch.stack([present[m] for m in names], 1)
    drop = torch.rand(stacked.shape[0], device=stacked.device) < p
    which = torch.randint(len(names), (stacked.shape[0],), device=stacked.device)
    hide = torch.zeros_like(stacked)
    hide[torch.arange(len(which)), which] = True
    candidate = stacked & ~(hide & drop.unsqueeze(1))
    keep = torch.where(candidate.any(1, keepdim=True), candidate, stacked)
    return {m: keep[:, i] for i, m in enumerate(names)}
