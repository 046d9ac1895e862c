"""One reader for every ultrasound (and small cytology) image a hospital exports.

``read_image(path)`` returns an ``(H, W, 3)`` uint8 RGB array whatever came in: PNG, JPEG,
TIFF, BMP, GIF or DICOM (see :mod:`radiopath.io.dicom`); grayscale is replicated to three
channels, palettes are expanded, alpha is dropped, 16-bit data is scaled by its bit depth.
The format is recognised from the file's first bytes, not its name, so a ``.png`` that is
really a JPEG still reads, and a text file named ``.png`` gives a clear error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from radiopath.errors import ImageReadError
from radiopath.io.dicom import is_dicom, read_dicom

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


def read_image(path: str | Path, frame: int | None = None) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array.

    Args:
        path: the image file.
        frame: for multi-frame files (DICOM cine, multi-page TIFF/GIF), the zero-based frame;
            ``None`` picks DICOM's documented default frame, or the first page otherwise.

    Raises:
        ImageReadError: naming the file, for missing, empty, truncated, corrupt or non-image
            files.
    """
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "DICOM":
        return read_dicom(path, frame=frame)
    if fmt == "BigTIFF":
        return _read_with_tifffile(path, frame)
    return _read_with_pillow(path, fmt, frame)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` without decoding all pixels where the format allows it."""
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "DICOM":
        from radiopath.io.dicom import dicom_metadata

        meta = dicom_metadata(path)
        return int(meta["Columns"]), int(meta["Rows"])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError):
        arr = read_image(path)
        return arr.shape[1], arr.shape[0]


def _read_with_pillow(path: Path, fmt: str, frame: int | None) -> np.ndarray:
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if frame:
                    n = getattr(im, "n_frames", 1)
                    if frame >= n:
                        raise ImageReadError(
                            path,
                            f"frame {frame} requested but the file has {n}",
                            f"choose a frame between 0 and {n - 1}",
                        )
                    im.seek(frame)
                im.load()
                return _pil_to_rgb(im)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            path,
            "image is too large to read whole",
            "open it as a slide (cytology column) instead of a single image",
        ) from None
    except UnidentifiedImageError:
        if fmt == "TIFF":
            return _read_with_tifffile(path, frame)
        raise ImageReadError(path, f"looks like {fmt} but cannot be decoded", _FIX) from None
    except (OSError, SyntaxError, ValueError) as exc:
        if fmt == "TIFF":
            return _read_with_tifffile(path, frame)
        raise ImageReadError(path, f"truncated or corrupt {fmt} ({exc})", _FIX) from None


def _pil_to_rgb(im: object) -> np.ndarray:
    from PIL import Image

    assert isinstance(im, Image.Image)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _to_rgb(np.asarray(im))
    if im.mode != "RGB":
        im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "PA", "LA") else im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _read_with_tifffile(path: Path, frame: int | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[frame or 0]
            return _to_rgb(page.asarray())  # type: ignore[union-attr]
    except IndexError:
        raise ImageReadError(path, f"TIFF has no page {frame}", "choose an existing page") from None
    except Exception as exc:  # tifffile raises many types for damaged files
        raise ImageReadError(path, f"truncated or corrupt TIFF ({type(exc).__name__}: {exc})", _FIX) from None


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    """Any 2-D/3-D integer or float array → uint8 RGB (scaled by dtype range, not min/max)."""
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer):
            info = np.iinfo(arr.dtype)
            hi = 65535 if arr.dtype.itemsize >= 2 and arr.max() > 255 else 255
            hi = min(hi, int(info.max))
            arr = np.clip(arr.astype(np.float64) * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)
        else:
            lo, hi_f = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = np.clip((arr - lo) / max(hi_f - lo, 1e-12) * 255 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        return np.ascontiguousarray(arr[:, :, :3])
    raise ValueError(f"unexpected image shape {arr.shape}")
