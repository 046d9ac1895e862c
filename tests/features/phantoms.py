"""Two small 2-D phantoms (formulas, no random numbers) on which radiomics is pinned to PyRadiomics.

Both regions hold a grey value below one bin width (25), so PyRadiomics' binning (from the
multiple of the width below the region minimum) and ours (from 0) give the same levels.
"""

from __future__ import annotations

import numpy as np

BIN_WIDTH = 25.0


def phantoms() -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(image float64 (40, 48), mask bool)]``: a periodic pattern in an ellipse, and smooth
    waves with a dark streak in a notched diamond."""
    y, x = np.mgrid[:40, :48]
    a = ((x * 7 + y * 13 + (x * y) % 11) % 23) * 11.0
    m1 = ((x - 23) / 20.0) ** 2 + ((y - 19) / 16.0) ** 2 + 0.15 * np.sin(x / 3.0) < 1.0
    b = 120 + 60 * np.sin(x / 4.0) * np.cos(y / 5.0) + 40 * np.sin((x + 2 * y) / 3.0)
    b = np.clip(np.round(b), 0, 255)
    b[5:9, 10:20] = 3.0
    m2 = (np.abs(x - 24) + np.abs(y - 20) < 19) & ~((x > 30) & (y < 12))
    return [(a, m1), (b, m2)]
