"""The feature-family registry: how an image modality's instances become vectors.

=============  ===========  ============  ===========================================
family         kind         modality      what one instance gives
=============  ===========  ============  ===========================================
``deep``       deep         every image   the frozen backbone's pooled features
``radiomics``  handcrafted  ultrasound    IBSI radiomics of the nodule region of a view
``pathomics``  handcrafted  cytology      nuclear morphometry and crowding of a tile
=============  ===========  ============  ===========================================

``model.feature_set`` picks, for all modalities or per modality, ``deep``, ``handcrafted``
(the handcrafted families of that modality) or ``hybrid`` (both, side by side, each block
standardised and projected inside the training folds). Every family caches by content like
the deep one (``CACHE/features/<family key>/…``), and the handcrafted ones run in parallel
processes. A new family is one class here (its key, names and compute) plus its module of
measurements; a family with options declares them as a RunConfig section (``radiomics:``,
``pathomics:``). Importing this module does not import torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from radiopath.config import StrictModel
from radiopath.features.pathomics import PathomicsConfig
from radiopath.features.radiomics import RadiomicsConfig
from radiopath.io.fingerprint import digest, source_digest

#: What ``model.feature_set`` may say, for all modalities or per modality.
FEATURE_SETS: tuple[str, ...] = ("deep", "handcrafted", "hybrid")
Notes = list[list[str]]


class FeatureFamily(ABC):
    """A way to turn a modality's native instances into one vector each."""

    name: ClassVar[str]
    kind: ClassVar[Literal["deep", "handcrafted"]]
    #: the modality key it measures (None: every image modality)
    modality: ClassVar[str | None] = None
    #: its options: the RunConfig section name and model (None: no options)
    section: ClassVar[str | None] = None
    options: ClassVar[type[StrictModel] | None] = None
    #: the code whose changes change its numbers
    code: ClassVar[tuple[str, ...]] = ()

    def applies(self, modality: str) -> bool:
        return self.modality is None or self.modality == modality

    def settings(self, cfg: Any) -> Any:
        return getattr(cfg, self.section) if self.section else None

    def options_key(self, cfg: Any) -> Any:
        s = self.settings(cfg)
        return s.model_dump(mode="json") if s is not None else None

    @abstractmethod
    def names(self, modality: str, cfg: Any, dim: int) -> list[str]:
        """The name of every column this family gives for ``modality``."""


class DeepFamily(FeatureFamily):
    """The frozen backbone (:mod:`radiopath.features.deep`); batched, in this process."""

    name = "deep"
    kind = "deep"

    def names(self, modality: str, cfg: Any, dim: int) -> list[str]:
        return [f"deep_{i}" for i in range(dim)]


class HandcraftedFamily(FeatureFamily):
    """A measurement per instance, computed in worker processes from each group's ``details``."""

    kind = "handcrafted"

    def key(self, cfg: Any) -> str:
        return digest(self.name, source_digest(*self.code), self.options_key(cfg))[:20]

    @abstractmethod
    def measure(self, details: Any, cfg: Any) -> tuple[np.ndarray, Notes]:
        """``(features (n_instances, D), notes)`` of one group from its native details."""


class RadiomicsFamily(HandcraftedFamily):
    """IBSI radiomics of the nodule region of each ultrasound view (:mod:`.radiomics`)."""

    name = "radiomics"
    modality = "us"
    section = "radiomics"
    options = RadiomicsConfig
    code = (
        "radiopath.features.radiomics",
        "radiopath.features.firstorder",
        "radiopath.features.shape2d",
        "radiopath.features.texture",
        "radiopath.features.perinodular",
        "radiopath.ultrasound.nodule",
    )

    def names(self, modality: str, cfg: Any, dim: int) -> list[str]:
        from radiopath.features.radiomics import radiomics_feature_names

        return list(radiomics_feature_names(cfg.radiomics))

    def measure(self, details: Any, cfg: Any) -> tuple[np.ndarray, Notes]:
        from radiopath.features.radiomics import features_vector, processed_view_radiomics

        rows, notes = [], []
        for view, mask, box in details:
            r = processed_view_radiomics(view, mask=mask, box=box, cfg=cfg.radiomics)
            rows.append(features_vector(r.features, cfg.radiomics))
            notes.append(sorted({*view.flags, *r.flags}))
        return np.asarray(rows, np.float32), notes


class PathomicsFamily(HandcraftedFamily):
    """Nuclear morphometry, chromatin and crowding of each cytology tile (:mod:`.pathomics`),
    measured at the tiling resolution (``cytology.tiling.target_mpp``)."""

    name = "pathomics"
    modality = "cytology"
    section = "pathomics"
    options = PathomicsConfig
    code = ("radiopath.features.pathomics", "radiopath.features.morphometry", "radiopath.slides.nuclei")

    def names(self, modality: str, cfg: Any, dim: int) -> list[str]:
        from radiopath.features.pathomics import feature_names

        return list(feature_names(cfg.pathomics))

    def measure(self, details: Any, cfg: Any) -> tuple[np.ndarray, Notes]:
        from radiopath.features.pathomics import features_vector, measure_tile, tile_features

        mpp = float(cfg.cytology.tiling.target_mpp)
        rows = [
            features_vector(tile_features(measure_tile(t, mpp, cfg.pathomics)), cfg.pathomics)
            for t in details
        ]
        return np.asarray(rows, np.float32), [[] for _ in rows]


#: Every feature family, in the order hybrid blocks are stacked.
FAMILIES: dict[str, FeatureFamily] = {f.name: f for f in (DeepFamily(), RadiomicsFamily(), PathomicsFamily())}


def families_for(modality: str, feature_set: str) -> list[FeatureFamily]:
    """The families ``feature_set`` (deep | handcrafted | hybrid) means for ``modality``."""
    handcrafted = [f for f in FAMILIES.values() if f.kind == "handcrafted" and f.applies(modality)]
    deep = [f for f in FAMILIES.values() if f.kind == "deep" and f.applies(modality)]
    if feature_set == "deep":
        return deep
    if feature_set == "handcrafted":
        return handcrafted
    return deep + handcrafted


def family_sections() -> dict[str, type[StrictModel]]:
    """RunConfig sections the families contribute (``radiomics``, ``pathomics``)."""
    return {f.section: f.options for f in FAMILIES.values() if f.section and f.options is not None}


def measure_group(args: tuple[str, Any, Callable[[], Any]]) -> tuple[np.ndarray, Notes]:
    """Worker entry (picklable): one group's handcrafted features from its details loader."""
    family_name, cfg, details = args
    family = FAMILIES[family_name]
    assert isinstance(family, HandcraftedFamily)
    return family.measure(details(), cfg)


def stack_names(blocks: Sequence[tuple[str, list[str]]]) -> list[str]:
    """Column names of a hybrid matrix: ``family:name``."""
    return [f"{fam}:{n}" for fam, names in blocks for n in names]
