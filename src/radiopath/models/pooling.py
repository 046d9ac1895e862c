"""Pooling a set of instances (ultrasound views, cytology tiles) into one vector, with masks.

Gated attention follows Ilse, Tomczak & Welling, "Attention-based Deep Multiple Instance
Learning", ICML 2018: ``a_k = softmax_k(w^T (tanh(V h_k) ⊙ sigmoid(U h_k)))`` and
``z = Σ_k a_k h_k``. Masked instances (padding, missing views) get zero weight.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``x`` (B, N, D) where ``mask`` (B, N) is True; zeros for empty rows."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class MeanPool(nn.Module):
    """Average of the present instances."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = mask.to(x.dtype) / mask.sum(1, keepdim=True).clamp_min(1).to(x.dtype)
        return masked_mean(x, mask), weights


class GatedAttentionPool(nn.Module):
    """Gated attention-MIL pooling (Ilse et al. 2018); returns the pooled vector and the weights."""

    def __init__(self, dim: int, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.v = nn.Linear(dim, hidden)
        self.u = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.w(self.drop(torch.tanh(self.v(x)) * torch.sigmoid(self.u(x)))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        weights = torch.nan_to_num(weights, nan=0.0)  # rows with no instance at all
        return torch.einsum("bn,bnd->bd", weights, x), weights


POOLINGS = {"mean": MeanPool, "attention": GatedAttentionPool}


def create_pooling(name: str, dim: int, dropout: float = 0.0) -> nn.Module:
    if name == "mean":
        return MeanPool()
    if name == "attention":
        return GatedAttentionPool(dim, dropout=dropout)
    from radiopath.errors import ConfigError

    raise ConfigError(f"unknown pooling '{name}'; choose one of {sorted(POOLINGS)}")
