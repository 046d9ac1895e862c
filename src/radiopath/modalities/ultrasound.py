"""The ultrasound modality: the patient's views (``us_1``, ``us_2``) through the one transform.

Fitted state: the :class:`~radiopath.ultrasound.UltrasoundTransform` state (its options and,
with ``intensity.standardize``, the per-center Nyúl–Udupa landmarks learned on development
views only). Each view is one instance group whose key covers the image file's content, its
mask's content or box, its center and the transform state. Augmentation (features-mode passes
and finetune training) is the transform's own (:mod:`radiopath.ultrasound.augment`: gain,
contrast, speckle, small rotations and zoom, left-right flips); the per-center acquisition
check (brightness and contrast of the scan area against development) is
:mod:`radiopath.shift.acquisition`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from radiopath.cohort.schema import BOX_COLUMNS, MASK_COLUMNS, US_VIEWS, parse_box
from radiopath.io.fingerprint import digest, file_digest
from radiopath.modalities.base import ImageModality, InstanceGroup, RunConfig, rows_of
from radiopath.ultrasound import UltrasoundConfig, UltrasoundTransform


class Ultrasound(ImageModality):
    key = "us"
    label = "ultrasound"
    columns = US_VIEWS
    source_columns = ("center", *US_VIEWS, *MASK_COLUMNS.values(), *BOX_COLUMNS.values())
    section = "ultrasound"
    options = UltrasoundConfig

    def max_instances(self, cfg: RunConfig) -> int:
        return len(US_VIEWS)

    def input_size(self, cfg: RunConfig) -> int:
        return int(cfg.ultrasound.size)

    def transform(self, state: Mapping[str, Any]) -> UltrasoundTransform:
        """The fitted transform a state describes."""
        return UltrasoundTransform.from_state(state)

    def fit(
        self, table: pd.DataFrame, development: np.ndarray, cfg: RunConfig, prepared: Any
    ) -> dict[str, Any]:
        """Per-center histogram standardisation on development views (when switched on)."""
        tf = UltrasoundTransform(cfg.ultrasound)
        if cfg.ultrasound.intensity.standardize:
            by_center: dict[str, list[str]] = {}
            dev = table[development]
            for rec in rows_of(dev, ["center", *US_VIEWS]):
                for view in US_VIEWS:
                    if rec[view] is not None:
                        by_center.setdefault(str(rec["center"]), []).append(rec[view])
            tf.fit(by_center)
        return tf.state_dict()

    def groups(
        self, table: pd.DataFrame, cfg: RunConfig, state: Mapping[str, Any], prepared: Any
    ) -> list[InstanceGroup]:
        tf = self.transform(state)
        state_key = digest("us-transform", dict(state))
        cols = ["center", *US_VIEWS, *MASK_COLUMNS.values(), *BOX_COLUMNS.values()]
        out: list[InstanceGroup] = []
        for i, rec in enumerate(rows_of(table, cols)):
            for v, view in enumerate(US_VIEWS):
                path = rec[view]
                if path is None:
                    continue
                mask_path = rec[MASK_COLUMNS[view]]
                box = _box(rec[BOX_COLUMNS[view]])
                mask_key = file_digest(mask_path) if mask_path is not None else None
                key = digest("us", state_key, file_digest(path), mask_key, box, rec["center"])
                info: list[list[str]] = []
                args = (tf, str(path), mask_path, box, str(rec["center"]))
                out.append(
                    InstanceGroup(
                        i,
                        (v,),
                        key,
                        ({"view": view},),
                        partial(_view_image, *args, info),
                        info,
                        partial(_view_details, *args),
                    )
                )
        return out

    def augment(self, image: np.ndarray, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        return UltrasoundTransform(cfg.ultrasound).augment(image, rng)

    def augment_instances(self, images: np.ndarray, rng: np.random.Generator, cfg: RunConfig) -> np.ndarray:
        """Features mode: each model-ready crop of the group through :meth:`augment`."""
        return np.stack([self.augment(im, rng, cfg) for im in images]) if len(images) else images

    def augment_details(self, details: Any, rng: np.random.Generator, cfg: RunConfig) -> Any:
        """Radiomics: gain, contrast and speckle of the cleaned full-size view (no geometric step,
        so the nodule's mask and box still fit)."""
        from radiopath.shift.acquisition import photometric_augment

        out = []
        for view, mask, box in details:
            cleaned = photometric_augment(view.cleaned, rng, cfg.ultrasound.augment)
            out.append((replace(view, cleaned=cleaned), mask, box))
        return out

    def shift_report(
        self, table: pd.DataFrame, state: Mapping[str, Any], prepared: Any
    ) -> tuple[pd.DataFrame, list[str]]:
        """Per center, brightness and contrast of the scan area against development (a sample)."""
        from radiopath.shift.acquisition import ultrasound_acquisition, ultrasound_warnings

        out = ultrasound_acquisition(table, UltrasoundTransform.from_state(state).config)
        return out, ultrasound_warnings(out)

    def describe_state(self, state: Mapping[str, Any]) -> str:
        std = state.get("standardizer")
        if not std:
            return "per-image intensity normalisation (nothing fitted across images)"
        centers = sorted(std.get("centers") or {})
        return f"per-center histogram standardisation fitted on development views ({', '.join(centers)})"


def _box(value: Any) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_box(value)
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _process(
    tf: UltrasoundTransform,
    path: str,
    mask_path: str | None,
    box: tuple[int, int, int, int] | None,
    center: str,
) -> tuple[Any, np.ndarray | None]:
    """Read one view (and its mask) and run the transform: ``(ProcessedView, mask)``."""
    from radiopath.io.images import read_image

    image = read_image(path)
    mask = read_image(mask_path)[:, :, 0] > 0 if mask_path is not None else None
    return tf.process(image, mask=mask, box=box, center=center, source_path=path), mask


def _view_image(
    tf: UltrasoundTransform,
    path: str,
    mask_path: str | None,
    box: tuple[int, int, int, int] | None,
    center: str,
    info: list[list[str]],
) -> np.ndarray:
    """The model-ready crop ``(1, S, S, 3)``; the transform's flags go to ``info``."""
    done, _ = _process(tf, path, mask_path, box, center)
    info[:] = [list(done.flags)]
    return done.image[None]


def _view_details(
    tf: UltrasoundTransform,
    path: str,
    mask_path: str | None,
    box: tuple[int, int, int, int] | None,
    center: str,
) -> list[tuple[Any, np.ndarray | None, tuple[int, int, int, int] | None]]:
    """What radiomics measures: ``[(ProcessedView, mask, box)]`` in full-image coordinates."""
    done, mask = _process(tf, path, mask_path, box, center)
    return [(done, mask, box)]
