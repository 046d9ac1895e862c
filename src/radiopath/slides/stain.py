"""Stain normalisation (Macenko, Reinhard) and HED stain augmentation, numpy in and out.

All three take and return ``(H, W, 3)`` uint8 RGB, so data loaders can call them directly.
Our own vectorised code rather than ``torchstain``: its Reinhard takes statistics over the
whole image (mostly glass on a cytology tile) and its numpy Macenko fits one image with a
fixed glass intensity of 240; cytology needs stained-pixel statistics, the measured glass
colour and a fit pooled over many tiles of a center.

* :class:`MacenkoNormalizer` — Macenko et al., "A method for normalizing histology slides
  for quantitative analysis", ISBI 2009: the two stain vectors are the extreme angles of the
  optical-density pixels in the plane of their two main eigenvectors; concentrations are
  rescaled to the reference's 99th percentile and re-coloured with the reference stains.
* :class:`ReinhardNormalizer` — Reinhard et al., "Color transfer between images", IEEE CG&A
  2001: per-channel mean and standard deviation matched in CIELAB, here over stained pixels
  only, blended softly into the untouched glass.
* :class:`HEDAugmenter` — Tellez et al., "Whole-slide mitosis detection in H&E breast
  histology using PHH3 as a reference…", IEEE TMI 2018: random scale and shift of each
  stain in Ruifrok & Johnston's HED colour deconvolution (Anal. Quant. Cytol. Histol. 2001).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from radiopath.errors import ConfigError
from radiopath.slides.detection import estimate_background, optical_density

#: Ruifrok & Johnston (2001) stain OD vectors (rows: hematoxylin, eosin, DAB), as in scikit-image.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float64)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def _as_images(images: np.ndarray | Iterable[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        images = [images] if images.ndim == 3 else list(images)
    out = [np.asarray(im) for im in images]
    if not out:
        raise ConfigError("fit needs at least one image")
    for im in out:
        _check(im)
    return out


def _check(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(
            f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class MacenkoNormalizer:
    """Macenko stain normalisation (see the module docstring).

    Args:
        beta: OD below which a pixel (in any channel) is glass and ignored for estimation.
        alpha: percentile (of the angle distribution) taken as the extreme stain directions.
        min_pixels: fewer stained pixels than this and :meth:`transform` returns the image as
            it is (a tile of glass has no stain to estimate).
        max_pixels: stained pixels sampled for estimation (speed on large images).
        percentile: concentration percentile matched between image and reference (99 in the
            paper; it over-darkens defocused slides, whose peaks are lower: 50 is gentler).

    The OD left outside the two-stain plane (a third stain, as Papanicolaou's has) is carried
    over unchanged rather than dropped, so normalising an image to its own stains is exact.
    """

    def __init__(
        self,
        beta: float = 0.15,
        alpha: float = 1.0,
        min_pixels: int = 200,
        max_pixels: int = 500_000,
        percentile: float = 99.0,
    ) -> None:
        self.beta, self.alpha, self.min_pixels, self.max_pixels = beta, alpha, min_pixels, max_pixels
        self.percentile = percentile
        self.stains_: np.ndarray | None = None  # (2, 3): hematoxylin-like, then counter-stain
        self.max_conc_: np.ndarray | None = None  # (2,)
        self.background_: np.ndarray | None = None  # (3,)

    def _od_pixels(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bg = estimate_background(image)
        od = optical_density(image, bg).reshape(-1, 3)
        keep = od.min(axis=1) >= self.beta
        stained = od[keep]
        if len(stained) > self.max_pixels:
            stained = stained[:: len(stained) // self.max_pixels + 1]
        return od, stained, bg

    def _stain_vectors(self, stained: np.ndarray) -> np.ndarray:
        _, vecs = np.linalg.eigh(np.cov(stained.T))
        plane = vecs[:, 1:3]  # the two largest eigenvectors
        plane = plane * np.sign(plane.sum(axis=0, keepdims=True) + 1e-12)  # OD is positive
        proj = stained @ plane
        phi = np.arctan2(proj[:, 1], proj[:, 0])
        lo, hi = np.percentile(phi, [self.alpha, 100.0 - self.alpha])
        v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
        v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
        stains = _unit(np.abs(np.stack([v1, v2])))
        # hematoxylin absorbs red most: put the vector with the larger red OD first (Macenko)
        return stains if stains[0, 0] >= stains[1, 0] else stains[::-1].copy()

    @staticmethod
    def _concentrations(od: np.ndarray, stains: np.ndarray) -> np.ndarray:
        return od @ np.linalg.pinv(stains)  # (N, 2) least squares

    def fit(self, images: np.ndarray | Iterable[np.ndarray]) -> MacenkoNormalizer:
        """Learn reference stains from one image or many (e.g. tiles of one center), pooled."""
        pooled, backgrounds = [], []
        for im in _as_images(images):
            _, stained, bg = self._od_pixels(im)
            pooled.append(stained)
            backgrounds.append(bg)
        stained = np.concatenate(pooled)
        if len(stained) < self.min_pixels:
            raise ConfigError(
                f"the reference image(s) hold only {len(stained)} stained pixels; "
                f"fit on tiles with cells (at least {self.min_pixels} stained pixels)"
            )
        self.stains_ = self._stain_vectors(stained)
        conc = self._concentrations(stained, self.stains_)
        self.max_conc_ = np.maximum(np.percentile(conc, self.percentile, axis=0), 1e-6)
        self.background_ = np.mean(backgrounds, axis=0)
        return self

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: the options and the fitted reference (stains, scale, glass colour)."""
        return {
            "method": "macenko",
            "beta": self.beta,
            "alpha": self.alpha,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "percentile": self.percentile,
            "stains": _listed(self.stains_),
            "max_conc": _listed(self.max_conc_),
            "background": _listed(self.background_),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MacenkoNormalizer:
        """Rebuild a normaliser saved with :meth:`state_dict` (nothing is refitted)."""
        obj = cls(
            state["beta"], state["alpha"], state["min_pixels"], state["max_pixels"], state["percentile"]
        )
        obj.stains_ = _array(state.get("stains"), (2, 3))
        obj.max_conc_ = _array(state.get("max_conc"), (2,))
        obj.background_ = _array(state.get("background"), (3,))
        return obj

    def stain_matrix(self, image: np.ndarray) -> np.ndarray:
        """The ``(2, 3)`` unit stain OD vectors estimated from ``image``."""
        _check(image)
        _, stained, _ = self._od_pixels(image)
        if len(stained) < self.min_pixels:
            raise ConfigError(f"image holds only {len(stained)} stained pixels; too few to estimate stains")
        return self._stain_vectors(stained)

    def transform(self, image: np.ndarray, source: MacenkoNormalizer | None = None) -> np.ndarray:
        """``image`` re-coloured with the reference stains (uint8 RGB, same shape).

        Args:
            image: the image to normalise.
            source: a normaliser fitted on the image's own slide or center; its pooled stains
                and concentration scale replace the per-image estimate, which is unstable on
                sparse cytology tiles (a tile's 99th percentile depends on how many nuclei it holds).
        """
        if self.stains_ is None or self.max_conc_ is None or self.background_ is None:
            raise ConfigError("MacenkoNormalizer is not fitted; call fit(reference images) first")
        _check(image)
        od, stained, _ = self._od_pixels(image)
        if source is not None:
            if source.stains_ is None or source.max_conc_ is None:
                raise ConfigError("the source MacenkoNormalizer is not fitted; fit it on the slide's tiles")
            stains, max_conc = source.stains_, source.max_conc_
        elif len(stained) < self.min_pixels:
            return image.copy()
        else:
            stains = self._stain_vectors(stained)
            max_conc = np.maximum(
                np.percentile(self._concentrations(stained, stains), self.percentile, axis=0), 1e-6
            )
        # pair each stain with the reference stain it is closest to: the red-first rule of
        # Macenko is ambiguous when two stains absorb red alike (Papanicolaou's hematoxylin
        # and light green), and a swapped pair would recolour nuclei as cytoplasm
        if np.sum(stains * self.stains_) < np.sum(stains[::-1] * self.stains_):
            stains, max_conc = stains[::-1].copy(), max_conc[::-1].copy()
        conc = self._concentrations(od, stains)
        residual = od - conc @ stains  # OD outside the two-stain plane (a third stain), kept as is
        new_od = (conc * (self.max_conc_ / max_conc)) @ self.stains_ + residual
        out = self.background_ * np.exp(-np.maximum(new_od, 0.0))
        return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(image.shape)


class ReinhardNormalizer:
    """Reinhard colour transfer in CIELAB over stained pixels (see the module docstring).

    Args:
        od_threshold: mean OD above which a pixel counts as stained (statistics and full effect);
            pixels fade from untouched (glass) to fully transformed between half and full of it.
    """

    def __init__(self, od_threshold: float = 0.1) -> None:
        self.od_threshold = od_threshold
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def _lab_and_weight(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab = cv2.cvtColor(image.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2LAB)
        od = optical_density(image, estimate_background(image)).mean(axis=2)
        t = self.od_threshold
        weight = np.clip((od - 0.5 * t) / (0.5 * t), 0.0, 1.0)
        return lab, weight

    def fit(self, images: np.ndarray | Iterable[np.ndarray]) -> ReinhardNormalizer:
        """Learn the reference LAB mean and standard deviation of stained pixels, pooled."""
        pixels = []
        for im in _as_images(images):
            lab, w = self._lab_and_weight(im)
            pixels.append(lab[w >= 1.0])
        pooled = np.concatenate(pixels)
        if len(pooled) < 100:
            raise ConfigError(
                f"the reference image(s) hold only {len(pooled)} stained pixels; fit on tiles with cells"
            )
        self.mean_, self.std_ = pooled.mean(axis=0), np.maximum(pooled.std(axis=0), 1e-3)
        return self

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: the option and the fitted reference LAB statistics."""
        return {
            "method": "reinhard",
            "od_threshold": self.od_threshold,
            "mean": _listed(self.mean_),
            "std": _listed(self.std_),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ReinhardNormalizer:
        """Rebuild a normaliser saved with :meth:`state_dict` (nothing is refitted)."""
        obj = cls(state["od_threshold"])
        obj.mean_ = _array(state.get("mean"), (3,), np.float32)
        obj.std_ = _array(state.get("std"), (3,), np.float32)
        return obj

    def transform(self, image: np.ndarray) -> np.ndarray:
        """``image`` with its stained pixels' LAB statistics matched to the reference."""
        if self.mean_ is None or self.std_ is None:
            raise ConfigError("ReinhardNormalizer is not fitted; call fit(reference images) first")
        _check(image)
        lab, w = self._lab_and_weight(image)
        stained = lab[w >= 1.0]
        if len(stained) < 100:
            return image.copy()
        mean, std = stained.mean(axis=0), np.maximum(stained.std(axis=0), 1e-3)
        moved = (lab - mean) * (self.std_ / std) + self.mean_
        out = lab + w[:, :, None] * (moved - lab)
        out[..., 0] = np.clip(out[..., 0], 0, 100)
        rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
        return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


StainNormalizer = MacenkoNormalizer | ReinhardNormalizer
NORMALIZERS: dict[str, type[MacenkoNormalizer] | type[ReinhardNormalizer]] = {
    "macenko": MacenkoNormalizer,
    "reinhard": ReinhardNormalizer,
}


def normalizer_from_state(state: Mapping[str, Any]) -> StainNormalizer:
    """The fitted normaliser a :meth:`state_dict` describes.

    Raises:
        ConfigError: an unknown method or a damaged state.
    """
    method = state.get("method") if isinstance(state, Mapping) else None
    if method not in NORMALIZERS:
        raise ConfigError(
            f"stain normaliser state has method {method!r}; expected one of {sorted(NORMALIZERS)}"
        )
    try:
        return NORMALIZERS[method].from_state(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"stain normaliser state is damaged ({exc}); fit the normaliser again") from None


def _listed(value: np.ndarray | None) -> list[Any] | None:
    """An array as nested lists of floats, exactly (float64 repr round-trips)."""
    return None if value is None else np.asarray(value, np.float64).tolist()


def _array(value: Any, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype)
    if arr.shape != shape:
        raise ValueError(f"expected shape {shape}, got {arr.shape}")
    return arr


class HEDAugmenter:
    """Random HED stain augmentation: ``s' = s * U(1-σa, 1+σa) + U(-σb, σb)`` per stain.

    Stains are in natural-log optical density (``-ln(I/255)``) along Ruifrok & Johnston's
    vectors; ``sigma_beta`` is in those units (0.02 moves clear glass by about 5 grey levels).
    Call it as ``augment(image, rng)`` with a :class:`numpy.random.Generator`.
    """

    def __init__(self, sigma_alpha: float = 0.05, sigma_beta: float = 0.02) -> None:
        if sigma_alpha < 0 or sigma_beta < 0:
            raise ConfigError("HEDAugmenter: sigma_alpha and sigma_beta must be ≥ 0")
        self.sigma_alpha, self.sigma_beta = sigma_alpha, sigma_beta

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check(image)
        alpha = rng.uniform(1 - self.sigma_alpha, 1 + self.sigma_alpha, 3)
        beta = rng.uniform(-self.sigma_beta, self.sigma_beta, 3)
        od = optical_density(image, np.full(3, 255.0, np.float32)).reshape(-1, 3)
        hed = od @ HED_FROM_RGB.astype(np.float32)
        hed = hed * alpha.astype(np.float32) + beta.astype(np.float32)
        out = 255.0 * np.exp(-(hed @ RGB_FROM_HED.astype(np.float32)))
        return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(image.shape)
