"""Cytology pathomics on synthetic slides whose nuclear phenotype is known."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pandas as pd
import pytest

from radiopath.errors import ConfigError
from radiopath.features.pathomics import (
    NUCLEUS_COLUMNS,
    PathomicsConfig,
    TileMeasurements,
    aggregate,
    feature_names,
    features_vector,
    measure_tile,
    patient_features,
    tile_features,
)
from radiopath.synth.cytology import render_slide_with_nuclei
from radiopath.synth.phenotype import cells_from_latent
from radiopath.synth.spec import CenterSpec, default_centers
from slides.conftest import glass

TILE = 224


def tiles_of(image: np.ndarray) -> list[np.ndarray]:
    n = image.shape[0] // TILE
    return [
        np.ascontiguousarray(image[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE])
        for y in range(n)
        for x in range(n)
    ]


def patient(latent: float, seed: int = 0, center: CenterSpec | None = None) -> tuple[dict, object, float]:
    """Features of a 448-µm synthetic slide (16 tiles), its truth and its mean nucleus µm²."""
    center = center or default_centers()[0]
    rng = np.random.default_rng(seed)
    cells = cells_from_latent(latent, rng)
    image, truth = render_slide_with_nuclei(cells, center, 448, rng)
    measured = [measure_tile(t, center.mpp).light() for t in tiles_of(image)]
    return patient_features(measured), cells, float(truth.areas_px.mean()) * center.mpp**2


@pytest.fixture(scope="module")
def by_latent() -> dict[float, tuple[dict, object, float]]:
    return {c: patient(c) for c in (-1.5, 0.0, 1.5)}


def test_names_are_fixed_unique_and_readable() -> None:
    names = feature_names()
    assert len(names) == len(set(names)) == 5 * (len(NUCLEUS_COLUMNS) - 1) + 4
    for expected in (
        "nucleus_area_um2_mean",
        "nn_distance_um_median",
        "chromatin_od_mean_p90",
        "touching_fraction",
    ):
        assert expected in names
    assert feature_names(PathomicsConfig()) == names


def test_features_follow_the_nuclear_phenotype(by_latent: dict) -> None:
    """Papillary-like cells (higher latent): larger, more oval, paler, more crowded nuclei."""
    f = {c: v[0] for c, v in by_latent.items()}
    lo, mid, hi = f[-1.5], f[0.0], f[1.5]
    for name in ("nucleus_area_um2_mean", "nucleus_elongation_median", "touching_fraction"):
        assert lo[name] < mid[name] < hi[name], name
    assert lo["chromatin_od_mean_median"] > hi["chromatin_od_mean_median"]
    assert lo["nn_distance_diameters_median"] > hi["nn_distance_diameters_median"]
    print({c: round(v["nucleus_area_um2_mean"], 1) for c, v in f.items()}, "µm² mean nuclear area")


def test_area_is_in_square_micrometres_of_the_truth(by_latent: dict) -> None:
    """On spaced benign nuclei the measured mean area is the drawn one (within 15 %)."""
    features, _, true_area = by_latent[-1.5]
    assert features["nucleus_area_um2_mean"] == pytest.approx(true_area, rel=0.15)


def test_same_cells_at_another_resolution_give_the_same_micrometres() -> None:
    a, _, _ = patient(-0.5, seed=2)
    fine = default_centers()[0].model_copy(update={"mpp": 0.25})
    rng = np.random.default_rng(2)
    image, _ = render_slide_with_nuclei(cells_from_latent(-0.5, rng), fine, 224, rng)  # 896 px
    b = patient_features([measure_tile(t, 0.25).light() for t in tiles_of(image)])
    for name in ("nucleus_area_um2_median", "nucleus_major_axis_um_median", "nn_distance_um_median"):
        assert b[name] == pytest.approx(a[name], rel=0.2), name


def test_patient_pools_nuclei_over_tiles() -> None:
    rng = np.random.default_rng(1)
    image, _ = render_slide_with_nuclei(cells_from_latent(0.5, rng), default_centers()[0], 448, rng)
    measured = [measure_tile(t, 0.5) for t in tiles_of(image)]
    assert patient_features(measured[:1]) == pytest.approx(tile_features(measured[0]), nan_ok=True)
    pooled = pd.concat([m.nuclei for m in measured], ignore_index=True)
    sums = {k: sum(m.sums[k] for m in measured) for k in measured[0].sums}
    both = patient_features(measured)
    assert both == pytest.approx(aggregate(pooled, sums, len(measured)), nan_ok=True)
    assert both["nuclei_per_tile"] == pytest.approx(len(pooled) / 16)
    assert list(both) == feature_names()
    assert features_vector(both).shape == (len(feature_names()),)
    assert 0 < both["nuclear_area_fraction"] < 1 and 0 <= both["clump_area_fraction"] < 0.2
    bare = patient_features([m.nuclei for m in measured])  # per-nucleus tables alone
    assert bare["nucleus_area_um2_mean"] == both["nucleus_area_um2_mean"]
    assert np.isnan(bare["nuclear_area_fraction"]) and bare["nuclei_per_tile"] == both["nuclei_per_tile"]


def test_a_nucleus_row_describes_that_nucleus() -> None:
    """One drawn ellipse: area, axes and elongation as drawn; alone, so no neighbour."""
    tile = np.full((TILE, TILE, 3), 243, np.uint8)
    cv2.ellipse(tile, (112, 112), (12, 6), 30, 0, 360, (70, 60, 130), -1)  # axes 24 x 12 px
    m = measure_tile(tile, 0.5)
    assert len(m.nuclei) == 1
    row = m.nuclei.iloc[0]
    drawn = int((tile[..., 0] == 70).sum())  # cv2 fills the ellipse with semi-axes 12.5 x 6.5 px
    assert row["nucleus_area_um2"] == pytest.approx(drawn * 0.25, rel=0.05)
    assert row["nucleus_major_axis_um"] == pytest.approx(12.5, rel=0.05)
    assert row["nucleus_elongation"] == pytest.approx(2.0, rel=0.1)
    assert row["nucleus_solidity"] > 0.95 and row["touching"] == 0 and row["group_size"] == 1
    assert np.isnan(row["nn_distance_um"])


def test_touching_and_group_size() -> None:
    tile = np.full((TILE, TILE, 3), 243, np.uint8)
    cv2.rectangle(tile, (20, 60), (110, 110), (200, 225, 215), -1)  # one sheet of cytoplasm
    for cx in (40, 58, 90):  # the first two touch
        cv2.circle(tile, (cx, 85), 9, (70, 60, 130), -1)
    cv2.circle(tile, (180, 180), 9, (70, 60, 130), -1)  # a lone lymphocyte on glass
    rows = measure_tile(tile, 0.5).nuclei.sort_values("x_px")
    assert rows["touching"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert rows["group_size"].tolist() == [3.0, 3.0, 3.0, 1.0]
    assert rows["nn_distance_um"].iloc[0] == pytest.approx(9.0, abs=1.0)


def test_empty_tile_gives_nan_distributions_and_zero_nuclei() -> None:
    m = measure_tile(glass(TILE, 3), 0.5)
    assert len(m.nuclei) == 0 and list(m.nuclei.columns)[: len(NUCLEUS_COLUMNS)] == list(NUCLEUS_COLUMNS)
    f = tile_features(m)
    assert f["nuclei_per_tile"] == 0 and np.isnan(f["nucleus_area_um2_mean"])
    assert patient_features([m, m])["nuclei_per_tile"] == 0
    assert np.isnan(patient_features([])["nucleus_area_um2_mean"])


def test_bad_tile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="uint8 RGB"):
        measure_tile(np.zeros((8, 8, 3), np.float32), 0.5)
    with pytest.raises(ConfigError, match="chromatin_levels"):
        PathomicsConfig.from_dict({"chromatin_levels": 1})


def test_fast_enough_per_tile() -> None:
    """Aim: under 50 ms per 224-px tile on one core (segmentation included)."""
    rng = np.random.default_rng(0)
    image, _ = render_slide_with_nuclei(cells_from_latent(1.5, rng), default_centers()[0], 448, rng)
    tiles = sorted(tiles_of(image), key=lambda t: -int((t.mean(axis=2) < 180).sum()))[:4]
    measure_tile(tiles[0], 0.5)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.perf_counter()
        out: list[TileMeasurements] = [measure_tile(t, 0.5) for t in tiles]
        per_tile = (time.perf_counter() - start) / len(tiles)
    finally:
        cv2.setNumThreads(threads)
    print(
        f"measure_tile: {1000 * per_tile:.1f} ms per 224-px tile, "
        f"{np.mean([len(m.nuclei) for m in out]):.0f} nuclei"
    )
    assert all(len(m.nuclei) > 10 for m in out)
    assert per_tile < 0.15
