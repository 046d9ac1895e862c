"""IBSI intensity-based statistics and intensity-histogram features of a region.

Definitions of the Image Biomarker Standardisation Initiative reference manual (Zwanenburg et
al., Radiology 2020), sections "intensity-based statistical features" (on the region's
intensities as they are) and "intensity histogram features" (on the discretised levels), with
the manual's names in snake case. IBSI's kurtosis is the *excess* kurtosis (PyRadiomics
reports it without the -3); percentiles interpolate linearly (``numpy.percentile``), as
PyRadiomics does. Pinned to PyRadiomics 3.1 in ``tests/features/test_texture.py``.
"""

from __future__ import annotations

import numpy as np

#: Intensity-based statistics, in this order.
STATISTICS: tuple[str, ...] = (
    "mean",
    "variance",
    "skewness",
    "kurtosis",
    "median",
    "minimum",
    "percentile_10",
    "percentile_90",
    "maximum",
    "interquartile_range",
    "range",
    "mean_absolute_deviation",
    "robust_mean_absolute_deviation",
    "median_absolute_deviation",
    "coefficient_of_variation",
    "quartile_coefficient_of_dispersion",
    "energy",
    "root_mean_square",
)
#: Intensity-histogram features on the discretised levels, in this order.
HISTOGRAM: tuple[str, ...] = ("histogram_entropy", "histogram_uniformity")
FIRSTORDER_FEATURES: tuple[str, ...] = STATISTICS + HISTOGRAM


def intensity_statistics(values: np.ndarray) -> dict[str, float]:
    """The 18 IBSI intensity-based statistics of the region's intensities ``values`` (1-D)."""
    x = np.asarray(values, float).ravel()
    if x.size == 0:
        return dict.fromkeys(STATISTICS, float("nan"))
    mean = float(x.mean())
    dev = x - mean
    var = float((dev**2).mean())
    sd = np.sqrt(var)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    q = p75 + p25
    return {
        "mean": mean,
        "variance": var,
        "skewness": float((dev**3).mean() / sd**3) if sd > 0 else 0.0,
        "kurtosis": float((dev**4).mean() / var**2 - 3.0) if var > 0 else 0.0,
        "median": float(p50),
        "minimum": float(x.min()),
        "percentile_10": float(p10),
        "percentile_90": float(p90),
        "maximum": float(x.max()),
        "interquartile_range": float(p75 - p25),
        "range": float(x.max() - x.min()),
        "mean_absolute_deviation": float(np.abs(dev).mean()),
        "robust_mean_absolute_deviation": float(np.abs(robust - robust.mean()).mean()),
        "median_absolute_deviation": float(np.abs(x - p50).mean()),
        "coefficient_of_variation": float(sd / mean) if mean != 0 else float("nan"),
        "quartile_coefficient_of_dispersion": float((p75 - p25) / q) if q != 0 else float("nan"),
        "energy": float((x**2).sum()),
        "root_mean_square": float(np.sqrt((x**2).mean())),
    }


def histogram_features(levels: np.ndarray) -> dict[str, float]:
    """Entropy (log2) and uniformity of the discretised levels of the region (1-D, >= 1)."""
    g = np.asarray(levels).ravel()
    if g.size == 0:
        return dict.fromkeys(HISTOGRAM, float("nan"))
    p = np.bincount(g.astype(np.int64))[1:] / g.size
    p = p[p > 0]
    return {"histogram_entropy": float(-(p * np.log2(p)).sum()), "histogram_uniformity": float((p * p).sum())}


def firstorder_features(values: np.ndarray, levels: np.ndarray) -> dict[str, float]:
    """:data:`FIRSTORDER_FEATURES` from the region's intensities and discretised levels."""
    return {**intensity_statistics(values), **histogram_features(levels)}
