"""Rendered synthetic views with and without burned-in marks, and where the marks are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radiopath.synth.phenotype import nodule_from_latent
from radiopath.synth.spec import default_centers
from radiopath.synth.ultrasound import MARK_COLOURS, draw_marks, render_view

#: Where the synthetic generator puts the scan in its 512x400 screenshots.
SCAN_BOX = (72, 44, 456, 364)


@dataclass(frozen=True)
class MarkedView:
    """One rendered view, the same view with marks, and exactly which pixels the marks changed."""

    clean: np.ndarray
    marked: np.ndarray
    truth: np.ndarray  # (H, W) bool
    box: tuple[int, int, int, int]
    nodule: np.ndarray  # (H, W) uint8 mask
    colour: tuple[int, int, int]
    center: str


def render_marked(index: int, latent: float, center_index: int, colour_index: int) -> MarkedView:
    """A view of a nodule with latent ``latent`` at a default center, marked in one colour."""
    center = default_centers()[center_index]
    rng = np.random.default_rng([99, index])
    nodule = nodule_from_latent(latent, rng)
    view = render_view(nodule, "transverse" if index % 2 else "longitudinal", center, rng)
    colour = MARK_COLOURS[colour_index][0]
    marked = draw_marks(view.image, view.mask, np.random.default_rng([99, index, 3]), colour=colour)
    return MarkedView(view.image, marked.image, marked.marks, view.box, view.mask, colour, center.name)
