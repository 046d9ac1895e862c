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

from radiopath.errors import ImageReadError

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
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ImageReadError(path, f"not a readable DICOM file ({type(exc).__name__})", _PHI_FIX) from None


def dicom_metadata(path: str | Path) -> dict[str, Any]:
    """Whitelisted technical tags of a DICOM file (never names, IDs, dates or free text)."""
    ds = _read_dataset(Path(path), stop_before_pixels=True)
    out: dict[str, Any] = {}
    for tag in SAFE_TAGS:
        value = ds.get(tag)
        if value is not None:
            out[tag] = value if isinstance(value, (int, float)) else str(value)
    out["HasUltrasoundRegions"] = "SequenceOfUltrasoundRegions" in ds
    return out


def ultrasound_regions(path: str | Path) -> list[dict[str, float]]:
    """The Sequence of Ultrasound Regions (0018,6011): pixel boxes and physical spacing.

    Each region: ``x0, y0, x1, y1`` (inclusive pixel bounds), ``spacing_x``/``spacing_y``
    (physical units per pixel, usually cm) and ``data_type`` (1 = tissue, 2 = colour flow…).
    Empty when the file has none.
    """
    ds = _read_dataset(Path(path), stop_before_pixels=True)
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
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
        except AttributeError:
            continue
    return regions


def choose_frame(n_frames: int, representative: int | None) -> int:
    """Zero-based frame index by the module rule: representative frame, else the middle one."""
    if representative is not None and 1 <= representative <= n_frames:
        return representative - 1
    return n_frames // 2


def read_dicom(path: str | Path, frame: int | None = None) -> np.ndarray:
    """Decode one frame of a DICOM file to an ``(H, W, 3)`` uint8 RGB array.

    Args:
        path: the ``.dcm`` file.
        frame: zero-based frame of a multi-frame file; ``None`` applies the module rule.

    Raises:
        ImageReadError: not DICOM, no pixel data, unsupported compression, truncated data,
            or ``frame`` out of range. Messages never contain patient-identifying values.
    """
    from pydicom.pixels import apply_color_lut, pixel_array

    path = Path(path)
    ds = _read_dataset(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(
            path, "DICOM file has no pixel data (a report or structured document?)", _PHI_FIX
        )
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
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
            "check the file is complete; JPEG/JPEG 2000 need pylibjpeg installed",
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    arr = _to_uint8(np.asarray(arr), int(ds.get("BitsStored", 8) or 8))
    if photometric == "MONOCHROME1":
        arr = 255 - arr
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, :3])
    raise ImageReadError(path, f"unexpected DICOM pixel layout {arr.shape}", _PHI_FIX)


def _to_uint8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """Scale integer data by its stored bit depth (not by min/max, so contrast is kept)."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        return np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype == np.uint16 and arr.ndim == 3 and arr.max() > 255:  # 16-bit colour LUTs
        return (arr >> 8).astype(np.uint8)
    bits = bits_stored if 0 < bits_stored <= 16 else 16
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        arr = arr - arr.min()
    scale = 255.0 / float((1 << bits) - 1)
    return np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
