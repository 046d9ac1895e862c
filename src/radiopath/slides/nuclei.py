"""Nuclear segmentation of a stained tile: the one the whole project uses.

Cytology pathomics measures these nuclei (:mod:`radiopath.features.pathomics`) and the
explanations ask how much Grad-CAM mass falls on them, so both see the same nuclei. Steps:

1. **Hematoxylin by colour deconvolution** (Ruifrok & Johnston, "Quantification of
   histochemical staining by color deconvolution", Anal. Quant. Cytol. Histol. 2001): optical
   density ``OD = -log10(I / I0)`` per channel, unmixed with the inverse of the stains' unit OD
   vectors. Thyroid FNA cytology is **Papanicolaou**-stained: its blue-green EA/light-green
   cytoplasm unmixes onto hematoxylin with the H&E vectors (weight 1.1, more than hematoxylin
   itself), so the default ``stain="papanicolaou"`` uses hematoxylin (Ruifrok's vector is
   within 5° of it), light green/EA and eosin/orange — the model radiopath's synthetic slides
   are rendered with (:mod:`radiopath.synth.cytology`). ``stain="hematoxylin_eosin"`` is
   Ruifrok's H-E-DAB matrix (scikit-image's ``rgb2hed``), for sections; ``stain_vectors``
   takes a lab's own measured vectors. Our few lines instead of ``skimage.color.rgb2hed``:
   it has no Papanicolaou matrix and its log scaling is not an optical density.
2. **Threshold**: Otsu (1979) on the smoothed hematoxylin map, never below ``min_od``, so a
   glass-only tile (whose hematoxylin is noise around 0) yields no nucleus instead of a split
   of its noise.
3. **Split touching nuclei**: markers at the maxima of the distance transform at least
   ``min_distance_um`` apart, then a compact watershed (Neubert & Protzel, ICPR 2014) of the
   inverted distance (scikit-image ``watershed``; the markers by one dilation, see
   :func:`distance_peaks`, rather than ``peak_local_max``'s loop per object); holes enclosed by
   one nucleus (an intranuclear pseudoinclusion, pale chromatin) are filled afterwards.
4. **Size limits in µm²** from the tile's ``mpp``: specks below ``min_area_um2`` are dropped;
   objects above ``max_area_um2`` are clumps the watershed could not split: they stay in
   :attr:`NucleiSegmentation.mask` (their pixels are nuclear) but are not nuclei to measure.

Measured on synthetic LBC tiles with known nuclei (``tests/slides/test_nuclei.py``: benign to
papillary-like cells at the three synthetic centers' stain hue, intensity and blur): Dice of
the nuclear mask 0.94, detection F1 0.80 at IoU 0.5, 0.96 of the true count found (crowded,
overlapping papillary groups are where nuclei merge or split), about 10-20 ms per 224-px tile
on one core. On real H&E (``stain="hematoxylin_eosin"``) it finds 340 nuclei in the 500x300
StarDist sample and 480 in TIAToolbox's 1000x1000 target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from radiopath.config import StrictModel
from radiopath.errors import ConfigError

#: Unit OD vectors (rows; R, G, B) of the Papanicolaou stain: hematoxylin, light green SF /
#: EA (cyanophilic cytoplasm), eosin / orange G (colloid, keratin). The same vectors
#: :mod:`radiopath.synth.cytology` renders with (a test keeps the two equal).
PAPANICOLAOU_OD = np.array([[0.62, 0.68, 0.40], [0.78, 0.30, 0.55], [0.10, 0.85, 0.52]], np.float64)
#: Ruifrok & Johnston (2001) hematoxylin, eosin, DAB (scikit-image ``rgb_from_hed``).
HEMATOXYLIN_EOSIN_OD = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float64)

_PRESETS = {"papanicolaou": PAPANICOLAOU_OD, "hematoxylin_eosin": HEMATOXYLIN_EOSIN_OD}


class NucleiConfig(StrictModel):
    """How nuclei are found in a tile; every size is physical (µm, µm²), never pixels."""

    stain: Literal["papanicolaou", "hematoxylin_eosin"] = Field(
        "papanicolaou", description="stain whose hematoxylin is unmixed (FNA cytology: papanicolaou)"
    )
    stain_vectors: list[list[float]] | None = Field(
        None,
        description="own OD vectors (2 or 3 rows of R, G, B; hematoxylin first) instead of the preset",
    )
    background: tuple[float, float, float] = Field(
        (255.0, 255.0, 255.0), description="RGB of an empty pixel (I0 of the optical density)"
    )
    smoothing_um: float = Field(0.5, ge=0, le=5, description="Gaussian sigma on the hematoxylin map")
    min_od: float = Field(
        0.08, gt=0, lt=3, description="hematoxylin OD below which nothing is a nucleus (floor of Otsu)"
    )
    min_distance_um: float = Field(2.0, gt=0, le=20, description="least distance between nucleus centres")
    compactness: float = Field(0.01, ge=0, description="compact-watershed weight (0 = classic watershed)")
    fill_holes_um2: float = Field(
        4.0, ge=0, description="holes up to this size are filled before splitting (pale chromatin)"
    )
    min_area_um2: float = Field(10.0, ge=0, description="smaller objects are specks, not nuclei")
    max_area_um2: float = Field(
        250.0, gt=0, description="larger objects are unsplit clumps: nuclear pixels, not one nucleus"
    )

    @field_validator("stain_vectors")
    @classmethod
    def _vectors_ok(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is None:
            return v
        a = np.asarray(v, float)
        if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] not in (2, 3) or (a < 0).any():
            raise ValueError("stain_vectors must be 2 or 3 rows of 3 non-negative OD values (R, G, B)")
        if np.linalg.matrix_rank(a) < a.shape[0]:
            raise ValueError("stain_vectors must be linearly independent")
        return v

    def stain_matrix(self) -> np.ndarray:
        """``(3, 3)`` unit OD vectors as rows, hematoxylin first (a third completed if 2 given)."""
        od = np.asarray(self.stain_vectors if self.stain_vectors is not None else _PRESETS[self.stain], float)
        od = od / np.linalg.norm(od, axis=1, keepdims=True)
        if len(od) == 2:  # residual channel orthogonal to both, as scikit-image does
            third = np.cross(od[0], od[1])
            od = np.vstack([od, third / np.linalg.norm(third)])
        return od


@dataclass(frozen=True)
class NucleiSegmentation:
    """The nuclei of one tile.

    Attributes:
        labels: ``(H, W)`` int32, 0 = not a nucleus, ``1..count`` = one nucleus each (sized
            between ``min_area_um2`` and ``max_area_um2``).
        mask: ``(H, W)`` bool, every nuclear pixel: the nuclei and the unsplit clumps.
        clumps: ``(H, W)`` int32, objects larger than ``max_area_um2`` (labelled ``1..``).
        hematoxylin: ``(H, W)`` float32 hematoxylin OD, unsmoothed (chromatin texture).
        threshold: the hematoxylin OD the smoothed map was cut at (``inf`` when nothing
            reached ``min_od``).
        mpp: µm per pixel of the tile.
    """

    labels: np.ndarray
    mask: np.ndarray
    clumps: np.ndarray
    hematoxylin: np.ndarray
    threshold: float
    mpp: float

    @property
    def count(self) -> int:
        """Number of nuclei (clumps not counted)."""
        return int(self.labels.max()) if self.labels.size else 0

    @property
    def clump_count(self) -> int:
        return int(self.clumps.max()) if self.clumps.size else 0


_OD_LUT_CACHE: dict[tuple[float, float, float], np.ndarray] = {}


def _od_lut(background: tuple[float, float, float]) -> np.ndarray:
    """``(256, 3)`` float32 OD per uint8 value and channel (a table lookup beats a log per pixel)."""
    key = tuple(float(b) for b in background)
    lut = _OD_LUT_CACHE.get(key)
    if lut is None:
        v = np.maximum(np.arange(256, dtype=np.float64), 1.0)[:, None]
        lut = np.maximum(-np.log10(v / np.asarray(key)[None, :]), 0.0).astype(np.float32)
        _OD_LUT_CACHE[key] = lut
    return lut


def check_tile(tile: np.ndarray, mpp: float) -> None:
    """Raise :class:`ConfigError` unless ``tile`` is ``(H, W, 3)`` uint8 RGB and ``mpp`` > 0."""
    if not isinstance(tile, np.ndarray) or tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
        shape = getattr(tile, "shape", None)
        dtype = getattr(tile, "dtype", type(tile).__name__)
        raise ConfigError(
            f"nuclear segmentation needs an (H, W, 3) uint8 RGB tile, got {dtype} {shape}; "
            "read tiles with radiopath.slides.read_tiles"
        )
    if not (np.isfinite(mpp) and mpp > 0):
        raise ConfigError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")


def hematoxylin_od(tile: np.ndarray, cfg: NucleiConfig | None = None) -> np.ndarray:
    """``(H, W)`` float32 hematoxylin optical density of an RGB uint8 tile (colour deconvolution)."""
    cfg = cfg or NucleiConfig()
    lut = _od_lut(cfg.background)
    od = np.stack([lut[tile[..., c], c] for c in range(3)], axis=-1)
    unmix = np.linalg.inv(cfg.stain_matrix())[:, 0].astype(np.float32)  # OD @ inv(M) -> concentrations
    return np.maximum(od @ unmix, 0.0)


def segment_nuclei(tile_rgb: np.ndarray, mpp: float, cfg: NucleiConfig | None = None) -> NucleiSegmentation:
    """Segment the nuclei of one tile (see the module docstring for the method).

    Args:
        tile_rgb: ``(H, W, 3)`` uint8 RGB, as read at the tiling resolution.
        mpp: µm per pixel of ``tile_rgb``.
        cfg: options (defaults suit Papanicolaou-stained LBC at 0.25–1 µm/px).

    Raises:
        ConfigError: not an RGB uint8 tile, or ``mpp`` not positive.
    """
    check_tile(tile_rgb, mpp)
    cfg = cfg or NucleiConfig()
    px_area = mpp * mpp
    raw = hematoxylin_od(tile_rgb, cfg)
    sigma = cfg.smoothing_um / mpp
    h = cv2.GaussianBlur(raw, (0, 0), sigma) if sigma > 0.2 else raw
    empty = np.zeros(h.shape, np.int32)
    if float(h.max()) <= cfg.min_od:
        return NucleiSegmentation(empty, empty > 0, empty.copy(), raw, float("inf"), mpp)
    threshold = max(float(threshold_otsu(h)), cfg.min_od)
    fg = h > threshold
    if cfg.fill_holes_um2 > 0:
        fg = _fill_small_holes(fg, max(int(cfg.fill_holes_um2 / px_area), 1))
    dist = cv2.distanceTransform(fg.astype(np.uint8), cv2.DIST_L2, 5)
    markers = distance_peaks(dist, max(round(cfg.min_distance_um / mpp), 1))
    labels = watershed(-dist, markers, mask=fg, compactness=cfg.compactness).astype(np.int32)
    labels = _fill_enclosed_holes(labels)
    area = np.bincount(labels.ravel()).astype(np.float64) * px_area
    big = area > cfg.max_area_um2
    keep = (area >= cfg.min_area_um2) & ~big
    keep[0] = big[0] = False
    nuclei = _relabel(labels, keep)
    clumps = _relabel(labels, big)
    return NucleiSegmentation(nuclei, (nuclei > 0) | (clumps > 0), clumps, raw, threshold, mpp)


def distance_peaks(dist: np.ndarray, min_distance: int) -> np.ndarray:
    """Markers: the maxima of ``dist`` within a disc of radius ``min_distance`` px, one label
    per plateau (8-connected). Equivalent to ``peak_local_max(..., labels=objects)`` for
    objects at least a pixel apart (a neighbour's distance values near the border are smaller
    than an object's own peak), but one dilation instead of a Python loop per object: 12x
    faster on a dense 1000-px H&E image."""
    k = 2 * min_distance + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    peak = (dist >= cv2.dilate(dist, disc)) & (dist > 0)
    markers, _ = ndi.label(peak, structure=np.ones((3, 3), bool))
    return markers.astype(np.int32)


def _fill_small_holes(mask: np.ndarray, max_px: int) -> np.ndarray:
    """``mask`` with its holes of at most ``max_px`` pixels filled (4-connected background
    components not touching the border). Ours because ``skimage.morphology.remove_small_holes``
    changed its size argument's name and meaning in 0.26."""
    n, holes, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    if n <= 1:
        return mask
    x, y, w, h, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + w < mask.shape[1]) & (y + h < mask.shape[0])
    fill = inner & (area <= max_px)
    fill[0] = False
    return mask | fill[holes]


def _fill_enclosed_holes(labels: np.ndarray) -> np.ndarray:
    """Give each background hole enclosed by exactly one label (not touching the border) to it."""
    holes, n = ndi.label(labels == 0)
    if n <= 1:
        return labels
    ring = cv2.dilate(holes.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    edge = (labels > 0) & (ring > 0)
    pairs = np.unique(ring[edge] * (int(labels.max()) + 1) + labels[edge])
    hole_of, label_of = np.divmod(pairs, int(labels.max()) + 1)
    n_neigh = np.bincount(hole_of, minlength=n + 1)
    owner = np.zeros(n + 1, np.int32)
    single = n_neigh[hole_of] == 1
    owner[hole_of[single]] = label_of[single]
    border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    owner[border] = 0
    owner[0] = 0
    fill = owner[holes]
    return np.where(fill > 0, fill, labels).astype(np.int32)


def _relabel(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels where ``keep[label]``, renumbered ``1..k`` in order; everything else 0."""
    new = np.zeros(len(keep), np.int32)
    new[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new[labels]
