"""Standardisation and principal-component projection of a head's inputs: fit → state → apply.

Cached backbone features are standardised (per-feature mean and sd) and projected on their
first ``k`` principal components before a head sees them, and clinical covariates are
standardised; both are *fitted on the training patients of one fold only* (Hastie,
Tibshirani & Friedman, *Elements of Statistical Learning*, §7.10.2: preprocessing chosen on
all data leaks into cross-validation). As in scikit-learn, :func:`fit_standardizer` returns a
:class:`StandardizerState` of plain arrays (``mean_``, ``scale_``, ``components_``) that is
saved with the fold's weights and applied — by :func:`apply_standardizer` in numpy or by the
:class:`Standardizer` module inside the model — without the training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class StandardizerState:
    """Learned state: ``mean_`` and ``scale_`` (D,), ``components_`` (D, k) or None."""

    mean_: np.ndarray
    scale_: np.ndarray
    components_: np.ndarray | None = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready lists (float64 round-trips exactly)."""
        comp = None if self.components_ is None else self.components_.tolist()
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "components": comp}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StandardizerState:
        comp = state.get("components")
        return cls(
            np.asarray(state["mean"], np.float64),
            np.asarray(state["scale"], np.float64),
            None if comp is None else np.asarray(comp, np.float64),
        )


def fit_standardizer(rows: np.ndarray, n_components: int | None = None) -> StandardizerState:
    """Mean, sd and (optionally) the first ``n_components`` principal axes of ``rows`` (n, D).

    NaN entries are ignored in the mean and sd and count as the mean for the projection;
    constant features keep scale 1. With fewer rows than components, the missing axes are
    zero (they contribute nothing).
    """
    x = np.asarray(rows, np.float64)
    d = x.shape[1]
    if len(x) == 0:
        return StandardizerState(
            np.zeros(d), np.ones(d), None if not n_components else np.eye(d)[:, :n_components]
        )
    count = np.maximum((~np.isnan(x)).sum(0), 1)
    mean = np.where(np.isnan(x).all(0), 0.0, np.nansum(x, 0) / count)
    centered = np.nan_to_num(x - mean, nan=0.0)
    sd = np.sqrt((centered**2).sum(0) / count)
    scale = np.where(sd > 1e-6, sd, 1.0)
    if not n_components or n_components >= d:
        return StandardizerState(mean, scale, None)
    _, _, vt = np.linalg.svd(centered / scale, full_matrices=False)
    k = min(n_components, vt.shape[0])
    comp = np.zeros((d, n_components))
    comp[:, :k] = vt[:k].T
    # a deterministic sign: the largest loading of each axis is positive (SVD signs are arbitrary)
    signs = np.sign(comp[np.abs(comp).argmax(0), np.arange(n_components)])
    comp *= np.where(signs == 0, 1.0, signs)
    return StandardizerState(mean, scale, comp)


def apply_standardizer(state: StandardizerState, x: np.ndarray) -> np.ndarray:
    """``(x - mean_) / scale_`` (NaN → 0), then ``@ components_`` when there are any."""
    z = np.nan_to_num((np.asarray(x, np.float64) - state.mean_) / state.scale_, nan=0.0)
    return z @ state.components_ if state.components_ is not None else z


class Standardizer(nn.Module):
    """:func:`apply_standardizer` as a module whose buffers travel with the checkpoint."""

    def __init__(self, dim: int, n_components: int | None = None) -> None:
        super().__init__()
        self.out_dim = n_components if n_components and n_components < dim else dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.project = self.out_dim != dim
        if self.project:
            self.register_buffer("components", torch.eye(dim)[:, : self.out_dim].clone())

    def load(self, state: StandardizerState) -> Standardizer:
        """Copy a fitted state into the buffers (float32)."""
        with torch.no_grad():
            self.mean.copy_(torch.from_numpy(state.mean_).float())
            self.scale.copy_(torch.from_numpy(state.scale_).float())
            if self.project:
                if state.components_ is None:
                    raise ValueError("this standardizer projects, but the state has no components")
                self.components.copy_(torch.from_numpy(state.components_).float())
        return self

    def state(self) -> StandardizerState:
        """The buffers as a :class:`StandardizerState`."""
        comp = self.components.double().cpu().numpy() if self.project else None
        return StandardizerState(self.mean.double().cpu().numpy(), self.scale.double().cpu().numpy(), comp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((x.float() - self.mean) / self.scale, nan=0.0)
        return z @ self.components if self.project else z


class BlockStandardizer(nn.Module):
    """One :class:`Standardizer` per block of columns (a hybrid feature set: the deep block and
    the handcrafted block are standardised and projected each on its own, inside the fold)."""

    def __init__(self, spans: list[tuple[int, int]], n_components: int | None = None) -> None:
        super().__init__()
        self.spans = [(int(a), int(b)) for a, b in spans]
        self.parts = nn.ModuleList([Standardizer(b - a, n_components) for a, b in self.spans])
        self.out_dim = sum(p.out_dim for p in self.parts)

    def fit(self, rows: np.ndarray) -> BlockStandardizer:
        """Fit every block on the training rows ``(n, D)``."""
        for (a, b), part in zip(self.spans, self.parts, strict=True):
            part.load(fit_standardizer(rows[:, a:b], part.out_dim if part.project else None))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.parts) == 1 and self.spans[0] == (0, x.shape[-1]):
            return self.parts[0](x)
        return torch.cat([part(x[..., a:b]) for (a, b), part in zip(self.spans, self.parts, strict=True)], -1)
