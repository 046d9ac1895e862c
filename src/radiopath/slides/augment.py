"""Augmentation of cytology tiles: what another scanner or another staining run would change.

Tellez et al., "Quantifying the effects of data augmentation and stain color normalization in
convolutional neural networks for computational pathology" (Medical Image Analysis 58, 2019)
compared basic (flips, rotations), morphology (scaling, elastic, blur, noise), brightness and
contrast, HSV and HED colour augmentation across four pathology tasks and centers; colour
augmentation with the morphology group gave the best generalisation to unseen centers, and
stronger HED jitter helped more than stain normalisation. Three of those steps are what the
external centers of a cytology study differ in:

* **defocus** — a Gaussian blur of ``σ ~ U(0, blur_um)`` µm (scanners focus on one plane of a
  smear that is thicker than it; measured in µm, so it means the same at every resolution);
* **resolution** — a zoom of ``U(1 - mpp_jitter, 1 + mpp_jitter)`` about the tile's centre (a
  scanner whose stated µm per pixel is off, or optics of another magnification), with
  reflected borders;
* **stain** — HED jitter (:class:`radiopath.slides.stain.HEDAugmenter`): each stain's optical
  density scaled by ``U(1 ± hed_scale)`` and shifted by ``U(± hed_shift)``;

plus, for end-to-end training only, 90° rotations and flips (a tile has no orientation). Our
own code on numpy uint8 (as the rest of :mod:`radiopath.slides`), with an explicit
``numpy.random.Generator``, so the same draw gives the same pixels in any process.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from radiopath.config import StrictModel
from radiopath.errors import ConfigError
from radiopath.slides.stain import HEDAugmenter


class TileAugmentConfig(StrictModel):
    """Ranges of the tile augmentation (see :mod:`radiopath.slides.augment`); zero turns a step off."""

    blur_um: float = Field(
        1.0, ge=0, le=5, description="defocus: Gaussian sigma drawn from U(0, blur_um), in µm"
    )
    mpp_jitter: float = Field(0.1, ge=0, lt=0.5, description="resolution: zoom drawn from 1 ± mpp_jitter")
    hed_scale: float = Field(
        0.25, ge=0, lt=1, description="stain: each HED concentration scaled by U(1 ± hed_scale)"
    )
    hed_shift: float = Field(
        0.05, ge=0, lt=0.5, description="stain: each HED concentration shifted by U(± hed_shift)"
    )


def augment_tile(
    tile: np.ndarray, rng: np.random.Generator, cfg: TileAugmentConfig, mpp: float, orient: bool = False
) -> np.ndarray:
    """One random augmentation of a ``(S, S, 3)`` uint8 tile read at ``mpp`` µm per pixel.

    Order: stain (on the slide's pixels), resolution, defocus, then (``orient``) a random 90°
    rotation and left-right flip. Every draw is taken whether or not its step is on, so turning
    one step off leaves the others' draws unchanged.

    Raises:
        ConfigError: ``tile`` is not an RGB uint8 image, or ``mpp`` is not positive.
    """
    if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
        raise ConfigError(f"augment_tile expects an (S, S, 3) uint8 tile, got {tile.dtype} {tile.shape}")
    if not mpp > 0:
        raise ConfigError(f"augment_tile: mpp must be positive, got {mpp!r}")
    stain_rng = np.random.default_rng(rng.integers(2**63))
    zoom = float(rng.uniform(1 - cfg.mpp_jitter, 1 + cfg.mpp_jitter))
    sigma_um = float(rng.uniform(0.0, cfg.blur_um))
    turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    out = tile
    if cfg.hed_scale or cfg.hed_shift:
        out = HEDAugmenter(cfg.hed_scale, cfg.hed_shift)(out, stain_rng)
    if cfg.mpp_jitter and zoom != 1.0:
        h, w = out.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 0.0, zoom)
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    sigma_px = sigma_um / mpp
    if sigma_px > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), sigma_px)
    if orient:
        out = np.rot90(out, turns)
        out = out[:, ::-1] if flip else out
    return np.ascontiguousarray(out)


def augment_tiles(
    tiles: np.ndarray, rng: np.random.Generator, cfg: TileAugmentConfig, mpp: float, orient: bool = False
) -> np.ndarray:
    """:func:`augment_tile` of every tile of ``(K, S, S, 3)``, drawn in order from ``rng``."""
    if len(tiles) == 0:
        return tiles
    return np.stack([augment_tile(t, rng, cfg, mpp, orient) for t in tiles])
