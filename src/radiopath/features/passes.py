"""Augmented passes of features mode: a few augmented copies of every development view and tile.

A frozen backbone sees each image once, so features mode had no augmentation: a head trained on
one hospital's features met another hospital's blur, resolution and stain (or gain and contrast)
for the first time at external validation. Tellez et al. (Medical Image Analysis 58, 2019)
showed that augmenting for exactly those differences is what generalises across centers. So
extraction also caches ``train.augment_passes`` augmented passes of every instance group of the
development cohort: pass ``p`` of a group applies its modality's augmentation
(:meth:`radiopath.modalities.ImageModality.augment_instances`, or ``augment_details`` for
handcrafted families) to the group's native images, drawn from a generator seeded by the
group's content key and ``p`` — never by a patient id, a worker or a rank — so every process
and every rerun computes the same pixels and the cache is shared like the clean one. The
training loop then draws, per epoch and patient, one of the clean and augmented passes
(:mod:`radiopath.train.loop`); early stopping, prediction and every reported number use the
clean features.

An augmented pass is an :class:`~radiopath.modalities.InstanceGroup` like the clean one, with
its own key (``digest(clean key, "pass", p)``) and loaders, cached in a namespace of its own
(:func:`augmented_family_key`: the clean family's key, the modality's augmentation options and
this code).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from radiopath.compute import stable_seed
from radiopath.io.fingerprint import digest, source_digest
from radiopath.modalities import ImageModality, InstanceGroup

#: The code whose changes change augmented pixels (beyond the modality code in every family key).
AUGMENT_CODE = ("radiopath.features.passes", "radiopath.slides.augment", "radiopath.shift.acquisition")


def can_augment(modality: ImageModality, details: bool = False) -> bool:
    """Does ``modality`` implement feature augmentation (of images, or of ``details``)?"""
    name = "augment_details" if details else "augment_instances"
    return getattr(type(modality), name) is not getattr(ImageModality, name)


def augment_options(modality: ImageModality, cfg: Any) -> Any:
    """The modality's augmentation options (``<section>.augment``), as JSON."""
    settings = modality.settings(cfg)
    options = getattr(settings, "augment", None)
    return options.model_dump(mode="json") if options is not None else None


def augmented_family_key(family_key: str, modality: ImageModality, cfg: Any) -> str:
    """Cache namespace of the augmented passes of one family of ``modality``."""
    return digest(family_key, "augment", augment_options(modality, cfg), source_digest(*AUGMENT_CODE))[:24]


def pass_rng(group_key: str, p: int) -> np.random.Generator:
    """The generator of pass ``p`` of a group: seeded by content, the same in every process."""
    return np.random.default_rng(stable_seed(group_key, "augment-pass", p))


def augmented_group(group: InstanceGroup, modality: ImageModality, cfg: Any, p: int) -> InstanceGroup:
    """Pass ``p`` (1, 2, …) of ``group``: same slots and index, its own key and loaders."""
    load = partial(_load, group.load, modality, cfg, group.key, p)
    details = partial(_details, group.details, modality, cfg, group.key, p) if group.details else None
    return replace(group, key=digest(group.key, "pass", p), load=load, details=details)


def _load(load: Any, modality: ImageModality, cfg: Any, key: str, p: int) -> np.ndarray:
    images = load()
    out = modality.augment_instances(images, pass_rng(key, p), cfg)
    return images if out is None else out


def _details(details: Any, modality: ImageModality, cfg: Any, key: str, p: int) -> Any:
    native = details()
    out = modality.augment_details(native, pass_rng(key, p), cfg)
    return native if out is None else out
