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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.cohort.schema import CYTOLOGY_COLUMN
from radiopath.features.cache import default_cache_dir
from radiopath.modalities import MODALITIES, ImageModality, StageContext, VectorModality
from radiopath.runs import Run

Say = Callable[[str], None]


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


def describe(case: Case) -> dict[str, Any]:
    """The identifying columns of a case, for tables."""
    return {
        "patient_id": case.patient_id,
        "cohort": case.cohort,
        "center": case.center,
        "label": case.label,
        "fold": case.fold,
    }
