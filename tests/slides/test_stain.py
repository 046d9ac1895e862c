"""Stain normalisation and augmentation on real stained images and synthetic multi-center slides."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.io.images import read_image
from radiopath.slides import read_tiles
from radiopath.slides.detection import estimate_background, optical_density
from radiopath.slides.stain import RGB_FROM_HED, HEDAugmenter, MacenkoNormalizer, ReinhardNormalizer
from radiopath.synth import SynthResult
from support import real_path


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def _lab_of_stain(originals: list[np.ndarray], images: list[np.ndarray]) -> np.ndarray:
    """Mean CIELAB of the pixels that are stained in the *original* images (same pixels before/after)."""
    values = []
    for orig, im in zip(originals, images, strict=True):
        stained = optical_density(orig, estimate_background(orig)).mean(axis=2) > 0.1
        values.append(cv2.cvtColor(im.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[stained])
    return np.concatenate(values).mean(axis=0)


@pytest.fixture(scope="module")
def real_images() -> dict[str, np.ndarray]:
    folder = real_path("histology_misc")
    names = {"target": "tiatoolbox_target_image.png", "he": "stardist_histo.jpg", "ihc": "skimage_ihc.png"}
    return {k: read_image(Path(folder) / v) for k, v in names.items()}


def test_macenko_finds_hematoxylin_and_eosin_on_real_he(real_images: dict[str, np.ndarray]) -> None:
    m = MacenkoNormalizer().fit(real_images["target"])
    assert _angle(m.stains_[0], RGB_FROM_HED[0]) < 12  # Ruifrok & Johnston's hematoxylin
    assert _angle(m.stains_[1], RGB_FROM_HED[1]) < 30  # eosin (the H&E image's is pinker)
    assert _angle(m.stains_[0], m.stains_[1]) > 20


@pytest.mark.parametrize("source", ["he", "ihc"])
def test_macenko_gives_real_images_the_reference_stains(
    real_images: dict[str, np.ndarray], source: str
) -> None:
    target, image = real_images["target"], real_images[source]
    m = MacenkoNormalizer().fit(target)
    out = m.transform(image)
    assert out.shape == image.shape and out.dtype == np.uint8

    def gap(im: np.ndarray) -> float:  # mean angle between its stain vectors and the reference's
        est = m.stain_matrix(im)
        return float(np.mean([_angle(est[i], m.stains_[i]) for i in range(2)]))

    assert gap(out) < 0.6 * gap(image) and gap(out) < 6.0


@pytest.mark.parametrize("source", ["he", "ihc"])
def test_reinhard_gives_real_images_the_reference_colour(
    real_images: dict[str, np.ndarray], source: str
) -> None:
    target, image = real_images["target"], real_images[source]
    out = ReinhardNormalizer().fit(target).transform(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    ref, before, after = (
        _lab_of_stain([target], [target]),
        _lab_of_stain([image], [image]),
        _lab_of_stain([image], [out]),
    )
    assert np.linalg.norm(after - ref) < 0.4 * np.linalg.norm(before - ref)
    glass = optical_density(image, estimate_background(image)).mean(axis=2) < 0.02
    if glass.mean() > 0.05:  # glass stays glass
        assert np.abs(out[glass].astype(int) - image[glass]).mean() < 2


@pytest.fixture(scope="module")
def center_tiles(small_cohort: SynthResult, cohort_tiles: Path) -> dict[str, list[np.ndarray]]:
    """The top 4 tiles of each patient, grouped by center (centers differ in stain hue, intensity, blur)."""
    tiles = pd.read_parquet(cohort_tiles / "tiles.parquet")
    centers = pd.read_csv(small_cohort.manifest).set_index("patient_id")["center"]
    grouped: dict[str, list[np.ndarray]] = {}
    for pid, rows in tiles[tiles["rank"] < 4].groupby("patient_id"):
        grouped.setdefault(centers[pid], []).extend(read_tiles(rows["slide"].iloc[0], rows))
    return grouped


def test_synthetic_centers_move_closer_after_normalisation(center_tiles: dict[str, list[np.ndarray]]) -> None:
    ref_name = "Hospital A"
    ref_tiles = center_tiles[ref_name]
    ref = _lab_of_stain(ref_tiles, ref_tiles)
    macenko, reinhard = MacenkoNormalizer().fit(ref_tiles), ReinhardNormalizer().fit(ref_tiles)
    others = [c for c in center_tiles if c != ref_name]
    assert len(others) == 2
    for name in others:
        tiles = center_tiles[name]
        before = _lab_of_stain(tiles, tiles)
        gap = np.linalg.norm(before - ref)
        assert gap > 2.0  # the centers really differ to begin with
        # Reinhard matches the stained pixels' LAB statistics: the gap nearly closes
        after_r = _lab_of_stain(tiles, [reinhard.transform(t) for t in tiles])
        assert np.linalg.norm(after_r - ref) < 0.2 * gap
        # Macenko re-colours with the reference stains: hue (a*, b*) moves closer; its 99th
        # percentile intensity matching is not meant to undo a scanner's blur, so L* is not tested
        after_m = _lab_of_stain(tiles, [macenko.transform(t) for t in tiles])
        assert np.linalg.norm(after_m[1:] - ref[1:]) < 0.65 * np.linalg.norm(before[1:] - ref[1:])


def test_macenko_with_a_pooled_source_is_exact_on_its_own_center(
    center_tiles: dict[str, list[np.ndarray]],
) -> None:
    tiles = center_tiles["Hospital A"][:6]
    m = MacenkoNormalizer().fit(tiles)
    for t in tiles:  # only rounding, the pooled glass colour (±1 grey level) and the few pixels
        diff = np.abs(m.transform(t, source=m).astype(int) - t)  # brighter than glass differ
        assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 3


def test_normalisers_leave_glass_only_tiles_alone_and_refuse_misuse() -> None:
    rng = np.random.default_rng(0)
    glass = np.clip(rng.normal(243, 1.5, (64, 64, 3)), 0, 255).astype(np.uint8)
    stained = np.full((64, 64, 3), 243, np.uint8)
    stained[16:48, 16:48] = (120, 80, 160)
    stained[30:40, 10:54] = (220, 130, 170)
    for n in (MacenkoNormalizer(), ReinhardNormalizer()):
        with pytest.raises(ConfigError, match="not fitted"):
            n.transform(stained)
        with pytest.raises(ConfigError, match="stained pixels"):
            n.fit(glass)
        n.fit(stained)
        np.testing.assert_array_equal(n.transform(glass), glass)
    with pytest.raises(ConfigError, match="uint8"):
        MacenkoNormalizer().fit(stained.astype(float))


def test_hed_augmentation(real_images: dict[str, np.ndarray]) -> None:
    image = real_images["target"]
    aug = HEDAugmenter(sigma_alpha=0.1, sigma_beta=0.02)
    a = aug(image, np.random.default_rng(1))
    b = aug(image, np.random.default_rng(1))
    c = aug(image, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)  # the generator alone decides
    assert a.shape == image.shape and a.dtype == np.uint8
    assert 1.0 < np.abs(a.astype(int) - image).mean() < 25 and np.abs(a.astype(int) - c).mean() > 0.5
    identity = HEDAugmenter(0.0, 0.0)(image, np.random.default_rng(0))
    assert np.abs(identity.astype(int) - image).max() <= 1
    # scaling stains (no shift) never tints clear glass: zero stain times anything is zero
    white = image.copy()
    white[:8] = 255
    scaled = HEDAugmenter(sigma_alpha=0.3, sigma_beta=0.0)(white, np.random.default_rng(3))
    assert (scaled[:8] == 255).all() and np.abs(scaled[8:].astype(int) - image[8:]).mean() > 2
    with pytest.raises(ConfigError):
        HEDAugmenter(-0.1, 0.0)
