"""The fitted preprocessing of a study: every modality's ``fit → state``, saved as JSON.

Fitted on the development cohort only (ultrasound per-center standardisation, the stain
target, the clinical encoding) and then applied, never refitted, to every other patient —
the external centers of the study as much as the next patient of a deployed model. The
state lives in ``FEATS/preprocessing.json`` and ``RUN/preprocessing.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.errors import ConfigError
from radiopath.io.atomic import write_text
from radiopath.modalities import MODALITIES, ImageModality, VectorModality
from radiopath.run_config import RunConfig

#: Version of the preprocessing file; bumped when its meaning changes.
PREPROCESSING_VERSION = 2


@dataclass
class Preprocessing:
    """Per modality key, the JSON-ready state its ``fit`` returned."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def state(self, modality: str) -> dict[str, Any]:
        """The fitted state of ``modality``.

        Raises:
            ConfigError: nothing was fitted for it (the run or features never had it).
        """
        if modality not in self.states:
            raise ConfigError(
                f"no fitted preprocessing for modality '{modality}' (have {sorted(self.states)}); "
                "the run was made without it"
            )
        return self.states[modality]

    def describe(self) -> dict[str, str]:
        """One line per modality about what was fitted (for logs and the methods text)."""
        out = {}
        for key, state in self.states.items():
            m = MODALITIES.get(key)
            out[key] = (
                m.describe_state(state) if isinstance(m, ImageModality) else "encoding fitted on development"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"version": PREPROCESSING_VERSION, "modalities": self.states}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "preprocessing state") -> Preprocessing:
        if not isinstance(data, Mapping) or data.get("version") != PREPROCESSING_VERSION:
            version = data.get("version") if isinstance(data, Mapping) else None
            raise ConfigError(
                f"{source}: preprocessing state version {version!r}, this radiopath reads "
                f"{PREPROCESSING_VERSION}; extract or train again with this version"
            )
        return cls({str(k): dict(v) for k, v in (data.get("modalities") or {}).items()})

    def save(self, path: str | Path) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessing:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the fitted preprocessing ({exc})") from None
        return cls.from_dict(data, source=str(path))


def development_rows(table: pd.DataFrame) -> np.ndarray:
    """The rows preprocessing may be fitted on: the development cohort (labelled or not)."""
    from radiopath.cohort.schema import DEVELOPMENT

    return (table["cohort"].astype(str) == DEVELOPMENT).to_numpy()


def fit_preprocessing(
    table: pd.DataFrame, cfg: RunConfig, prepared: Mapping[str, Any], modalities: list[str]
) -> Preprocessing:
    """Fit every listed modality's preprocessing on the development rows of ``table`` only."""
    dev = development_rows(table)
    states: dict[str, dict[str, Any]] = {}
    for key in modalities:
        m = MODALITIES[key]
        if isinstance(m, ImageModality):
            states[key] = m.fit(table, dev, cfg, prepared.get(key))
        elif isinstance(m, VectorModality):
            states[key] = m.fit(table, dev)
    return Preprocessing(states)
