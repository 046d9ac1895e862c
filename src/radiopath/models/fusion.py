"""Fusion registry: how modality embeddings become one LNM logit.

Every fusion takes ``embeddings`` {modality: (B, D)} and ``present`` {modality: (B,) bool}
and returns logits (B,). An absent modality is replaced by a learned "missing" embedding
(and, for ``late``/``gated``, simply given no weight), so a patient with one modality still
gets a prediction.

* ``none``     — one modality: a linear classifier on its embedding (the unimodal baselines).
* ``late``     — one classifier per modality; logits averaged (``average``) or combined by
  learned weights (``stacked``) over the present modalities.
* ``concat``   — feature-level fusion: concatenate embeddings and presence flags, MLP.
* ``gated``    — gated attention over modalities (Ilse et al. 2018, applied to modalities).
* ``bilinear`` — Kronecker-product fusion with per-modality gating, as in Pathomic Fusion
  (Chen et al., IEEE TMI 2020): gated embeddings, each appended with 1, outer product,
  flattened, MLP.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from radiopath.errors import ConfigError


class Fusion(nn.Module):
    """Base: holds the modality order and the learned missing-modality embeddings."""

    def __init__(self, modalities: list[str], dim: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.dim = dim
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(dim)) for m in modalities})

    def filled(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Embeddings with absent entries replaced by the learned missing embedding."""
        return [
            torch.where(present[m].unsqueeze(-1), emb[m], self.missing[m].to(emb[m].dtype).expand_as(emb[m]))
            for m in self.modalities
        ]


class NoFusion(Fusion):
    def __init__(self, modalities: list[str], dim: int, dropout: float, **_: object) -> None:
        super().__init__(modalities, dim)
        if len(modalities) != 1:
            raise ConfigError(f"fusion 'none' takes one modality, got {modalities}")
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1))

    def forward(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(emb[self.modalities[0]]).squeeze(-1)


class LateFusion(Fusion):
    def __init__(
        self, modalities: list[str], dim: int, dropout: float, late_mode: str = "average", **_: object
    ) -> None:
        super().__init__(modalities, dim)
        if late_mode not in ("average", "stacked"):
            raise ConfigError(f"late fusion mode must be 'average' or 'stacked', got '{late_mode}'")
        self.mode = late_mode
        self.heads = nn.ModuleDict(
            {m: nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1)) for m in modalities}
        )
        self.weight = nn.Parameter(torch.ones(len(modalities)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = torch.stack([self.heads[m](emb[m]).squeeze(-1) for m in self.modalities], 1)
        mask = torch.stack([present[m] for m in self.modalities], 1).to(logits.dtype)
        if self.mode == "average":
            return (logits * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return (logits * mask * self.weight).sum(1) + self.bias


class ConcatFusion(Fusion):
    def __init__(
        self, modalities: list[str], dim: int, dropout: float, hidden: int = 64, **_: object
    ) -> None:
        super().__init__(modalities, dim)
        k = len(modalities)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(k * dim + k, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        flags = torch.stack([present[m] for m in self.modalities], 1).to(emb[self.modalities[0]].dtype)
        return self.mlp(torch.cat([*self.filled(emb, present), flags], 1)).squeeze(-1)


class GatedFusion(Fusion):
    def __init__(
        self, modalities: list[str], dim: int, dropout: float, hidden: int = 64, **_: object
    ) -> None:
        super().__init__(modalities, dim)
        self.v = nn.Linear(dim, hidden)
        self.u = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1))
        self.last_weights: torch.Tensor | None = None

    def forward(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        h = torch.stack([emb[m] for m in self.modalities], 1)  # (B, M, D)
        mask = torch.stack([present[m] for m in self.modalities], 1)
        scores = self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(-1)
        weights = torch.nan_to_num(torch.softmax(scores.masked_fill(~mask, float("-inf")), 1), nan=0.0)
        self.last_weights = weights.detach()
        return self.head(torch.einsum("bm,bmd->bd", weights, h)).squeeze(-1)


class BilinearFusion(Fusion):
    """Pathomic-Fusion-style gated Kronecker fusion (Chen et al. 2020) of the first two
    modalities; a third (clinical) embedding is concatenated after the product."""

    def __init__(
        self, modalities: list[str], dim: int, dropout: float, hidden: int = 64, rank: int = 16, **_: object
    ) -> None:
        super().__init__(modalities, dim)
        if len(modalities) < 2:
            raise ConfigError("bilinear fusion needs at least two modalities")
        a, b = modalities[:2]
        self.pair = (a, b)
        self.reduce = nn.ModuleDict({m: nn.Sequential(nn.Linear(dim, rank), nn.GELU()) for m in (a, b)})
        self.gate = nn.ModuleDict({m: nn.Linear(2 * dim, rank) for m in (a, b)})
        extra = (len(modalities) - 2) * dim
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear((rank + 1) ** 2 + extra, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, emb: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
        full = dict(zip(self.modalities, self.filled(emb, present), strict=True))
        a, b = self.pair
        both = torch.cat([full[a], full[b]], 1)
        ha = torch.sigmoid(self.gate[a](both)) * self.reduce[a](full[a])
        hb = torch.sigmoid(self.gate[b](both)) * self.reduce[b](full[b])
        one = torch.ones_like(ha[:, :1])
        kron = torch.einsum("bi,bj->bij", torch.cat([ha, one], 1), torch.cat([hb, one], 1)).flatten(1)
        rest = [full[m] for m in self.modalities[2:]]
        return self.mlp(torch.cat([kron, *rest], 1)).squeeze(-1)


FUSIONS: dict[str, Callable[..., Fusion]] = {
    "none": NoFusion,
    "late": LateFusion,
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "bilinear": BilinearFusion,
}


def create_fusion(
    name: str, modalities: list[str], dim: int, dropout: float = 0.25, **kwargs: object
) -> Fusion:
    """Build a registered fusion; unknown names list the registry."""
    if name not in FUSIONS:
        raise ConfigError(f"unknown fusion '{name}'; choose one of {sorted(FUSIONS)}")
    return FUSIONS[name](modalities, dim, dropout=dropout, **kwargs)
