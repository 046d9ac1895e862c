"""Patient-level inputs as dense, padded arrays: the meeting point of extraction and training.

A :class:`PatientInputs` holds, for every patient of a cohort (in cohort order), per
registered modality ``m`` (:mod:`radiopath.modalities`) that the cohort has:

* an image modality: ``m`` (P, N, D) features of its instances (views, tiles) — or, in
  ``finetune`` mode, the images themselves (P, N, S, S, 3) uint8 — and ``m_mask`` (P, N);
* a vector modality (clinical): ``m`` (P, C) raw covariates (NaN where unknown) and
  ``m_mask`` (P,);

plus ids, labels, centers and cohorts; in features mode with augmentation
(``train.augment_passes``), ``augmented[m]`` (A, P, N, D) holds the A augmented passes of every
image modality's features (the clean features for patients that have none), from which the
training loop draws per epoch and patient (:meth:`PatientInputs.batch` with ``passes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from radiopath.modalities import MODALITIES


@dataclass
class PatientInputs:
    """Dense per-patient inputs of one cohort (see module docstring)."""

    patient_id: np.ndarray
    center: np.ndarray
    cohort: np.ndarray
    label: np.ndarray  # float, NaN when unknown
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    clinical_columns: list[str] = field(default_factory=list)
    #: per image modality, the feature families' column ranges ``(family, start, stop)``
    blocks: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    #: per modality, the name of every feature column (``family:name``; clinical: its columns)
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    #: per image modality, (A, P, N, D) augmented passes of its features (features mode)
    augmented: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patient_id)

    @property
    def modalities(self) -> list[str]:
        """Registered modalities with at least one patient present, in registry order."""
        return [m for m in MODALITIES if m in self.arrays and self.arrays[f"{m}_mask"].any()]

    def in_dims(self) -> dict[str, int]:
        """Per present modality, the size of one instance's vector (features mode)."""
        return {m: int(self.arrays[m].shape[-1]) for m in self.modalities}

    def present(self, modality: str) -> np.ndarray:
        """(P,) bool: which patients have ``modality``."""
        if f"{modality}_mask" not in self.arrays:
            return np.zeros(len(self), bool)
        mask = self.arrays[f"{modality}_mask"]
        return mask if mask.ndim == 1 else mask.any(1)

    @property
    def n_passes(self) -> int:
        """Augmented passes per image modality (0: none)."""
        return min((int(v.shape[0]) for v in self.augmented.values()), default=0)

    def batch(
        self,
        index: np.ndarray,
        modalities: list[str],
        device: torch.device,
        passes: dict[str, np.ndarray] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tensors for patients ``index`` and the given modalities (what a model's forward takes).

        ``passes``: per modality, which pass each patient of ``index`` gets (0 the clean
        features, ``a`` ≥ 1 the augmented pass ``a``); modalities left out are clean.
        """
        out: dict[str, torch.Tensor] = {}
        for m in modalities:
            for k in (m, f"{m}_mask"):
                x = self.arrays[k][index]
                if k == m and passes is not None and m in passes and m in self.augmented:
                    choice = np.asarray(passes[m])
                    x = x.copy()
                    for a in np.unique(choice[choice > 0]):
                        rows = choice == a
                        x[rows] = self.augmented[m][a - 1][index[rows]]
                out[k] = torch.from_numpy(np.ascontiguousarray(x)).to(device)
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
            dict(self.blocks),
            dict(self.feature_names),
            {k: v[:, index] for k, v in self.augmented.items()},
        )
