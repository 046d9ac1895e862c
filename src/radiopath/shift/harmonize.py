"""Label-free harmonisation of features per center (``harmonization.method``): fit → state → apply.

Transductive by design: each center's shift is estimated from that center's own *unlabelled*
features (:mod:`radiopath.shift.combat`: per-center standardisation or ComBat), and mapped onto
the development cohort's statistics, which are fitted once (development patients only) and
saved. Outcomes never enter. It works on the instance features of every image modality —
whatever the feature set (deep, handcrafted, hybrid: every column is adjusted on its own) —
before the fold models' own standardisation and projection.

* :func:`fit_harmonization` — the reference per modality (development instances) → a
  :class:`HarmonizationState`;
* :func:`harmonize` — apply it to a cohort's :class:`~radiopath.models.inputs.PatientInputs`:
  a center with at least ``min_patients`` patients gets its own adjustment, estimated now from
  its patients in this table; a smaller center that the run has already seen gets the recorded
  one; any other center is left as it is and recorded as not harmonised. With a single
  development center that center *is* the reference (left unchanged); with several, each is
  mapped onto the pooled development statistics. Every decision is recorded
  (:attr:`HarmonizationState.record`), saved with the run (``harmonization.json`` + the
  statistics in ``harmonization.safetensors``) and shown in the report and methods.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radiopath.cohort.schema import DEVELOPMENT
from radiopath.errors import ConfigError
from radiopath.io.atomic import atomic_path, write_text
from radiopath.shift.combat import CenterAdjustment, Reference, adjust, estimate, fit_reference

METHODS = ("none", "standardize", "combat")
STATE_JSON = "harmonization.json"
STATE_TENSORS = "harmonization.safetensors"
Say = Callable[[str], None]


@dataclass
class HarmonizationState:
    """The fitted reference of every image modality and each center's recorded adjustment."""

    method: str
    min_patients: int
    references: dict[str, Reference] = field(default_factory=dict)
    adjustments: dict[tuple[str, str], CenterAdjustment] = field(default_factory=dict)  # (modality, center)
    record: list[dict[str, Any]] = field(default_factory=list)

    def save(self, folder: str | Path) -> None:
        """``harmonization.safetensors`` (the statistics) and ``harmonization.json`` (the rest)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        tensors: dict[str, np.ndarray] = {}
        for m, ref in self.references.items():
            tensors.update(
                {
                    f"ref.{m}.alpha": ref.alpha,
                    f"ref.{m}.sigma": ref.sigma,
                    f"ref.{m}.fixed": ref.fixed.astype(np.uint8),
                }
            )
        names = []
        for k, ((m, center), adj) in enumerate(sorted(self.adjustments.items())):
            tensors.update({f"center{k}.gamma": adj.gamma, f"center{k}.delta": adj.delta})
            names.append(
                {"modality": m, "center": center, "tensor": f"center{k}", "instances": adj.n_instances}
            )
        with atomic_path(folder / STATE_TENSORS) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        meta = {
            "method": self.method,
            "min_patients": self.min_patients,
            "modalities": sorted(self.references),
            "adjustments": names,
            "record": self.record,
        }
        write_text(folder / STATE_JSON, json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> HarmonizationState | None:
        """The state saved in ``folder``; None when the run was not harmonised.

        Raises:
            ConfigError: the files exist but cannot be read.
        """
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / STATE_JSON).is_file():
            return None
        try:
            meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
            t = load_file(str(folder / STATE_TENSORS))
            refs = {
                m: Reference(t[f"ref.{m}.alpha"], t[f"ref.{m}.sigma"], t[f"ref.{m}.fixed"].astype(bool))
                for m in meta["modalities"]
            }
            adjs = {
                (a["modality"], a["center"]): CenterAdjustment(
                    t[f"{a['tensor']}.gamma"], t[f"{a['tensor']}.delta"], int(a["instances"])
                )
                for a in meta["adjustments"]
            }
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{folder / STATE_JSON}: cannot read the harmonisation state ({exc}); train the run again"
            ) from None
        return cls(str(meta["method"]), int(meta["min_patients"]), refs, adjs, list(meta.get("record", [])))


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"harmonization.method must be one of {list(METHODS)}, got {method!r}")
    return method


def _present_rows(inputs: Any, m: str, rows: np.ndarray) -> np.ndarray:
    mask = inputs.arrays[f"{m}_mask"][rows].astype(bool)
    return inputs.arrays[m][rows][mask]


def image_modalities(inputs: Any) -> list[str]:
    """Modalities of ``inputs`` with instance features (P, N, D)."""
    return [m for m in inputs.modalities if inputs.arrays[m].ndim == 3]


def fit_harmonization(inputs: Any, method: str, min_patients: int) -> HarmonizationState:
    """The development reference of every image modality of ``inputs`` (clean features).

    Raises:
        ConfigError: an unknown method, or no development patient with the modality.
    """
    check_method(method)
    dev = inputs.cohort == DEVELOPMENT
    state = HarmonizationState(method, int(min_patients))
    for m in image_modalities(inputs):
        rows = np.flatnonzero(dev & inputs.present(m))
        if len(rows) == 0:
            raise ConfigError(
                f"harmonization: no development patient has {m} features to fit the reference on"
            )
        state.references[m] = fit_reference(_present_rows(inputs, m, rows))
    return state


def harmonize(inputs: Any, state: HarmonizationState, say: Say | None = None) -> Any:
    """``inputs`` with every center's image features mapped onto the development reference
    (module docstring); records each decision in ``state.record`` (this table's centers) and
    each new adjustment in ``state.adjustments``. Augmented passes get their center's
    adjustment too. Returns new inputs (the given ones are not changed)."""
    say = say or (lambda _m: None)
    from radiopath.models.inputs import PatientInputs

    arrays = dict(inputs.arrays)
    augmented = dict(inputs.augmented)
    record = []
    dev_centers = sorted(
        {str(c) for c, k in zip(inputs.center, inputs.cohort, strict=True) if k == DEVELOPMENT}
    )
    for m, ref in state.references.items():
        if m not in arrays:
            continue
        x = arrays[m].copy()
        xa = augmented[m].copy() if m in augmented else None
        for center in sorted({str(c) for c in inputs.center}):
            rows = np.flatnonzero((inputs.center.astype(str) == center) & inputs.present(m))
            if len(rows) == 0:
                continue
            cohort = DEVELOPMENT if center in dev_centers else str(inputs.cohort[rows[0]])
            entry: dict[str, Any] = {"modality": m, "center": center, "cohort": cohort, "patients": len(rows)}
            if cohort == DEVELOPMENT and len(dev_centers) == 1:
                record.append(
                    {**entry, "source": "reference (the only development center)", "adjusted": False}
                )
                continue
            if len(rows) >= state.min_patients:
                adj = estimate(_present_rows(inputs, m, rows), ref, state.method)
                state.adjustments[(m, center)] = adj
                source = "its own unlabelled features in this table"
            elif (m, center) in state.adjustments:
                adj = state.adjustments[(m, center)]
                source = f"recorded adjustment ({len(rows)} patients here, fewer than {state.min_patients})"
            else:
                say(
                    f"warning: harmonization: center {center} has {len(rows)} patient(s) with {m} features, "
                    f"fewer than harmonization.min_patients = {state.min_patients}, and no recorded "
                    "adjustment: its features are left as they are"
                )
                record.append(
                    {
                        **entry,
                        "source": f"not harmonised: fewer than {state.min_patients} patients",
                        "adjusted": False,
                    }
                )
                continue
            mask = inputs.arrays[f"{m}_mask"][rows].astype(bool)
            block = x[rows]
            block[mask] = adjust(block[mask], ref, adj)
            x[rows] = block
            if xa is not None:
                for a in range(len(xa)):
                    ab = xa[a][rows]
                    ab[mask] = adjust(ab[mask], ref, adj)
                    xa[a][rows] = ab
            record.append(
                {
                    **entry,
                    "source": source,
                    "adjusted": True,
                    "instances": adj.n_instances,
                    "mean_abs_shift_sd": float(np.mean(np.abs(adj.gamma))),
                    "mean_scale": float(np.mean(adj.delta)),
                }
            )
        arrays[m] = x
        if xa is not None:
            augmented[m] = xa
    state.record = record
    return PatientInputs(
        inputs.patient_id,
        inputs.center,
        inputs.cohort,
        inputs.label,
        arrays,
        list(inputs.clinical_columns),
        dict(inputs.blocks),
        dict(inputs.feature_names),
        augmented,
    )
