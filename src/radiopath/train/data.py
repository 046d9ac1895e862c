"""Patient-level inputs as dense, padded arrays: the meeting point of extraction and training.

A :class:`PatientInputs` holds, for every patient of a cohort (in cohort order):

* ``us``  (P, V, D) features of the ultrasound views and ``us_mask`` (P, V);
* ``cytology`` (P, K, D) features of the slide's tiles and ``cytology_mask`` (P, K);
* ``clinical`` (P, C) raw covariates (numeric with NaN, one-hot categories, missing
  indicators) and ``clinical_mask`` (P,);

plus ids, labels, centers and cohorts. In ``finetune`` mode ``us``/``cytology`` hold images
(P, N, 3, H, W) instead of features; everything else is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from radiopath.cohort.schema import CLINICAL_PREFIX


@dataclass
class PatientInputs:
    """Dense per-patient inputs of one cohort (see module docstring)."""

    patient_id: np.ndarray
    center: np.ndarray
    cohort: np.ndarray
    label: np.ndarray  # float, NaN when unknown
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # us, us_mask, cytology, ...
    clinical_columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patient_id)

    @property
    def modalities(self) -> list[str]:
        """Modalities with at least one patient present."""
        out = [m for m in ("us", "cytology") if m in self.arrays and self.arrays[f"{m}_mask"].any()]
        if "clinical" in self.arrays and self.arrays["clinical_mask"].any():
            out.append("clinical")
        return out

    def in_dims(self) -> dict[str, int]:
        return {m: int(self.arrays[m].shape[-1]) for m in self.modalities}

    def present(self, modality: str) -> np.ndarray:
        mask = self.arrays[f"{modality}_mask"]
        return mask if mask.ndim == 1 else mask.any(1)

    def modality_string(self) -> np.ndarray:
        """Per patient, which inputs were present, e.g. ``us+cytology``."""
        parts = [np.where(self.present(m), m, "") for m in self.modalities]
        joined = ["+".join(p for p in row if p) for row in zip(*parts, strict=True)] if parts else []
        return np.asarray(joined, dtype=object)

    def batch(
        self, index: np.ndarray, modalities: list[str], device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Tensors for patients ``index`` and the given modalities (what a model's forward takes)."""
        out: dict[str, torch.Tensor] = {}
        for m in modalities:
            keys = (m, f"{m}_mask")
            for k in keys:
                out[k] = torch.from_numpy(np.ascontiguousarray(self.arrays[k][index])).to(device)
        out["label"] = torch.from_numpy(self.label[index].astype(np.float32)).to(device)
        return out

    def subset(self, index: np.ndarray) -> PatientInputs:
        return PatientInputs(
            self.patient_id[index],
            self.center[index],
            self.cohort[index],
            self.label[index],
            {k: v[index] for k, v in self.arrays.items()},
            list(self.clinical_columns),
        )


def clinical_matrix(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw clinical design matrix from ``clin_*`` columns of a cohort table.

    Numeric columns stay raw (NaN where missing; standardised later with training-fold
    statistics inside the model) with a missing-indicator column when any value is missing;
    text columns become one-hot columns (an all-zero row when missing). Category levels come
    from the whole table, which uses no outcome information.

    Returns:
        (matrix (P, C) float32, present (P,) bool — any covariate known, column names).
    """
    cols = [c for c in table.columns if c.startswith(CLINICAL_PREFIX)]
    blocks: list[np.ndarray] = []
    names: list[str] = []
    known = np.zeros(len(table), bool)
    for c in cols:
        s = table[c]
        if pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=float, na_value=np.nan)
            blocks.append(v[:, None])
            names.append(c)
            if np.isnan(v).any():
                blocks.append(np.isnan(v)[:, None].astype(float))
                names.append(f"{c}__missing")
            known |= ~np.isnan(v)
        else:
            levels = sorted(s.dropna().astype(str).unique())
            for lv in levels:
                blocks.append((s.astype("string") == lv).fillna(False).to_numpy(dtype=float)[:, None])
                names.append(f"{c}={lv}")
            known |= s.notna().to_numpy()
    if not blocks:
        return np.zeros((len(table), 0), np.float32), known, []
    return np.concatenate(blocks, 1).astype(np.float32), known, names


def from_cohort_table(table: pd.DataFrame, arrays: dict[str, np.ndarray]) -> PatientInputs:
    """Wrap per-modality arrays (already in cohort order) with ids, labels and clinical data."""
    clin, clin_known, names = clinical_matrix(table)
    full = dict(arrays)
    if names:
        full["clinical"] = clin
        full["clinical_mask"] = clin_known
    label = table["lnm"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return PatientInputs(
        patient_id=table["patient_id"].astype(str).to_numpy(),
        center=table["center"].astype(str).to_numpy(),
        cohort=table["cohort"].astype(str).to_numpy(),
        label=label,
        arrays=full,
        clinical_columns=names,
    )
