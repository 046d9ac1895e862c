"""Quality of one tile at the target resolution: cellularity, focus, background, ink.

* **cellularity** (the tile's score): share of pixels holding stain — the same density-and-
  colour rule as detection (:func:`radiopath.slides.detection.stained_pixels`) at full detail;
* **blur**: variance of the Laplacian (Pech-Pacheco et al., "Diatom autofocusing in brightfield
  microscopy: a comparative study", ICPR 2000) measured around densely stained pixels (nuclei)
  only, so neither the glass that fills most of a cytology tile nor faint, edgeless cytoplasm
  and colloid dilute it (a tile without nuclei gets no verdict);
* **background**: fewer stained pixels than ``min_stained_fraction``;
* **pen**: the share of the tile covered by the low-resolution pen mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from radiopath.slides.config import TilingConfig
from radiopath.slides.detection import stain_features

#: Flag names, in the order they are listed in the ``flags`` column.
FLAGS: tuple[str, ...] = ("pen", "background", "blur")
#: Mean optical density of the stain whose edges judge focus (nuclei, not faint cytoplasm).
FOCUS_OD = 0.25
#: Share of a tile that must be dense stain before its focus is judged.
MIN_DENSE_FRACTION = 0.01
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

    NaN when ``where`` selects fewer than 256 pixels (too little to judge focus).
    """
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    values = lap[where] if where is not None else lap.ravel()
    return float(values.var()) if values.size >= 256 else float("nan")


def tile_qc(tile: np.ndarray, background: np.ndarray, pen_fraction: float, cfg: TilingConfig) -> TileQC:
    """Score and flag one ``(S, S, 3)`` uint8 tile read at the target resolution."""
    od, chroma = stain_features(tile, background)
    stained = (od > cfg.od_threshold) & (chroma > cfg.saturation_threshold)
    score = float(stained.mean())
    # judge focus on dense stain (nuclei) and a 2-px rim: their edges are where focus shows;
    # faint cytoplasm or colloid alone has no edges to judge, so such tiles get no verdict (NaN)
    dense = (stained & (od > FOCUS_OD)).astype(np.uint8)
    blur = float("nan")
    if dense.mean() >= MIN_DENSE_FRACTION:
        near = cv2.dilate(dense, np.ones((5, 5), np.uint8)) > 0
        blur = laplacian_variance(cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY), near)
    flags = []
    if pen_fraction > cfg.max_pen_fraction:
        flags.append("pen")
    if score < cfg.min_stained_fraction:
        flags.append("background")
    if np.isfinite(blur) and blur < cfg.blur_threshold:
        flags.append("blur")
    return TileQC(score=score, blur=blur, pen_fraction=pen_fraction, flags=tuple(flags))
