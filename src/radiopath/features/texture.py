"""IBSI texture matrices and their features for a 2-D region of interest.

Definitions follow the Image Biomarker Standardisation Initiative reference manual
(Zwanenburg et al., "The Image Biomarker Standardization Initiative", Radiology 2020;
arXiv:1612.07003), in 2-D, distance 1, 8-connected, with the feature names of the manual in
snake case. Matrices are computed per direction and their features averaged over the four
directions (IBSI's "2D, averaged"; PyRadiomics' default with ``force2D``), except the
direction-free GLSZM, NGLDM and NGTDM. Every function takes ``levels``: the discretised
image as integers ``>= 1`` inside the region and ``0`` outside (see
:func:`radiopath.features.radiomics.discretise`).

* GLCM — Haralick, Shanmugam & Dinstein, IEEE SMC 1973 (symmetric).
* GLRLM — Galloway, Comput. Graph. Image Process. 1975.
* GLSZM — Thibault et al., "Texture indexes and gray level size zone matrix", 2009.
* NGLDM (PyRadiomics' GLDM) — Sun & Wee, Comput. Vision Graph. Image Process. 1983
  (coarseness 0, distance 1; "dependence" counts the centre pixel too).
* NGTDM — Amadasun & King, IEEE SMC 1989.

Every count is one ``np.bincount`` over the region's pixels — no Python loop over pixels,
runs or zones — so the five families cost a few milliseconds on a 300 x 300 ultrasound crop.
Values are pinned to PyRadiomics 3.1 in ``tests/features/test_texture.py``; where the IBSI
and PyRadiomics differ (PyRadiomics drops ``sum_variance`` of the GLCM and the normalised
grey level non-uniformity of the NGLDM) we keep the IBSI feature.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_zones

#: The four 2-D directions (dy, dx) at distance 1: 0°, 45°, 90°, 135°.
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (-1, 1), (-1, 0), (-1, -1))
_EPS = np.spacing(1.0)

GLCM_FEATURES: tuple[str, ...] = (
    "joint_maximum",
    "joint_average",
    "joint_variance",
    "joint_entropy",
    "difference_average",
    "difference_variance",
    "difference_entropy",
    "sum_average",
    "sum_variance",
    "sum_entropy",
    "angular_second_moment",
    "contrast",
    "dissimilarity",
    "inverse_difference",
    "normalised_inverse_difference",
    "inverse_difference_moment",
    "normalised_inverse_difference_moment",
    "inverse_variance",
    "correlation",
    "autocorrelation",
    "cluster_tendency",
    "cluster_shade",
    "cluster_prominence",
    "information_correlation_1",
    "information_correlation_2",
)


GLRLM_FEATURES: tuple[str, ...] = (
    "short_runs_emphasis",
    "long_runs_emphasis",
    "low_grey_level_run_emphasis",
    "high_grey_level_run_emphasis",
    "short_run_low_grey_level_emphasis",
    "short_run_high_grey_level_emphasis",
    "long_run_low_grey_level_emphasis",
    "long_run_high_grey_level_emphasis",
    "grey_level_non_uniformity",
    "normalised_grey_level_non_uniformity",
    "run_length_non_uniformity",
    "normalised_run_length_non_uniformity",
    "run_percentage",
    "grey_level_variance",
    "run_length_variance",
    "run_entropy",
)
GLSZM_FEATURES: tuple[str, ...] = (
    "small_zone_emphasis",
    "large_zone_emphasis",
    "low_grey_level_zone_emphasis",
    "high_grey_level_zone_emphasis",
    "small_zone_low_grey_level_emphasis",
    "small_zone_high_grey_level_emphasis",
    "large_zone_low_grey_level_emphasis",
    "large_zone_high_grey_level_emphasis",
    "grey_level_non_uniformity",
    "normalised_grey_level_non_uniformity",
    "zone_size_non_uniformity",
    "normalised_zone_size_non_uniformity",
    "zone_percentage",
    "grey_level_variance",
    "zone_size_variance",
    "zone_size_entropy",
)
#: IBSI NGLDM without "dependence count percentage" (always 1 when every pixel is counted).
NGLDM_FEATURES: tuple[str, ...] = (
    "low_dependence_emphasis",
    "high_dependence_emphasis",
    "low_grey_level_count_emphasis",
    "high_grey_level_count_emphasis",
    "low_dependence_low_grey_level_emphasis",
    "low_dependence_high_grey_level_emphasis",
    "high_dependence_low_grey_level_emphasis",
    "high_dependence_high_grey_level_emphasis",
    "grey_level_non_uniformity",
    "normalised_grey_level_non_uniformity",
    "dependence_count_non_uniformity",
    "normalised_dependence_count_non_uniformity",
    "grey_level_variance",
    "dependence_count_variance",
    "dependence_count_entropy",
    "dependence_count_energy",
)
NGTDM_FEATURES: tuple[str, ...] = ("coarseness", "contrast", "busyness", "complexity", "strength")


def _pairs(levels: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels of every pixel pair ``(p, p + (dy, dx))`` with both pixels in the region."""
    h, w = levels.shape
    y0, y1 = max(0, -dy), h - max(0, dy)
    x0, x1 = max(0, -dx), w - max(0, dx)
    a = levels[y0:y1, x0:x1]
    b = levels[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    both = (a > 0) & (b > 0)
    return a[both], b[both]


# --- GLCM ----------------------------------------------------------------------------------


def glcm_matrices(levels: np.ndarray, ng: int | None = None) -> np.ndarray:
    """``(4, ng, ng)`` symmetric co-occurrence counts, one matrix per direction."""
    ng = int(levels.max()) if ng is None else ng
    out = np.zeros((len(DIRECTIONS), ng, ng))
    for d, (dy, dx) in enumerate(DIRECTIONS):
        a, b = _pairs(levels, dy, dx)
        m = np.bincount((a - 1) * ng + (b - 1), minlength=ng * ng).reshape(ng, ng).astype(float)
        out[d] = m + m.T
    return out


def glcm_features(levels: np.ndarray) -> dict[str, float]:
    """The 25 IBSI GLCM features, averaged over the directions that have pairs."""
    ng = int(levels.max())
    if ng == 0:
        return dict.fromkeys(GLCM_FEATURES, float("nan"))
    per_direction = [_glcm_one(m, ng) for m in glcm_matrices(levels, ng) if m.sum() > 0]
    if not per_direction:
        return dict.fromkeys(GLCM_FEATURES, float("nan"))
    return {k: float(np.mean([f[k] for f in per_direction])) for k in GLCM_FEATURES}


def _entropy(p: np.ndarray) -> float:
    return float(-(p * np.log2(p + _EPS)).sum())


def _glcm_one(counts: np.ndarray, ng: int) -> dict[str, float]:
    p = counts / counts.sum()
    g = np.arange(1, ng + 1, dtype=float)
    i, j = g[:, None], g[None, :]
    px = p.sum(axis=1)
    py = p.sum(axis=0)
    mu_x, mu_y = float(px @ g), float(py @ g)
    sd_x = np.sqrt(float(px @ (g - mu_x) ** 2))
    sd_y = np.sqrt(float(py @ (g - mu_y) ** 2))
    diff = np.abs(i - j).astype(int)
    p_diff = np.bincount(diff.ravel(), weights=p.ravel(), minlength=ng)  # k = 0..ng-1
    total = (i + j).astype(int)
    p_sum = np.bincount(total.ravel(), weights=p.ravel(), minlength=2 * ng + 1)  # k = 0..2ng
    k_diff = np.arange(ng, dtype=float)
    k_sum = np.arange(2 * ng + 1, dtype=float)
    diff_avg = float(p_diff @ k_diff)
    sum_avg = float(p_sum @ k_sum)
    hx, hy = _entropy(px), _entropy(py)
    hxy = _entropy(p)
    pxy = px[:, None] * py[None, :]
    hxy1 = float(-(p * np.log2(pxy + _EPS)).sum())
    hxy2 = float(-(pxy * np.log2(pxy + _EPS)).sum())
    centred = i + j - mu_x - mu_y
    off = diff > 0
    denom = max(hx, hy)
    return {
        "joint_maximum": float(p.max()),
        "joint_average": mu_x,
        "joint_variance": float((p * (i - mu_x) ** 2).sum()),
        "joint_entropy": hxy,
        "difference_average": diff_avg,
        "difference_variance": float(p_diff @ (k_diff - diff_avg) ** 2),
        "difference_entropy": _entropy(p_diff),
        "sum_average": sum_avg,
        "sum_variance": float(p_sum @ (k_sum - sum_avg) ** 2),
        "sum_entropy": _entropy(p_sum),
        "angular_second_moment": float((p * p).sum()),
        "contrast": float((p * (i - j) ** 2).sum()),
        "dissimilarity": float((p * np.abs(i - j)).sum()),
        "inverse_difference": float((p / (1.0 + np.abs(i - j))).sum()),
        "normalised_inverse_difference": float((p / (1.0 + np.abs(i - j) / ng)).sum()),
        "inverse_difference_moment": float((p / (1.0 + (i - j) ** 2)).sum()),
        "normalised_inverse_difference_moment": float((p / (1.0 + (i - j) ** 2 / ng**2)).sum()),
        "inverse_variance": float((p[off] / ((i - j) ** 2)[off]).sum()),
        "correlation": float(((p * i * j).sum() - mu_x * mu_y) / (sd_x * sd_y)) if sd_x * sd_y > 0 else 1.0,
        "autocorrelation": float((p * i * j).sum()),
        "cluster_tendency": float((p * centred**2).sum()),
        "cluster_shade": float((p * centred**3).sum()),
        "cluster_prominence": float((p * centred**4).sum()),
        "information_correlation_1": (hxy - hxy1) / denom if denom > 0 else 0.0,
        "information_correlation_2": float(np.sqrt(max(1.0 - np.exp(-2.0 * (hxy2 - hxy)), 0.0))),
    }


# --- run length, size zone and dependence matrices share their features --------------------


def _emphases(m: np.ndarray, sizes: np.ndarray, n_pixels: int, names: tuple[str, ...]) -> dict[str, float]:
    """The 16 run-length-style features of a ``(ng, n_sizes)`` count matrix whose columns are
    the run lengths / zone sizes / dependence counts ``sizes`` (a 15th, the percentage, is
    ``total / n_pixels``)."""
    total = m.sum()
    if total == 0:
        return dict.fromkeys(names, float("nan"))
    g = np.arange(1, m.shape[0] + 1, dtype=float)[:, None]
    s = sizes.astype(float)[None, :]
    p = m / total
    by_grey = m.sum(axis=1)
    by_size = m.sum(axis=0)
    mu_g = float((p * g).sum())
    mu_s = float((p * s).sum())
    values = [
        (p / s**2).sum(),
        (p * s**2).sum(),
        (p / g**2).sum(),
        (p * g**2).sum(),
        (p / (g**2 * s**2)).sum(),
        (p * g**2 / s**2).sum(),
        (p * s**2 / g**2).sum(),
        (p * g**2 * s**2).sum(),
        (by_grey**2).sum() / total,
        (by_grey**2).sum() / total**2,
        (by_size**2).sum() / total,
        (by_size**2).sum() / total**2,
        total / n_pixels,
        (p * (g - mu_g) ** 2).sum(),
        (p * (s - mu_s) ** 2).sum(),
        _entropy(p),
    ]
    return {k: float(v) for k, v in zip(names, values, strict=True)}


def glrlm_matrix(
    levels: np.ndarray, dy: int, dx: int, ng: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ng, n_lengths)`` run counts along one direction, and the run lengths of its columns."""
    ng = int(levels.max()) if ng is None else ng
    if dy < 0 or (dy == 0 and dx < 0):  # walk every line top-down (left-right): runs are symmetric
        dy, dx = -dy, -dx
    ys, xs = np.nonzero(levels)
    g = levels[ys, xs]
    py, px = ys - dy, xs - dx  # the previous pixel along the line
    h, w = levels.shape
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    prev = np.zeros_like(g)
    prev[inside] = levels[py[inside], px[inside]]
    start = prev != g  # the previous pixel along the line is outside the region or another level
    if dy == 0:  # along rows
        order = np.lexsort((xs, ys))
    elif dx == 0:  # along columns
        order = np.lexsort((ys, xs))
    else:  # diagonals: x - y (or x + y) constant, ordered by y
        order = np.lexsort((ys, xs - ys if dx == dy else xs + ys))
    run_id = np.cumsum(start[order]) - 1
    lengths = np.bincount(run_id)
    run_level = g[order][start[order]]
    max_len = int(lengths.max())
    m = np.bincount((run_level - 1) * max_len + (lengths - 1), minlength=ng * max_len)
    return m.reshape(ng, max_len).astype(float), np.arange(1, max_len + 1)


def glrlm_features(levels: np.ndarray) -> dict[str, float]:
    """The 16 IBSI GLRLM features, averaged over the four directions."""
    n = int((levels > 0).sum())
    if n == 0:
        return dict.fromkeys(GLRLM_FEATURES, float("nan"))
    ng = int(levels.max())
    per = [_emphases(*glrlm_matrix(levels, dy, dx, ng), n, GLRLM_FEATURES) for dy, dx in DIRECTIONS]
    return {k: float(np.mean([f[k] for f in per])) for k in GLRLM_FEATURES}


def glszm_features(levels: np.ndarray) -> dict[str, float]:
    """The 16 IBSI GLSZM features: zones are 8-connected pixels of one level."""
    n = int((levels > 0).sum())
    if n == 0:
        return dict.fromkeys(GLSZM_FEATURES, float("nan"))
    ng = int(levels.max())
    zones = connected_zones(levels, background=0, connectivity=2)
    zone_ids = zones[zones > 0]
    size = np.bincount(zone_ids)[1:]
    first = np.zeros(len(size) + 1, np.int64)
    first[zone_ids] = levels[zones > 0]
    zone_level = first[1:]
    present = size > 0
    size, zone_level = size[present], zone_level[present]
    sizes, col = np.unique(size, return_inverse=True)
    m = np.bincount((zone_level - 1) * len(sizes) + col, minlength=ng * len(sizes)).reshape(ng, len(sizes))
    return _emphases(m.astype(float), sizes, n, GLSZM_FEATURES)


_NEIGHBOURS_8 = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _neighbour_sums(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per region pixel: count of region 8-neighbours, their level sum, and same-level count."""
    h, w = levels.shape
    pad = np.zeros((h + 2, w + 2), levels.dtype)
    pad[1:-1, 1:-1] = levels
    count = np.zeros((h, w), np.int64)
    total = np.zeros((h, w), np.int64)
    same = np.zeros((h, w), np.int64)
    for dy, dx in _NEIGHBOURS_8:
        nb = pad[1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx]
        count += nb > 0
        total += nb
        same += (nb == levels) & (nb > 0)
    inside = levels > 0
    return count[inside], total[inside], same[inside]


def ngldm_features(levels: np.ndarray) -> dict[str, float]:
    """The IBSI NGLDM features (coarseness 0, distance 1; see :data:`NGLDM_FEATURES`)."""
    n = int((levels > 0).sum())
    if n == 0:
        return dict.fromkeys(NGLDM_FEATURES, float("nan"))
    ng = int(levels.max())
    _, _, same = _neighbour_sums(levels)
    g = levels[levels > 0]
    m = np.bincount((g - 1) * 9 + same, minlength=ng * 9).reshape(ng, 9).astype(float)  # k = same + 1
    used = m.sum(axis=0) > 0
    m, sizes = m[:, used], np.arange(1, 10)[used]
    names = (*NGLDM_FEATURES[:12], "dependence_count_percentage", *NGLDM_FEATURES[12:15])
    out = _emphases(m, sizes, n, names)
    out["dependence_count_energy"] = float(((m / m.sum()) ** 2).sum())
    return {k: out[k] for k in NGLDM_FEATURES}


def ngtdm_features(levels: np.ndarray) -> dict[str, float]:
    """The 5 IBSI NGTDM features; pixels without a region neighbour are left out."""
    if not (levels > 0).any():
        return dict.fromkeys(NGTDM_FEATURES, float("nan"))
    ng = int(levels.max())
    count, total, _ = _neighbour_sums(levels)
    g = levels[levels > 0]
    valid = count > 0
    g, mean_nb = g[valid], total[valid] / np.maximum(count[valid], 1)
    n_valid = len(g)
    if n_valid == 0:
        return dict.fromkeys(NGTDM_FEATURES, float("nan"))
    n_i = np.bincount(g, minlength=ng + 1)[1:].astype(float)
    s_i = np.bincount(g, weights=np.abs(g - mean_nb), minlength=ng + 1)[1:]
    p_i = n_i / n_valid
    lv = np.arange(1, ng + 1, dtype=float)
    keep = p_i > 0
    p, s, lv = p_i[keep], s_i[keep], lv[keep]
    ngp = len(p)
    ps = float(p @ s)
    di = lv[:, None] - lv[None, :]
    pp = p[:, None] * p[None, :]
    coarseness = 1.0 / ps if ps > 0 else 1e6
    contrast = float((pp * di**2).sum()) / (ngp * (ngp - 1)) * s.sum() / n_valid if ngp > 1 else 0.0
    spread = np.abs(lv[:, None] * p[:, None] - lv[None, :] * p[None, :]).sum()
    busyness = ps / spread if spread > 0 else 0.0
    complexity = float((np.abs(di) * ((p * s)[:, None] + (p * s)[None, :]) / (p[:, None] + p[None, :])).sum())
    complexity /= n_valid
    strength = float(((p[:, None] + p[None, :]) * di**2).sum() / s.sum()) if s.sum() > 0 else 0.0
    return {
        "coarseness": float(coarseness),
        "contrast": float(contrast),
        "busyness": float(busyness),
        "complexity": complexity,
        "strength": strength,
    }
