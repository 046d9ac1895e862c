"""One reader for every ultrasound (and small cytology) image a hospital exports.

``read_image(path)`` returns an ``(H, W, 3)`` uint8 RGB array whatever came in: PNG, JPEG,
TIFF, BMP, GIF or DICOM (see :mod:`radiopath.io.dicom`); grayscale is replicated to three
channels, palettes are expanded, alpha is dropped, CMYK is converted, and data deeper than
8 bits is scaled by its real bit depth (:mod:`radiopath.io.depth`), so a 12-bit PNG keeps
the grey levels the same data keeps as DICOM.

The format is recognised from the file's first bytes, not its name, so a ``.png`` that is
really a JPEG still reads, and a text file named ``.png`` gives a clear error. Decoding is
bounded: the size comes from the header first and an image above the pixel budget
(:mod:`radiopath.io.limits`) is refused before any pixel is decoded; ``max_side`` decodes
a reduced image where the format allows it (JPEG scales during decoding).

Every failure is an :class:`~radiopath.errors.ImageReadError` naming the file — never a
decoder's own exception.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from radiopath.errors import ConfigError, ImageReadError, ImageTooLargeError, RadiopathError
from radiopath.io.depth import to_uint8
from radiopath.io.dicom import dicom_size, is_dicom, read_dicom
from radiopath.io.headers import header_size, png_header
from radiopath.io.limits import check_pixels

#: File suffixes radiopath treats as ordinary images (for folder scans and validation).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".dcm", ".dicom"}
)

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)

_FIX = "re-export the image (PNG, JPEG, TIFF, BMP or DICOM) or fix the path in the manifest"
#: Pillow's own decompression-bomb limit, captured before anything could change it.
_PIL_LIMIT: int | None = None
_PIL_LIMIT_LOCK = threading.Lock()


def sniff_format(path: str | Path) -> str:
    """Name of the image format from the file's first bytes: ``PNG``, ``DICOM``, … .

    Raises:
        ImageReadError: missing, a folder, empty, unreadable, or not a known image format.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found", _FIX)
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file", "point to an image file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ImageReadError(path, f"cannot be opened ({exc.strerror})", "check file permissions") from None
    if not head:
        raise ImageReadError(path, "file is empty (0 bytes)", _FIX)
    if is_dicom(path, head):
        return "DICOM"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    raise ImageReadError(path, "not a recognised image format (PNG, JPEG, TIFF, BMP, GIF, DICOM)", _FIX)


def read_image(
    path: str | Path,
    frame: int | None = None,
    *,
    max_pixels: int | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array.

    Args:
        path: the image file.
        frame: for multi-frame files (DICOM cine, multi-page TIFF/GIF), the zero-based frame;
            ``None`` picks DICOM's documented default frame, or the first page otherwise.
        max_pixels: pixel budget for this read (default: :func:`radiopath.io.limits.max_image_pixels`).
        max_side: when given, the image is reduced (area averaging) so its longer side is at
            most this many pixels; JPEG is decoded reduced, others are reduced right after
            decoding. For previews and thumbnails, never for model inputs.

    Raises:
        ImageTooLargeError: the header announces more pixels than the budget.
        ImageReadError: naming the file, for missing, empty, truncated, corrupt or non-image
            files.
    """
    path = Path(path)
    if max_side is not None and (isinstance(max_side, bool) or int(max_side) < 1):
        raise ConfigError(f"max_side must be a positive number of pixels, got {max_side!r}")
    fmt = sniff_format(path)
    if fmt == "DICOM":
        arr = read_dicom(path, frame=frame, max_pixels=max_pixels)
    elif fmt in ("TIFF", "BigTIFF"):
        arr = _read_tiff(path, fmt, frame, max_pixels, max_side)
    elif fmt == "PNG" and _is_deep_png(path):
        arr = _read_deep_png(path, frame, max_pixels)
    else:
        arr = _read_with_pillow(path, fmt, frame, max_pixels, max_side)
    return fit_within(arr, max_side)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header; pixels are never decoded.

    Raises:
        ImageReadError: the file is not an image or its header cannot be read.
    """
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "DICOM":
        return dicom_size(path)
    if fmt in ("TIFF", "BigTIFF"):
        info = _tiff_page(path, 0)
        if info is not None:
            return info[0], info[1]
    else:
        size = header_size(path, fmt)
        if size is not None and min(size) > 0:
            return int(size[0]), int(size[1])
    from PIL import Image

    try:
        with _pil_limit_lifted(None), Image.open(path) as im:
            return im.size
    except Exception as exc:  # any decoder complaint about a damaged header
        raise ImageReadError(path, f"image header cannot be read ({_why(exc)})", _FIX) from None


def fit_within(arr: np.ndarray, max_side: int | None) -> np.ndarray:
    """``arr`` shrunk (area averaging) so its longer side is at most ``max_side``; else unchanged."""
    if max_side is None:
        return arr
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    s = max_side / max(h, w)
    size = (max(1, min(max_side, round(w * s))), max(1, min(max_side, round(h * s))))
    return np.ascontiguousarray(cv2.resize(arr, size, interpolation=cv2.INTER_AREA))


# --------------------------------------------------------------------------- Pillow formats


def _read_with_pillow(
    path: Path,
    fmt: str,
    frame: int | None,
    max_pixels: int | None,
    max_side: int | None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    from PIL import Image, ImageFile, UnidentifiedImageError

    size = size or header_size(path, fmt)
    if size is not None:
        check_pixels(path, *size, max_pixels)  # before Pillow reads anything else
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, never grey-filled pixels
    try:
        with _pil_limit_lifted(size), Image.open(path) as im:
            check_pixels(path, *im.size, max_pixels)
            _seek(im, path, frame)
            if max_side is not None and fmt == "JPEG" and max(im.size) > max_side:
                scale = max_side / max(im.size)
                im.draft(
                    im.mode, (max(1, math.ceil(im.size[0] * scale)), max(1, math.ceil(im.size[1] * scale)))
                )
            im.load()
            return pil_to_rgb(im, max_side=max_side)
    except RadiopathError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError(
            path,
            "image is too large to decode whole (its header could not be checked first)",
            "downscale it, or give a cytology image as a tiled pyramidal TIFF",
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, f"looks like {fmt} but cannot be decoded", _FIX) from None
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image", _FIX) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, …
        raise ImageReadError(path, f"truncated or corrupt {fmt} ({_why(exc)})", _FIX) from None


def _seek(im: object, path: Path, frame: int | None) -> None:
    if not frame:
        return
    n = int(getattr(im, "n_frames", 1))
    if not 0 <= frame < n:
        raise ImageReadError(
            path, f"frame {frame} requested but the file has {n}", f"choose a frame between 0 and {n - 1}"
        )
    im.seek(frame)  # type: ignore[attr-defined]


def pil_to_rgb(im: object, bits: int | None = None, max_side: int | None = None) -> np.ndarray:
    """A loaded Pillow image in any mode → ``(H, W, 3)`` uint8 RGB.

    16-bit and 32-bit grey are scaled by their bit depth (``bits``, else the used range);
    palettes are expanded and alpha dropped; CMYK, YCbCr, LAB and HSV are converted.
    ``max_side`` reduces 8-bit images before they are expanded to three channels.
    """
    from PIL import Image

    assert isinstance(im, Image.Image)
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return to_rgb(np.asarray(im), bits)
    if max_side is not None and im.mode in ("L", "RGB", "RGBA", "LA") and max(im.size) >= 2 * max_side:
        im = im.reduce(max(im.size) // max_side)  # still >= max_side: fit_within finishes the job
    if im.mode == "L":
        return to_rgb(np.asarray(im, dtype=np.uint8))
    if im.mode in ("P", "PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


@contextlib.contextmanager
def pil_open(path: Path) -> Iterator[object]:
    """Open ``path`` lazily with Pillow to read its tags (resolution, frames) — never its pixels.

    Pillow's own size guard is lifted for images larger than it allows, since nothing is
    decoded here; :func:`read_image` applies the pixel budget before it decodes.
    """
    from PIL import Image

    size = header_size(path, sniff_format(path))
    with _pil_limit_lifted(size), Image.open(path) as im:
        yield im


@contextlib.contextmanager
def _pil_limit_lifted(size: tuple[int, int] | None) -> Iterator[None]:
    """Let Pillow open an image our own budget has already allowed but Pillow's would refuse.

    Pillow keeps its limit in a module global; it is lifted only while such an image is
    opened, under a lock, and only after :func:`check_pixels` passed for it.
    """
    from PIL import Image

    global _PIL_LIMIT
    if _PIL_LIMIT is None:
        _PIL_LIMIT = Image.MAX_IMAGE_PIXELS or 0
    if size is None or not _PIL_LIMIT or size[0] * size[1] <= _PIL_LIMIT:
        yield
        return
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------- deep PNG


def _is_deep_png(path: Path) -> bool:
    header = png_header(path)
    return header is not None and header.bit_depth == 16


def _read_deep_png(path: Path, frame: int | None, max_pixels: int | None) -> np.ndarray:
    """16-bit PNG through imagecodecs: Pillow would cut 16-bit colour to its top 8 bits."""
    import imagecodecs

    header = png_header(path)
    assert header is not None
    check_pixels(path, header.width, header.height, max_pixels)
    if frame:
        raise ImageReadError(path, f"frame {frame} requested but the PNG has 1", "choose frame 0")
    try:
        arr = imagecodecs.png_decode(path.read_bytes())
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image", _FIX) from None
    except Exception as exc:  # imagecodecs.PngError and friends
        raise ImageReadError(path, f"truncated or corrupt PNG ({_why(exc)})", _FIX) from None
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = arr[:, :, 0]
    return to_rgb(arr, header.significant_bits)


# --------------------------------------------------------------------------- TIFF


def _tiff_page(path: Path, frame: int) -> tuple[int, int, int, int] | None:
    """``(width, height, bytes per sample, pages)`` of a TIFF page from its tags, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n = len(tif.pages)
            if not 0 <= frame < n:
                return None
            page = tif.pages[frame]
            return int(page.imagewidth), int(page.imagelength), int(np.dtype(page.dtype).itemsize), n  # type: ignore[union-attr]
    except Exception:  # damaged TIFF: Pillow or the decoder reports it below
        return None


def _read_tiff(
    path: Path, fmt: str, frame: int | None, max_pixels: int | None, max_side: int | None
) -> np.ndarray:
    info = _tiff_page(path, frame or 0)
    if info is not None:
        check_pixels(path, info[0], info[1], max_pixels)
    if fmt == "TIFF" and (info is None or info[2] == 1):  # 8-bit: Pillow knows TIFF's odd corners
        try:
            size = (info[0], info[1]) if info is not None else None
            return _read_with_pillow(path, fmt, frame, max_pixels, max_side, size)
        except ImageTooLargeError:
            raise
        except ImageReadError as exc:
            if "frame" in exc.reason:
                raise
    return _read_with_tifffile(path, frame, max_pixels)


def _read_with_tifffile(path: Path, frame: int | None, max_pixels: int | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n = len(tif.pages)
            if not 0 <= (frame or 0) < n:
                raise ImageReadError(
                    path, f"frame {frame} requested but the TIFF has {n} page(s)", "choose an existing page"
                )
            page = tif.pages[frame or 0]
            check_pixels(path, int(page.imagewidth), int(page.imagelength), max_pixels)  # type: ignore[union-attr]
            arr = page.asarray()  # type: ignore[union-attr]
            axes = str(getattr(page, "axes", ""))
            bits = int(getattr(page, "bitspersample", 0) or 0)
    except RadiopathError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image", _FIX) from None
    except Exception as exc:  # tifffile raises many types for damaged files
        raise ImageReadError(path, f"truncated or corrupt TIFF ({_why(exc)})", _FIX) from None
    if arr.ndim == 3 and axes.startswith("S"):  # planar configuration: samples first
        arr = np.moveaxis(arr, 0, -1)
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    item_bits = 8 * arr.dtype.itemsize
    try:
        return to_rgb(arr, bits if 8 < bits < item_bits else None)
    except ValueError as exc:
        raise ImageReadError(path, str(exc), _FIX) from None


# --------------------------------------------------------------------------- arrays


def to_rgb(arr: np.ndarray, bits: int | None = None) -> np.ndarray:
    """A 2-D or 3-D sample array of any depth → ``(H, W, 3)`` uint8 RGB (see :func:`to_uint8`).

    Raises:
        ValueError: a layout that is not grey, grey+alpha, RGB or RGBA.
    """
    arr = to_uint8(arr, bits)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        return np.repeat(arr[:, :, :1], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        return np.ascontiguousarray(arr[:, :, :3])
    raise ValueError(f"unexpected image layout {arr.shape}")


def _why(exc: BaseException) -> str:
    """``Type: message`` of a decoder exception, short enough for one line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
