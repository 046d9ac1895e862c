"""Training augmentation for model-ready ultrasound crops.

Only changes a real second acquisition could make:

* **small rotations and zoom** (probe angle and depth setting), one affine warp with
  reflected borders so no black corners appear that the model could count;
* **left-right flips** (the left and right lobes mirror each other and sonographers hold
  the probe either way); never up-down: depth has a direction (skin on top, shadowing and
  attenuation below), so a flipped image is no image a scanner makes;
* **gain** (a brightness multiplier) and **contrast** (a display gamma), the knobs that
  differ most between machines;
* **speckle-like noise**: multiplicative, spatially correlated over about a resolution cell,
  as speckle is (J. W. Goodman, *Speckle Phenomena in Optics*, 2007), rather than additive
  pixel noise, which ultrasound does not have.

Works on the ``(size, size, 3)`` uint8 crop of :class:`~.transform.UltrasoundTransform` and
returns the same shape and dtype (grey replicated). Written with OpenCV and NumPy rather than
torchvision so the same code runs in data-loader workers without tensors and takes an
explicit ``numpy.random.Generator`` (reproducible per epoch and per worker).
"""

from __future__ import annotations

import cv2
import numpy as np

from radiopath.errors import ConfigError
from radiopath.ultrasound.config import AugmentConfig


def augment(crop: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None) -> np.ndarray:
    """One random augmentation of a model-ready crop (see the module docstring).

    Args:
        crop: ``(S, S, 3)`` or ``(S, S)`` uint8.
        rng: the random stream (pass one per worker and epoch for reproducible training).
        config: ranges; a zero turns a step off.

    Raises:
        ConfigError: ``crop`` is not a uint8 image.
    """
    cfg = config or AugmentConfig()
    if crop.dtype != np.uint8 or crop.ndim not in (2, 3):
        raise ConfigError(f"augment expects a uint8 (S, S) or (S, S, 3) crop, got {crop.dtype} {crop.shape}")
    gray = crop if crop.ndim == 2 else crop[:, :, 0]
    h, w = gray.shape
    img = gray.astype(np.float32)
    angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)) if cfg.rotate_deg else 0.0
    zoom = float(rng.uniform(1 - cfg.scale, 1 + cfg.scale)) if cfg.scale else 1.0
    if angle or zoom != 1.0:
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, zoom)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if cfg.hflip and rng.random() < cfg.hflip:
        img = img[:, ::-1]
    if cfg.speckle:
        noise = rng.standard_normal((h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.2, sigmaY=0.7)
        noise /= float(noise.std()) + 1e-6
        img = img * np.clip(1.0 + cfg.speckle * noise, 0.0, None)
    if cfg.gain:
        img = img * float(rng.uniform(1 - cfg.gain, 1 + cfg.gain))
    if cfg.contrast:
        gamma = float(np.exp(rng.uniform(-cfg.contrast, cfg.contrast)))
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** gamma
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if crop.ndim == 2:
        return np.ascontiguousarray(out)
    return np.repeat(out[:, :, None], crop.shape[2], axis=2)
