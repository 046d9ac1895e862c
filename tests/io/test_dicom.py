"""DICOM ultrasound: every photometric interpretation and transfer syntax, frames, privacy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, pixel_array

from radiopath.errors import ImageReadError
from radiopath.io.dicom import choose_frame, dicom_metadata, read_dicom, ultrasound_regions
from radiopath.io.images import read_image
from support import real_path

FILES = [
    "ExplVR_BigEnd.dcm",
    "examples_jpeg2k.dcm",
    "examples_palette.dcm",
    "examples_rgb_color.dcm",
    "examples_ybr_color.dcm",
]


@pytest.mark.parametrize("name", FILES)
def test_every_real_dicom_reads_as_rgb_matching_pydicom(name: str) -> None:
    path = real_path("dicom_us", name)
    ds = pydicom.dcmread(path)
    arr = read_image(path)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[:2] == (ds.Rows, ds.Columns)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    ref = pixel_array(ds, index=n // 2 if n > 1 else None, as_rgb=True)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        ref = apply_color_lut(ref, ds)
        if ref.dtype != np.uint8:
            ref = (ref >> 8).astype(np.uint8) if ref.max() > 255 else ref.astype(np.uint8)
    assert np.array_equal(arr, ref)


def test_palette_colour_is_expanded_to_colour() -> None:
    arr = read_image(real_path("dicom_us", "examples_palette.dcm"))
    assert (arr[..., 0] != arr[..., 2]).any()  # the palette has colour (blue banner)


def test_ybr_cine_uses_the_middle_frame_by_default_and_any_frame_on_request() -> None:
    path = real_path("dicom_us", "examples_ybr_color.dcm")
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == 30 and "RepresentativeFrameNumber" not in ds
    all_frames = pixel_array(ds, as_rgb=True)
    assert np.array_equal(read_image(path), all_frames[15])
    assert np.array_equal(read_image(path, frame=0), all_frames[0])
    assert not np.array_equal(all_frames[0], all_frames[15])
    with pytest.raises(ImageReadError, match="frame 30"):
        read_image(path, frame=30)


def test_frame_rule() -> None:
    assert choose_frame(30, None) == 15
    assert choose_frame(30, 4) == 3  # representative frame numbers are 1-based
    assert choose_frame(30, 99) == 15  # out of range → rule falls back to the middle frame
    assert choose_frame(1, None) == 0


def test_ultrasound_regions_are_parsed() -> None:
    regions = ultrasound_regions(real_path("dicom_us", "examples_palette.dcm"))
    assert regions and all(r["x1"] > r["x0"] and r["y1"] > r["y0"] for r in regions)
    assert ultrasound_regions(real_path("dicom_us", "examples_rgb_color.dcm")) == []


def _identifying_values(path: Path) -> list[str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    values = []
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "ReferringPhysicianName"):
        v = str(ds.get(tag, "") or "").strip("^ ")
        if len(v) >= 3 and v.lower() != "anonymized":
            values.append(v)
    return values


def test_patient_identifying_tags_never_reach_logs_errors_or_metadata(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phi: list[str] = []
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    for name in FILES:
        path = real_path("dicom_us", name)
        phi += _identifying_values(path)
        read_image(path)
        outputs.append(repr(dicom_metadata(path)))
        outputs.append(repr(ultrasound_regions(path)))
        # the error path too: a truncated copy of a file that carries a patient name
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(path.read_bytes()[:2000])
        try:
            read_image(cut)
        except ImageReadError as exc:
            outputs.append(str(exc))
    # plus a file we make with an unmistakable name and ID
    ds = pydicom.dcmread(real_path("dicom_us", "examples_rgb_color.dcm"))
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-9988776"
    mine = tmp_path / "named.dcm"
    ds.save_as(mine)
    phi += ["Doe^Jane", "Doe", "MRN-9988776"]
    read_dicom(mine)
    outputs.append(repr(dicom_metadata(mine)))
    assert {"13US1", "CompressedSamples^US1", "MRN-9988776"} <= set(phi)
    text = "\n".join(outputs) + "\n" + caplog.text
    leaked = [v for v in phi if v in text]
    assert leaked == []
