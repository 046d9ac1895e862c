"""Handcrafted ultrasound radiomics of the nodule region, with IBSI feature names.

Inside the nodule (a mask, a box as a rectangle, or the automatic region of
:mod:`radiopath.ultrasound.nodule`) of the cleaned, intensity-normalised grey view that
:class:`radiopath.ultrasound.UltrasoundTransform` produces:

* **shape** (2-D, :mod:`.shape2d`), **first order** (:mod:`.firstorder`), **GLCM, GLRLM,
  GLSZM, GLDM (IBSI's NGLDM) and NGTDM** (:mod:`.texture`) with the definitions and names of
  the IBSI reference manual (Zwanenburg et al., Radiology 2020), and **LBP**: uniform local
  binary patterns (Ojala, Pietikäinen & Mäenpää, IEEE PAMI 2002; ``skimage.feature``) at radii
  ``lbp_radii``, their histogram in the region and its entropy;
* optionally the same (without shape and LBP) on **Laplacian-of-Gaussian** images at scales
  ``log_sigmas`` (scale-normalised, ``sigma^2 * LoG``) and on the four level-1 undecimated
  **wavelet** sub-bands (``LL, LH, HL, HH``; PyWavelets ``swt2``), as PyRadiomics offers them.

Names are ``<image>_<family>_<feature>``: ``original_glcm_joint_entropy``,
``log_sigma_2_0_firstorder_mean``, ``wavelet_HH_glszm_zone_size_entropy``,
``original_lbp_r1_bin3``; :func:`radiomics_feature_names` gives the fixed order.

**Resampling** (``resample``, IBSI "interpolation"): ``spacing`` resamples the view to
``spacing_mm`` per pixel when the view's pixel spacing is known (DICOM), so texture is
measured at one physical scale; ``none`` keeps the view's pixels (the only honest choice for
screenshots of unknown scale, e.g. DDTI's crops); ``nodule`` scales the region so its larger
side is ``nodule_side_px`` (scale-free texture and shape, for cohorts whose images were
resized per nodule). Images resample bilinearly (area-averaged when shrinking), masks
bilinearly then at 0.5, as IBSI recommends.

**Discretisation** (IBSI "fixed bin size"): the original image's grey values, already
normalised to 0-255 over the scan area by the transform, fall in bins of ``bin_width`` from a
lower bound of 0, so a grey level means the same echogenicity in every view. Filtered images
(any sign) use ``filtered_bin_width`` from the lower multiple of the width below their region
minimum (PyRadiomics' convention, equal to IBSI's when that minimum is below one width).

Our implementation rather than PyRadiomics: ``pyradiomics`` does not install on Python >= 3.10
and the ``pyradiomics-bhklab`` fork builds from source (a compiler on every machine, plus
SimpleITK), takes about 0.4 s per view for these classes and gives wrong GLSZM/GLRLM values
for 2-D images unless they are passed as one-slice volumes; ours is numpy/scikit-image,
pinned to its values (``tests/features/test_texture.py``), and 10-40x faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import pywt
from pydantic import Field, field_validator
from scipy import ndimage as ndi
from skimage.feature import local_binary_pattern

from radiopath.config import StrictModel
from radiopath.errors import ConfigError
from radiopath.features import texture
from radiopath.features.firstorder import FIRSTORDER_FEATURES, firstorder_features
from radiopath.features.perinodular import PERINODULAR_FEATURES, perinodular_features
from radiopath.features.shape2d import SHAPE_FEATURES, shape_features
from radiopath.ultrasound.nodule import NoduleConfig, NoduleRegion, find_nodule, region_from

if TYPE_CHECKING:
    from radiopath.ultrasound.transform import ProcessedView

Family = Literal["shape2d", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "lbp", "perinodular"]
ALL_FAMILIES: tuple[str, ...] = (
    "shape2d",
    "firstorder",
    "glcm",
    "glrlm",
    "glszm",
    "gldm",
    "ngtdm",
    "lbp",
    "perinodular",
)
#: Families computed on filtered images too (shape and LBP only on the original).
FILTERED_FAMILIES: tuple[str, ...] = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
WAVELET_BANDS: tuple[str, ...] = ("LL", "LH", "HL", "HH")

_TEXTURE = {
    "glcm": (texture.GLCM_FEATURES, texture.glcm_features),
    "glrlm": (texture.GLRLM_FEATURES, texture.glrlm_features),
    "glszm": (texture.GLSZM_FEATURES, texture.glszm_features),
    "gldm": (texture.NGLDM_FEATURES, texture.ngldm_features),
    "ngtdm": (texture.NGTDM_FEATURES, texture.ngtdm_features),
}


class RadiomicsConfig(StrictModel):
    """What is measured in the nodule region and how the image is prepared for it."""

    families: list[Family] = Field(default_factory=lambda: list(ALL_FAMILIES), description="feature families")
    bin_width: float = Field(
        32.0, gt=0, le=128, description="fixed bin size of the original 0-255 grey values (IBSI FBS)"
    )
    resample: Literal["none", "spacing", "nodule"] = Field(
        "none", description="resampling before extraction (see the module docstring)"
    )
    spacing_mm: float = Field(0.1, gt=0, le=5, description="target mm per pixel for resample='spacing'")
    nodule_side_px: int = Field(128, ge=16, le=1024, description="region's larger side for resample='nodule'")
    lbp_radii: list[int] = Field(default_factory=lambda: [1, 2], description="LBP radii, px (8 points each)")
    log_sigmas: list[float] = Field(
        default_factory=list, description="Laplacian-of-Gaussian scales, px of the (resampled) grid"
    )
    wavelet: bool = Field(False, description="also the four level-1 undecimated wavelet sub-bands")
    wavelet_name: str = Field("coif1", description="PyWavelets name of the wavelet")
    filtered_bin_width: float = Field(4.0, gt=0, description="fixed bin size on LoG / wavelet images")
    min_pixels: int = Field(16, ge=4, description="a smaller region yields NaN features")

    @field_validator("families")
    @classmethod
    def _families_ok(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("families must be a non-empty list without repeats")
        return v

    @field_validator("log_sigmas")
    @classmethod
    def _sigmas_ok(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("log_sigmas must be positive")
        return v


def _image_names(cfg: RadiomicsConfig) -> list[str]:
    names = ["original"]
    names += [f"log_sigma_{s:g}".replace(".", "_") for s in cfg.log_sigmas]
    if cfg.wavelet:
        names += [f"wavelet_{b}" for b in WAVELET_BANDS]
    return names


def _family_features(family: str, cfg: RadiomicsConfig) -> tuple[str, ...]:
    if family == "shape2d":
        return SHAPE_FEATURES
    if family == "firstorder":
        return FIRSTORDER_FEATURES
    if family == "perinodular":
        return PERINODULAR_FEATURES
    if family == "lbp":
        return tuple(
            f"r{r}_{part}" for r in cfg.lbp_radii for part in (*(f"bin{k}" for k in range(10)), "entropy")
        )
    return _TEXTURE[family][0]


def _plan(cfg: RadiomicsConfig) -> Iterator[tuple[str, str]]:
    for image in _image_names(cfg):
        for family in cfg.families:
            if image == "original" or family in FILTERED_FAMILIES:
                yield image, family


def radiomics_feature_names(cfg: RadiomicsConfig | None = None) -> list[str]:
    """The fixed order of :func:`radiomics_features`' values for ``cfg``."""
    cfg = cfg or RadiomicsConfig()
    return [
        f"{image}_{family}_{name}" for image, family in _plan(cfg) for name in _family_features(family, cfg)
    ]


# --- preparation ----------------------------------------------------------------------------


def _check(gray: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(gray)
    if g.ndim == 3 and g.shape[2] == 3:
        g = g[..., 0] if (g[..., 0] == g[..., 1]).all() and (g[..., 0] == g[..., 2]).all() else None
    if g is None or g.ndim != 2:
        raise ConfigError(
            f"radiomics needs a 2-D grey image (the transform's ProcessedView.cleaned), got shape "
            f"{np.asarray(gray).shape}; convert colour views to grey first"
        )
    m = np.asarray(mask)
    if m.shape != g.shape:
        raise ConfigError(
            f"the nodule mask is {m.shape[::-1]} px but the image is {g.shape[::-1]} px; "
            "give the mask in full-image coordinates"
        )
    return g, m.astype(bool)


def _scale(cfg: RadiomicsConfig, mask: np.ndarray, spacing_mm: float | None) -> float:
    """Zoom factor of the resampling step (1 = none)."""
    if cfg.resample == "spacing":
        if spacing_mm is None:
            raise ConfigError(
                "radiomics.resample='spacing' needs the view's pixel spacing (spacing_mm); pass it, or "
                "set resample to 'none' or 'nodule' for images of unknown scale"
            )
        return float(spacing_mm) / cfg.spacing_mm
    if cfg.resample == "nodule":
        ys, xs = np.nonzero(mask)
        side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
        return cfg.nodule_side_px / float(side)
    return 1.0


def prepare(
    gray: np.ndarray,
    mask: np.ndarray,
    cfg: RadiomicsConfig,
    spacing_mm: float | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Crop around the region (with room for the filters and the perinodular ring), resample;
    float image, bool mask, bool valid (scan) area and the mm per pixel of the result (pixels
    when unknown)."""
    gray, mask = _check(gray, mask)
    valid = np.ones_like(mask) if valid is None else _check(gray, valid)[1]
    ys, xs = np.nonzero(mask)
    zoom = _scale(cfg, mask, spacing_mm)
    ring = 0.2 * 2.0 * np.sqrt(mask.sum() / np.pi) * zoom + 2  # the perinodular ring
    reach = max(3 * max([*cfg.log_sigmas, 1.0]) + 4, ring)  # filter support, in resampled px
    pad = int(np.ceil(reach / zoom)) + 2
    h, w = gray.shape
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + 1 + pad, h)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + 1 + pad, w)
    img = gray[y0:y1, x0:x1].astype(np.float32)
    m = mask[y0:y1, x0:x1]
    v = valid[y0:y1, x0:x1]
    if abs(zoom - 1.0) > 1e-6:
        size = (max(round((x1 - x0) * zoom), 1), max(round((y1 - y0) * zoom), 1))
        interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp)
        m = cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
        v = cv2.resize(v.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    spacing = (spacing_mm / zoom) if spacing_mm is not None else 1.0 / zoom
    return img, m, v, float(spacing)


def discretise(values: np.ndarray, mask: np.ndarray, width: float, lower: float | None = 0.0) -> np.ndarray:
    """IBSI fixed-bin-size levels: ``floor((x - lower) / width) + 1`` inside ``mask``, 0 outside;
    ``lower=None`` starts at the multiple of ``width`` at or below the region minimum."""
    if lower is None:
        lower = float(np.floor(values[mask].min() / width) * width)
    lv = np.floor((values - lower) / width).astype(np.int64) + 1
    return np.where(mask, np.maximum(lv, 1), 0)


def filtered_images(img: np.ndarray, cfg: RadiomicsConfig) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, image)`` of every configured LoG scale and wavelet sub-band."""
    for s in cfg.log_sigmas:
        yield f"log_sigma_{s:g}".replace(".", "_"), (s * s) * ndi.gaussian_laplace(img, s, mode="reflect")
    if cfg.wavelet:
        h, w = img.shape
        ph, pw = h % 2, w % 2
        padded = np.pad(img, ((0, ph), (0, pw)), mode="reflect")
        ll, (lh, hl, hh) = pywt.swt2(padded, cfg.wavelet_name, level=1, trim_approx=False)[0]
        for band, arr in zip(WAVELET_BANDS, (ll, lh, hl, hh), strict=True):
            yield f"wavelet_{band}", np.asarray(arr, np.float32)[:h, :w]


# --- extraction -----------------------------------------------------------------------------


def _lbp(gray: np.ndarray, mask: np.ndarray, radii: list[int]) -> dict[str, float]:
    g = np.clip(np.round(gray), 0, 255).astype(np.uint8)
    out: dict[str, float] = {}
    for r in radii:
        codes = local_binary_pattern(g, 8, r, method="uniform").astype(np.int64)[mask]
        p = np.bincount(codes, minlength=10)[:10] / max(len(codes), 1)
        for k in range(10):
            out[f"r{r}_bin{k}"] = float(p[k])
        nz = p[p > 0]
        out[f"r{r}_entropy"] = float(-(nz * np.log2(nz)).sum())
    return out


def _features_of(
    family: str,
    values: np.ndarray,
    mask: np.ndarray,
    levels: np.ndarray,
    valid: np.ndarray,
    spacing: float,
    cfg: RadiomicsConfig,
) -> dict[str, float]:
    if family == "shape2d":
        return shape_features(mask, spacing)
    if family == "perinodular":
        return perinodular_features(values, mask, valid)
    if family == "firstorder":
        return firstorder_features(values[mask], levels[mask])
    if family == "lbp":
        return _lbp(values, mask, cfg.lbp_radii)
    return _TEXTURE[family][1](levels)


def radiomics_features(
    gray: np.ndarray,
    mask: np.ndarray,
    cfg: RadiomicsConfig | None = None,
    spacing_mm: float | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """All configured features of the region ``mask`` of a grey view, in
    :func:`radiomics_feature_names` order (NaN everywhere for a region under ``min_pixels``).

    Args:
        gray: ``(H, W)`` grey image (uint8 0-255; ``ProcessedView.cleaned``).
        mask: ``(H, W)`` region of the nodule in the same coordinates (non-zero inside).
        cfg: options.
        spacing_mm: mm per pixel of ``gray`` when known (needed for ``resample='spacing'``;
            shape lengths are then in mm).
        valid: ``(H, W)`` the scan area (``ProcessedView.scan.mask``): the perinodular ring
            never reaches into the black chrome.

    Raises:
        ConfigError: not a 2-D grey image, a mask of another size, or ``resample='spacing'``
            without ``spacing_mm``.
    """
    cfg = cfg or RadiomicsConfig()
    names = radiomics_feature_names(cfg)
    gray, mask = _check(gray, mask)
    if int(mask.sum()) < cfg.min_pixels:
        return dict.fromkeys(names, float("nan"))
    img, m, v, spacing = prepare(gray, mask, cfg, spacing_mm, valid)
    if int(m.sum()) < cfg.min_pixels:
        return dict.fromkeys(names, float("nan"))
    out: dict[str, float] = {}
    images = {"original": (img, discretise(img, m, cfg.bin_width, 0.0))}
    for name, filtered in filtered_images(img, cfg):
        images[name] = (filtered, discretise(filtered, m, cfg.filtered_bin_width, None))
    for image, family in _plan(cfg):
        values, levels = images[image]
        for k, value in _features_of(family, values, m, levels, v, spacing, cfg).items():
            out[f"{image}_{family}_{k}"] = value
    return {k: out[k] for k in names}


def features_vector(values: dict[str, float], cfg: RadiomicsConfig | None = None) -> np.ndarray:
    """``values`` as a float array in :func:`radiomics_feature_names` order."""
    return np.array([values[k] for k in radiomics_feature_names(cfg)], float)


@dataclass(frozen=True)
class ViewRadiomics:
    """The radiomics of one view and the region they were measured on.

    Attributes:
        features: :func:`radiomics_feature_names` order.
        region: the region (``source``: mask, box, auto or scan; ``found``; ``flags``).
    """

    features: dict[str, float]
    region: NoduleRegion

    @property
    def flags(self) -> tuple[str, ...]:
        return self.region.flags


def view_radiomics(
    cleaned: np.ndarray,
    mask: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
    scan_mask: np.ndarray | None = None,
    cfg: RadiomicsConfig | None = None,
    spacing_mm: float | None = None,
    nodule: NoduleConfig | None = None,
) -> ViewRadiomics:
    """Radiomics of one preprocessed view in full-image coordinates.

    The region is the nodule ``mask`` (preferred), else the ``box`` as a rectangle, else the
    automatic region of :func:`radiopath.ultrasound.nodule.find_nodule` inside ``scan_mask``
    — or the whole scan area, flagged ``nodule_not_found``. An empty mask is flagged
    ``empty_mask``.

    Args:
        cleaned: ``ProcessedView.cleaned``, the full-size grey view after scan area, mark
            removal and intensity normalisation.
        mask: nodule mask of the same size (non-zero inside), as read from ``us_k_mask``.
        box: nodule box ``x0, y0, x1, y1`` in image pixels (``us_k_box``).
        scan_mask: ``ProcessedView.scan.mask``; limits the automatic region and the ring.
        cfg: radiomics options.
        spacing_mm: mm per pixel when known (DICOM).
        nodule: options of the automatic region.
    """
    region = region_from(np.asarray(cleaned).shape[:2], mask, box)
    if region is None:
        auto = find_nodule(np.asarray(cleaned), scan_mask, nodule)
        empty = ("empty_mask",) if mask is not None else ()
        region = NoduleRegion(auto.mask, auto.source, auto.found, auto.score, (*empty, *auto.flags))
    return ViewRadiomics(radiomics_features(cleaned, region.mask, cfg, spacing_mm, scan_mask), region)


def processed_view_radiomics(
    view: ProcessedView,
    mask: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
    cfg: RadiomicsConfig | None = None,
    spacing_mm: float | None = None,
) -> ViewRadiomics:
    """:func:`view_radiomics` of a :class:`~radiopath.ultrasound.transform.ProcessedView`
    (its ``cleaned`` image and scan area), with the mask or box given to the transform."""
    return view_radiomics(view.cleaned, mask, box, view.scan.mask, cfg, spacing_mm)
