"""Intensity: per-image percentiles, per-center standardisation fitted on development data only."""

from __future__ import annotations

import numpy as np
import pytest

from radiopath.errors import ConfigError
from radiopath.synth.phenotype import nodule_from_latent
from radiopath.synth.spec import CenterSpec
from radiopath.synth.ultrasound import render_view
from radiopath.ultrasound import IntensityConfig, UltrasoundConfig, UltrasoundTransform
from radiopath.ultrasound.intensity import (
    HistogramStandardizer,
    landmarks_of,
    map_landmarks,
    percentile_normalise,
)


def test_percentiles_map_to_the_ends_of_the_range() -> None:
    rng = np.random.default_rng(0)
    gray = np.clip(rng.normal(90, 20, (200, 200)), 0, 255).astype(np.uint8)
    valid = np.zeros_like(gray, bool)
    valid[20:180, 20:180] = True
    gray[~valid] = 0  # chrome must not count
    out, (lo, hi) = percentile_normalise(gray, valid, 1.0, 99.0)
    assert (lo, hi) == tuple(np.percentile(gray[valid], [1, 99]))
    assert abs(np.mean(out[valid] == 0) - 0.01) < 0.005 and abs(np.mean(out[valid] == 255) - 0.01) < 0.005
    # monotone: the order of grey levels is kept
    order = np.argsort(gray[valid], kind="stable")
    assert (np.diff(out[valid][order].astype(int)) >= 0).all()
    flat = np.full((10, 10), 7, np.uint8)
    assert (percentile_normalise(flat, None, 1, 99)[0] == 7).all()


def test_landmark_map_is_piecewise_linear_and_extends_its_ends() -> None:
    src = np.array([10.0, 50.0, 100.0])
    dst = np.array([20.0, 120.0, 220.0])
    g = np.array([[10, 30, 50, 75, 100, 0, 110]], np.uint8)
    assert map_landmarks(g, src, dst).tolist() == [[20, 70, 120, 170, 220, 0, 240]]


def _screens(center: CenterSpec, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_view(nodule_from_latent(0.0, rng), "transverse", center, rng).image for _ in range(n)]


def test_per_center_standardisation_removes_scanner_differences() -> None:
    """Two development centers whose scanners differ in gain and display gamma: after
    standardisation their mean landmarks agree with the reference; a center never seen in
    fitting is flagged and mapped with its own landmarks."""
    bright = CenterSpec(name="bright", cohort="development", us_gain=1.3, us_contrast=0.7)
    dark = CenterSpec(name="dark", cohort="development", us_gain=0.8, us_contrast=1.4)
    cfg = UltrasoundConfig(intensity=IntensityConfig(percentiles=None, equalize="none", standardize=True))
    train = {"bright": _screens(bright, 3, 1), "dark": _screens(dark, 3, 2)}
    tf = UltrasoundTransform(cfg).fit(train)
    std = tf.standardizer
    assert set(std.centers) == {"bright", "dark"}
    assert std.reference is not None
    gap_before = np.abs(std.centers["bright"] - std.centers["dark"]).mean()
    assert gap_before > 25  # the scanners really differ

    def mean_landmarks(center: str, images: list[np.ndarray]) -> np.ndarray:
        rows = []
        for im in images:
            view = tf.process(im, center=center)
            rows.append(landmarks_of(view.cleaned, view.scan.mask, cfg.intensity.landmarks))
        return np.mean(rows, axis=0)

    test = {"bright": _screens(bright, 2, 3), "dark": _screens(dark, 2, 4)}
    after = {c: mean_landmarks(c, ims) for c, ims in test.items()}
    gap_after = np.abs(after["bright"] - after["dark"]).mean()
    assert gap_after < 0.25 * gap_before
    for c in after:
        assert np.abs(after[c] - std.reference).mean() < 8
    view = tf.process(test["dark"][0], center="Hospital Z")
    assert "center_unseen" in view.flags


def test_standardisation_must_be_fitted_and_fitting_needs_images() -> None:
    cfg = UltrasoundConfig(intensity=IntensityConfig(standardize=True))
    image = _screens(CenterSpec(name="A", cohort="development"), 1, 5)[0]
    with pytest.raises(ConfigError, match="never fitted"):
        UltrasoundTransform(cfg)(image, center="A")
    with pytest.raises(ConfigError, match="center 'A' has no images"):
        UltrasoundTransform(cfg).fit({"A": []})
    with pytest.raises(ConfigError, match="at least one center"):
        HistogramStandardizer([1, 50, 99]).fit({})
    # with standardisation off, fit is a no-op and nothing needs fitting
    assert not UltrasoundTransform().fit({"A": [image]}).standardizer.fitted


def test_options_are_validated_with_clear_messages() -> None:
    with pytest.raises(ConfigError, match="percentiles must satisfy"):
        UltrasoundConfig.from_dict({"intensity": {"percentiles": [99, 1]}})
    with pytest.raises(ConfigError, match="landmarks must be"):
        UltrasoundConfig.from_dict({"intensity": {"landmarks": [50, 10, 90]}})
    with pytest.raises(ConfigError, match="margn"):
        UltrasoundConfig.from_dict({"margn": 0.2})


def test_scan_equalisation_removes_gain_and_gamma_and_keeps_the_nodule_darker() -> None:
    """The default per-image step: scanners that differ only in their display curve look alike
    after equalisation, without any fitting; a hypoechoic nodule stays darker than its lobe."""
    bright = CenterSpec(name="bright", cohort="development", us_gain=1.3, us_contrast=0.7)
    dark = CenterSpec(name="dark", cohort="development", us_gain=0.8, us_contrast=1.4)
    landmarks = IntensityConfig().landmarks

    def mean_landmarks(center: CenterSpec, equalize: str) -> np.ndarray:
        tf = UltrasoundTransform(
            UltrasoundConfig(intensity=IntensityConfig(percentiles=None, equalize=equalize))
        )
        rows = []
        for im in _screens(center, 3, 5):
            view = tf.process(im)
            rows.append(landmarks_of(view.cleaned, view.scan.mask, landmarks))
        return np.mean(rows, axis=0)

    before = np.abs(mean_landmarks(bright, "none") - mean_landmarks(dark, "none")).mean()
    after = np.abs(mean_landmarks(bright, "scan") - mean_landmarks(dark, "scan")).mean()
    assert before > 25 and after < 3, (before, after)
    rng = np.random.default_rng(0)
    view = render_view(nodule_from_latent(2.0, rng), "transverse", bright, rng)
    out = UltrasoundTransform(UltrasoundConfig()).process(view.image)
    inside = view.mask > 0
    ring = np.zeros_like(inside)
    x0, y0, x1, y1 = view.box
    ring[max(y0 - 20, 44) : y1 + 20, max(x0 - 20, 72) : x1 + 20] = True
    ring &= ~inside & out.scan.mask
    assert out.cleaned[inside].mean() < 0.8 * out.cleaned[ring].mean()
