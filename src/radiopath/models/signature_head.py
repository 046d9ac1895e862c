"""The radiomics signature as a fold model: fitted with scikit-learn, scored as a torch module.

A signature model (``<modality>_signature``, ``fusion_signature``) sees one vector per patient:
per modality, the mean over its instances (views, tiles) of the instance features — for a
handcrafted feature set the IBSI radiomics and nuclear pathomics, by name — concatenated over
its modalities. :meth:`SignatureModel.fit` runs
:class:`radiopath.models.signature.RadiomicsSignature` on the fold's training patients only
(filters, standardisation, L1 logistic regression with its penalty chosen by inner
cross-validation) and copies the learned state into buffers; ``forward`` is that linear score
in torch, so the protocol, the fold ensemble, the run-loading API and the bundle score it like
any other fold model, and its weights are a safetensors file like theirs. The fitted state,
with the selected features' names, is also kept as JSON (``signature.json``) for the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from radiopath.models.signature import RadiomicsSignature
from radiopath.run_config import ModelSpec, SignatureConfig


def patient_vectors(arrays: dict[str, np.ndarray], modalities: list[str], index: np.ndarray) -> np.ndarray:
    """``(len(index), sum D)``: per modality the mean over present instances (NaN without any)."""
    parts = []
    for m in modalities:
        x, mask = arrays[m][index].astype(np.float64), arrays[f"{m}_mask"][index].astype(bool)
        if x.ndim == 2:  # a vector modality: one row per patient
            parts.append(np.where(mask[:, None], x, np.nan))
            continue
        n = mask.sum(1, keepdims=True)
        total = np.where(mask[..., None], np.nan_to_num(x, nan=0.0), 0.0).sum(1)
        counted = (mask[..., None] & ~np.isnan(x)).sum(1)
        mean = np.divide(total, counted, out=np.full_like(total, np.nan), where=counted > 0)
        parts.append(np.where(n > 0, mean, np.nan))
    return np.concatenate(parts, 1) if parts else np.zeros((len(index), 0))


class SignatureModel(nn.Module):
    """A fitted radiomics signature of ``spec.modalities`` (see the module docstring)."""

    def __init__(self, spec: ModelSpec, options: SignatureConfig, in_dims: dict[str, int]) -> None:
        super().__init__()
        self.spec = spec
        self.options = options
        self.backbones = nn.ModuleDict()  # none: scored on cached features
        self.backbone_amp: torch.dtype | None = None
        self.dims = [int(in_dims[m]) for m in spec.modalities]
        d = sum(self.dims)
        self.register_buffer("median", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(d, dtype=torch.float64))
        self.register_buffer("coef", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros((), dtype=torch.float64))
        self.register_buffer("clip", torch.tensor(float(options.clip or 0.0), dtype=torch.float64))
        self.state_json: dict[str, Any] | None = None
        self.last_instance_weights: dict[str, torch.Tensor] = {}

    def fit(
        self, arrays: dict[str, np.ndarray], label: np.ndarray, index: np.ndarray, names: list[str], seed: int
    ) -> None:
        """Fit on the patients ``index`` (a training fold) only."""
        o = self.options
        sig = RadiomicsSignature(
            inner_folds=o.inner_folds,
            max_correlation=o.max_correlation,
            class_weight=None if o.class_weight == "none" else "balanced",
            clip=o.clip,
            n_bags=o.n_bags,
            seed=seed,
        )
        sig.fit(patient_vectors(arrays, self.spec.modalities, index), label[index], names)
        self.load_signature(sig)

    def load_signature(self, sig: RadiomicsSignature) -> None:
        """Copy a fitted signature into the buffers (unselected features get weight 0)."""
        sel = torch.as_tensor(sig.selected_, dtype=torch.long)
        with torch.no_grad():
            for name, values, default in (
                ("median", sig.median_, 0.0),
                ("mean", sig.mean_, 0.0),
                ("scale", sig.scale_, 1.0),
                ("coef", sig.coef_, 0.0),
            ):
                buf = getattr(self, name)
                buf.fill_(default)
                buf[sel] = torch.as_tensor(values, dtype=torch.float64)
            self.intercept.fill_(sig.intercept_)
        self.state_json = sig.state_dict()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,) from a batch of cached features (float64 inside, float32 out)."""
        parts = []
        for m in self.spec.modalities:
            x, mask = batch[m].double(), batch[f"{m}_mask"].bool()
            if x.ndim == 2:
                parts.append(torch.where(mask[:, None], x, torch.full_like(x, float("nan"))))
                continue
            valid = mask[..., None] & ~torch.isnan(x)
            total = torch.where(valid, x, torch.zeros_like(x)).sum(1)
            counted = valid.sum(1)
            parts.append(
                torch.where(counted > 0, total / counted.clamp_min(1), torch.full_like(total, float("nan")))
            )
        x = torch.cat(parts, 1)
        z = (torch.where(torch.isnan(x), self.median, x) - self.mean) / self.scale
        if float(self.clip) > 0:
            z = z.clamp(-float(self.clip), float(self.clip))
        z = torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        return (z @ self.coef + self.intercept).float()
