"""Where the cells are: a low-resolution mask of cell-bearing regions, and of ink.

Liquid-based cytology is sparse cells on a clear background, so the task is "stained or not",
not the tissue/glass split of a section. On a low-resolution image (a few µm per pixel):

1. the glass colour is estimated from the brightest pixels (scanners differ: 235-255, tinted);
2. each pixel's optical density relative to it, ``OD = -ln(I / I_glass)`` (Beer-Lambert; as in
   Macenko et al. 2009), and its background-relative chroma are computed;
3. a pixel holds cells when it has both some density *and* some colour: Papanicolaou and H&E
   stains are coloured, while bubble rims, dust and scratches are grey;
4. dark regions with a large *uniform* core are pen marks (:func:`pen_mask`; flagged, so tiles
   touching them are refused), never cells;
5. morphological closing joins a group's nuclei, and specks below a minimum area are dropped.

An empty slide (clean glass, or only debris) yields an empty mask; nothing divides by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radiopath.slides.config import TilingConfig


@dataclass
class Detection:
    """Masks on the detection image, with its scale.

    Attributes:
        cells: uint8 0/1, cell-bearing regions.
        pen: uint8 0/1, pen marks and other large ink.
        downsample: level-0 pixels per detection pixel.
        mpp: µm per detection pixel.
        background: the estimated glass colour (RGB).
    """

    cells: np.ndarray
    pen: np.ndarray
    downsample: float
    mpp: float
    background: np.ndarray

    @property
    def cell_area_um2(self) -> float:
        return float(self.cells.sum()) * self.mpp**2

    @property
    def pen_area_um2(self) -> float:
        return float(self.pen.sum()) * self.mpp**2


def estimate_background(img: np.ndarray, top: float = 5.0) -> np.ndarray:
    """The glass colour: per-channel median of the brightest ``top`` % pixels, at least 160.

    The floor keeps a slide with no glass at all (a section filling the field) from calling
    its palest tissue "background" when that tissue is dark.
    """
    flat = img.reshape(-1, 3)
    if len(flat) > 1_000_000:  # a strided sample is plenty for a percentile
        flat = flat[:: len(flat) // 1_000_000 + 1]
    lum = flat.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = flat[lum >= np.percentile(lum, 100.0 - top)]
    return np.clip(np.median(bright, axis=0), 160.0, 255.0).astype(np.float32)


def optical_density(img: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-channel optical density ``-ln(I / I_glass)`` (≥ 0), float32, via a lookup table."""
    v = np.maximum(np.arange(256, dtype=np.float32), 1.0)
    lut = np.maximum(-np.log(v[:, None] / np.asarray(background, np.float32)[None, :]), 0.0)
    return cv2.LUT(np.ascontiguousarray(img), lut.astype(np.float32).reshape(1, 256, 3))


def stain_features(img: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean optical density and background-relative chroma per pixel (float32 maps).

    Chroma is ``(max - min) / max`` of the background-normalised RGB, which equals
    ``1 - exp(-(OD_max - OD_min))``: 0 for grey (glass, dust, bubble rims), larger for stain.
    """
    r, g, b = cv2.split(optical_density(img, background))
    od = (r + g + b) * np.float32(1.0 / 3.0)
    spread = cv2.max(cv2.max(r, g), b) - cv2.min(cv2.min(r, g), b)
    chroma = 1.0 - cv2.exp(-spread)
    return od, chroma


def stained_pixels(img: np.ndarray, background: np.ndarray, cfg: TilingConfig) -> np.ndarray:
    """bool map: pixels with stain, i.e. both some density and some colour."""
    od, chroma = stain_features(img, background)
    return (od > cfg.od_threshold) & (chroma > cfg.saturation_threshold)


def _disk(radius_px: float) -> np.ndarray:
    r = max(round(radius_px), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Remove 8-connected components with fewer than ``min_px`` pixels."""
    if min_px <= 1 or not mask.any():
        return mask
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return keep[labels].astype(np.uint8)


def local_variation(od: np.ndarray, window: int) -> np.ndarray:
    """Coefficient of variation (sd / mean) of ``od`` in a ``window``-pixel box around each pixel."""
    k = (window, window)
    mean = cv2.blur(od, k)
    sd = np.sqrt(np.maximum(cv2.blur(od * od, k) - mean * mean, 0.0))
    return sd / np.maximum(mean, 1e-3)


def pen_mask(od: np.ndarray, mpp: float, cfg: TilingConfig) -> np.ndarray:
    """Large, dark, uniform ink: marker strokes (any colour, black included).

    Darkness alone cannot tell ink from a dense hematoxylin-stained group (H&E epidermis reaches
    OD 1.5 at 4 µm/px), but a marker lays down ink evenly while stained cells are textured:
    the ink's local coefficient of variation is about 0.01, tissue's rarely below 0.15. A dark
    region is pen when it holds a uniform core of at least ``pen_min_area_um2``.
    """
    ink = (od >= cfg.pen_od).astype(np.uint8)
    if not ink.any():
        return ink
    window = max(round(28.0 / mpp) | 1, 3)  # about 28 µm
    core = (ink > 0) & (local_variation(od, window) < cfg.pen_uniformity)
    core = _drop_small(core.astype(np.uint8), cfg.pen_min_area_um2 / (mpp * mpp))
    if not core.any():
        return np.zeros_like(ink)
    _, labels = cv2.connectedComponents(ink, connectivity=8)
    hit = np.unique(labels[core > 0])
    pen = np.isin(labels, hit[hit > 0]).astype(np.uint8)
    return cv2.dilate(pen, _disk(max(10.0 / mpp, 1.0)))  # ink edges fade into the glass


def detect_cells(img: np.ndarray, mpp: float, downsample: float, cfg: TilingConfig) -> Detection:
    """Cell-region and pen masks of a low-resolution RGB image at ``mpp`` µm/px.

    Args:
        img: the slide shrunk to ``mpp`` (``(H, W, 3)`` uint8).
        mpp: its resolution, µm per pixel.
        downsample: level-0 pixels per pixel of ``img`` (kept in the result for mapping back).
        cfg: thresholds (:class:`TilingConfig`).
    """
    background = estimate_background(img)
    od, chroma = stain_features(img, background)
    pen = pen_mask(od, mpp, cfg)
    stained = ((od > cfg.od_threshold) & (chroma > cfg.saturation_threshold) & (pen == 0)).astype(np.uint8)
    if cfg.closing_um > 0:
        stained = cv2.morphologyEx(stained, cv2.MORPH_CLOSE, _disk(cfg.closing_um / 2 / mpp))
    cells = _drop_small(stained, cfg.min_object_um2 / (mpp * mpp))
    cells[pen > 0] = 0
    return Detection(cells=cells, pen=pen, downsample=downsample, mpp=mpp, background=background)
