"""Cytology pathomics: nuclear morphometry, chromatin and crowding, per tile and per patient.

What a cytopathologist reads on a thyroid FNA for papillary carcinoma (The Bethesda System
for Reporting Thyroid Cytopathology, Ali & Cibas, 3rd ed. 2023): enlarged, oval, irregular
nuclei; pale, powdery chromatin; crowded, overlapping nuclei in groups — measured on the
nuclei of :func:`radiopath.slides.nuclei.segment_nuclei`, in physical units, on the tile as
read at the tiling resolution (``target_mpp``, default 0.5 µm/px; never the CNN's resized
input, whose µm per pixel is not the slide's). Quantitative nuclear morphometry of this kind
separates papillary carcinoma from benign follicular nodules (e.g. Gupta et al., "Nuclear
morphometry in thyroid FNA", Diagn. Cytopathol. 2001).

Per nucleus (:data:`NUCLEUS_COLUMNS`): area (µm²), perimeter (µm), major/minor axis (µm),
eccentricity, elongation (major/minor), solidity, circularity (4πA/P²), chromatin
hematoxylin OD mean and sd, chromatin GLCM contrast and homogeneity (hematoxylin OD binned
by ``chromatin_bin_od``), distance to the nearest other nucleus (µm, centroids, same tile),
the same in nucleus diameters (crowding relative to size: papillary nuclei are both larger
and closer), whether it touches another nucleus or an unsplit clump, and how many nuclei share its cell
group (the connected stained region, closed by ``group_closing_um``).

Aggregated (per tile, or pooled over a patient's tiles) into fixed, readable names
(:func:`feature_names`): ``<measure>_<stat>`` for ``stat`` in ``mean, sd, p10, median, p90``
(e.g. ``nucleus_area_um2_mean``, ``nn_distance_um_median``), plus ``nuclei_per_tile``,
``touching_fraction``, ``clump_area_fraction`` (share of nuclear pixels in clumps the
watershed could not split: overlap) and ``nuclear_area_fraction`` (nuclear share of the
stained area: a nucleus-to-cytoplasm ratio). Without nuclei, the distribution features are
NaN and ``nuclei_per_tile`` is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
from pydantic import Field
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from radiopath.config import StrictModel
from radiopath.features.morphometry import (
    glcm_contrast_homogeneity,
    label_glcm,
    label_intensity,
    label_shapes,
)
from radiopath.slides.detection import estimate_background, stain_features
from radiopath.slides.nuclei import NucleiConfig, NucleiSegmentation, check_tile, segment_nuclei

#: Per-nucleus measures, in this order (the columns of :attr:`TileMeasurements.nuclei`).
NUCLEUS_COLUMNS: tuple[str, ...] = (
    "nucleus_area_um2",
    "nucleus_perimeter_um",
    "nucleus_major_axis_um",
    "nucleus_minor_axis_um",
    "nucleus_eccentricity",
    "nucleus_elongation",
    "nucleus_solidity",
    "nucleus_circularity",
    "chromatin_od_mean",
    "chromatin_od_sd",
    "chromatin_glcm_contrast",
    "chromatin_glcm_homogeneity",
    "nn_distance_um",
    "nn_distance_diameters",
    "touching",
    "group_size",
)
#: Measures summarised by distribution statistics (``touching`` becomes a fraction instead).
DISTRIBUTION_MEASURES: tuple[str, ...] = tuple(c for c in NUCLEUS_COLUMNS if c != "touching")
#: Statistic suffixes and their quantiles (None: mean, sd).
STATS: tuple[tuple[str, float | None], ...] = (
    ("mean", None),
    ("sd", None),
    ("p10", 0.10),
    ("median", 0.50),
    ("p90", 0.90),
)
#: Tile- or patient-level crowding features that are not distributions over nuclei.
SCALAR_FEATURES: tuple[str, ...] = (
    "nuclei_per_tile",
    "touching_fraction",
    "clump_area_fraction",
    "nuclear_area_fraction",
)
#: Pixel sums per tile that pooled features need (:attr:`TileMeasurements.sums`).
SUM_KEYS: tuple[str, ...] = ("nuclear_um2", "clump_um2", "stained_um2")


class PathomicsConfig(StrictModel):
    """Options of cytology pathomics; all sizes physical."""

    nuclei: NucleiConfig = Field(default_factory=NucleiConfig)
    chromatin_bin_od: float = Field(
        0.05, gt=0, le=1, description="fixed bin width (hematoxylin OD) of the chromatin GLCM"
    )
    chromatin_levels: int = Field(
        24, ge=2, le=256, description="GLCM grey levels; OD above levels x bin width share the top bin"
    )
    group_closing_um: float = Field(
        3.0, ge=0, le=50, description="gaps bridged when joining stained pixels into cell groups"
    )


def feature_names(cfg: PathomicsConfig | None = None) -> list[str]:
    """The fixed order of :func:`tile_features` and :func:`patient_features` values."""
    names = [f"{m}_{s}" for m in DISTRIBUTION_MEASURES for s, _ in STATS]
    return names + list(SCALAR_FEATURES)


@dataclass
class TileMeasurements:
    """Everything measured on one tile.

    Attributes:
        nuclei: one row per nucleus, :data:`NUCLEUS_COLUMNS` plus ``x_px``, ``y_px`` (centroid).
        sums: :data:`SUM_KEYS` areas in µm² (nuclear, clump, stained), for pooling tiles.
        segmentation: the nuclei found (kept for explanations; dropped by :meth:`light`).
    """

    nuclei: pd.DataFrame
    sums: dict[str, float]
    segmentation: NucleiSegmentation | None = field(default=None, repr=False)

    def light(self) -> TileMeasurements:
        """The same without the label images (what a cache or a patient pool needs)."""
        return TileMeasurements(self.nuclei, dict(self.sums), None)


def cell_groups(tile: np.ndarray, mpp: float, closing_um: float) -> np.ndarray:
    """``(H, W)`` int32 labels of the cell groups: stained pixels (mean OD and chroma against
    the glass colour, as the tiler defines them), closed by ``closing_um`` and hole-filled."""
    od, chroma = stain_features(tile, estimate_background(tile))
    stained = ((od > 0.06) & (chroma > 0.06)).astype(np.uint8)
    r = round(closing_um / mpp)
    if r >= 1:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        stained = cv2.morphologyEx(stained, cv2.MORPH_CLOSE, disc)
    stained = ndi.binary_fill_holes(stained)
    groups, _ = ndi.label(stained, structure=np.ones((3, 3), bool))
    return groups.astype(np.int32)


def measure_tile(tile_rgb: np.ndarray, mpp: float, cfg: PathomicsConfig | None = None) -> TileMeasurements:
    """Segment and measure the nuclei of one tile at its reading resolution ``mpp`` (µm/px).

    Raises:
        ConfigError: not an ``(H, W, 3)`` uint8 tile, or ``mpp`` not positive.
    """
    check_tile(tile_rgb, mpp)
    cfg = cfg or PathomicsConfig()
    seg = segment_nuclei(tile_rgb, mpp, cfg.nuclei)
    groups = cell_groups(tile_rgb, mpp, cfg.group_closing_um)
    px = mpp * mpp
    stained = (groups > 0) | seg.mask
    sums = {
        "nuclear_um2": float(seg.mask.sum()) * px,
        "clump_um2": float((seg.clumps > 0).sum()) * px,
        "stained_um2": float(stained.sum()) * px,
    }
    return TileMeasurements(measure_nuclei(seg, groups, cfg), sums, seg)


def measure_nuclei(seg: NucleiSegmentation, groups: np.ndarray, cfg: PathomicsConfig) -> pd.DataFrame:
    """The per-nucleus table of one segmentation (see :data:`NUCLEUS_COLUMNS`)."""
    n, mpp = seg.count, seg.mpp
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in (*NUCLEUS_COLUMNS, "x_px", "y_px")})
    labels = seg.labels
    shp = label_shapes(labels, n)
    od_mean, od_sd = label_intensity(labels, seg.hematoxylin, n)
    levels = np.minimum((seg.hematoxylin / cfg.chromatin_bin_od).astype(np.int64), cfg.chromatin_levels - 1)
    contrast, homogeneity = glcm_contrast_homogeneity(label_glcm(labels, levels, cfg.chromatin_levels, n))
    centres = np.stack([shp.centroid_x, shp.centroid_y], axis=1)
    if n > 1:
        dist, _ = cKDTree(centres).query(centres, k=2)
        nn = dist[:, 1] * mpp
    else:
        nn = np.full(1, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        elongation = shp.major_axis / shp.minor_axis
        circularity = np.minimum(4.0 * np.pi * shp.area / shp.perimeter**2, 1.0)
    return pd.DataFrame(
        {
            "nucleus_area_um2": shp.area * mpp * mpp,
            "nucleus_perimeter_um": shp.perimeter * mpp,
            "nucleus_major_axis_um": shp.major_axis * mpp,
            "nucleus_minor_axis_um": shp.minor_axis * mpp,
            "nucleus_eccentricity": shp.eccentricity,
            "nucleus_elongation": np.where(np.isfinite(elongation), elongation, np.nan),
            "nucleus_solidity": shp.solidity,
            "nucleus_circularity": circularity,
            "chromatin_od_mean": od_mean,
            "chromatin_od_sd": od_sd,
            "chromatin_glcm_contrast": contrast,
            "chromatin_glcm_homogeneity": homogeneity,
            "nn_distance_um": nn,
            "nn_distance_diameters": nn / (2.0 * np.sqrt(shp.area * mpp * mpp / np.pi)),
            "touching": _touching(labels, seg.clumps, n).astype(float),
            "group_size": _group_sizes(groups, centres).astype(float),
            "x_px": shp.centroid_x,
            "y_px": shp.centroid_y,
        }
    )


def _touching(labels: np.ndarray, clumps: np.ndarray, n: int) -> np.ndarray:
    """bool per nucleus: an 8-neighbour pixel belongs to another nucleus or to a clump."""
    other = np.where(clumps > 0, -1, 0).astype(np.int64)
    lab = labels.astype(np.int64)
    both = np.where(lab > 0, lab, other)
    out = np.zeros(n + 1, bool)
    h, w = both.shape
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # with their opposites: all 8 neighbours
        x0, x1 = max(0, -dx), w - max(0, dx)
        a = both[0 : h - dy, x0:x1]
        b = both[dy:h, x0 + dx : x1 + dx]
        meet = (a != 0) & (b != 0) & (a != b)
        out[a[meet & (a > 0)]] = True
        out[b[meet & (b > 0)]] = True
    return out[1:]


def _group_sizes(groups: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nuclei per cell group, for each nucleus (1 for a nucleus outside every group)."""
    h, w = groups.shape
    xi = np.clip(np.round(centres[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(centres[:, 1]).astype(int), 0, h - 1)
    g = groups[yi, xi]
    sizes = np.bincount(g, minlength=int(groups.max()) + 1)
    return np.where(g > 0, sizes[g], 1)


def aggregate(nuclei: pd.DataFrame, sums: dict[str, float], n_tiles: int) -> dict[str, float]:
    """Features (in :func:`feature_names` order) from a per-nucleus table and pooled sums."""
    out: dict[str, float] = {}
    n = len(nuclei)
    for m in DISTRIBUTION_MEASURES:
        v = nuclei[m].to_numpy(float) if n else np.zeros(0)
        v = v[np.isfinite(v)]
        for s, q in STATS:
            if len(v) == 0:
                out[f"{m}_{s}"] = float("nan")
            elif s == "mean":
                out[f"{m}_{s}"] = float(v.mean())
            elif s == "sd":
                out[f"{m}_{s}"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            else:
                out[f"{m}_{s}"] = float(np.quantile(v, q))
    out["nuclei_per_tile"] = n / max(n_tiles, 1)
    out["touching_fraction"] = float(nuclei["touching"].mean()) if n else float("nan")
    nuclear = sums.get("nuclear_um2", 0.0)
    stained = sums.get("stained_um2", 0.0)  # no sums (bare tables): both fractions NaN
    out["clump_area_fraction"] = sums.get("clump_um2", 0.0) / nuclear if nuclear > 0 else float("nan")
    out["nuclear_area_fraction"] = nuclear / stained if stained > 0 else float("nan")
    return out


def tile_features(measured: TileMeasurements) -> dict[str, float]:
    """One tile's features, in :func:`feature_names` order."""
    return aggregate(measured.nuclei, measured.sums, 1)


def patient_features(tiles: Sequence[TileMeasurements | pd.DataFrame]) -> dict[str, float]:
    """One patient's features from all its tiles: nuclei pooled over tiles (so a tile with
    many nuclei weighs more than a sparse one), areas summed; :func:`feature_names` order.

    ``tiles`` are :class:`TileMeasurements` or bare per-nucleus tables (``nuclei`` frames,
    e.g. read back from a cache); without the tiles' area sums, ``clump_area_fraction`` and
    ``nuclear_area_fraction`` are NaN.
    """
    measured = [t if isinstance(t, TileMeasurements) else TileMeasurements(t, {}) for t in tiles]
    tables = [t.nuclei for t in measured if len(t.nuclei)]
    nuclei = pd.concat(tables, ignore_index=True) if tables else _empty()
    sums = {k: float(sum(t.sums.get(k, 0.0) for t in measured)) for k in SUM_KEYS}
    if any(not t.sums for t in measured):
        sums = {}
    return aggregate(nuclei, sums, len(measured))


def features_vector(values: dict[str, float], cfg: PathomicsConfig | None = None) -> np.ndarray:
    """``values`` as a float array in :func:`feature_names` order."""
    return np.array([values[k] for k in feature_names(cfg)], float)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in (*NUCLEUS_COLUMNS, "x_px", "y_px")})
