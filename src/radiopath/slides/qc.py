"""Quality of one tile at the target resolution: cellularity, focus, background, ink.

* **cellularity** (the tile's score): share of pixels holding stain — the same density-and-
  colour rule as detection (:func:`radiopath.slides.detection.stained_pixels`) at full detail;
* **blur**: variance of the Laplacian (Pech-Pacheco et al., "Diatom autofocusing in brightfield
  microscopy: a comparative study", ICPR 2000) measured on the stained pixels only, so the
  glass that fills most of a cytology tile does not dilute it;
* **background**: fewer stained pixels than ``min_stained_fraction``;
* **pen**: the share of the tile covered by the low-resolution pen mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radiopath.slides.config import TilingConfig
from radiopath.slides.detection import stained_pixels

#: Flag names, in the order they are listed in the ``flags`` column.
FLAGS: tuple[str, ...] = ("pen", "background", "blur")
#: Flags that refuse a tile outright; ``blur`` only ranks a tile after sharp ones.
HARD_FLAGS: frozenset[str] = frozenset({"pen", "background"})


@dataclass(frozen=True)
class TileQC:
    """Measurements and flags of one tile."""

    score: float
    blur: float
    pen_fraction: float
    flags: tuple[str, ...]

    @property
    def hard(self) -> bool:
        return any(f in HARD_FLAGS for f in self.flags)


def laplacian_variance(gray: np.ndarray, where: np.ndarray | None = None) -> float:
    """Variance of the 3x3 Laplacian of a grey image, over ``where`` (bool) when given.

    NaN when ``where`` selects fewer than 64 pixels (too little to judge focus).
    """
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    values = lap[where] if where is not None else lap.ravel()
    return float(values.var()) if values.size >= 64 else float("nan")


def tile_qc(tile: np.ndarray, background: np.ndarray, pen_fraction: float, cfg: TilingConfig) -> TileQC:
    """Score and flag one ``(S, S, 3)`` uint8 tile read at the target resolution."""
    stained = stained_pixels(tile, background, cfg)
    score = float(stained.mean())
    # judge focus on the stained pixels and a 2-px rim: edges of nuclei are where focus shows
    near = cv2.dilate(stained.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    gray = cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY)
    blur = laplacian_variance(gray, near)
    flags = []
    if pen_fraction > cfg.max_pen_fraction:
        flags.append("pen")
    if score < cfg.min_stained_fraction:
        flags.append("background")
    if np.isfinite(blur) and blur < cfg.blur_threshold:
        flags.append("blur")
    return TileQC(score=score, blur=blur, pen_fraction=pen_fraction, flags=tuple(flags))
