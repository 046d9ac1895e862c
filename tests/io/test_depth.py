"""One bit-depth rule: 10/12-bit data keeps its grey levels whether it comes as PNG, TIFF or DICOM."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from corpus.builders import dicom, with_sbit
from radiopath.io.depth import significant_bits, to_uint8
from radiopath.io.images import read_image


def _ultrasound_like(bits: int) -> np.ndarray:
    """A smooth gradient with speckle, using most of a ``bits``-bit range (like a real export)."""
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    ramp = np.linspace(0.05, 0.95, 256)[None, :] * np.ones((96, 1))
    return np.clip(ramp * top * rng.gamma(4.0, 0.25, ramp.shape), 0, top).astype(np.uint16)


@pytest.mark.parametrize("bits", [10, 12])
def test_deep_grey_keeps_its_levels_and_matches_dicom(tmp_path: Path, bits: int) -> None:
    data = _ultrasound_like(bits)
    Image.fromarray(data).save(tmp_path / "us.png")
    tifffile.imwrite(tmp_path / "us.tif", data)
    dicom(tmp_path / "us.dcm", data, bits_stored=bits)
    png, tif, dcm = (read_image(tmp_path / n)[..., 0] for n in ("us.png", "us.tif", "us.dcm"))
    assert np.array_equal(png, dcm) and np.array_equal(tif, dcm)
    assert len(np.unique(png)) >= 200  # before: a 12-bit PNG became 16 levels (divided by 65535)
    expected = np.clip(data * (255.0 / ((1 << bits) - 1)) + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(png, expected)


def test_sixteen_bit_colour_png_is_not_cut_to_its_top_byte(tmp_path: Path) -> None:
    rgb = np.stack([_ultrasound_like(12)] * 3, axis=2)
    rgb[..., 2] //= 2
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])  # OpenCV writes BGR
    arr = read_image(tmp_path / "c.png")
    assert np.array_equal(arr, to_uint8(rgb, 12))
    assert len(np.unique(arr[..., 0])) >= 200  # Pillow alone gives the top 8 bits: 16 levels


def test_png_sbit_chunk_sets_the_depth(tmp_path: Path) -> None:
    dark = np.arange(64, dtype=np.uint16).reshape(8, 8) * 15  # 12-bit data using only 0..945
    Image.fromarray(dark).save(tmp_path / "plain.png")
    (tmp_path / "sbit.png").write_bytes(with_sbit((tmp_path / "plain.png").read_bytes(), 12))
    inferred = read_image(tmp_path / "plain.png")[..., 0]
    declared = read_image(tmp_path / "sbit.png")[..., 0]
    assert inferred.max() == round(945 * 255 / 1023)  # no sBIT: the used range (10 bits) is the depth
    assert declared.max() == round(945 * 255 / 4095)  # sBIT says 12: a dark image stays dark


def test_scaling_rule() -> None:
    assert significant_bits(np.array([0, 255])) == 8
    assert significant_bits(np.array([256])) == 10
    assert significant_bits(np.array([4095])) == 12
    assert significant_bits(np.array([70000], np.int64)) == 17
    assert to_uint8(np.array([4095], np.uint16), bits=8)[0] == 255  # a wrong tag is widened, never clipped
    assert to_uint8(np.array([-1024, 3071], np.int16)).tolist() == [0, 255]  # signed: shifted to 0
    assert to_uint8(np.array([np.nan, 0.0, 1.0])).tolist() == [0, 0, 255]
    assert to_uint8(np.array([True, False])).tolist() == [255, 0]
    u8 = np.arange(10, dtype=np.uint8)
    assert to_uint8(u8) is u8
