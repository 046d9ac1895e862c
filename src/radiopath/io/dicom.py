"""DICOM ultrasound → RGB uint8, without ever exposing patient-identifying tags.

Handles what ultrasound scanners write: RGB, PALETTE COLOR, YBR_FULL(_422)/YBR_RCT/YBR_ICT
(converted to RGB by pydicom), MONOCHROME1/2, JPEG baseline, JPEG 2000 (via pylibjpeg),
big-endian, and multi-frame cine loops.

Multi-frame rule (documented, overridable with ``frame=``): use the frame named by
*Representative Frame Number* (0028,6010) when the file has one, otherwise the middle frame
of the loop. The first frames of a cine are often the probe settling; the middle frame is the
usual choice when no representative frame was marked.

Privacy: this module never logs or formats a :class:`pydicom.Dataset` (its ``repr`` contains
the patient's name). Only the whitelisted technical tags in :data:`SAFE_TAGS` leave it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from radiopath.errors import ImageReadError, RadiopathError
from radiopath.io.depth import to_uint8
from radiopath.io.limits import check_pixels

log = logging.getLogger(__name__)

#: Technical tags that may appear in logs, provenance and reports. Nothing else does.
SAFE_TAGS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "SamplesPerPixel",
    "RepresentativeFrameNumber",
)

_PHI_FIX = "re-export the image from the scanner or PACS, or convert it to PNG"


def is_dicom(path: Path, head: bytes) -> bool:
    """True when ``head`` (the first 132+ bytes) carries the DICM preamble or ``path`` ends .dcm."""
    return head[128:132] == b"DICM" or path.suffix.lower() in {".dcm", ".dicom"}


def _read_dataset(path: Path, stop_before_pixels: bool = False) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    except MemoryError:
        raise ImageReadError(path, "DICOM header declares more data than fits in memory", _PHI_FIX) from None
    except Exception as exc:  # pydicom raises many types for damaged files; type name only (PHI)
        raise ImageReadError(path, f"not a readable DICOM file ({type(exc).__name__})", _PHI_FIX) from None


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _image_header(path: Path) -> tuple[Any, int, int]:
    """The dataset without pixel data, and its ``Rows``/``Columns``; errors for non-images."""
    ds = _read_dataset(path, stop_before_pixels=True)
    try:
        rows, cols = ds.get("Rows"), ds.get("Columns")
        if rows is None or cols is None:
            if not _has_preamble(path) and "SOPClassUID" not in ds:
                raise ImageReadError(
                    path, "not a DICOM file (no DICM preamble, no DICOM image tags)", _PHI_FIX
                )
            raise ImageReadError(
                path,
                "DICOM file holds no image (no Rows/Columns: a report or structured document?)",
                _PHI_FIX,
            )
        rows, cols = int(rows), int(cols)
    except RadiopathError:
        raise
    except Exception as exc:  # a damaged Rows/Columns element
        raise ImageReadError(
            path, f"DICOM image size tags are damaged ({type(exc).__name__})", _PHI_FIX
        ) from None
    if rows <= 0 or cols <= 0:
        raise ImageReadError(path, f"DICOM image size is {cols}x{rows} px", _PHI_FIX)
    return ds, rows, cols


def dicom_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of a DICOM image from its header (pixel data is not read)."""
    _, rows, cols = _image_header(Path(path))
    return cols, rows


def dicom_metadata(path: str | Path) -> dict[str, Any]:
    """Whitelisted technical tags of a DICOM file (never names, IDs, dates or free text)."""
    path = Path(path)
    ds = _read_dataset(path, stop_before_pixels=True)
    out: dict[str, Any] = {}
    for tag in SAFE_TAGS:
        try:
            value = ds.get(tag)
        except Exception:  # a damaged element is left out rather than reported with its value
            continue
        if value is not None:
            out[tag] = value if isinstance(value, (int, float)) else str(value)
    out["HasUltrasoundRegions"] = "SequenceOfUltrasoundRegions" in ds
    return out


def ultrasound_regions(path: str | Path) -> list[dict[str, float]]:
    """The Sequence of Ultrasound Regions (0018,6011): pixel boxes and physical spacing.

    Each region: ``x0, y0, x1, y1`` (inclusive pixel bounds), ``spacing_x``/``spacing_y``
    (physical units per pixel, usually cm) and ``data_type`` (1 = tissue, 2 = colour flow…).
    Empty when the file has none; damaged regions are skipped.
    """
    ds = _read_dataset(Path(path), stop_before_pixels=True)
    regions = []
    try:
        items = list(ds.get("SequenceOfUltrasoundRegions", []) or [])
    except Exception:  # a damaged sequence: no usable regions
        items = []
    for item in items:
        try:
            regions.append(
                {
                    "x0": int(item.RegionLocationMinX0),
                    "y0": int(item.RegionLocationMinY0),
                    "x1": int(item.RegionLocationMaxX1),
                    "y1": int(item.RegionLocationMaxY1),
                    "spacing_x": float(item.get("PhysicalDeltaX", 0.0) or 0.0),
                    "spacing_y": float(item.get("PhysicalDeltaY", 0.0) or 0.0),
                    "data_type": int(item.get("RegionDataType", 0) or 0),
                }
            )
        except Exception:  # missing or damaged elements in one region
            continue
    return regions


def choose_frame(n_frames: int, representative: int | None) -> int:
    """Zero-based frame index by the module rule: representative frame, else the middle one."""
    if representative is not None and 1 <= representative <= n_frames:
        return representative - 1
    return n_frames // 2


def read_dicom(path: str | Path, frame: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Decode one frame of a DICOM file to an ``(H, W, 3)`` uint8 RGB array.

    The header is read first (without pixel data) and the frame size checked against the
    pixel budget (:mod:`radiopath.io.limits`) before anything is decoded.

    Args:
        path: the ``.dcm`` file.
        frame: zero-based frame of a multi-frame file; ``None`` applies the module rule.
        max_pixels: pixel budget (default: :func:`radiopath.io.limits.max_image_pixels`).

    Raises:
        ImageTooLargeError: the frame has more pixels than the budget.
        ImageReadError: not DICOM, no pixel data, unsupported compression, truncated data,
            damaged tags, or ``frame`` out of range. Messages never contain patient-identifying
            values (only exception type names).
    """
    path = Path(path)
    _, rows, cols = _image_header(path)
    check_pixels(path, cols, rows, max_pixels)
    ds = _read_dataset(path)
    try:
        return _decode(path, ds, frame)
    except RadiopathError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this DICOM image", _PHI_FIX) from None
    except Exception as exc:  # damaged tags surface lazily, on first access
        raise ImageReadError(path, f"DICOM tags are damaged ({type(exc).__name__})", _PHI_FIX) from None


def _decode(path: Path, ds: Any, frame: int | None) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, pixel_array

    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(
            path, "DICOM file has no pixel data (a report or structured document?)", _PHI_FIX
        )
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames < 1:
        raise ImageReadError(path, f"DICOM NumberOfFrames is {n_frames}", _PHI_FIX)
    if frame is None:
        rep = ds.get("RepresentativeFrameNumber")
        index = choose_frame(n_frames, int(rep) if rep is not None else None)
    else:
        if not 0 <= frame < n_frames:
            raise ImageReadError(
                path,
                f"frame {frame} requested but the file has {n_frames} frame(s)",
                f"choose a frame between 0 and {n_frames - 1}",
            )
        index = frame
    try:
        arr = pixel_array(ds, index=index if n_frames > 1 else None, as_rgb=True)
    except Exception as exc:  # pydicom raises many types for bad pixel data
        # type name only: pydicom messages can quote element values
        raise ImageReadError(
            path,
            f"DICOM pixel data cannot be decoded ({type(exc).__name__})",
            "check the file is complete and its transfer syntax matches its data; "
            "JPEG/JPEG 2000 need pylibjpeg installed",
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        if arr.dtype == np.uint16:  # LUT entries are 16-bit: their high byte is the 8-bit colour
            arr = (arr >> 8).astype(np.uint8)
    arr = to_uint8(np.asarray(arr), int(ds.get("BitsStored", 8) or 8))
    if photometric == "MONOCHROME1":
        arr = 255 - arr
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, :3])
    raise ImageReadError(path, f"unexpected DICOM pixel layout {arr.shape}", _PHI_FIX)
