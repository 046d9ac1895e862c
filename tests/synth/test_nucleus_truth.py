"""The ground-truth nuclei of a synthetic slide: same image, nuclei where and as large as drawn."""

from __future__ import annotations

import numpy as np

from radiopath.synth.cytology import render_slide, render_slide_with_nuclei
from radiopath.synth.phenotype import cells_from_latent
from radiopath.synth.spec import default_centers


def test_truth_leaves_the_image_unchanged_and_matches_the_phenotype() -> None:
    center = default_centers()[1]
    rng = np.random.default_rng(4)
    cells = cells_from_latent(1.0, rng)
    plain = render_slide(cells, center, 300, rng)
    rng = np.random.default_rng(4)
    cells_again = cells_from_latent(1.0, rng)
    image, truth = render_slide_with_nuclei(cells_again, center, 300, rng)
    assert np.array_equal(plain, image)
    assert truth.labels.shape == image.shape[:2] and truth.count == len(truth.kinds) > 20
    assert set(truth.kinds) == {"follicular", "lymphocyte"}
    # every centre lies on its own nucleus unless a later one covers it
    xi, yi = np.round(truth.centres).astype(int).T
    on = truth.labels[yi, xi]
    assert (on > 0).all() and (on >= np.arange(1, truth.count + 1)).all()
    # follicular nuclei are as large as the phenotype says: ellipse area pi d^2 / 4, the region's
    # edge (body half on) lying about 0.4 px inside the ellipse
    d_px = cells.nuclear_diameter_um / center.mpp
    fol = truth.areas_px[truth.kinds == "follicular"]
    expected = np.pi * (d_px / 2 - 0.4) ** 2
    assert abs(np.median(fol) / expected - 1) < 0.12
    # nuclei are dark in the image: hematoxylin-rich pixels are much darker than the rest
    lum = image.mean(axis=2)
    assert lum[truth.mask].mean() < lum[~truth.mask].mean() - 40
