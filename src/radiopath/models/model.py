"""The full model: optional backbones → per-modality encoders → fusion → one LNM logit.

The same module serves both training modes: in ``features`` mode the batch carries cached
backbone features (B, N, D) and ``backbones`` is empty; in ``finetune`` mode it carries
images (B, N, 3, H, W) and the backbones run inside ``forward``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from radiopath.config import StrictModel
from radiopath.errors import ConfigError
from radiopath.models.backbones import Backbone
from radiopath.models.encoders import ClinicalEncoder, InstanceSetEncoder
from radiopath.models.fusion import create_fusion

Modality = Literal["us", "cytology", "clinical"]
#: Image modalities and the batch keys that carry them.
IMAGE_MODALITIES: tuple[str, ...] = ("us", "cytology")

#: Named models of a study: the unimodal baselines and the fusion models, as in the paper.
PRESETS: dict[str, tuple[list[str], str]] = {
    "ultrasound": (["us"], "none"),
    "cytology": (["cytology"], "none"),
    "fusion_late": (["us", "cytology"], "late"),
    "fusion_concat": (["us", "cytology"], "concat"),
    "fusion_gated": (["us", "cytology"], "gated"),
    "fusion_bilinear": (["us", "cytology"], "bilinear"),
}


class HeadConfig(StrictModel):
    """Sizes and regularisation of everything after the backbone."""

    dim: int = Field(64, ge=4, description="embedding size per modality")
    pca_dim: int | None = Field(
        16,
        ge=2,
        description="features mode: project cached features on this many principal components, "
        "fitted on each training fold (a strong regulariser for small cohorts); None keeps all",
    )
    dropout: float = Field(0.25, ge=0, lt=1)
    us_pooling: Literal["mean", "attention"] = "mean"
    cytology_pooling: Literal["mean", "attention"] = "attention"
    late_mode: Literal["average", "stacked"] = "average"
    hidden: int = Field(64, ge=4)
    bilinear_rank: int = Field(16, ge=2)
    modality_dropout: float = Field(
        0.2, ge=0, lt=1, description="training: drop one modality with this probability"
    )


class ModelSpec(StrictModel):
    """One model of the study: a name, the inputs it sees, and how it fuses them."""

    name: str
    modalities: list[Modality]
    fusion: Literal["none", "late", "concat", "gated", "bilinear"]

    @classmethod
    def preset(cls, name: str, clinical: bool = False) -> ModelSpec:
        """``ultrasound``, ``cytology``, ``fusion_<late|concat|gated|bilinear>``; ``clinical``
        adds the clinical covariates as a third input to fusion models (name gets ``+clin``)."""
        base = name.removesuffix("+clin")
        if base not in PRESETS:
            raise ConfigError(
                f"unknown model '{name}'; choose from {sorted(PRESETS)} (fusion models may end in +clin)"
            )
        modalities, fusion = PRESETS[base]
        if (clinical or name.endswith("+clin")) and fusion != "none":
            return cls(name=f"{base}+clin", modalities=[*modalities, "clinical"], fusion=fusion)  # type: ignore[list-item]
        return cls(name=base, modalities=list(modalities), fusion=fusion)  # type: ignore[arg-type]


class RadiopathModel(nn.Module):
    """Encoders for ``spec.modalities`` + the fusion; backbones only in finetune mode."""

    def __init__(
        self,
        spec: ModelSpec,
        head: HeadConfig,
        in_dims: dict[str, int],
        backbones: dict[str, Backbone] | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.head_cfg = head
        self.backbones = nn.ModuleDict(backbones or {})
        self._pca_dims: dict[str, int] = {}
        encoders: dict[str, nn.Module] = {}
        for m in spec.modalities:
            if m not in in_dims:
                raise ConfigError(f"model '{spec.name}' needs {m} inputs, but the cohort has none")
            if m == "clinical":
                encoders[m] = ClinicalEncoder(in_dims[m], head.dim, head.dropout)
            else:
                pooling = head.us_pooling if m == "us" else head.cytology_pooling
                encoders[m] = InstanceSetEncoder(
                    self._projected_dim(m, in_dims[m]), head.dim, pooling, head.dropout
                )
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
        # input standardisation (features mode and clinical): fitted on the training fold only,
        # stored as buffers so every checkpoint carries the statistics it was trained with
        for m in spec.modalities:
            if m not in self.backbones:
                self.register_buffer(f"{m}_mean", torch.zeros(in_dims[m]))
                self.register_buffer(f"{m}_std", torch.ones(in_dims[m]))
            if m in self._pca_dims:
                self.register_buffer(f"{m}_proj", torch.eye(in_dims[m])[:, : self._pca_dims[m]].clone())
        self.last_instance_weights: dict[str, torch.Tensor] = {}

    def _projected_dim(self, m: str, dim: int) -> int:
        """Cached image features are projected on their first ``head.pca_dim`` principal
        components (fitted per fold); backbone outputs in finetune mode are not."""
        k = self.head_cfg.pca_dim
        if k and m not in self.backbones and k < dim:
            self._pca_dims[m] = k
            return k
        return dim

    @torch.no_grad()
    def fit_input_stats(self, batch: dict[str, torch.Tensor]) -> None:
        """Set the standardisation buffers from the (training) patients in ``batch``.

        Mean and sd are taken over present instances only (padding and missing views are
        ignored); constant features keep sd 1.
        """
        for m in self.spec.modalities:
            if m in self.backbones:
                continue
            x = batch[m].float()
            rows = x[batch["clinical_mask"]] if m == "clinical" else x[batch[f"{m}_mask"]]
            if rows.shape[0] == 0:
                continue
            mean = torch.nanmean(rows, 0)
            centered = torch.nan_to_num(rows - mean, nan=0.0)
            count = (~torch.isnan(rows)).sum(0).clamp_min(1)
            std = (centered.pow(2).sum(0) / count).sqrt()
            getattr(self, f"{m}_mean").copy_(torch.nan_to_num(mean, nan=0.0))
            std = torch.where(std > 1e-6, std, torch.ones_like(std))
            getattr(self, f"{m}_std").copy_(std)
            if m in self._pca_dims:
                z = torch.nan_to_num((rows - mean) / std, nan=0.0)
                _, _, vt = torch.linalg.svd(z, full_matrices=False)
                k = min(self._pca_dims[m], vt.shape[0])
                proj = torch.zeros_like(getattr(self, f"{m}_proj"))
                proj[:, :k] = vt[:k].T
                getattr(self, f"{m}_proj").copy_(proj)

    def _standardise(self, m: str, x: torch.Tensor) -> torch.Tensor:
        if m in self.backbones:
            return x
        z = (x - getattr(self, f"{m}_mean")) / getattr(self, f"{m}_std")
        if m == "clinical":
            return torch.nan_to_num(z, nan=0.0)
        return z @ getattr(self, f"{m}_proj") if m in self._pca_dims else z

    def _backbone_features(self, m: str, x: torch.Tensor) -> torch.Tensor:
        """Finetune mode: (B, N, H, W, 3) uint8 images → (B, N, D) features."""
        b, n = x.shape[:2]
        flat = x.flatten(0, 1)
        if flat.dtype == torch.uint8:
            flat = _images_to_input(flat)
        return self.backbones[m].forward_features(flat).reshape(b, n, -1)

    def present(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Which patients have each modality: (B,) bool per modality."""
        out = {}
        for m in self.spec.modalities:
            out[m] = batch[f"{m}_mask"].any(1) if m != "clinical" else batch["clinical_mask"]
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,) for a batch dict: ``us``/``cytology`` (+ ``_mask``), ``clinical`` (+ ``_mask``)."""
        present = self.present(batch)
        if self.training and self.head_cfg.modality_dropout > 0 and len(present) > 1:
            present = _drop_modalities(present, self.head_cfg.modality_dropout)
        emb: dict[str, torch.Tensor] = {}
        for m in self.spec.modalities:
            if m == "clinical":
                emb[m] = self.encoders[m](self._standardise(m, batch["clinical"]))
                continue
            x, mask = self._standardise(m, batch[m]), batch[f"{m}_mask"]
            if m in self.backbones:
                x = self._backbone_features(m, x)
            emb[m], weights = self.encoders[m](x, mask & present[m].unsqueeze(1))
            self.last_instance_weights[m] = weights.detach()
        return self.fusion(emb, present)


def _images_to_input(x: torch.Tensor) -> torch.Tensor:
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
