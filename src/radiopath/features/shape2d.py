"""2-D shape of a region of interest: the IBSI morphology adapted to one plane, plus the
ultrasound shape signs of ACR TI-RADS.

The IBSI manual (Zwanenburg et al., Radiology 2020) defines morphology on a 3-D mesh; in 2-D
the mesh is the region's marching-squares contour (``skimage.measure.find_contours`` at 0.5
on the zero-padded mask), as PyRadiomics' ``shape2D`` does, whose names these follow:
``mesh_area`` and ``perimeter`` from the contour polygons, ``pixel_area``, ``sphericity``
(``2 sqrt(pi A) / P``: 1 for a disc), ``spherical_disproportion`` (its inverse),
``maximum_diameter`` (largest distance between contour vertices), ``major_axis_length`` /
``minor_axis_length`` (``4 sqrt`` of the eigenvalues of the pixel-coordinate covariance) and
``elongation`` (``sqrt(l_minor / l_major)``). Pinned to PyRadiomics 3.1.

Three more, not in the IBSI 2-D set, are what a radiologist scores (ACR TI-RADS, Tessler et
al., J. Am. Coll. Radiol. 2017): ``solidity`` (area over its convex hull: lobulated or
irregular margins lower it), ``convexity`` (convex-hull perimeter over perimeter) and
``taller_than_wide`` (extent along the image rows over extent along the columns: depth over
width in an ultrasound view whose rows go down into the patient; > 1 is suspicious).

Lengths are in pixels of the grid the region is given on, times ``spacing`` (mm per pixel)
when one is known.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import find_contours

SHAPE_FEATURES: tuple[str, ...] = (
    "mesh_area",
    "pixel_area",
    "perimeter",
    "perimeter_to_area_ratio",
    "sphericity",
    "spherical_disproportion",
    "maximum_diameter",
    "major_axis_length",
    "minor_axis_length",
    "elongation",
    "solidity",
    "convexity",
    "taller_than_wide",
)


def _polygon_area(c: np.ndarray) -> float:
    y, x = c[:, 0], c[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def shape_features(mask: np.ndarray, spacing: float = 1.0) -> dict[str, float]:
    """:data:`SHAPE_FEATURES` of a 2-D boolean region (lengths times ``spacing``)."""
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return dict.fromkeys(SHAPE_FEATURES, float("nan"))
    padded = np.pad(m, 1).astype(float)
    contours = find_contours(padded, 0.5)
    area = abs(sum(_polygon_area(c) for c in contours)) * spacing**2
    perimeter = sum(float(np.linalg.norm(np.diff(c, axis=0), axis=1).sum()) for c in contours) * spacing
    vertices = np.concatenate(contours).astype(np.float32)
    hull = cv2.convexHull(vertices[:, ::-1]).reshape(-1, 2).astype(float)
    diffs = hull[:, None, :] - hull[None, :, :]
    max_diameter = float(np.sqrt((diffs**2).sum(-1)).max()) * spacing
    hull_area = abs(cv2.contourArea(hull.astype(np.float32))) * spacing**2
    hull_perimeter = cv2.arcLength(hull.astype(np.float32), closed=True) * spacing
    ys, xs = np.nonzero(m)
    coords = np.stack([ys, xs], axis=1) * spacing
    coords = coords - coords.mean(axis=0)
    cov = coords.T @ coords / n
    minor, major = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    height = (ys.max() - ys.min() + 1) * spacing
    width = (xs.max() - xs.min() + 1) * spacing
    sphericity = 2.0 * np.sqrt(np.pi * area) / perimeter if perimeter > 0 else float("nan")
    return {
        "mesh_area": area,
        "pixel_area": n * spacing**2,
        "perimeter": perimeter,
        "perimeter_to_area_ratio": perimeter / area if area > 0 else float("nan"),
        "sphericity": float(sphericity),
        "spherical_disproportion": float(1.0 / sphericity) if sphericity > 0 else float("nan"),
        "maximum_diameter": max_diameter,
        "major_axis_length": float(4.0 * np.sqrt(major)),
        "minor_axis_length": float(4.0 * np.sqrt(minor)),
        "elongation": float(np.sqrt(minor / major)) if major > 0 else float("nan"),
        "solidity": float(min(area / hull_area, 1.0)) if hull_area > 0 else float("nan"),
        "convexity": float(min(hull_perimeter / perimeter, 1.0)) if perimeter > 0 else float("nan"),
        "taller_than_wide": float(height / width),
    }
