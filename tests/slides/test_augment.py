"""Tile augmentation: defocus in µm, resolution jitter, HED stain — reproducible, and what it claims."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from radiopath.errors import ConfigError
from radiopath.slides.augment import TileAugmentConfig, augment_tile, augment_tiles
from radiopath.slides.detection import estimate_background
from radiopath.slides.qc import laplacian_variance
from radiopath.synth.spec import default_centers
from slides.conftest import lbc_image


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """The six most cell-rich 224-px tiles of a synthetic development-center slide at 0.5 µm/px."""
    img = lbc_image(default_centers()[0], 450, seed=5)
    grid = [img[y : y + 224, x : x + 224] for y in range(0, 677, 112) for x in range(0, 677, 112)]
    dark = [float((cv2.cvtColor(t, cv2.COLOR_RGB2GRAY) < 180).mean()) for t in grid]
    return np.stack([grid[i] for i in np.argsort(dark)[::-1][:6]])


def _sharpness(t: np.ndarray) -> float:
    return laplacian_variance(cv2.cvtColor(t, cv2.COLOR_RGB2GRAY))


def test_defocus_is_a_gaussian_of_the_drawn_sigma_in_micrometres(tiles: np.ndarray) -> None:
    cfg = TileAugmentConfig(blur_um=1.0, mpp_jitter=0.0, hed_scale=0.0, hed_shift=0.0)
    rng = np.random.default_rng(3)
    rng.integers(2**63)  # the draws of augment_tile, in its order: stain seed, zoom, sigma
    rng.uniform(1.0, 1.0)
    sigma_um = rng.uniform(0.0, 1.0)
    for mpp in (0.5, 0.25):
        out = augment_tile(tiles[0], np.random.default_rng(3), cfg, mpp)
        np.testing.assert_array_equal(out, cv2.GaussianBlur(tiles[0], (0, 0), sigma_um / mpp))
    assert 0.3 < sigma_um < 1.0  # a real blur was drawn (seed 3)


def test_augmented_tiles_are_softer_and_recoloured_but_the_same_tissue(tiles: np.ndarray) -> None:
    cfg = TileAugmentConfig()
    out = augment_tiles(tiles, np.random.default_rng(0), cfg, 0.5)
    assert out.shape == tiles.shape and out.dtype == np.uint8
    before = np.array([_sharpness(t) for t in tiles])
    after = np.array([_sharpness(t) for t in out])
    assert np.median(after / before) < 0.5  # defocus of up to 1 µm (2 px) halves the focus measure
    bg = estimate_background(tiles[0])
    assert np.abs(estimate_background(out[0]).astype(float) - bg).max() < 30  # glass stays glass
    coarse = [
        cv2.resize(cv2.cvtColor(t, cv2.COLOR_RGB2GRAY), (28, 28), interpolation=cv2.INTER_AREA)
        for t in (*tiles, *out)
    ]
    corr = [np.corrcoef(coarse[i].ravel(), coarse[i + len(tiles)].ravel())[0, 1] for i in range(len(tiles))]
    assert np.median(corr) > 0.8  # the same cells where they were, not another tile


def test_same_draw_same_pixels_and_steps_switch_off_independently(tiles: np.ndarray) -> None:
    cfg = TileAugmentConfig()
    a = augment_tile(tiles[1], np.random.default_rng(11), cfg, 0.5)
    np.testing.assert_array_equal(a, augment_tile(tiles[1], np.random.default_rng(11), cfg, 0.5))
    assert not np.array_equal(a, augment_tile(tiles[1], np.random.default_rng(12), cfg, 0.5))
    off = TileAugmentConfig(blur_um=0, mpp_jitter=0, hed_scale=0, hed_shift=0)
    np.testing.assert_array_equal(augment_tile(tiles[1], np.random.default_rng(11), off, 0.5), tiles[1])
    no_blur = augment_tile(tiles[1], np.random.default_rng(11), cfg.model_copy(update={"blur_um": 0.0}), 0.5)
    assert _sharpness(no_blur) > _sharpness(a)  # only the blur went; stain and zoom drew the same
    turned = augment_tile(tiles[1], np.random.default_rng(11), off, 0.5, orient=True)
    assert sorted(turned.ravel().tolist()) == sorted(tiles[1].ravel().tolist())  # a rotation/flip only


def test_bad_input_is_a_clear_error(tiles: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="uint8"):
        augment_tile(tiles[0].astype(np.float32), np.random.default_rng(0), TileAugmentConfig(), 0.5)
    with pytest.raises(ConfigError, match="mpp"):
        augment_tile(tiles[0], np.random.default_rng(0), TileAugmentConfig(), 0.0)
