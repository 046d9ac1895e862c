"""Nuclear focus: the enrichment ratio and its bootstrap interval, with numbers worked by hand."""

from __future__ import annotations

import numpy as np

from radiopath.explain.nuclear import Focus, TileNuclei, mean_ci, nuclear_focus, paired_difference


def _nuclei() -> TileNuclei:
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2] = True  # a quarter of tile 0 is nuclear
    masks[1, :4] = True  # half of tile 1
    return TileNuclei(masks, np.array([1, 1]))


def test_a_map_on_the_nuclei_alone_and_a_flat_map() -> None:
    nuclei = _nuclei()
    on = nuclear_focus(nuclei.masks.astype(np.float32), nuclei)  # CAM exactly the nuclei
    # mass on nuclei / mass = 1; nuclear area = (16 + 32) / 128 = 3/8 -> enrichment 8/3
    assert np.isclose(on.mass_fraction, 1.0) and np.isclose(on.area_fraction, 3 / 8)
    assert np.isclose(on.enrichment, 8 / 3)
    np.testing.assert_allclose(on.tile_enrichment(), [4.0, 2.0])
    flat = nuclear_focus(np.ones((2, 2, 2), np.float32), nuclei)  # upsampled from a 2x2 grid
    assert np.isclose(flat.enrichment, 1.0)
    off = nuclear_focus((~nuclei.masks).astype(np.float32), nuclei)
    assert off.enrichment == 0.0


def test_a_tile_the_model_ignores_weighs_nothing() -> None:
    nuclei = _nuclei()
    cams = np.stack([nuclei.masks[0].astype(np.float32), np.zeros((8, 8), np.float32)])
    f = nuclear_focus(cams, nuclei)
    assert np.isclose(f.mass_fraction, 1.0) and np.isclose(f.enrichment, 8 / 3)
    assert np.isnan(f.tile_enrichment()[1])
    none = Focus(np.zeros(2), np.zeros(2), np.ones(2), np.ones(2))
    assert np.isnan(none.enrichment)


def test_mean_ci_is_a_percentile_bootstrap_over_patients() -> None:
    v = np.array([0.8, 1.1, 1.4, 2.0, 2.3, 1.7, 0.9, 1.5])
    ci = mean_ci([*v, float("nan")], n_boot=4000, seed=1)
    assert ci.n == 8 and np.isclose(ci.mean, v.mean())
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, 8, (20000, 8))].mean(1)
    assert abs(ci.ci_low - np.percentile(means, 2.5)) < 0.05
    assert abs(ci.ci_high - np.percentile(means, 97.5)) < 0.05
    assert mean_ci([]).n == 0 and np.isnan(mean_ci([1.0]).ci_low)
    d = paired_difference([2.0, 3.0, np.nan], [1.0, 1.0, 5.0])
    assert d.n == 2 and np.isclose(d.mean, 1.5)
    assert d.to_dict()["mean"] == 1.5 and mean_ci([]).to_dict()["mean"] is None
