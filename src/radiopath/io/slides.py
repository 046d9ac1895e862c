"""What a manifest's ``cytology`` cell points to, and a cheap check that it opens.

A cytology entry is one of three things (DESIGN.md):

* a whole-slide file that OpenSlide reads (SVS, NDPI, MRXS, SCN, generic tiled TIFF, …);
* a folder of patch images (treated as an already-tiled slide);
* one ordinary image (treated as a one-level slide).

Pixel access and tiling live in :mod:`radiopath.slides`; this module classifies and probes,
reading headers only (size, resolution), so ``radiopath validate`` checks a cohort of
slides in seconds — or, with ``decode=True``, also decodes every patch of a folder, naming
the first one that is damaged. The resolution helpers (:func:`plausible_mpp`,
:func:`image_mpp`, :func:`folder_mpp`) are shared with the slide reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radiopath.errors import ImageReadError
from radiopath.io.images import IMAGE_SUFFIXES, image_size, pil_open, read_image, sniff_format
from radiopath.io.limits import check_pixels, max_image_pixels

CytologyKind = Literal["slide", "folder", "image"]

#: Plausible microscope resolutions, µm per pixel; metadata outside this range is ignored.
MPP_RANGE: tuple[float, float] = (0.05, 20.0)
#: Ordinary cytology images (decoded whole) may have this many pixels unless the
#: pixel budget (``RADIOPATH_MAX_IMAGE_PIXELS`` / ``max_pixels``) allows more.
PLAIN_SLIDE_MAX_PIXELS = 400_000_000
#: Patches whose resolution tags are compared when a folder's resolution is worked out.
_MPP_SAMPLE = 32

_FIX = "point the cytology column at a slide file, a folder of patch images, or one image"


@dataclass(frozen=True)
class CytologyProbe:
    """What a cytology entry is, its level-0 size and its resolution when known.

    ``mpp`` is a plausible resolution (µm/px) or None; ``mpp_note`` then says why
    (nothing recorded, or a tag no microscope scans at, such as a default 72 dpi).
    """

    kind: CytologyKind
    vendor: str | None
    width: int
    height: int
    mpp: float | None
    n_patches: int = 0
    mpp_note: str | None = None


def plausible_mpp(value: float | None) -> bool:
    """True for a finite resolution a microscope scanner can have (0.05-20 µm/px)."""
    return value is not None and math.isfinite(value) and MPP_RANGE[0] <= value <= MPP_RANGE[1]


def plain_slide_budget(max_pixels: int | None = None) -> int:
    """Pixel budget of an ordinary image used as a slide (decoded whole)."""
    return max_pixels if max_pixels is not None else max(PLAIN_SLIDE_MAX_PIXELS, max_image_pixels())


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


def pil_mpp(im: object) -> float | None:
    """µm/px from an opened Pillow image's resolution tags (TIFF, PNG pHYs, JPEG JFIF), else None."""
    info = getattr(im, "info", {})
    tags = getattr(im, "tag_v2", None)
    try:
        if tags is not None and 282 in tags:  # TIFF XResolution + ResolutionUnit
            unit = tags.get(296, 2)
            res = float(tags[282])
            if res > 0 and unit in (2, 3):
                return (25400.0 if unit == 2 else 10000.0) / res
            return None
        dpi = info.get("dpi")
        if dpi and float(dpi[0]) > 0:
            return 25400.0 / float(dpi[0])
    except (TypeError, ValueError, ZeroDivisionError, IndexError):  # a damaged tag is no tag
        return None
    return None


def image_mpp(path: str | Path) -> float | None:
    """The resolution tag of an ordinary image, read from its header (None when absent/unreadable)."""
    try:
        if sniff_format(path) == "DICOM":
            return None
        with pil_open(Path(path)) as im:
            return pil_mpp(im)
    except Exception:  # unreadable header: the decoder reports it when pixels are read
        return None


def folder_mpp(files: list[Path]) -> float | None:
    """The patches' common plausible resolution tag, or None when absent or inconsistent."""
    return _common_mpp([image_mpp(f) for f in files[:_MPP_SAMPLE]])


def _common_mpp(values: list[float | None]) -> float | None:
    if not values or any(not plausible_mpp(v) for v in values):
        return None
    lo, hi = min(values), max(values)  # type: ignore[type-var]
    return float(lo) if hi <= lo * 1.01 else None  # type: ignore[operator]


def mpp_note(metadata: float | None) -> str | None:
    """Why a resolution tag is unusable (None when it is plausible)."""
    if plausible_mpp(metadata):
        return None
    if metadata is None:
        return "records no physical resolution (µm per pixel)"
    return f"has a resolution tag of {metadata:.4g} µm/px, which no microscope scans at (a default DPI?)"


def probe_cytology(path: str | Path, decode: bool = False, max_pixels: int | None = None) -> CytologyProbe:
    """Classify and open a cytology entry, reading headers only unless ``decode``.

    Args:
        path: slide file, folder of patch images, or one image.
        decode: also decode every patch of a folder (and a single image within the global
            pixel budget, reduced), so a damaged patch is found now rather than in the middle
            of tiling.
        max_pixels: pixel budget for patches and single images (default: the larger of
            :data:`PLAIN_SLIDE_MAX_PIXELS` and the global budget).

    Raises:
        ImageReadError: missing, empty, unreadable, too large, or not a slide/image/folder of
            images; for a folder, the error names the bad patch file.
    """
    import openslide

    path = Path(path)
    budget = plain_slide_budget(max_pixels)
    if path.is_dir():
        return _probe_folder(path, decode, budget)
    vendor = slide_vendor(path) if path.is_file() and path.stat().st_size > 0 else None
    if vendor is not None:
        try:
            with openslide.OpenSlide(str(path)) as slide:
                w, h = slide.dimensions
                found = [_float(slide.properties.get(k)) for k in ("openslide.mpp-x", "openslide.mpp-y")]
        except Exception as exc:  # OpenSlideError and lower-level failures of damaged files
            raise ImageReadError(
                path, f"slide cannot be opened ({type(exc).__name__}: {exc})", _FIX
            ) from None
        values = [v for v in found if v is not None]
        meta = sum(values) / len(values) if values else None
        return CytologyProbe("slide", vendor, w, h, meta if plausible_mpp(meta) else None, 0, mpp_note(meta))
    sniff_format(path)  # raises a clear error for missing / empty / non-image files
    w, h = image_size(path)
    check_pixels(path, w, h, budget)
    if decode and w * h <= max_image_pixels():  # larger ones are decoded by tiling, not to validate
        read_image(path, max_pixels=budget, max_side=2048)
    meta = image_mpp(path)
    return CytologyProbe("image", None, w, h, meta if plausible_mpp(meta) else None, 0, mpp_note(meta))


def _probe_folder(path: Path, decode: bool, budget: int) -> CytologyProbe:
    files = patch_files(path)
    if not files:
        raise ImageReadError(path, "folder holds no patch images (PNG, JPEG, TIFF, …)", _FIX)
    sizes = []
    for f in files:
        try:
            sizes.append(image_size(f))
            check_pixels(f, *sizes[-1], budget)
            if decode:
                read_image(f, max_pixels=budget)
        except ImageReadError as exc:
            raise ImageReadError(
                f,
                f"patch {f.name} of folder {path.name}: {exc.reason}",
                f"re-export or delete {f.name} (the folder is read as one slide)",
            ) from None
    values = [image_mpp(f) for f in files[:_MPP_SAMPLE]]
    meta = _common_mpp(values)
    width = max(s[0] for s in sizes)
    height = max(s[1] for s in sizes)
    note = mpp_note(meta)
    if note is not None and all(plausible_mpp(v) for v in values):
        note = "patches record different resolutions"
    return CytologyProbe("folder", None, width, height, meta, len(files), note)


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None
