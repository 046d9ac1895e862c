"""Writing tiled pyramidal TIFF slides that OpenSlide opens as ``generic-tiff``.

Each pyramid level is a separate tiled TIFF page (OpenSlide's generic-tiff reader does not
follow SubIFDs), JPEG-compressed, halving in size until the smallest side is under
``min_size``. The resolution tags are written in pixels per centimetre, from which OpenSlide
reports ``openslide.mpp-x`` / ``openslide.mpp-y``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

from radiopath.io.atomic import atomic_path


def pyramid_levels(image: np.ndarray, min_size: int = 512) -> list[np.ndarray]:
    """Level 0 and successive 2× area-averaged reductions down to ``min_size``."""
    levels = [image]
    while min(levels[-1].shape[:2]) // 2 >= min_size:
        prev = levels[-1]
        levels.append(
            cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2), interpolation=cv2.INTER_AREA)
        )
    return levels


def write_pyramid_tiff(
    path: str | Path,
    image: np.ndarray,
    mpp: float,
    tile: int = 256,
    quality: int = 90,
    min_size: int = 512,
    description: str = "radiopath slide",
) -> Path:
    """Write ``image`` (H, W, 3 uint8) as a tiled JPEG pyramid at ``mpp`` µm/px, atomically."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    path = Path(path)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=image.size > 2**31) as tw:
        for i, level in enumerate(pyramid_levels(image, min_size)):
            px_per_cm = 1e4 / (mpp * 2**i)
            tw.write(
                level,
                tile=(tile, tile),
                compression="jpeg",
                compressionargs={"level": quality},
                photometric="rgb",
                resolution=(px_per_cm, px_per_cm),
                resolutionunit="CENTIMETER",
                subfiletype=0 if i == 0 else 1,
                description=description if i == 0 else None,
                metadata=None,
            )
    return path
