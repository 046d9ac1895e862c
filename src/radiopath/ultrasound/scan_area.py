"""Find the scan (the B-mode image) inside an ultrasound screenshot.

Hospital exports are screenshots: the scan sits inside vendor chrome (text, depth scales,
grey bars, logos, side panels, black borders). Everything outside the scan must go, or a
model learns the hospital instead of the nodule.

Two sources, in order:

1. **DICOM Sequence of Ultrasound Regions** (0018,6011), when the file has one and the
   largest tissue region (RegionDataType 1) lies inside the pixel matrix. A region that
   does not fit means the pixels were cropped or resized after the scanner wrote the tags;
   it is then ignored and flagged ``dicom_regions_mismatch``.
2. **The pixels.** Speckle is textured and dense everywhere in the scan; chrome is flat
   background with sparse thin strokes. A pixel is *textured* when it differs from the
   background (the most common border value) and its 5×5 neighbourhood is not flat; the
   scan is the largest connected region where most pixels of a window (``window`` of the
   short side) are textured, with its holes filled (cysts, vessels) and text blocks that
   touch it trimmed off its edges (rows or columns whose longest run of scan pixels is
   short). Sectors (convex and phased-array probes) come out as their bounding box with
   the corners outside the fan blanked.

When neither gives a plausible area (less than ``min_area`` of the image) the result says
so (``found=False`` with a reason) instead of guessing; :class:`~.transform.UltrasoundTransform`
then falls back to the whole image and flags it, or raises :class:`ScanAreaError` if asked to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from radiopath.errors import RadiopathError
from radiopath.ultrasound.config import ScanAreaConfig

Box = tuple[int, int, int, int]

#: RegionDataType of a tissue (B-mode) region in the DICOM Sequence of Ultrasound Regions.
TISSUE = 1


class ScanAreaError(RadiopathError):
    """No scan area was found in an image and the configuration asked to stop."""


@dataclass
class ScanArea:
    """Where the scan lies in a screenshot.

    Attributes:
        box: ``x0, y0, x1, y1`` (exclusive ends) of the scan; the whole image when not found.
        mask: ``(H, W)`` bool, True on scan pixels (the fan of a sector; the box otherwise).
        found: False when no plausible scan area was found (``box`` is then the whole image).
        source: ``"dicom"``, ``"pixels"`` or ``"none"``.
        reason: why nothing was found, or why the DICOM regions were not used.
        flags: short machine-readable notes (``dicom_regions_mismatch``, ``several_scan_areas``…).
    """

    box: Box
    mask: np.ndarray
    found: bool
    source: str
    reason: str = ""
    flags: list[str] = field(default_factory=list)

    @property
    def area_fraction(self) -> float:
        h, w = self.mask.shape
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0) / float(h * w)


def find_scan_area(
    image: np.ndarray,
    config: ScanAreaConfig | None = None,
    regions: list[dict[str, float]] | None = None,
) -> ScanArea:
    """Locate the scan in an ``(H, W, 3)`` uint8 screenshot (see the module docstring).

    Args:
        image: the screenshot, RGB uint8.
        config: detection options.
        regions: the file's DICOM ultrasound regions (:func:`radiopath.io.dicom.ultrasound_regions`).
    """
    cfg = config or ScanAreaConfig()
    h, w = image.shape[:2]
    flags: list[str] = []
    reason = ""
    if regions and cfg.use_dicom_regions:
        box = _dicom_box(regions, w, h)
        if box is not None:
            mask = np.zeros((h, w), bool)
            mask[box[1] : box[3], box[0] : box[2]] = True
            return ScanArea(box, mask, True, "dicom")
        flags.append("dicom_regions_mismatch")
        reason = "the DICOM ultrasound regions do not fit the pixel matrix (cropped or resized file)"
    found = _from_pixels(image, cfg)
    if isinstance(found, str):
        whole = np.ones((h, w), bool)
        return ScanArea((0, 0, w, h), whole, False, "none", found, flags)
    box, mask, extra = found
    return ScanArea(box, mask, True, "pixels", reason, flags + extra)


def scan_area_of_file(
    image: np.ndarray, path: str | Path | None, config: ScanAreaConfig | None = None
) -> ScanArea:
    """:func:`find_scan_area`, reading the DICOM regions of ``path`` when it is a DICOM file."""
    regions = _regions_if_dicom(Path(path)) if path is not None else None
    return find_scan_area(image, config, regions)


def _regions_if_dicom(path: Path) -> list[dict[str, float]] | None:
    from radiopath.io.images import sniff_format

    try:
        if sniff_format(path) != "DICOM":
            return None
    except RadiopathError:
        return None
    from radiopath.io.dicom import ultrasound_regions

    return ultrasound_regions(path)


def _dicom_box(regions: list[dict[str, float]], w: int, h: int) -> Box | None:
    """The largest tissue region as an exclusive-end box, or None when it does not fit."""
    tissue = [r for r in regions if int(r.get("data_type", 0)) == TISSUE]
    if not tissue:
        return None
    best = max(tissue, key=lambda r: (r["x1"] - r["x0"]) * (r["y1"] - r["y0"]))
    x0, y0, x1, y1 = int(best["x0"]), int(best["y0"]), int(best["x1"]) + 1, int(best["y1"]) + 1
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def textured(gray: np.ndarray) -> np.ndarray:
    """True where a pixel differs from the background and its 5×5 neighbourhood is not flat

    (standard deviation above 0.75 grey levels: digital chrome is exactly flat, while even a
    heavily smoothed, upscaled scan keeps some texture)."""
    g = gray.astype(np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.uint8)
    background = int(np.bincount(border, minlength=256).argmax())
    mean = cv2.boxFilter(g, -1, (5, 5))
    sq = cv2.boxFilter(g * g, -1, (5, 5))
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    return (np.abs(g - background) > 6) & (std > 0.75)


def _from_pixels(image: np.ndarray, cfg: ScanAreaConfig) -> tuple[Box, np.ndarray, list[str]] | str:
    h, w = image.shape[:2]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    tex = textured(gray).astype(np.float32)
    k = max(9, round(min(h, w) * cfg.window)) | 1
    core = (cv2.boxFilter(tex, -1, (k, k)) > cfg.min_density).astype(np.uint8)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if n <= 1:
        return "no textured (speckle-like) region in the image"
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas)
    best = int(order[0]) + 1
    flags = []
    if len(order) > 1 and areas[order[1]] >= 0.5 * areas[order[0]]:
        flags.append("several_scan_areas")
    comp = _fill_holes((labels == best).astype(np.uint8))
    x0, y0, x1, y1 = _trim(comp, cfg.trim)
    if (x1 - x0) * (y1 - y0) < cfg.min_area * h * w or min(x1 - x0, y1 - y0) < 16:
        share = (x1 - x0) * (y1 - y0) / (h * w)
        return (
            f"the largest speckle-like region covers {share:.1%} of the image, "
            f"less than the {cfg.min_area:.0%} a scan needs"
        )
    mask = np.zeros((h, w), bool)
    sub = comp[y0:y1, x0:x1]
    contours, _ = cv2.findContours(np.ascontiguousarray(sub), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    fan = np.zeros_like(sub)
    cv2.fillConvexPoly(fan, hull, 1)
    if fan.mean() < 0.85:  # a fan (its hull leaves the box's corners empty): blank the corners
        mask[y0:y1, x0:x1] = cv2.dilate(fan, np.ones((3, 3), np.uint8)) > 0
        flags.append("sector")
    else:
        mask[y0:y1, x0:x1] = True
    return (int(x0), int(y0), int(x1), int(y1)), mask, flags


def _fill_holes(comp: np.ndarray) -> np.ndarray:
    """Fill enclosed holes (anechoic cysts, vessels) of a binary component."""
    contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(comp)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Length of the longest run of True in each row of a 2-D bool array."""
    h, w = mask.shape
    pad = np.zeros((h, w + 2), np.int8)
    pad[:, 1:-1] = mask
    d = np.diff(pad, axis=1)
    out = np.zeros(h, int)
    starts_r, starts_c = np.nonzero(d == 1)
    _, ends_c = np.nonzero(d == -1)
    if len(starts_r):
        np.maximum.at(out, starts_r, ends_c - starts_c)
    return out


def _trim(comp: np.ndarray, frac: float) -> Box:
    """Bounding box of ``comp`` without edge rows/columns whose longest run is short.

    Text blocks that touch the scan join it as narrow protrusions at its edges: their rows
    hold short runs only, where a scan row (or a sector's chord) holds one long run.
    """
    ys, xs = np.nonzero(comp)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    if frac <= 0:
        return x0, y0, x1, y1
    for _ in range(2):
        rows = _longest_runs(comp[y0:y1, x0:x1] > 0)
        ok = np.flatnonzero(rows >= frac * rows.max())
        y0, y1 = y0 + int(ok[0]), y0 + int(ok[-1]) + 1
        cols = _longest_runs((comp[y0:y1, x0:x1] > 0).T)
        ok = np.flatnonzero(cols >= frac * cols.max())
        x0, x1 = x0 + int(ok[0]), x0 + int(ok[-1]) + 1
    return x0, y0, x1, y1
