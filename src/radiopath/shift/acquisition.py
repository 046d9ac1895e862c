"""Ultrasound acquisition per center: brightness and contrast of the scan area, against development.

Scanners differ most in gain and display curve (the knobs a sonographer turns), and a model
trained at one hospital sees another hospital's images through them. Before any model is
trusted at a center, :func:`ultrasound_acquisition` measures, on a sample of each center's
first views (no labels), the scan area's median grey level (*brightness*) and its
interquartile range (*contrast*), and compares each center with the development centers:
a ratio below :data:`WARN_LOW` or above :data:`WARN_HIGH` gets a warning
(:func:`ultrasound_warnings`), as ``radiopath validate`` and ``radiopath train`` print them.
The scan area is found as the transform finds it (:func:`radiopath.ultrasound.scan_area.
find_scan_area`), so vendor chrome and text do not count.

:func:`photometric_augment` is the gain/contrast/speckle part of the training augmentation
(:mod:`radiopath.ultrasound.augment`) for a full-size grey view, used for the augmented passes
of handcrafted radiomics (no geometric step, so masks and boxes still fit).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import pandas as pd

from radiopath.cohort.schema import DEVELOPMENT

#: Views read per center (the first view of the first patients in manifest order).
SAMPLE = 16
#: Longer side a view is reduced to before it is measured.
MAX_SIDE = 256
#: Brightness or contrast ratio (center / development) outside these bounds gets a warning.
WARN_LOW, WARN_HIGH = 0.8, 1.25

COLUMNS = [
    "center",
    "cohort",
    "views",
    "brightness",
    "contrast",
    "brightness_ratio",
    "contrast_ratio",
    "warn",
]


def view_intensity(image: np.ndarray, config: Any = None) -> tuple[float, float]:
    """``(median grey, interquartile range)`` of a screenshot's scan area (0-255)."""
    from radiopath.ultrasound.intensity import to_gray
    from radiopath.ultrasound.scan_area import find_scan_area

    scale = MAX_SIDE / max(image.shape[:2])
    if scale < 1:  # the scan area and the grey levels do not need full detail
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    area = find_scan_area(image, config)
    gray = to_gray(image)[area.mask]
    if gray.size == 0:
        return float("nan"), float("nan")
    q25, q50, q75 = np.percentile(gray, [25, 50, 75])
    return float(q50), float(q75 - q25)


def ultrasound_acquisition(table: pd.DataFrame, config: Any = None, sample: int = SAMPLE) -> pd.DataFrame:
    """Per center of ``table`` (a validated cohort table): views measured, median brightness and
    contrast, and their ratios to the development centers' (pooled views). Unreadable images
    are skipped (validation reports them)."""
    from radiopath.io.images import read_image

    scan_cfg = getattr(config, "scan_area", None)
    if "us_1" not in table.columns:
        return pd.DataFrame(columns=COLUMNS)
    per_center: dict[str, list[tuple[float, float]]] = {}
    cohort_of: dict[str, str] = {}
    for center, part in table.groupby(table["center"].astype(str), sort=True):
        paths = [p for p in part["us_1"].tolist() if isinstance(p, str) and p.strip()][:sample]
        values = []
        for path in paths:
            try:
                values.append(view_intensity(read_image(path), scan_cfg))
            except Exception:
                continue
        per_center[str(center)] = [v for v in values if math.isfinite(v[0])]
        cohorts = part["cohort"].astype(str)
        cohort_of[str(center)] = DEVELOPMENT if (cohorts == DEVELOPMENT).any() else str(cohorts.iloc[0])
    dev = [v for c, vs in per_center.items() if cohort_of[c] == DEVELOPMENT for v in vs]
    if not dev:
        return pd.DataFrame(columns=COLUMNS)
    ref_b, ref_c = float(np.median([v[0] for v in dev])), float(np.median([v[1] for v in dev]))
    rows = []
    for center, values in per_center.items():
        if not values:
            continue
        b, c = float(np.median([v[0] for v in values])), float(np.median([v[1] for v in values]))
        rb, rc = b / max(ref_b, 1e-6), c / max(ref_c, 1e-6)
        warn = cohort_of[center] != DEVELOPMENT and not (
            WARN_LOW <= rb <= WARN_HIGH and WARN_LOW <= rc <= WARN_HIGH
        )
        rows.append([center, cohort_of[center], len(values), b, c, rb, rc, bool(warn)])
    return pd.DataFrame(rows, columns=COLUMNS)


def ultrasound_warnings(table: pd.DataFrame) -> list[str]:
    """One sentence per center of :func:`ultrasound_acquisition` that differs much from development."""
    out = []
    for r in table[table["warn"]].itertuples() if len(table) else []:
        what = []
        if r.brightness_ratio < WARN_LOW or r.brightness_ratio > WARN_HIGH:
            what.append(
                f"{'darker' if r.brightness_ratio < 1 else 'brighter'} (median grey {r.brightness_ratio:.0%})"
            )
        if r.contrast_ratio < WARN_LOW or r.contrast_ratio > WARN_HIGH:
            what.append(
                f"{'lower' if r.contrast_ratio < 1 else 'higher'} contrast (IQR {r.contrast_ratio:.0%})"
            )
        out.append(
            f"center {r.center}: its ultrasound is {' and '.join(what)} than the development centers' "
            f"({r.views} views sampled); check the model's calibration there, consider "
            "ultrasound.intensity.equalize or harmonization.method"
        )
    return out


def photometric_augment(gray: np.ndarray, rng: np.random.Generator, config: Any) -> np.ndarray:
    """Gain, contrast (gamma) and speckle of :func:`radiopath.ultrasound.augment.augment` on a
    grey ``(H, W)`` uint8 view, with the geometric steps off."""
    from radiopath.ultrasound.augment import augment

    cfg = config.model_copy(update={"rotate_deg": 0.0, "scale": 0.0, "hflip": 0.0})
    return augment(np.ascontiguousarray(gray), rng, cfg)
