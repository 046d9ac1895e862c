"""One :class:`Slide` over every kind of cytology entry: whole-slide files, images, patch folders.

* a whole-slide file that OpenSlide reads (SVS, NDPI, MRXS, SCN, generic tiled TIFF, …):
  pixels come lazily from the pyramid, level 0 is never loaded whole;
* one ordinary image (PNG, JPEG, plain TIFF, …): a one-level slide, decoded once (these
  formats cannot be read piecewise);
* a folder of patch images: a one-level slide laid out as a mosaic, row by row in name order,
  each patch read only when a region touches it; tiles never straddle two patches
  (:attr:`Slide.regions`).

Physical resolution (µm per pixel, *mpp*) comes from the file's metadata or from an explicit
override; a slide with neither is an error, never a silent guess. Metadata outside a
microscope's range (0.05-20 µm/px, e.g. a default 72 dpi tag = 352.8 µm/px) counts as absent.
"""

from __future__ import annotations

import contextlib
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from radiopath.errors import ConfigError, ImageReadError
from radiopath.io.slides import MPP_RANGE, plausible_mpp
from radiopath.io.slides import PLAIN_SLIDE_MAX_PIXELS as MAX_IMAGE_PIXELS  # noqa: F401 - public name

_MPP_FIX = (
    "give its resolution with an mpp override (tile_slide(..., mpp_override=0.25), or a row "
    "'slide,mpp' in the table passed as --mpp-table)"
)


class Slide(ABC):
    """A slide's pyramid, resolution and pixels, whatever the file format.

    Coordinates are level-0 pixels ``(x, y)``; :meth:`read_region` returns RGB uint8 with
    transparent areas composited onto the slide's background colour.
    """

    path: Path
    mpp: float
    mpp_source: str
    vendor: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    background: tuple[int, int, int] = (255, 255, 255)

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def regions(self) -> list[tuple[int, int, int, int]]:
        """Level-0 rectangles ``(x, y, w, h)`` that hold scanned pixels; tiles stay inside one."""
        w, h = self.dimensions
        return [(0, 0, w, h)]

    @abstractmethod
    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB at ``level``, top-left at level-0 ``(x, y)``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def best_level(self, downsample: float) -> int:
        """The coarsest level that is still at least as fine as ``downsample`` (0.1% slack, as
        level downsamples of odd-sized pyramids are not exact powers of two)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * 1.001:
                best = i
        return best

    def read_scaled(
        self, x: float, y: float, extent_w: float, extent_h: float, out_w: int, out_h: int
    ) -> tuple[np.ndarray, int]:
        """The level-0 rectangle ``(x, y, extent_w, extent_h)`` resampled to ``out_w × out_h``.

        Reads from the best pyramid level and resizes (area averaging when shrinking).
        Returns the image and the level it was read from.
        """
        level = self.best_level(min(extent_w / out_w, extent_h / out_h))
        (w0, h0), (wl, hl) = self.dimensions, self.level_dimensions[level]
        # per-axis scale: odd-sized levels are not exact halves (2967 -> 1483 -> 741)
        lw, lh = max(round(extent_w * wl / w0), 1), max(round(extent_h * hl / h0), 1)
        img = self.read_region(round(x), round(y), level, lw, lh)
        return resize(img, out_w, out_h), level

    def read_lowres(self, downsample: float, chunk: int = 2048) -> np.ndarray:
        """The whole slide shrunk by ``downsample`` (≥ 1), read in chunks (bounded memory)."""
        w0, h0 = self.dimensions
        out_w, out_h = max(math.ceil(w0 / downsample), 1), max(math.ceil(h0 / downsample), 1)
        out = np.empty((out_h, out_w, 3), np.uint8)
        level = self.best_level(downsample)
        step = max(int(chunk * self.level_downsamples[level] / downsample), 1)  # output px per chunk
        for oy in range(0, out_h, step):
            for ox in range(0, out_w, step):
                cw, ch = min(step, out_w - ox), min(step, out_h - oy)
                img, _ = self.read_scaled(
                    ox * downsample, oy * downsample, cw * downsample, ch * downsample, cw, ch
                )
                out[oy : oy + ch, ox : ox + cw] = img
        return out


def resize(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Resize RGB uint8: area averaging when shrinking, bilinear when enlarging, copy-free if equal."""
    h, w = img.shape[:2]
    if (w, h) == (out_w, out_h):
        return img
    interp = cv2.INTER_AREA if out_w < w and out_h < h else cv2.INTER_LINEAR
    return cv2.resize(img, (out_w, out_h), interpolation=interp)


# --------------------------------------------------------------------------- OpenSlide


class OpenSlideSlide(Slide):
    """A whole-slide file through OpenSlide (thread-safe; pixels decoded on demand)."""

    def __init__(self, path: Path, mpp_override: float | None = None) -> None:
        import openslide

        self.path = path
        try:
            self._osr = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise ImageReadError(
                path, f"slide cannot be opened ({exc})", "re-export or re-scan the slide"
            ) from None
        props = self._osr.properties
        self.vendor = props.get(openslide.PROPERTY_NAME_VENDOR, "unknown")
        self.level_dimensions = tuple(self._osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        bg = props.get(openslide.PROPERTY_NAME_BACKGROUND_COLOR)
        if bg and len(bg) == 6:
            self.background = (int(bg[0:2], 16), int(bg[2:4], 16), int(bg[4:6], 16))
        self._bounds = _bounds(props, self.dimensions)
        meta = (
            _float(props.get(openslide.PROPERTY_NAME_MPP_X)),
            _float(props.get(openslide.PROPERTY_NAME_MPP_Y)),
        )
        found = [m for m in meta if m is not None]
        self.mpp, self.mpp_source = resolve_mpp(
            path, sum(found) / len(found) if found else None, mpp_override
        )

    @property
    def regions(self) -> list[tuple[int, int, int, int]]:
        return [self._bounds]

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        rgba = np.asarray(self._osr.read_region((int(x), int(y)), level, (int(width), int(height))))
        return composite(rgba, self.background)

    def close(self) -> None:
        self._osr.close()


def composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """RGBA (straight alpha, as OpenSlide returns) over an opaque background → RGB uint8."""
    rgb = np.ascontiguousarray(rgba[:, :, :3])
    alpha = rgba[:, :, 3]
    if alpha.min() == 255:
        return rgb
    a = alpha.astype(np.float32)[:, :, None] * (1.0 / 255.0)
    bg = np.asarray(background, np.float32)
    return np.clip(rgb * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _bounds(props: Mapping[str, str], dims: tuple[int, int]) -> tuple[int, int, int, int]:
    """OpenSlide's bounding box of the scanned area (MRXS and others), else the whole slide."""
    keys = ("openslide.bounds-x", "openslide.bounds-y", "openslide.bounds-width", "openslide.bounds-height")
    vals = [_float(props.get(k)) for k in keys]
    if all(v is not None for v in vals) and vals[2] and vals[3]:
        return tuple(int(v) for v in vals)  # type: ignore[return-value,arg-type]
    return (0, 0, dims[0], dims[1])


# --------------------------------------------------------------------------- plain images


class ImageSlide(Slide):
    """One ordinary image as a one-level slide.

    Size and resolution come from the header, so a slide without a usable resolution (or
    too large to decode) is refused before any pixel is decoded; the pixels are decoded
    once, on first use (PNG/JPEG have no random access).
    """

    def __init__(self, path: Path, mpp_override: float | None = None) -> None:
        from radiopath.io.images import image_size
        from radiopath.io.limits import check_pixels
        from radiopath.io.slides import image_mpp, plain_slide_budget

        self.path = path
        self.vendor = "image"
        w, h = image_size(path)
        check_pixels(path, w, h, plain_slide_budget())
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)
        self.mpp, self.mpp_source = resolve_mpp(path, image_mpp(path), mpp_override)

    @functools.cached_property
    def _img(self) -> np.ndarray:
        img = _read_plain(self.path)
        if (img.shape[1], img.shape[0]) != self.dimensions:  # e.g. an EXIF-rotated or odd header
            self.level_dimensions = ((img.shape[1], img.shape[0]),)
        return img

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        return _crop_padded(self._img, x, y, width, height, self.background)

    def read_lowres(self, downsample: float, chunk: int = 2048) -> np.ndarray:
        h, w = self._img.shape[:2]
        return resize(self._img, max(math.ceil(w / downsample), 1), max(math.ceil(h / downsample), 1))


def _crop_padded(
    img: np.ndarray, x: int, y: int, width: int, height: int, background: tuple[int, int, int]
) -> np.ndarray:
    """``img[y:y+height, x:x+width]``, padded with ``background`` where it leaves the image."""
    h, w = img.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    out[:] = background
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, w), min(y + height, h)
    if x0 < x1 and y0 < y1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
    return out


def _read_plain(path: Path) -> np.ndarray:
    """Pixels of an ordinary image used as (part of) a slide, within the plain-slide budget."""
    from radiopath.io.images import read_image
    from radiopath.io.slides import plain_slide_budget

    return read_image(path, max_pixels=plain_slide_budget())


# --------------------------------------------------------------------------- patch folders


class FolderSlide(Slide):
    """A folder of patch images as one level-0 mosaic, ``ceil(sqrt(n))`` patches per row.

    Each patch sits in a cell as large as the largest patch; regions between patches are
    background and never tiled. Patches are read on demand (a few kept in memory).
    """

    def __init__(self, path: Path, mpp_override: float | None = None, cache: int = 16) -> None:
        from radiopath.io.images import image_size
        from radiopath.io.slides import patch_files

        self.path = path
        self.vendor = "folder"
        self.files = patch_files(path)
        if not self.files:
            raise ImageReadError(
                path, "folder holds no patch images (PNG, JPEG, TIFF, …)", "add patches or fix the path"
            )
        sizes = [image_size(f) for f in self.files]
        cw, ch = max(s[0] for s in sizes), max(s[1] for s in sizes)
        cols = math.ceil(math.sqrt(len(self.files)))
        rows = math.ceil(len(self.files) / cols)
        self._rects = [((i % cols) * cw, (i // cols) * ch, w, h) for i, (w, h) in enumerate(sizes)]
        self.level_dimensions = ((cols * cw, rows * ch),)
        self.level_downsamples = (1.0,)
        self._read = functools.lru_cache(maxsize=cache)(self._read_patch)
        from radiopath.io.slides import folder_mpp

        meta = folder_mpp(self.files)
        self.mpp, self.mpp_source = resolve_mpp(path, meta, mpp_override)

    @property
    def regions(self) -> list[tuple[int, int, int, int]]:
        return list(self._rects)

    def _read_patch(self, i: int) -> np.ndarray:
        return _read_plain(self.files[i])

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        out = np.empty((height, width, 3), np.uint8)
        out[:] = self.background
        for i, (px, py, pw, ph) in enumerate(self._rects):
            x0, y0, x1, y1 = max(x, px), max(y, py), min(x + width, px + pw), min(y + height, py + ph)
            if x0 < x1 and y0 < y1:
                patch = self._read(i)
                out[y0 - y : y1 - y, x0 - x : x1 - x] = patch[y0 - py : y1 - py, x0 - px : x1 - px]
        return out

    def read_lowres(self, downsample: float, chunk: int = 2048) -> np.ndarray:
        w0, h0 = self.dimensions
        out = np.empty((max(math.ceil(h0 / downsample), 1), max(math.ceil(w0 / downsample), 1), 3), np.uint8)
        out[:] = self.background
        for i, (px, py, pw, ph) in enumerate(self._rects):
            ox, oy = round(px / downsample), round(py / downsample)
            ow = max(min(round(pw / downsample), out.shape[1] - ox), 1)
            oh = max(min(round(ph / downsample), out.shape[0] - oy), 1)
            out[oy : oy + oh, ox : ox + ow] = resize(_read_plain(self.files[i]), ow, oh)
        return out


# --------------------------------------------------------------------------- resolution


def resolve_mpp(path: Path, metadata: float | None, override: float | None) -> tuple[float, str]:
    """The slide's level-0 µm/px and where it came from (``override`` wins over metadata).

    Raises:
        ConfigError: the override is not a plausible resolution.
        ImageReadError: neither a plausible metadata value nor an override exists.
    """
    if override is not None:
        if not plausible_mpp(override):
            raise ConfigError(
                f"{path}: mpp override {override} is not a microscope resolution; "
                f"give µm per pixel between {MPP_RANGE[0]} and {MPP_RANGE[1]} (e.g. 0.25 at 40x, 0.5 at 20x)"
            )
        return float(override), "override"
    if plausible_mpp(metadata):
        return float(metadata), "metadata"  # type: ignore[arg-type]
    if metadata is None:
        raise ImageReadError(path, "the file records no physical resolution (µm per pixel)", _MPP_FIX)
    raise ImageReadError(
        path,
        f"the file's resolution tag says {metadata:.4g} µm/px, which no microscope scans at "
        "(probably a default DPI)",
        _MPP_FIX,
    )


def open_slide(path: str | Path, mpp_override: float | None = None) -> Slide:
    """Open a slide file, an ordinary image or a folder of patch images as a :class:`Slide`.

    Raises:
        ImageReadError: missing, unreadable, or without a usable resolution.
    """
    from radiopath.io.slides import slide_vendor

    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "slide not found", "fix the cytology path in the manifest")
    if path.is_dir():
        return FolderSlide(path, mpp_override)
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)", "re-export the slide")
    if slide_vendor(path) is not None:
        return OpenSlideSlide(path, mpp_override)
    return ImageSlide(path, mpp_override)


@contextlib.contextmanager
def opened(path: str | Path, mpp_override: float | None = None) -> Iterator[Slide]:
    """``with opened(path) as slide:`` — :func:`open_slide` that closes the file afterwards."""
    slide = open_slide(path, mpp_override)
    try:
        yield slide
    finally:
        slide.close()


# --------------------------------------------------------------------------- override table


def load_mpp_table(path: str | Path) -> dict[str, float]:
    """Read a per-slide resolution table: CSV with columns ``slide`` and ``mpp``.

    ``slide`` may be a patient id, a slide's file name, or its path; look-ups with
    :func:`lookup_mpp` try them in that order.

    Raises:
        ConfigError: unreadable file, missing column, duplicate key or implausible value (naming the row).
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"slide": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path}: cannot read the mpp table ({exc})") from None
    missing = {"slide", "mpp"} - set(table.columns)
    if missing:
        raise ConfigError(f"{path}: the mpp table needs columns 'slide' and 'mpp'; missing {sorted(missing)}")
    out: dict[str, float] = {}
    for i, (key, raw) in enumerate(zip(table["slide"], table["mpp"], strict=True)):
        row = i + 2  # header is line 1
        try:
            mpp = float(raw)
        except (TypeError, ValueError):
            mpp = float("nan")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{path}, line {row}: empty 'slide' cell; give a patient id, file name or path")
        if not plausible_mpp(mpp):
            raise ConfigError(
                f"{path}, line {row}, column mpp: {raw!r} is not a resolution in µm per pixel "
                f"between {MPP_RANGE[0]} and {MPP_RANGE[1]}"
            )
        key = key.strip()
        if key in out:
            raise ConfigError(f"{path}, line {row}: slide {key!r} appears twice; keep one row per slide")
        out[key] = mpp
    return out


def lookup_mpp(table: Mapping[str, float], slide: str | Path, patient_id: str | None = None) -> float | None:
    """The override for a slide: by patient id, then file name, then full path; None if absent."""
    slide = Path(slide)
    for key in (patient_id, slide.name, str(slide), str(slide.resolve())):
        if key is not None and key in table:
            return table[key]
    return None
