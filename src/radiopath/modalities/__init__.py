"""The modality registry: every kind of patient input radiopath knows.

=========  ===========  ===========================================  =====================
key        label        manifest columns                             options (RunConfig)
=========  ===========  ===========================================  =====================
``us``       ultrasound   ``us_1``, ``us_2`` (+ ``_mask`` / ``_box``)    ``ultrasound:``
``cytology`` cytology     ``cytology``                                 ``cytology:``
``clinical`` clinical     ``clin_*``                                   —
=========  ===========  ===========================================  =====================

Image modalities each give a single-modality model named after their label
(``ultrasound``, ``cytology``) and together the inputs of every fusion model; the clinical
vector joins fusion models with ``model.clinical: true``. Adding a modality means one module
here (its columns, options, fitted preprocessing and instance loading, see
:mod:`radiopath.modalities.base`) and one line in :data:`MODALITIES`; the configuration, the
feature stage, the patient arrays, the encoders, the presets, prediction and the reports
all read this registry. Nothing here imports torch.
"""

from __future__ import annotations

from radiopath.modalities.base import ImageModality, InstanceGroup, Modality, StageContext, VectorModality
from radiopath.modalities.clinical import Clinical
from radiopath.modalities.cytology import Cytology, CytologyConfig
from radiopath.modalities.ultrasound import Ultrasound

#: Every modality, in the order inputs are stacked, fused and reported.
MODALITIES: dict[str, Modality] = {m.key: m for m in (Ultrasound(), Cytology(), Clinical())}


def get(key: str) -> Modality:
    """The registered modality ``key``.

    Raises:
        KeyError: with the registry's keys in the message.
    """
    if key not in MODALITIES:
        raise KeyError(f"unknown modality {key!r}; registered: {sorted(MODALITIES)}")
    return MODALITIES[key]


def image_modalities() -> list[ImageModality]:
    """The modalities that go through an image backbone, in registry order."""
    return [m for m in MODALITIES.values() if isinstance(m, ImageModality)]


def vector_modalities() -> list[VectorModality]:
    """The covariate-vector modalities, in registry order."""
    return [m for m in MODALITIES.values() if isinstance(m, VectorModality)]


def by_label(label: str) -> Modality | None:
    """The modality whose single-modality model is called ``label`` (``ultrasound``), if any."""
    return next((m for m in MODALITIES.values() if m.label == label), None)


__all__ = [
    "MODALITIES",
    "Clinical",
    "Cytology",
    "CytologyConfig",
    "ImageModality",
    "InstanceGroup",
    "Modality",
    "StageContext",
    "Ultrasound",
    "VectorModality",
    "by_label",
    "get",
    "image_modalities",
    "vector_modalities",
]
