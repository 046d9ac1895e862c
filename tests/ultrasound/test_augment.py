"""Augmentation: same shape and dtype, reproducible, and only changes a scanner could make."""

from __future__ import annotations

import numpy as np
import pytest

from radiopath.errors import ConfigError
from radiopath.ultrasound import AugmentConfig, UltrasoundConfig, UltrasoundTransform, augment


def _crop() -> np.ndarray:
    """A bright skin band at the top and a dark nodule left of centre, over speckle."""
    rng = np.random.default_rng(0)
    g = np.clip(rng.rayleigh(60, (224, 224)), 0, 255)
    g[:30] = 230
    yy, xx = np.mgrid[:224, :224]
    g[(yy - 120) ** 2 + (xx - 70) ** 2 < 30**2] = 20
    g = g.astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def test_shape_dtype_and_reproducibility() -> None:
    crop = _crop()
    tf = UltrasoundTransform()
    a = tf.augment(crop, np.random.default_rng(1))
    b = tf.augment(crop, np.random.default_rng(1))
    c = tf.augment(crop, np.random.default_rng(2))
    assert a.shape == crop.shape and a.dtype == np.uint8
    assert (a[:, :, 0] == a[:, :, 2]).all()
    assert (a == b).all() and not (a == c).all()
    gray = augment(crop[:, :, 0], np.random.default_rng(1))
    assert gray.shape == (224, 224)
    with pytest.raises(ConfigError, match="uint8"):
        augment(crop.astype(np.float32), np.random.default_rng(0))


def test_never_upside_down_and_flips_left_right_half_the_time() -> None:
    crop = _crop()
    cfg = AugmentConfig(rotate_deg=10, hflip=0.5)
    left = 0
    for seed in range(40):
        out = augment(crop, np.random.default_rng(seed), cfg)[:, :, 0].astype(float)
        assert out[:20].mean() > out[-20:].mean() + 60  # the skin stays on top
        nodule_left = out[100:140, 50:90].mean() < out[100:140, 134:174].mean()
        left += nodule_left
    assert 12 <= left <= 28


def test_each_step_does_what_it_says() -> None:
    crop = _crop()
    off = AugmentConfig(rotate_deg=0, hflip=0, gain=0, contrast=0, speckle=0, scale=0)
    assert (augment(crop, np.random.default_rng(0), off) == crop).all()
    gain = off.model_copy(update={"gain": 0.3})
    ratios = [
        augment(crop, np.random.default_rng(s), gain)[40:, :, 0].mean() / crop[40:, :, 0].mean()
        for s in range(20)
    ]
    assert 0.68 < min(ratios) < 0.9 and 1.1 < max(ratios) < 1.32
    speckle = off.model_copy(update={"speckle": 0.2})
    noisy = augment(crop, np.random.default_rng(0), speckle)[40:80, 150:220, 0].astype(float)
    base = crop[40:80, 150:220, 0].astype(float)
    rel = (noisy - base)[base > 30] / base[base > 30]
    assert 0.12 < rel.std() < 0.3  # multiplicative: proportional to the echo
    dark = crop[:, :, 0] == 20
    dark_noise = augment(crop, np.random.default_rng(0), speckle)[:, :, 0][dark].astype(float) - 20
    assert 2 < dark_noise.std() < 6  # 20 % of a grey level of 20, not of the bright tissue


def test_augment_uses_the_transform_config() -> None:
    crop = _crop()
    tf = UltrasoundTransform(
        UltrasoundConfig(augment=AugmentConfig(rotate_deg=0, hflip=0, gain=0, contrast=0, speckle=0, scale=0))
    )
    assert (tf.augment(crop, np.random.default_rng(3)) == crop).all()
