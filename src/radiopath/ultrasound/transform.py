"""The ultrasound transform: one screenshot in, one model-ready square out.

Training, prediction and the web page all call :class:`UltrasoundTransform`, and a saved
model carries its :meth:`~UltrasoundTransform.state_dict`, so a model always sees exactly
what it was trained on. Steps, in order (each documented in its module):

1. :mod:`.scan_area` — find the scan inside the vendor chrome (DICOM regions when present);
   everything outside it becomes black.
2. :mod:`.marks` — find calipers, dotted lines, text and colour (Doppler), and inpaint them
   in the grey image (switch: ``marks.enabled``).
3. :mod:`.intensity` — percentile normalisation over the scan area, then (optional) per-center
   histogram standardisation fitted on development data.
4. :mod:`.region` — a square around the nodule's mask or box with ``margin``, or the
   letterboxed scan area, resized to ``size``.

Failures that concern one image are outcomes, not exceptions: :meth:`process` returns a
:class:`ProcessedView` whose ``flags`` say what happened (``no_scan_area`` — the whole image
was used; ``dicom_regions_mismatch``; ``empty_mask``; ``center_unseen``; …), so a cohort run
reports the images instead of dying on the first. Only ``scan_area.on_failure="raise"``
turns a missing scan area into :class:`~.scan_area.ScanAreaError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiopath.errors import ConfigError
from radiopath.ultrasound.augment import augment as _augment
from radiopath.ultrasound.config import UltrasoundConfig
from radiopath.ultrasound.intensity import (
    HistogramStandardizer,
    equalize,
    landmarks_of,
    percentile_normalise,
    to_gray,
)
from radiopath.ultrasound.marks import Marks, find_marks, remove_marks
from radiopath.ultrasound.region import Box, Region, choose_region, crop_padded, resize_square
from radiopath.ultrasound.scan_area import ScanArea, ScanAreaError, find_scan_area, scan_area_of_file

#: Version of :meth:`UltrasoundTransform.state_dict`; bumped when its meaning changes.
STATE_VERSION = 1

ImageLike = np.ndarray | str | Path


@dataclass
class ProcessedView:
    """Everything the transform did to one view (for reports, previews and debugging).

    Attributes:
        image: the model-ready ``(size, size, 3)`` uint8 crop.
        scan: where the scan area was found (or that it was not).
        marks: the marks found and removed (None when removal is switched off).
        region: the square that was cropped and why.
        cleaned: the full-size grey image after mark removal and intensity steps.
        flags: everything noteworthy, from all steps.
    """

    image: np.ndarray
    scan: ScanArea
    marks: Marks | None
    region: Region
    cleaned: np.ndarray
    flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when no scan area was found (the whole image was used instead)."""
        return self.scan.found


class UltrasoundTransform:
    """Screenshot → model-ready crop (see the module docstring for the steps).

    Example::

        tf = UltrasoundTransform(UltrasoundConfig(margin=0.15, size=224))
        tf.fit({"Hospital A": dev_images_a, "Hospital B": dev_images_b})  # only if standardising
        crop = tf(image_rgb, box=(120, 80, 220, 170), center="Hospital A")
        train_crop = tf.augment(crop, rng)
    """

    def __init__(self, config: UltrasoundConfig | None = None) -> None:
        self.config = config or UltrasoundConfig()
        self.standardizer = HistogramStandardizer(self.config.intensity.landmarks)

    # -- the transform -------------------------------------------------------------------

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray | None = None,
        box: Box | None = None,
        center: str | None = None,
        source_path: str | Path | None = None,
    ) -> np.ndarray:
        """The model-ready ``(size, size, 3)`` uint8 crop of an ``(H, W, 3)`` uint8 RGB image.

        Args:
            image: the screenshot (:func:`radiopath.io.images.read_image` output).
            mask: nodule mask of the same size (non-zero inside); used before ``box``.
            box: nodule box ``x0, y0, x1, y1`` in image pixels.
            center: the hospital, for per-center standardisation.
            source_path: the file the image came from; DICOM ultrasound regions are read from it.
        """
        return self.process(image, mask=mask, box=box, center=center, source_path=source_path).image

    def process(
        self,
        image: np.ndarray,
        mask: np.ndarray | None = None,
        box: Box | None = None,
        center: str | None = None,
        source_path: str | Path | None = None,
    ) -> ProcessedView:
        """Like calling the transform, but returns every intermediate result and flag."""
        cfg = self.config
        gray, scan, marks, flags = self._clean(image, source_path)
        gray, std_flags = self._intensity(gray, scan, center)
        flags += std_flags
        region = choose_region(
            gray.shape,
            scan.box,
            cfg.margin,
            mask=mask if cfg.region == "nodule" else None,
            box=box if cfg.region == "nodule" else None,
            min_side=min(32, cfg.size),
        )
        flags += list(region.flags)
        crop = resize_square(crop_padded(gray, region.crop, scan.mask), cfg.size)
        if cfg.intensity.equalize == "crop":  # on the model's pixels, after area-averaging
            inside = resize_square(crop_padded(scan.mask, region.crop).astype(np.uint8), cfg.size) > 0
            crop = np.where(inside, equalize(crop, inside), 0).astype(np.uint8)
        out = np.repeat(crop[:, :, None], 3, axis=2)
        return ProcessedView(out, scan, marks, region, gray, flags)

    def augment(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random training augmentation of a crop (same shape and dtype); see :mod:`.augment`."""
        return _augment(crop, rng, self.config.augment)

    # -- steps -----------------------------------------------------------------------------

    def _clean(
        self, image: np.ndarray, source_path: str | Path | None
    ) -> tuple[np.ndarray, ScanArea, Marks | None, list[str]]:
        """Scan area, grey conversion and mark removal; chrome outside the scan set to 0."""
        _check_image(image, source_path)
        cfg = self.config
        if source_path is not None:
            scan = scan_area_of_file(image, source_path, cfg.scan_area)
        else:
            scan = find_scan_area(image, cfg.scan_area)
        flags = list(scan.flags)
        if not scan.found:
            if cfg.scan_area.on_failure == "raise":
                where = f"{source_path}: " if source_path is not None else ""
                raise ScanAreaError(
                    f"{where}no ultrasound scan area found ({scan.reason}); check the image, or set "
                    "scan_area.on_failure='whole_image' to use the whole image and flag it"
                )
            flags.append("no_scan_area")
        gray = to_gray(image)
        marks = None
        if cfg.marks.enabled:
            marks = find_marks(image, cfg.marks, scan.mask)
            gray = remove_marks(gray, marks.mask, cfg.marks)
            if marks.found:
                flags.append("marks_removed")
            if marks.colour.sum() > 0.01 * scan.mask.sum():
                flags.append("colour_doppler")
        gray[~scan.mask] = 0
        return gray, scan, marks, flags

    def _intensity(
        self, gray: np.ndarray, scan: ScanArea, center: str | None
    ) -> tuple[np.ndarray, list[str]]:
        icfg = self.config.intensity
        flags: list[str] = []
        gray = self._per_image(gray, scan)
        if icfg.standardize:
            gray, known = self.standardizer.apply(gray, center, scan.mask)
            if not known:
                flags.append("center_unseen")
        gray[~scan.mask] = 0
        return gray, flags

    def _per_image(self, gray: np.ndarray, scan: ScanArea) -> np.ndarray:
        """The per-image intensity step: scan-area equalisation or percentile normalisation."""
        icfg = self.config.intensity
        if icfg.equalize == "scan":
            return equalize(gray, scan.mask)
        if icfg.equalize == "none" and icfg.percentiles is not None:
            return percentile_normalise(gray, scan.mask, *icfg.percentiles)[0]
        return gray

    # -- fitting and state ---------------------------------------------------------------

    def fit(self, images_by_center: Mapping[str, Iterable[ImageLike]]) -> UltrasoundTransform:
        """Fit per-center histogram standardisation on **development** images only.

        Args:
            images_by_center: per center, RGB arrays or image paths (DICOM regions are read
                from paths). Pass development-cohort images only: external centers must
                never shape the model.

        Does nothing but return ``self`` when ``intensity.standardize`` is off.

        Raises:
            ConfigError: no images, or a center without images.
            ImageReadError: an image path that cannot be read.
        """
        icfg = self.config.intensity
        if not icfg.standardize:
            return self
        by_center: dict[str, list[np.ndarray]] = {}
        for center, images in images_by_center.items():
            vectors = []
            for item in images:
                image, path = _load(item)
                gray, scan, _, _ = self._clean(image, path)
                gray = self._per_image(gray, scan)
                vectors.append(landmarks_of(gray, scan.mask, icfg.landmarks))
            by_center[str(center)] = vectors
        self.standardizer.fit(by_center)
        return self

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: the configuration and the fitted standardisation."""
        return {
            "version": STATE_VERSION,
            "config": self.config.model_dump(mode="json"),
            "standardizer": self.standardizer.state() if self.standardizer.fitted else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> UltrasoundTransform:
        """Rebuild a transform saved with :meth:`state_dict` (e.g. from a model bundle).

        Raises:
            ConfigError: a state from another version, or an invalid configuration.
        """
        version = state.get("version") if isinstance(state, Mapping) else None
        if version != STATE_VERSION:
            raise ConfigError(
                f"ultrasound transform state has version {version!r}, this radiopath reads version "
                f"{STATE_VERSION}; re-export the model with this radiopath version"
            )
        cfg = UltrasoundConfig.from_dict(dict(state["config"]), source="ultrasound transform state")
        tf = cls(cfg)
        if state.get("standardizer"):
            tf.standardizer = HistogramStandardizer.from_state(state["standardizer"])
        return tf


def _check_image(image: Any, source_path: str | Path | None) -> None:
    where = f"{source_path}: " if source_path is not None else ""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ConfigError(
            f"{where}the ultrasound transform needs an (H, W, 3) uint8 RGB image, got {dtype} {shape}; "
            "read files with radiopath.io.images.read_image"
        )
    if min(image.shape[:2]) < 16:
        raise ConfigError(f"{where}image of {image.shape[1]}x{image.shape[0]} px is too small for ultrasound")


def _load(item: ImageLike) -> tuple[np.ndarray, Path | None]:
    if isinstance(item, np.ndarray):
        return item, None
    from radiopath.io.images import read_image

    return read_image(item), Path(item)


def load_view(
    row: Any, view: str, tf: UltrasoundTransform, details: bool = False, max_side: int | None = None
) -> Any:
    """Read and transform one view of one patient of :attr:`radiopath.cohort.Cohort.table`.

    Uses the row's ``<view>_mask`` (preferred) or ``<view>_box`` and its ``center``.

    Args:
        row: a row of ``Cohort.table`` (a pandas Series or a mapping).
        view: ``"us_1"`` or ``"us_2"``.
        tf: the transform.
        details: return the :class:`ProcessedView` instead of the crop.
        max_side: read the image (and mask) reduced so the longer side is at most this,
            scaling the box to match and finding the scan area from the pixels (DICOM regions
            are in full-size pixels) — for previews of huge images, not for model inputs.

    Returns:
        The ``(size, size, 3)`` uint8 crop (or the ProcessedView), or None when the patient
        has no image for this view (``us_2`` may be empty).

    Raises:
        ConfigError: ``view`` is not ``us_1``/``us_2``.
        ImageReadError: the image or mask cannot be read (names the file).
    """
    from radiopath.cohort.schema import BOX_COLUMNS, MASK_COLUMNS, parse_box
    from radiopath.io.images import read_image

    if view not in MASK_COLUMNS:
        raise ConfigError(f"view must be one of {sorted(MASK_COLUMNS)}, got {view!r}")
    path = _cell(row, view)
    if path is None:
        return None
    image = read_image(path, max_side=max_side)
    mask_path = _cell(row, MASK_COLUMNS[view])
    mask = read_image(mask_path, max_side=max_side) if mask_path is not None else None
    box = _cell(row, BOX_COLUMNS[view])
    if isinstance(box, str):
        try:
            box = parse_box(box)
        except ValueError as exc:
            raise ConfigError(f"{BOX_COLUMNS[view]} of patient {_cell(row, 'patient_id')}: {exc}") from None
    source: str | Path | None = path
    if max_side is not None:
        from radiopath.io.images import image_size

        width = image_size(path)[0]
        if image.shape[1] != width:  # reduced: the box and DICOM regions are in full-size pixels
            scale = image.shape[1] / width
            box = tuple(round(float(v) * scale) for v in box) if box is not None else None
            source = None
    center = _cell(row, "center")
    result = tf.process(image, mask=mask, box=box, center=center, source_path=source)
    return result if details else result.image


def _cell(row: Any, key: str) -> Any:
    """A row's value, with empty strings, NaN and missing keys as None."""
    try:
        value = row[key]
    except (KeyError, IndexError):
        return None
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if value is pd.NA:
        return None
    return value
