"""The patients to explain, with everything an explanation needs, made with the run's own state.

A :class:`Case` holds one patient's native images and their model inputs — the ultrasound
crops the backbone sees, the slide's tiles at the tiling resolution (stain-normalised with
the run's fitted state) and the same tiles resized for the backbone — plus where each tile
lies on the slide, the clinical vector, and which fold model predicted the patient: a
development patient is explained by the fold model that never saw it (the one behind its
out-of-fold prediction), every other patient by the fold ensemble.

Everything comes through the modality registry with the run's saved preprocessing
(``prepare`` → ``groups(…, run.preprocessing.state(m))`` → ``load``), never refitted, so the
features a case's images give are those the run was trained and scored on.

Features mode adds, per image modality, the :class:`ScoredInput` — the instance vectors the
run actually scored (:meth:`Run.inputs`: every feature family of the modality's feature set,
after the run's harmonisation) and how the backbone's features enter them — so a hybrid or
harmonised run is explained through exactly the input it predicted from (:func:`attach_scored`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.cohort.schema import CYTOLOGY_COLUMN
from radiopath.errors import ConfigError
from radiopath.features.cache import default_cache_dir
from radiopath.modalities import MODALITIES, ImageModality, StageContext, VectorModality
from radiopath.runs import Run

Say = Callable[[str], None]


@dataclass
class ScoredInput:
    """Features mode: one case's model input for one image modality, as the run scored it.

    ``values`` hold every column of the modality's feature set (the deep block, and for a hybrid
    set the handcrafted blocks, after harmonisation). The backbone's features enter the columns
    ``deep`` (None: a handcrafted-only modality, held fixed) through the center's harmonisation,
    an affine map per feature whose slope is ``scale`` (``1/δ``; 1 when not harmonised): a
    backbone feature changed by ``d`` changes the input by ``d · scale``. So gradients reach
    the deep block only, with the handcrafted features at their actual values.
    """

    values: np.ndarray  # (n_max, D) float32
    mask: np.ndarray  # (n_max,) bool
    deep: tuple[int, int] | None
    scale: np.ndarray  # (stop - start,) float32


@dataclass
class Case:
    """One patient to explain (see the module docstring).

    Attributes:
        images: per image modality, the backbone inputs of the present instances
            ``(n, s, s, 3)`` uint8 (ultrasound: the crops; cytology: the resized tiles).
        slots: per image modality, the slot of each present instance (view number, tile rank).
        native: per image modality, the native images (cytology: tiles at ``tiling.target_mpp``).
        tiles: the slide's tile rows (``x, y, extent, size, mpp, slide_mpp, rank``), best first.
        vectors: per vector modality, ``(values (C,), present)``.
        fold: the out-of-fold model's fold, or -1 for the fold ensemble.
    """

    row: int
    patient_id: str
    cohort: str
    center: str
    label: float
    fold: int
    images: dict[str, np.ndarray] = field(default_factory=dict)
    slots: dict[str, np.ndarray] = field(default_factory=dict)
    native: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    tiles: pd.DataFrame | None = None
    slide: str | None = None
    vectors: dict[str, tuple[np.ndarray, bool]] = field(default_factory=dict)
    scored: dict[str, ScoredInput] = field(default_factory=dict)

    def has(self, modality: str) -> bool:
        if modality in self.vectors:
            return self.vectors[modality][1]
        return modality in self.images and len(self.images[modality]) > 0


def load_cases(
    run: Run,
    table: pd.DataFrame,
    rows: Sequence[int],
    *,
    cache_dir: str | Path | None = None,
    say: Say | None = None,
) -> list[Case]:
    """Cases for the rows ``rows`` of the cohort ``table`` (a ``Cohort.table``), in that order."""
    sub = table.iloc[list(rows)].reset_index(drop=True)
    cfg = run.config
    root = Path(cache_dir or cfg.cache_dir or default_cache_dir())
    ctx = StageContext(root, None, None, say=say or (lambda _m: None))
    folds = dict(zip(run.folds["patient_id"].astype(str), run.folds["fold"].astype(int), strict=True))
    label = pd.to_numeric(sub.get("lnm"), errors="coerce").to_numpy(float)
    cases = [
        Case(
            row=int(r),
            patient_id=str(sub.at[i, "patient_id"]),
            cohort=str(sub.at[i, "cohort"]),
            center=str(sub.at[i, "center"]),
            label=float(label[i]),
            fold=int(folds.get(str(sub.at[i, "patient_id"]), -1)),
        )
        for i, r in enumerate(rows)
    ]
    for key, modality in MODALITIES.items():
        if key not in run.info.in_dims:
            continue
        if isinstance(modality, VectorModality):
            values, present, _ = modality.apply(run.preprocessing.state(key), sub)
            for i, case in enumerate(cases):
                case.vectors[key] = (values[i], bool(present[i]))
            continue
        assert isinstance(modality, ImageModality)
        if not modality.present(sub).any():
            continue
        prepared = modality.prepare(sub, cfg, ctx)
        groups = modality.groups(sub, cfg, run.preprocessing.state(key), prepared)
        parts: dict[int, list[tuple[int, np.ndarray, np.ndarray, str]]] = {}
        for g in groups:
            native = g.load()
            net = modality.network_input(native, cfg)
            for slot, img, nat, rec in zip(g.slots, net, native, g.index, strict=True):
                name = str(rec.get("view") or f"tile {rec.get('rank', slot)}")
                parts.setdefault(g.row, []).append((int(slot), img, nat, name))
        for i, case in enumerate(cases):
            got = sorted(parts.get(i, []), key=lambda t: t[0])
            if not got:
                continue
            case.slots[key] = np.array([t[0] for t in got], np.int64)
            case.images[key] = np.stack([t[1] for t in got])
            case.native[key] = np.stack([t[2] for t in got])
            case.names[key] = [t[3] for t in got]
        if key == "cytology":
            for i, case in enumerate(cases):
                if i in prepared:
                    case.tiles = prepared[i].reset_index(drop=True)
                    case.slide = str(sub.at[i, CYTOLOGY_COLUMN])
    return cases


def attach_scored(cases: Sequence[Case], run: Run, inputs: Any) -> None:
    """Fill every case's :attr:`Case.scored` from ``inputs``, the run's :meth:`Run.inputs` of the
    cohort (features mode), and the harmonisation that call applied
    (:attr:`Run.last_harmonization_state`).

    Raises:
        ConfigError: a case is not in ``inputs``.
    """
    where = {str(p): i for i, p in enumerate(inputs.patient_id)}
    state = run.last_harmonization_state
    adjusted = {(r["modality"], r["center"]) for r in (state.record if state else []) if r.get("adjusted")}
    for key, modality in MODALITIES.items():
        if not isinstance(modality, ImageModality) or key not in inputs.arrays:
            continue
        blocks = inputs.blocks.get(key) or [
            (run.config.model.feature_set_of(key), 0, int(inputs.arrays[key].shape[-1]))
        ]
        deep = next(((int(a), int(b)) for fam, a, b in blocks if fam == "deep"), None)
        for c in cases:
            if c.patient_id not in where:
                raise ConfigError(f"patient {c.patient_id}: not among the run's scored inputs")
            row = where[c.patient_id]
            scale = np.ones(deep[1] - deep[0] if deep else 0, np.float32)
            if deep and state is not None and (key, c.center) in adjusted:
                delta = state.adjustments[(key, c.center)].delta
                scale = (1.0 / delta[deep[0] : deep[1]]).astype(np.float32)
            c.scored[key] = ScoredInput(
                np.asarray(inputs.arrays[key][row], np.float32),
                np.asarray(inputs.arrays[f"{key}_mask"][row], bool),
                deep,
                scale,
            )


def describe(case: Case) -> dict[str, Any]:
    """The identifying columns of a case, for tables."""
    return {
        "patient_id": case.patient_id,
        "cohort": case.cohort,
        "center": case.center,
        "label": case.label,
        "fold": case.fold,
    }
