"""Per-modality encoders: instance features → one patient embedding.

* ultrasound: the views of the nodule (transverse, longitudinal) through one projection,
  pooled by mean or gated attention;
* cytology: the K tiles of the slide, pooled by gated attention-MIL (Ilse et al. 2018) or mean;
* clinical: standardised covariates through a small MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from radiopath.models.pooling import create_pooling


class InstanceSetEncoder(nn.Module):
    """Project each instance to ``dim`` and pool the set (views or tiles)."""

    def __init__(self, in_dim: int, dim: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, dim), nn.GELU())
        self.pool = create_pooling(pooling, dim, dropout=0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, in_dim), (B, N) → (B, dim) embedding and (B, N) instance weights."""
        return self.pool(self.project(x), mask)


class ClinicalEncoder(nn.Module):
    """Standardised clinical covariates (numeric + one-hot) → embedding."""

    def __init__(self, in_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
