"""What a manifest's ``cytology`` cell points to, and a cheap check that it opens.

A cytology entry is one of three things (DESIGN.md):

* a whole-slide file that OpenSlide reads (SVS, NDPI, MRXS, SCN, generic tiled TIFF, …);
* a folder of patch images (treated as an already-tiled slide);
* one ordinary image (treated as a one-level slide).

Pixel access and tiling live in :mod:`radiopath.slides`; this module only classifies and
probes, so ``radiopath validate`` can check a cohort of slides in seconds without reading
pixel data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radiopath.errors import ImageReadError
from radiopath.io.images import IMAGE_SUFFIXES, image_size, sniff_format

CytologyKind = Literal["slide", "folder", "image"]

_FIX = "point the cytology column at a slide file, a folder of patch images, or one image"


@dataclass(frozen=True)
class CytologyProbe:
    """What a cytology entry is, its level-0 size and its resolution when known."""

    kind: CytologyKind
    vendor: str | None
    width: int
    height: int
    mpp: float | None
    n_patches: int = 0


def slide_vendor(path: str | Path) -> str | None:
    """OpenSlide's format name for ``path`` (``aperio``, ``generic-tiff``, …) or None."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # detect_format raises on unreadable files on some platforms
        return None


def patch_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def probe_cytology(path: str | Path) -> CytologyProbe:
    """Classify and open a cytology entry without reading its pixels.

    Raises:
        ImageReadError: missing, empty, unreadable, or not a slide/image/folder of images.
    """
    import openslide

    path = Path(path)
    if path.is_dir():
        files = patch_files(path)
        if not files:
            raise ImageReadError(path, "folder holds no patch images (PNG, JPEG, TIFF, …)", _FIX)
        for f in files:
            sniff_format(f)
        w, h = image_size(files[0])
        return CytologyProbe("folder", None, w, h, None, n_patches=len(files))
    vendor = slide_vendor(path) if path.is_file() and path.stat().st_size > 0 else None
    if vendor is not None:
        try:
            with openslide.OpenSlide(str(path)) as slide:
                w, h = slide.dimensions
                mpp = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
                return CytologyProbe("slide", vendor, w, h, float(mpp) if mpp else None)
        except openslide.OpenSlideError as exc:
            raise ImageReadError(path, f"slide cannot be opened ({exc})", _FIX) from None
    sniff_format(path)  # raises a clear error for missing / empty / non-image files
    w, h = image_size(path)
    return CytologyProbe("image", None, w, h, None)
