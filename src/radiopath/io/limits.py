"""The pixel budget: how large an image radiopath decodes whole, checked from the header.

A 200-byte PNG can claim to be 50,000 × 50,000 pixels and ask for 7.5 GB when decoded (a
"decompression bomb"); a real 20,000-px scan exported as one PNG is no better on a shared
machine. Every reader in :mod:`radiopath.io` reads the image's size from its header first
and refuses, with :class:`~radiopath.errors.ImageTooLargeError`, anything above the budget —
before a single pixel is decoded.

The budget is :data:`DEFAULT_MAX_PIXELS` (100 million pixels, a 10,000 × 10,000 image);
set the environment variable ``RADIOPATH_MAX_IMAGE_PIXELS`` (CLI) or pass ``max_pixels=``
(Python) to change it. Whole-slide files are exempt: they are read tile by tile.
"""

from __future__ import annotations

import os
from pathlib import Path

from radiopath.errors import ConfigError, ImageTooLargeError

#: Pixels (width x height x frames decoded) an image may have unless told otherwise.
DEFAULT_MAX_PIXELS = 100_000_000
#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
ENV_VAR = "RADIOPATH_MAX_IMAGE_PIXELS"


def max_image_pixels(override: int | None = None) -> int:
    """The pixel budget: ``override``, else ``$RADIOPATH_MAX_IMAGE_PIXELS``, else the default.

    Raises:
        ConfigError: the override or the environment variable is not a positive integer.
    """
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override <= 0:
            raise ConfigError(f"max_pixels must be a positive whole number of pixels, got {override!r}")
        return override
    text = os.environ.get(ENV_VAR, "").strip().replace("_", "").replace(",", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a positive number of pixels; "
            f"set it to e.g. 200000000, or unset it for the default of {DEFAULT_MAX_PIXELS:,}"
        )
    return value


def check_pixels(
    path: str | Path, width: int, height: int, max_pixels: int | None = None, frames: int = 1
) -> None:
    """Raise :class:`ImageTooLargeError` when ``width x height x frames`` exceeds the budget."""
    limit = max_image_pixels(max_pixels)
    if int(width) * int(height) * max(int(frames), 1) > limit:
        raise ImageTooLargeError(path, int(width), int(height), limit, max(int(frames), 1))
