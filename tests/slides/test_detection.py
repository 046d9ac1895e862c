"""Cell-region detection on LBC slides: cells found, pen/bubbles/debris not taken for cells."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from radiopath.slides import TilingConfig, tile_slide_result
from radiopath.slides.detection import Detection, detect_cells, estimate_background, stain_features
from radiopath.slides.reader import open_slide
from radiopath.slides.tiling import lowres_views
from slides.conftest import BLACK_PEN, BLUE_PEN, BUBBLE, glass


def _detect(path: Path, cfg: TilingConfig | None = None) -> tuple[Detection, np.ndarray]:
    cfg = cfg or TilingConfig()
    with open_slide(path) as s:
        img, ds, _, _ = lowres_views(s, cfg)
    return detect_cells(img, ds * s.mpp, ds, cfg), img


def _stroke_mask(points: list[tuple[int, int]], width: int, shape: tuple[int, int], ds: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    pts = (np.array(points, float) / ds).round().astype(np.int32)
    cv2.polylines(m, [pts], False, 1, max(int(width / ds), 1))
    return m.astype(bool)


def test_cells_are_found_on_a_clean_slide(lbc_slide: Path) -> None:
    det, img = _detect(lbc_slide)
    assert det.mpp == pytest.approx(4.0)
    # the mask should hold the dark, coloured pixels (nuclei) and little of the glass
    od, chroma = stain_features(img, det.background)
    nuclei = (od > 0.3) & (chroma > 0.1)
    assert nuclei.sum() > 200
    assert det.cells[nuclei].mean() > 0.95
    glass_px = od < 0.02
    assert det.cells[glass_px].mean() < 0.05
    assert 0.02 < det.cells.mean() < 0.4  # sparse cells, as LBC is
    assert not det.pen.any()


def test_pen_marks_are_flagged_not_taken_for_cells(artifact_slide: Path, lbc_slide: Path) -> None:
    det, _ = _detect(artifact_slide)
    clean, _ = _detect(lbc_slide)
    shape = det.cells.shape
    for points, width in ((BLUE_PEN, 160), (BLACK_PEN, 120)):
        core = _stroke_mask(points, width // 2, shape, det.downsample)
        assert det.pen[core].mean() > 0.98  # every stroke is recognised as pen …
        assert det.cells[core].mean() < 0.01  # … and none of it as cells
    # away from the strokes the cell mask is the clean slide's
    far = ~cv2.dilate(det.pen, np.ones((9, 9), np.uint8)).astype(bool)
    agree = (det.cells[far] == clean.cells[far]).mean()
    assert agree > 0.98


def test_bubble_rims_and_dust_are_not_cells(empty_slide: Path) -> None:
    det, img = _detect(empty_slide)
    (cx, cy), r = (1000, 1000), 400
    ring = np.zeros(det.cells.shape, np.uint8)
    cv2.circle(
        ring, (round(cx / det.downsample), round(cy / det.downsample)), round(r / det.downsample), 1, 2
    )
    od, _ = stain_features(img, det.background)
    assert od[ring > 0].mean() > 0.15  # the rim is really there, darker than glass …
    assert det.cells.sum() == 0 and det.pen.sum() == 0  # … yet neither cells nor pen


def test_empty_slide_is_reported_not_crashed_on(empty_slide: Path) -> None:
    result = tile_slide_result(empty_slide)
    assert result.status == "empty"
    assert len(result.table) == 0 and list(result.table.columns)[:4] == ["slide", "rank", "x", "y"]
    assert "no cell-bearing region" in result.message
    assert result.thumbnail.ndim == 3  # a thumbnail is still drawn, for a human to check


def test_bubble_on_artifact_slide_is_not_detected(artifact_slide: Path, lbc_slide: Path) -> None:
    det, _ = _detect(artifact_slide)
    clean, _ = _detect(lbc_slide)
    (cx, cy), r = BUBBLE
    ring = np.zeros(det.cells.shape, np.uint8)
    cv2.circle(
        ring, (round(cx / det.downsample), round(cy / det.downsample)), round(r / det.downsample), 1, 1
    )
    ring = ring.astype(bool)
    assert det.cells[ring].sum() <= clean.cells[ring].sum() + 0.02 * ring.sum()  # only the cells under it


def test_dense_hematoxylin_tissue_is_not_pen(svs_path: Path) -> None:
    """Regression: dark H&E epidermis (OD ≈ 1.5 at 4 µm/px) was once flagged as a pen mark."""
    det, _ = _detect(svs_path)
    assert det.pen.sum() == 0
    assert det.cell_area_um2 > 0.4e6  # the section holds > 0.4 mm² of tissue


def test_background_follows_a_tinted_or_dim_scanner() -> None:
    img = glass(400, seed=1).astype(float) * np.array([0.93, 0.95, 0.9])
    bg = estimate_background(img.astype(np.uint8))
    np.testing.assert_allclose(bg, np.array([243, 242, 245]) * [0.93, 0.95, 0.9], atol=3)
    cfg = TilingConfig()
    det = detect_cells(img.astype(np.uint8), 4.0, 8.0, cfg)
    assert det.cells.sum() == 0  # tinted glass is still glass
