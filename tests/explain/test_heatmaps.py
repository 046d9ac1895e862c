"""Slide heatmaps: overlaps averaged, glass left clear, and painted exactly where the tiles are."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from radiopath.explain.heatmaps import blend, cam_overlay, cell_mask, slide_heatmap, slide_thumbnail, stitch
from radiopath.io.tiff import write_pyramid_tiff
from radiopath.slides import TilingConfig, tile_slide
from radiopath.synth.cytology import render_slide_with_nuclei
from radiopath.synth.phenotype import cells_from_latent
from radiopath.synth.spec import default_centers


def test_overlapping_tiles_are_averaged_and_uncovered_pixels_stay_empty() -> None:
    tiles = pd.DataFrame({"x": [0, 40], "y": [0, 0], "extent": [80.0, 80.0]})
    heat, count = stitch([1.0, 3.0], tiles, (40, 80), downsample=2.0)
    # tile 0 covers thumbnail columns 0-39, tile 1 columns 20-59, rows 0-39
    assert (heat[:, :20] == 1).all() and (heat[:, 20:40] == 2).all() and (heat[:, 40:60] == 3).all()
    assert (heat[:, 60:] == 0).all() and (count[:, 60:] == 0).all() and count[:, 20:40].min() == 2
    ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))  # a map rising left to right
    heat, _ = stitch([ramp], tiles.head(1), (40, 80), downsample=2.0)
    assert heat[10, 2] < 0.1 and heat[10, 37] > 0.9 and np.all(np.diff(heat[10, :40]) >= -1e-6)


def test_glass_is_left_untouched() -> None:
    image = np.full((60, 60, 3), 245, np.uint8)
    image[20:40, 20:40] = (90, 60, 150)  # a stained group
    where = cell_mask(image)
    assert where[30, 30] and not where[5, 5]
    out = blend(image, np.ones((60, 60)), where)
    assert (out[:10, :10] == image[:10, :10]).all() and (out[30, 30] != image[30, 30]).any()
    # a Grad-CAM overlay leaves the image as it is where the map is zero, colours it where high
    cam = np.zeros((4, 4))
    cam[1, 1] = 2.0
    over = cam_overlay(image, cam)
    assert (over[55:, 55:] == image[55:, 55:]).all() and np.abs(
        over[22, 22] - image[22, 22].astype(int)
    ).max() > 40


def test_the_heatmap_lies_on_the_slides_known_nuclei(tmp_path: Path) -> None:
    """A synthetic slide whose nuclei are known: each tile's map is the true nuclear mask under
    it; stitched on the thumbnail it must coincide with the true mask shrunk to the thumbnail
    (aligned to a thumbnail pixel, far inside one tile), and the tile scores sit on their tiles."""
    center = default_centers()[1]
    rng = np.random.default_rng(5)
    image, truth = render_slide_with_nuclei(cells_from_latent(0.5, rng), center, 500, rng)
    path = write_pyramid_tiff(tmp_path / "s.tiff", image, center.mpp)
    table = tile_slide(path, TilingConfig(top_k=6, target_mpp=0.5, tile_size=128))
    assert len(table) >= 4
    thumb = slide_thumbnail(str(path), float(table["slide_mpp"].iloc[0]), side=400)
    maps = []
    for x, y, e in table[["x", "y", "extent"]].itertuples(index=False):
        e = round(e)
        maps.append(
            cv2.resize(
                truth.mask[y : y + e, x : x + e].astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA
            )
        )
    heat, count = stitch(maps, table, thumb.image.shape[:2], thumb.downsample)
    h, w = thumb.image.shape[:2]
    expected = cv2.resize(truth.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    covered = count > 0
    assert covered.mean() > 0.05
    best = None
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            shifted = np.roll(expected, (dy, dx), axis=(0, 1))
            r = np.corrcoef(heat[covered], shifted[covered])[0, 1]
            best = max(best or (r, dy, dx), (r, dy, dx))
    r, dy, dx = best
    assert r > 0.9 and abs(dy) <= 1 and abs(dx) <= 1, best
    # tile scores: each tile's rank is painted over that tile's own footprint
    heat, _ = stitch(list(table["rank"].astype(float) + 1), table, (h, w), thumb.downsample)
    for rank, x, y, e in table[["rank", "x", "y", "extent"]].itertuples(index=False):
        cx, cy = round((x + e / 2) / thumb.downsample), round((y + e / 2) / thumb.downsample)
        assert heat[cy, cx] == rank + 1
    pic, _ = slide_heatmap(thumb, list(np.linspace(0, 1, len(table))), table)
    glass = ~cell_mask(thumb.image) & (count == 0)
    assert pic.shape == thumb.image.shape and (pic[glass] == thumb.image[glass]).mean() > 0.99
