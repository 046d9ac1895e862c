"""Grey levels that mean the same thing on every scanner.

Each machine has its own gain, dynamic range and display map, so the same tissue is a
different grey at each hospital. Three steps, each optional:

1. **Grey conversion that survives colour Doppler.** Luma (ITU-R BT.601) of the RGB image,
   with coloured pixels (Doppler flow, coloured overlays) found by their chroma and, by
   default, inpainted from the grey image around them (:mod:`.marks`): a colour-coded
   velocity is not an echo, and its luma would show up as bright blobs that no B-mode image
   has.
2. **Per-image percentile normalisation.** The ``low``/``high`` percentiles of the scan area
   map to 0 and 255 (a robust min-max that one saturated caliper cannot move).
3. **Per-center histogram standardisation** (optional), after L. G. Nyúl and J. K. Udupa,
   "On standardizing the MR image intensity scale", Magn. Reson. Med. 42(6), 1999, and
   Nyúl, Udupa and Zhang, IEEE TMI 19(2), 2000: the mean landmark percentiles of each
   development center are mapped piecewise-linearly onto a reference scale, the mean over
   development centers. Fitted on development data only (the caller passes development
   images), so nothing about external hospitals leaks into the model. A center not seen
   in fitting is mapped with the image's own landmarks instead and flagged
   ``center_unseen``. Written here (a few lines of ``np.interp``): the MRI package
   ``intensity-normalization`` maps every image by its own landmarks, while a per-center
   map keeps the differences between a center's images (brighter or darker nodules: the
   signal) and removes only the scanner's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from radiopath.errors import ConfigError


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB → ``(H, W)`` uint8 luma (BT.601, as OpenCV computes it)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def chroma(image: np.ndarray) -> np.ndarray:
    """max − min of the RGB channels per pixel (0 for any grey)."""
    rgb = image.astype(np.int16)
    return (rgb.max(axis=2) - rgb.min(axis=2)).astype(np.uint8)


def equalize(gray: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Histogram equalisation over ``gray[valid]`` (the scan area): each grey level becomes its
    rank among the scan's pixels, scaled to 0..255.

    Any monotone display curve — gain, gamma, dynamic range — maps to the same output, so
    scanners that differ only in these look alike, while the order of echogenicities within
    the scan (a nodule darker than its parenchyma) is kept.
    """
    values = gray[valid] if valid is not None and valid.any() else gray.ravel()
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist)
    cdf = (cdf - hist / 2.0) / max(cdf[-1], 1.0)  # mid-rank of each level
    lut = np.clip(np.round(cdf * 255.0), 0, 255).astype(np.uint8)
    return lut[gray]


def percentile_normalise(
    gray: np.ndarray, valid: np.ndarray | None, low: float, high: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map the ``low``/``high`` percentiles of ``gray[valid]`` to 0/255 (clipped).

    Returns the normalised uint8 image and the two grey levels that were mapped. A flat
    image (both percentiles equal) is returned unchanged.
    """
    values = gray[valid] if valid is not None and valid.any() else gray.ravel()
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi - lo < 1.0:
        return gray.copy(), (lo, hi)
    scaled = (gray.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8), (lo, hi)


def landmarks_of(gray: np.ndarray, valid: np.ndarray | None, percentiles: Iterable[float]) -> np.ndarray:
    """The grey levels at ``percentiles`` of ``gray[valid]`` (strictly increasing)."""
    values = gray[valid] if valid is not None and valid.any() else gray.ravel()
    return _increasing(np.percentile(values, list(percentiles)))


def _increasing(lm: np.ndarray) -> np.ndarray:
    """Make landmarks strictly increasing (flat histograms repeat values), keeping their order."""
    lm = np.maximum.accumulate(np.asarray(lm, np.float64))
    return lm + np.arange(len(lm)) * 1e-3


def map_landmarks(gray: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Piecewise-linear map of grey levels taking ``source`` landmarks onto ``target``.

    Beyond the outer landmarks the end segments are extended (as Nyúl & Udupa do), then
    the result is clipped to 0..255.
    """
    lut_in = np.arange(256, dtype=np.float64)
    out = np.interp(lut_in, source, target)
    lo_slope = (target[1] - target[0]) / max(source[1] - source[0], 1e-6)
    hi_slope = (target[-1] - target[-2]) / max(source[-1] - source[-2], 1e-6)
    below, above = lut_in < source[0], lut_in > source[-1]
    out[below] = target[0] + (lut_in[below] - source[0]) * lo_slope
    out[above] = target[-1] + (lut_in[above] - source[-1]) * hi_slope
    lut = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return lut[gray]


class HistogramStandardizer:
    """Per-center piecewise-linear histogram standardisation (Nyúl & Udupa; module docstring).

    Use :meth:`fit` with development images only, then :meth:`apply`.
    """

    def __init__(self, percentiles: Iterable[float]) -> None:
        self.percentiles = tuple(float(p) for p in percentiles)
        self.reference: np.ndarray | None = None
        self.centers: dict[str, np.ndarray] = {}

    @property
    def fitted(self) -> bool:
        return self.reference is not None

    def fit(self, landmarks_by_center: Mapping[str, Iterable[np.ndarray]]) -> HistogramStandardizer:
        """Learn each center's mean landmarks and the reference scale (mean over centers).

        Args:
            landmarks_by_center: per development center, the landmark vectors of its images
                (:func:`landmarks_of`).

        Raises:
            ConfigError: no center, or a center without images.
        """
        centers: dict[str, np.ndarray] = {}
        for name, vectors in landmarks_by_center.items():
            rows = [np.asarray(v, np.float64) for v in vectors]
            if not rows:
                raise ConfigError(
                    f"center {name!r} has no images to fit the histogram standardisation on; "
                    "pass at least one development image per center"
                )
            centers[str(name)] = _increasing(np.mean(rows, axis=0))
        if not centers:
            raise ConfigError("histogram standardisation needs development images from at least one center")
        self.centers = centers
        self.reference = _increasing(np.mean(list(centers.values()), axis=0))
        return self

    def apply(
        self, gray: np.ndarray, center: str | None, valid: np.ndarray | None
    ) -> tuple[np.ndarray, bool]:
        """Standardise ``gray``; returns the image and whether ``center`` was seen in fitting."""
        if self.reference is None:
            raise ConfigError(
                "histogram standardisation is switched on but was never fitted; call "
                "UltrasoundTransform.fit(images_by_center) on development images first"
            )
        known = center is not None and str(center) in self.centers
        source = self.centers[str(center)] if known else landmarks_of(gray, valid, self.percentiles)
        return map_landmarks(gray, source, self.reference), known

    def state(self) -> dict[str, Any]:
        """JSON-ready state (lists of floats)."""
        return {
            "percentiles": list(self.percentiles),
            "reference": None if self.reference is None else self.reference.tolist(),
            "centers": {k: v.tolist() for k, v in self.centers.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> HistogramStandardizer:
        obj = cls(state["percentiles"])
        ref = state.get("reference")
        obj.reference = None if ref is None else np.asarray(ref, np.float64)
        obj.centers = {k: np.asarray(v, np.float64) for k, v in (state.get("centers") or {}).items()}
        n = len(obj.percentiles)
        bad = [k for k, v in obj.centers.items() if len(v) != n]
        if (obj.reference is not None and len(obj.reference) != n) or bad:
            raise ConfigError("saved histogram standardisation does not match its percentiles; re-fit it")
        return obj
