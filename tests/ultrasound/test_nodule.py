"""The automatic nodule region: found where a dark compact nodule is, flagged where none is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.io.images import read_image
from radiopath.ultrasound import UltrasoundTransform
from radiopath.ultrasound.nodule import NoduleConfig, find_nodule, region_from
from radiopath.ultrasound.region import binary_mask
from support import real_path


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def speckled(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Bright parenchyma-like speckle (Rayleigh) around 150 grey levels."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.rayleigh(1.0, shape) * 120, 0, 255)


def test_finds_a_hypoechoic_ellipse_in_speckle() -> None:
    img = speckled((240, 320), 0)
    yy, xx = np.mgrid[:240, :320]
    truth = ((xx - 170) / 55.0) ** 2 + ((yy - 110) / 40.0) ** 2 < 1
    img[truth] *= 0.45
    region = find_nodule(img.astype(np.uint8))
    assert region.found and region.source == "auto" and region.flags == ("nodule_auto",)
    assert dice(region.mask, truth) > 0.7  # 0.77: the dark speckle it touches joins its convex hull


def test_stays_inside_the_scan_area() -> None:
    img = speckled((200, 260), 1)
    scan = np.zeros(img.shape, bool)
    scan[20:180, 40:230] = True
    yy, xx = np.mgrid[:200, :260]
    truth = ((xx - 130) / 35.0) ** 2 + ((yy - 100) / 30.0) ** 2 < 1
    img[truth] *= 0.4
    img[~scan] = 0  # black chrome: darker than any nodule, never the nodule
    region = find_nodule(img.astype(np.uint8), scan)
    assert region.found and not (region.mask & ~scan).any()
    assert dice(region.mask, truth) > 0.75


def test_nothing_nodule_like_falls_back_to_the_scan_with_a_flag() -> None:
    flat = np.full((100, 120), 90, np.uint8)
    region = find_nodule(flat)
    assert not region.found and region.source == "scan" and region.flags == ("nodule_not_found",)
    assert region.mask.all()


def test_given_mask_or_box_come_first() -> None:
    mask = np.zeros((50, 60), np.uint8)
    mask[10:20, 15:30] = 255
    r = region_from((50, 60), mask=mask, box=(0, 0, 5, 5))
    assert r.source == "mask" and r.mask.sum() == 150
    r = region_from((50, 60), box=(50, 40, 80, 70))  # clipped to the image
    assert r.source == "box" and r.mask.sum() == 10 * 10
    assert region_from((50, 60), mask=np.zeros((50, 60))) is None
    assert region_from((50, 60), box=(70, 70, 90, 90)) is None
    with pytest.raises(ConfigError, match="mask drawn on this exact image"):
        region_from((50, 60), mask=np.ones((40, 60)))
    with pytest.raises(ConfigError, match="differ in size"):
        find_nodule(np.zeros((50, 60), np.uint8), np.ones((40, 60), bool))
    with pytest.raises(ConfigError, match="opening"):
        NoduleConfig.from_dict({"opening": 0.5})


@pytest.mark.real
def test_overlaps_the_radiologists_masks_on_ddti() -> None:
    """DDTI crops: median Dice with the radiologist's mask >= 0.5 (0.59 when written)."""
    root = real_path("ddti_thyroid_us")
    labels = pd.read_csv(root / "labels.csv").iloc[::3]  # 30 views keep it a few seconds
    tf = UltrasoundTransform()
    scores = []
    for rec in labels.itertuples():
        truth = binary_mask(read_image(root / rec.mask))
        if not truth.any():
            continue
        view = tf.process(read_image(root / rec.image))
        region = find_nodule(view.cleaned, view.scan.mask)
        scores.append(dice(region.mask, truth) if region.found else 0.0)
    print(f"automatic nodule region on {len(scores)} DDTI views: median Dice {np.median(scores):.2f}")
    assert len(scores) >= 28
    assert np.median(scores) >= 0.5
