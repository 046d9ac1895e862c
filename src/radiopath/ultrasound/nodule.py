"""An automatic nodule region for views that come with neither a mask nor a box.

Radiomics needs a region; a radiologist's mask or box is always better, and this is the
fallback, deliberately simple and documented so a reader knows what was measured. Most
thyroid nodules worth an FNA are solid and hypoechoic or isoechoic with a hypoechoic halo, and
the sonographer centres them (ACR TI-RADS, Tessler et al., J. Am. Coll. Radiol. 2017), so:

1. inside the scan area, at about 128 px across (speed), speckle is smoothed away (median
   filter, then a Gaussian of ``smooth`` of the scan's side);
2. *dark* regions: the smoothed scan below each of several percentiles (``percentiles``), each
   opened (thin bridges to vessels or shadows cut) and hole-filled, split into components;
3. every component of ``min_area``-``max_area`` of the scan, at every threshold, is scored by
   compactness (solidity) x closeness to the scan's centre x how much darker it is than a
   ring around it (halo, parenchyma) x the square root of its size x the square of the share
   of its outline *not* on the scan's edge (the far field and acoustic shadows run into it;
   a nodule is imaged whole);
4. the best one, as its convex hull (``convex``) and closed, is the nodule.

No candidate → the whole scan area, ``found=False`` and the flag ``nodule_not_found``, so a
report can say which views were measured on the whole scan. On the 87 DDTI views with a
radiologist's mask the automatic region overlaps it with a median Dice of 0.59 (67 % of
views above 0.5; the options were chosen on these same views, so this is optimistic);
iso-echoic nodules, which darkness cannot find, are most of the misses. DDTI views are crops
around the nodule; on whole synthetic screenshots (``radiopath synth``) the strap muscles,
the carotid and the far field compete and it mostly fails (median Dice about 0.1): give
masks or boxes for real studies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import Field
from scipy import ndimage as ndi

from radiopath.config import StrictModel
from radiopath.errors import ConfigError


class NoduleConfig(StrictModel):
    """How the automatic nodule region is found (see the module docstring)."""

    work_side: int = Field(128, ge=32, le=1024, description="scan's larger side while searching, px")
    smooth: float = Field(0.02, gt=0, le=0.2, description="Gaussian sigma, share of the scan's larger side")
    opening: float = Field(0.03, ge=0, le=0.2, description="opening radius, share of the scan's larger side")
    min_area: float = Field(0.01, gt=0, lt=1, description="smallest candidate, share of the scan area")
    max_area: float = Field(0.6, gt=0, le=1, description="largest candidate, share of the scan area")
    percentiles: tuple[float, ...] = Field(
        (20.0, 30.0, 40.0, 50.0, 60.0), description="darkness thresholds tried, percentiles of the scan area"
    )
    convex: bool = Field(True, description="return the convex hull of the chosen region")


@dataclass(frozen=True)
class NoduleRegion:
    """The region radiomics is measured on.

    Attributes:
        mask: ``(H, W)`` bool, full-image coordinates.
        source: ``"mask"``, ``"box"``, ``"auto"`` or ``"scan"`` (the whole scan area).
        found: False when nothing nodule-like was found (``source == "scan"``).
        score: the automatic region's score (NaN for a given mask or box).
        flags: ``nodule_auto`` (found automatically), ``nodule_not_found``, ``empty_mask``.
    """

    mask: np.ndarray
    source: str
    found: bool
    score: float = float("nan")
    flags: tuple[str, ...] = field(default_factory=tuple)


def _disc(r: int) -> np.ndarray:
    r = max(int(r), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def find_nodule(
    gray: np.ndarray, scan_mask: np.ndarray | None = None, cfg: NoduleConfig | None = None
) -> NoduleRegion:
    """The automatic nodule region of a grey view (``ProcessedView.cleaned``), or the whole scan.

    Args:
        gray: ``(H, W)`` uint8 grey image.
        scan_mask: ``(H, W)`` bool scan area (``ProcessedView.scan.mask``); the whole image if None.
        cfg: options.

    Raises:
        ConfigError: not a 2-D image, or a scan mask of another size.
    """
    cfg = cfg or NoduleConfig()
    g = np.asarray(gray)
    if g.ndim != 2:
        raise ConfigError(f"find_nodule needs a 2-D grey image, got shape {g.shape}")
    scan = np.ones(g.shape, bool) if scan_mask is None else np.asarray(scan_mask, bool)
    if scan.shape != g.shape:
        raise ConfigError(f"scan mask {scan.shape} and image {g.shape} differ in size")
    whole = NoduleRegion(scan.copy(), "scan", False, flags=("nodule_not_found",))
    ys, xs = np.nonzero(scan)
    if len(ys) < 64:
        return whole
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(y1 - y0, x1 - x0)
    f = min(cfg.work_side / side, 1.0)
    size = (max(round((x1 - x0) * f), 8), max(round((y1 - y0) * f), 8))
    small = cv2.resize(g[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    sm = cv2.resize(scan[y0:y1, x0:x1].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    wside = max(size)
    smooth = cv2.GaussianBlur(cv2.medianBlur(small, 5).astype(np.float32), (0, 0), cfg.smooth * wside)
    values = smooth[sm]
    if values.max() - values.min() < 1:
        return whole
    r = round(cfg.opening * wside)
    area_scan = float(sm.sum())
    centre = np.array([sm.shape[0] / 2.0, sm.shape[1] / 2.0])
    half_diag = float(np.hypot(*centre))
    sd = float(values.std()) + 1e-6
    border = cv2.dilate((~sm).astype(np.uint8), _disc(2), borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0
    best, best_score = None, 0.0
    for cut in np.percentile(values, cfg.percentiles):
        dark = (smooth < cut) & sm
        if r >= 1:
            dark = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_OPEN, _disc(r)) > 0
        labels, _ = ndi.label(ndi.binary_fill_holes(dark))
        for k, sl in enumerate(ndi.find_objects(labels), start=1):
            region = labels[sl] == k
            a = float(region.sum()) / area_scan
            if not cfg.min_area <= a <= cfg.max_area:
                continue
            score = _score(labels == k, region, sl, smooth, sm, border, centre, half_diag, sd, a)
            if score > best_score:
                best, best_score = labels == k, score
    if best is None:
        return whole
    region = best.astype(np.uint8)
    if cfg.convex:
        pts = np.argwhere(region)[:, ::-1].astype(np.int32)
        cv2.fillConvexPoly(region, cv2.convexHull(pts), 1)
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, _disc(max(r, 1)))
    region = cv2.resize(region, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0
    mask = np.zeros(g.shape, bool)
    mask[y0:y1, x0:x1] = region
    mask &= scan
    return NoduleRegion(mask, "auto", True, float(best_score), ("nodule_auto",))


def _score(
    full: np.ndarray,
    region: np.ndarray,
    sl: tuple[slice, slice],
    smooth: np.ndarray,
    scan: np.ndarray,
    border: np.ndarray,
    centre: np.ndarray,
    half_diag: float,
    sd: float,
    area: float,
) -> float:
    """Compactness x centrality x darkness against its ring x sqrt(size) x (1 - border share)^2."""
    pts = np.argwhere(region)[:, ::-1].astype(np.int32)
    solidity = min(region.sum() / (float(cv2.contourArea(cv2.convexHull(pts))) + 1.0), 1.0)
    cy, cx = np.argwhere(region).mean(axis=0) + np.array([sl[0].start, sl[1].start])
    central = max(1.0 - np.hypot(cy - centre[0], cx - centre[1]) / half_diag, 0.0)
    width = max(round(0.3 * np.sqrt(full.sum() / np.pi)), 2)
    ring = (cv2.dilate(full.astype(np.uint8), _disc(width)) > 0) & ~full & scan
    contrast = (float(smooth[ring].mean()) - float(smooth[full].mean())) / sd if ring.any() else 0.0
    inner = cv2.erode(full.astype(np.uint8), _disc(1), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edge = full & ~(inner > 0)  # the array's edge counts as outline too
    on_border = float((edge & border).sum()) / max(float(edge.sum()), 1.0)
    return float(solidity * central * max(contrast, 0.0) * np.sqrt(area) * (1.0 - on_border) ** 2)


def region_from(
    shape: tuple[int, int],
    mask: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> NoduleRegion | None:
    """A given mask (preferred) or box as a :class:`NoduleRegion`; None when neither is usable
    (an empty mask is flagged ``empty_mask`` on the automatic region the caller then finds)."""
    if mask is not None:
        from radiopath.ultrasound.region import binary_mask

        m = binary_mask(mask)
        if m.shape != tuple(shape):
            raise ConfigError(
                f"the nodule mask is {m.shape[1]}x{m.shape[0]} px but the image is {shape[1]}x{shape[0]} px; "
                "use the mask drawn on this exact image"
            )
        if m.any():
            return NoduleRegion(m, "mask", True)
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        h, w = shape
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x0 < x1 and y0 < y1:
            m = np.zeros(shape, bool)
            m[y0:y1, x0:x1] = True
            return NoduleRegion(m, "box", True)
    return None
