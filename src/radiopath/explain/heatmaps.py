"""Slide heatmaps: per-tile scores and maps painted at the tiles' coordinates on the thumbnail.

As CLAM's ``WholeSlideImage.visHeatmap`` (Lu et al., Nat. Biomed. Eng. 2021) and TRIDENT's
``Visualization.py`` draw them: every tile's value — a constant (its attention weight) or a
map (its Grad-CAM, upsampled over the tile) — is resized to the tile's footprint on the
thumbnail and added into a score array, a counter array counts how many tiles cover each
pixel, and overlapping tiles are averaged (score / count). Pixels no tile covers, and glass
(pixels without stain, :func:`radiopath.slides.detection.stain_features`), stay transparent:
the colour is alpha-blended only where a tile lies on cells.

Coordinates: tile rows give level-0 ``x, y`` and their level-0 ``extent``; the thumbnail's
downsample is level-0 pixels per thumbnail pixel, so a tile covers thumbnail pixels
``[x / ds, (x + extent) / ds)`` — the same arithmetic as the tiler's own thumbnail outlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import matplotlib
import numpy as np
import pandas as pd

from radiopath.slides import open_slide
from radiopath.slides.detection import estimate_background, stain_features


@dataclass(frozen=True)
class Thumbnail:
    """A slide's thumbnail and its scale (level-0 pixels per thumbnail pixel)."""

    image: np.ndarray
    downsample: float


def slide_thumbnail(path: str, slide_mpp: float, side: int = 1024) -> Thumbnail:
    """The whole slide shrunk so its longer side is at most ``side`` pixels."""
    with open_slide(path, mpp_override=slide_mpp) as slide:
        ds = max(max(slide.dimensions) / side, 1.0)
        img = slide.read_lowres(ds)
        return Thumbnail(img, slide.dimensions[0] / img.shape[1])


def footprint(x: float, y: float, extent: float, ds: float) -> tuple[int, int, int, int]:
    """Thumbnail pixel bounds ``(x0, y0, x1, y1)`` (end exclusive) of a level-0 tile."""
    x0, y0 = round(x / ds), round(y / ds)
    x1, y1 = round((x + extent) / ds), round((y + extent) / ds)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def stitch(
    values: Sequence[float | np.ndarray],
    tiles: pd.DataFrame,
    shape: tuple[int, int],
    downsample: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint per-tile ``values`` (scalars or ``(h, w)`` maps) at the ``tiles``' coordinates.

    Args:
        tiles: rows with level-0 ``x``, ``y`` and ``extent``, one per value.
        shape: ``(height, width)`` of the thumbnail.

    Returns:
        ``(heat, count)``: the mean value over the tiles covering each pixel (0 where none) and
        the number of tiles covering it.
    """
    h, w = shape
    heat = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.int32)
    for v, (x, y, extent) in zip(values, tiles[["x", "y", "extent"]].itertuples(index=False), strict=True):
        x0, y0, x1, y1 = footprint(float(x), float(y), float(extent), downsample)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        if np.ndim(v) == 0:
            patch = np.full((y1 - y0, x1 - x0), float(v))
        else:
            patch = cv2.resize(np.asarray(v, np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        heat[cy0:cy1, cx0:cx1] += patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        count[cy0:cy1, cx0:cx1] += 1
    return np.divide(heat, count, out=np.zeros_like(heat), where=count > 0), count


def cell_mask(image: np.ndarray, od_threshold: float = 0.06, chroma_threshold: float = 0.06) -> np.ndarray:
    """Pixels holding stain (not glass): some optical density and some colour, as the tiler's
    cell detection decides (grey dust and bubble rims are not cells), slightly dilated."""
    od, chroma = stain_features(image, estimate_background(image))
    mask = ((od > od_threshold) & (chroma > chroma_threshold)).astype(np.uint8)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def blend(
    image: np.ndarray,
    heat: np.ndarray,
    where: np.ndarray,
    *,
    cmap: str = "jet",
    alpha: float = 0.45,
    vmax: float | None = None,
    by_value: bool = False,
) -> np.ndarray:
    """``image`` with ``heat`` (scaled to ``[0, vmax]``) alpha-blended in colour where ``where``.

    ``by_value``: the opacity grows with the value (``alpha * scaled``), so a map's zero
    leaves the image as it is — how Grad-CAM overlays stay readable where the map is empty.
    """
    top = vmax if vmax is not None else float(heat[where].max()) if where.any() else 1.0
    scaled = np.clip(heat / (top if top > 0 else 1.0), 0, 1)
    colour = (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).astype(np.float32)
    out = image.astype(np.float32).copy()
    a = alpha * where * (scaled if by_value else 1.0)
    out = out * (1 - a[..., None]) + colour * a[..., None]
    return out.round().clip(0, 255).astype(np.uint8)


def slide_heatmap(
    thumb: Thumbnail,
    values: Sequence[float | np.ndarray],
    tiles: pd.DataFrame,
    *,
    alpha: float = 0.5,
    by_value: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The thumbnail with ``values`` stitched over the tiles on cells (glass left clear), with
    every tile outlined; returns the picture and the stitched heat."""
    heat, count = stitch(values, tiles, thumb.image.shape[:2], thumb.downsample)
    where = (count > 0) & cell_mask(thumb.image)
    out = blend(thumb.image, heat, where, alpha=alpha, vmax=1.0 if by_value else None, by_value=by_value)
    for x, y, extent in tiles[["x", "y", "extent"]].itertuples(index=False):
        x0, y0, x1, y1 = footprint(float(x), float(y), float(extent), thumb.downsample)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (40, 40, 40), 1)
    return out, heat


def cam_overlay(
    image: np.ndarray, cam: np.ndarray, *, vmax: float | None = None, alpha: float = 0.65
) -> np.ndarray:
    """An image ``(H, W, 3)`` with a CAM ``(h, w)`` upsampled over it, opaque as the map is high
    (where the map is zero the image shows as it is)."""
    up = cv2.resize(np.asarray(cam, np.float32), image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return blend(image, up, np.ones(up.shape, bool), alpha=alpha, vmax=vmax, by_value=True)
