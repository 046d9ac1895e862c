"""The nodule region: a square crop around the radiologist's mask or box, or the scan area.

A model should see the nodule and a little of the tissue around it (margin and halo are
TI-RADS features), at one scale, undistorted. So the crop is the nodule's bounding box
grown by ``margin`` of its size on every side, then widened to a square (the output is
square, and stretching a nodule would change its taller-than-wide shape, itself a
malignancy sign). The square is shifted, not shrunk, to stay inside the scan area; what
still falls outside the scan (chrome, or beyond the image) is black.

Without a region the whole scan area is used, letterboxed to a square with black bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radiopath.errors import ConfigError

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Region:
    """Where the model's square comes from.

    Attributes:
        crop: ``x0, y0, x1, y1`` of the square in image pixels (may extend past the image).
        nodule: the nodule's bounding box, or None when the scan area was used.
        source: ``"mask"``, ``"box"`` or ``"scan"``.
        flags: notes such as ``empty_mask``, ``box_outside_image``, ``box_clipped`` and
            ``region_outside_scan`` (less than half of the nodule's box lies in the scan area).
    """

    crop: Box
    nodule: Box | None
    source: str
    flags: tuple[str, ...] = ()


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box (exclusive ends) of the non-zero pixels of a 2-D mask, or None if empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """A mask image (0/1, 0/255, grey or RGB, as annotation tools write them) → 2-D bool."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.max(axis=2)
    if m.ndim != 2:
        raise ConfigError(f"a nodule mask must be a 2-D image, got shape {m.shape}")
    if m.dtype == bool:
        return m
    top = float(m.max()) if m.size else 0.0
    return m > (0 if top <= 1 else top / 2)


def square_around(box: Box, margin: float, min_side: int) -> tuple[float, float, float]:
    """Centre ``(cx, cy)`` and side of the square holding ``box`` with ``margin`` on each side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0, max(side, float(min_side))


def _place(centre: float, side: int, lo: int, hi: int) -> int:
    """Start of a ``side``-long window around ``centre``, shifted inside ``[lo, hi)`` if it fits."""
    start = round(centre - side / 2.0)
    if side <= hi - lo:
        return int(min(max(start, lo), hi - side))
    return round((lo + hi) / 2.0 - side / 2.0)  # larger than the scan: centred on it


def choose_region(
    shape: tuple[int, int],
    scan_box: Box,
    margin: float,
    mask: np.ndarray | None = None,
    box: Box | None = None,
    min_side: int = 32,
) -> Region:
    """The square crop for one view (see the module docstring).

    Args:
        shape: ``(H, W)`` of the image.
        scan_box: the scan area, ``x0, y0, x1, y1``.
        margin: share of the nodule's larger side added on every side.
        mask: the nodule mask (same size as the image), used before ``box`` when both are given.
        box: the nodule box ``x0, y0, x1, y1`` in image pixels.
        min_side: smallest square side, px (tiny nodules are not blown up beyond this).

    Raises:
        ConfigError: a mask whose size differs from the image's.
    """
    h, w = shape
    flags: list[str] = []
    nodule: Box | None = None
    source = "scan"
    if mask is not None:
        m = binary_mask(mask)
        if m.shape != (h, w):
            raise ConfigError(
                f"the nodule mask is {m.shape[1]}x{m.shape[0]} px but the image is {w}x{h} px; "
                "use the mask drawn on this exact image"
            )
        nodule = mask_box(m)
        source = "mask"
        if nodule is None:
            flags.append("empty_mask")
            source = "scan"
    if nodule is None and box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        clipped = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
        if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
            flags.append("box_outside_image")
        else:
            if clipped != (x0, y0, x1, y1):
                flags.append("box_clipped")
            nodule, source = clipped, "box"
    sx0, sy0, sx1, sy1 = scan_box
    if nodule is None:
        side = max(sx1 - sx0, sy1 - sy0)
        cx, cy = (sx0 + sx1) / 2.0, (sy0 + sy1) / 2.0
    else:
        nx0, ny0, nx1, ny1 = nodule
        inside = max(0, min(nx1, sx1) - max(nx0, sx0)) * max(0, min(ny1, sy1) - max(ny0, sy0))
        if inside < 0.5 * (nx1 - nx0) * (ny1 - ny0):  # drawn on chrome, or a mask of another image
            flags.append("region_outside_scan")
        cx, cy, fside = square_around(nodule, margin, min_side)
        side = int(np.ceil(fside))
    x0 = _place(cx, side, sx0, sx1)
    y0 = _place(cy, side, sy0, sy1)
    return Region((x0, y0, x0 + side, y0 + side), nodule, source, tuple(flags))


def crop_padded(image: np.ndarray, box: Box, valid: np.ndarray | None = None) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with zeros where the box leaves the image or ``valid`` is False."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), image.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return out
    patch = image[iy0:iy1, ix0:ix1]
    if valid is not None:
        keep = valid[iy0:iy1, ix0:ix1]
        patch = np.where(keep.reshape(keep.shape + (1,) * (patch.ndim - 2)), patch, 0)
    out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = patch
    return out


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square crop to ``size``×``size`` (area averaging down, bicubic up)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)
