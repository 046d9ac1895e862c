"""Scaling image data deeper than 8 bits to uint8 — one rule for every format.

Ultrasound and microscope cameras store 10-, 12- or 14-bit samples in 16-bit containers.
Dividing such data by 65535 (the container's range) squeezes a 12-bit image into 16 grey
levels; dividing by its own min/max throws away the scanner's calibration. Both are wrong.
The rule here, shared by DICOM (``BitsStored``), PNG (``sBIT`` or the used range) and TIFF:
scale by the number of bits the data actually has, ``255 / (2**bits - 1)``.

When the file does not say how many bits are significant, they are inferred from the data's
maximum as the smallest of the usual depths (8, 10, 12, 14, 16) that holds it, so a 12-bit
image keeps its contrast whether it came as DICOM, PNG or TIFF.
"""

from __future__ import annotations

import numpy as np

#: Sample depths cameras and scanners write; inference rounds up to one of them.
COMMON_DEPTHS: tuple[int, ...] = (8, 10, 12, 14, 16)


def significant_bits(arr: np.ndarray) -> int:
    """The smallest usual depth (8, 10, 12, 14, 16, then any up to 64) that holds ``arr``'s maximum."""
    if arr.size == 0:
        return 8
    top = int(arr.max())
    if top <= 0:
        return 8
    need = top.bit_length()
    for bits in COMMON_DEPTHS:
        if need <= bits:
            return bits
    return need


def to_uint8(arr: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Any integer or float sample array → uint8, scaled by its bit depth, shape unchanged.

    Args:
        arr: samples; uint8 passes through untouched.
        bits: significant bits per sample as the file records them (DICOM ``BitsStored``,
            PNG ``sBIT``); ``None`` infers them from the data (:func:`significant_bits`).
            A recorded depth that the data exceeds (a wrong tag) is widened to fit, so
            bright pixels are never clipped.

    Signed data is shifted so its minimum is 0 first; float data, which has no bit depth,
    is scaled by its finite min/max (NaN → 0).
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(arr.dtype, np.floating):
        return _float_to_uint8(arr)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"cannot scale samples of type {arr.dtype} to uint8")
    data = arr.astype(np.int64, copy=False)
    if data.size and int(data.min()) < 0:
        data = data - int(data.min())
    used = significant_bits(data)
    depth = used if bits is None or bits <= 0 else max(int(bits), used)
    if depth <= 8:
        return data.astype(np.uint8)
    top = float((1 << depth) - 1)
    return np.clip(data * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)


def _float_to_uint8(arr: np.ndarray) -> np.ndarray:
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    scaled = (np.where(finite, arr, lo) - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5
    return np.clip(scaled, 0, 255).astype(np.uint8)
