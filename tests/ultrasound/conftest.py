"""Fixtures for the ultrasound tests: rendered views with and without burned-in marks."""

from __future__ import annotations

import numpy as np
import pytest

from radiopath.synth.ultrasound import MARK_COLOURS
from ultrasound.views import MarkedView, render_marked


@pytest.fixture(scope="session")
def marked_views() -> list[MarkedView]:
    """Eight views over three centers and all mark colours (white twice), latents -1.5..2."""
    latents = np.linspace(-1.5, 2.0, 8)
    return [render_marked(i, float(u), i % 3, i % len(MARK_COLOURS)) for i, u in enumerate(latents)]
