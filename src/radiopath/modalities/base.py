"""What a modality is: one kind of patient input, from manifest columns to model-ready arrays.

Two kinds exist:

* :class:`ImageModality` — a *set of images* per patient (ultrasound views, the tiles of a
  cytology slide). It says how the cohort is prepared (e.g. slides tiled), what is fitted on
  the development cohort (``fit → state``: intensity standardisation, a stain target) and how
  that state is applied (``groups(…, state)``: one :class:`InstanceGroup` per unit that loads
  together, each with a content key that covers every input and option that shapes its
  pixels). Feature families (``radiopath.features``) turn the loaded images into vectors.
* :class:`VectorModality` — one vector of covariates per patient (clinical data), with the
  same ``fit → state`` / ``apply(state, …)`` split.

Everything downstream of the manifest — extraction, the patient arrays, the encoders, the
model presets, the protocol, prediction and the reports — iterates over the registry in
:mod:`radiopath.modalities`, so a new modality is one new module plus one registry line.
This module imports neither torch nor a modality's heavy dependencies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from radiopath.config import StrictModel

Say = Callable[[str], None]


class RunConfig(Protocol):
    """What a modality reads of the run configuration (:class:`radiopath.run_config.RunConfig`):
    ``model`` and ``train``, and its own section by name (declared here structurally, so the
    registry sits below the configuration that is built from it)."""

    model: Any
    train: Any

    def __getattr__(self, section: str) -> Any: ...


@dataclass(frozen=True)
class InstanceGroup:
    """The images of one patient in one modality that are read together.

    Attributes:
        row: the patient's position in the cohort table.
        slots: the instance slots these images fill (view number; tile rank).
        key: content key — a digest of every file, coordinate, fitted state and option
            that determines the pixels (never the patient id).
        index: one record per instance for the feature index (view name; tile coordinates).
        load: returns the native images, ``(n, H, W, 3)`` uint8 with ``n == len(slots)``.
        info: per-instance notes the loader found (e.g. ultrasound flags), filled by ``load``.
        details: returns what handcrafted feature families measure, per instance (ultrasound:
            the processed view with its mask and box; cytology: the tiles at the tiling
            resolution). Loaders are picklable (``functools.partial`` of module functions), so
            groups can be measured in worker processes.
    """

    row: int
    slots: tuple[int, ...]
    key: str
    index: tuple[dict[str, Any], ...]
    load: Callable[[], np.ndarray]
    info: list[list[str]] = field(default_factory=list, compare=False)
    details: Callable[[], Any] | None = field(default=None, compare=False)


@dataclass
class StageContext:
    """Where a stage finds and keeps intermediate artifacts."""

    cache_root: Path
    tiles: Path | None = None  # a finished `radiopath tile` folder to reuse
    mpp_table: Any = None  # per-slide resolution overrides (CSV path or mapping)
    workers: int = 1
    say: Say = field(default=lambda _m: None)


class Modality(ABC):
    """Common declaration of every modality (see the module docstring)."""

    #: key of the modality in batches, checkpoints and feature files (``us``, ``cytology``)
    key: ClassVar[str]
    #: human name; an image modality's single-modality model is named after it
    label: ClassVar[str]
    #: manifest columns whose filling means the patient has this modality
    columns: ClassVar[tuple[str, ...]]
    #: the RunConfig section holding its options, and their model (None: no options)
    section: ClassVar[str | None] = None
    options: ClassVar[type[StrictModel] | None] = None

    #: manifest columns whose content defines the modality's inputs (see :meth:`source_keys`)
    source_columns: ClassVar[tuple[str, ...]] = ()

    def source_keys(self, table: pd.DataFrame) -> list[str | None]:
        """Per patient, a digest of the content of this modality's inputs (None when absent).

        Files are identified by content (:func:`radiopath.io.fingerprint.file_digest`, a
        patch folder by :func:`~radiopath.io.fingerprint.slide_identity`), other cells by
        value; a stage that reuses earlier features checks them against these keys.
        """
        from radiopath.io.fingerprint import digest, file_digest, slide_identity

        cols = self.source_columns or self.columns
        present = self.present(table)
        out: list[str | None] = []
        for ok, rec in zip(present, rows_of(table, cols), strict=True):
            if not ok:
                out.append(None)
                continue
            parts = []
            for c in cols:
                v = rec[c]
                if isinstance(v, str) and Path(v).is_dir():
                    parts.append(slide_identity(v))
                elif isinstance(v, str) and Path(v).is_file():
                    parts.append(file_digest(v, full=False))
                else:
                    parts.append(None if v is None else str(v))
            out.append(digest(self.key, parts))
        return out

    def present(self, table: pd.DataFrame) -> np.ndarray:
        """Per patient: does the manifest give this modality?"""
        cols = [c for c in self.columns if c in table.columns]
        if not cols:
            return np.zeros(len(table), bool)
        filled = [
            table[c].notna().to_numpy() & (table[c].astype(str).str.strip() != "").to_numpy() for c in cols
        ]
        return np.logical_or.reduce(filled)

    def settings(self, cfg: RunConfig) -> Any:
        """This modality's options section of ``cfg`` (None when it has none)."""
        return getattr(cfg, self.section) if self.section else None


class ImageModality(Modality):
    """A set of images per patient that goes through an image backbone."""

    @abstractmethod
    def max_instances(self, cfg: RunConfig) -> int:
        """Slots per patient (views; tiles per slide)."""

    @abstractmethod
    def input_size(self, cfg: RunConfig) -> int:
        """Side in pixels of the backbone's input."""

    def backbone(self, cfg: RunConfig) -> str:
        """The backbone for this modality: ``model.<key>_backbone`` when set, else ``model.backbone``."""
        return getattr(cfg.model, f"{self.key}_backbone", None) or cfg.model.backbone

    def pooling(self, head: Any) -> str:
        """How instances are pooled: ``model.head.<key>_pooling`` (default gated attention)."""
        return str(getattr(head, f"{self.key}_pooling", "attention"))

    def prepare(self, table: pd.DataFrame, cfg: RunConfig, ctx: StageContext) -> Any:
        """Cohort-level work before anything is fitted (e.g. tiling every slide); its result is
        passed to :meth:`fit` and :meth:`groups`. Default: nothing."""
        return None

    @abstractmethod
    def fit(
        self, table: pd.DataFrame, development: np.ndarray, cfg: RunConfig, prepared: Any
    ) -> dict[str, Any]:
        """Fit this modality's preprocessing on the ``development`` rows only → JSON-ready state."""

    @abstractmethod
    def groups(
        self, table: pd.DataFrame, cfg: RunConfig, state: Mapping[str, Any], prepared: Any
    ) -> list[InstanceGroup]:
        """Apply a fitted ``state``: one :class:`InstanceGroup` per unit of images to load."""

    def network_input(self, images: np.ndarray, cfg: RunConfig) -> np.ndarray:
        """Native images ``(n, H, W, 3)`` → backbone input ``(n, S, S, 3)`` uint8 (default: as is)."""
        return images

    def augment(self, image: np.ndarray, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        """A random training augmentation of one backbone input (finetune mode). Default: none."""
        return image

    def augment_instances(
        self, images: np.ndarray, rng: np.random.Generator, cfg: RunConfig
    ) -> np.ndarray | None:
        """Features mode: one augmented pass of a group's native images (what
        :attr:`InstanceGroup.load` returns, same shape), drawn from ``rng``; None when this
        modality has no feature augmentation (its passes are then its clean features)."""
        return None

    def augment_details(self, details: Any, rng: np.random.Generator, cfg: RunConfig) -> Any | None:
        """Features mode: the same for what handcrafted families measure (:attr:`InstanceGroup.
        details`); None when this modality cannot augment them."""
        return None

    def shift_report(
        self, table: pd.DataFrame, state: Mapping[str, Any], prepared: Any
    ) -> tuple[pd.DataFrame, list[str]]:
        """Per center, how its acquisition differs from the development cohort's (measured
        without labels), and a warning per center that differs much. Default: nothing."""
        return pd.DataFrame(), []

    def describe_state(self, state: Mapping[str, Any]) -> str:
        """One line for logs and methods text about what was fitted."""
        return "nothing fitted"


class VectorModality(Modality):
    """One vector of covariates per patient."""

    @abstractmethod
    def fit(self, table: pd.DataFrame, development: np.ndarray) -> dict[str, Any]:
        """Fit the encoding (columns, category levels) on the development rows → JSON-ready state."""

    @abstractmethod
    def apply(
        self, state: Mapping[str, Any], table: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(matrix (P, C) float32 with NaN where unknown, present (P,), column names)``."""


def cell(value: Any) -> Any:
    """A manifest cell with empty strings, NaN and NA as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def rows_of(table: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The table's rows as dicts of the given columns (missing columns as None)."""
    data = {c: table[c].tolist() if c in table.columns else [None] * len(table) for c in columns}
    return [{c: cell(data[c][i]) for c in columns} for i in range(len(table))]
