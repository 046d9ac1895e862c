"""Scan area: found exactly in synthetic screenshots, robust to chrome, honest when absent."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from radiopath.io.images import read_image
from radiopath.ultrasound import ScanAreaConfig, ScanAreaError, UltrasoundConfig, UltrasoundTransform
from radiopath.ultrasound.scan_area import find_scan_area, scan_area_of_file
from support import real_path
from ultrasound.views import SCAN_BOX, MarkedView


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_synthetic_screenshots_give_the_exact_scan_box(marked_views: list[MarkedView]) -> None:
    for view in marked_views:  # three centers (gain, contrast, vendor colours), with and without marks
        for image in (view.clean, view.marked):
            area = find_scan_area(image)
            assert area.found and area.source == "pixels"
            assert area.box == SCAN_BOX
            assert area.mask.sum() == (SCAN_BOX[2] - SCAN_BOX[0]) * (SCAN_BOX[3] - SCAN_BOX[1])


def test_black_borders_side_panel_and_doppler_box_do_not_move_the_scan(
    marked_views: list[MarkedView],
) -> None:
    image = marked_views[1].clean
    x0, y0, x1, y1 = SCAN_BOX
    # black borders of different widths on every side
    padded = cv2.copyMakeBorder(image, 40, 60, 30, 90, cv2.BORDER_CONSTANT, value=0)
    assert find_scan_area(padded).box == (x0 + 30, y0 + 40, x1 + 30, y1 + 40)
    # a flat blue-grey side panel full of parameter text
    panel = np.full((image.shape[0], 180, 3), (40, 50, 70), np.uint8)
    for i in range(13):
        cv2.putText(panel, f"Param {i}: {7 * i}", (8, 26 + 28 * i), 0, 0.5, (220, 220, 220), 1, cv2.LINE_AA)
    assert find_scan_area(np.concatenate([panel, image], axis=1)).box == (x0 + 180, y0, x1 + 180, y1)
    # a colour Doppler box inside the scan and a colour velocity bar outside it
    doppler = image.copy()
    rng = np.random.default_rng(0)
    blob = cv2.GaussianBlur(rng.standard_normal((100, 120)).astype(np.float32), (0, 0), 4) > 0.15
    roi = doppler[150:250, 200:320]
    roi[blob] = (np.array([220, 60, 30]) * rng.uniform(0.6, 1.0, (int(blob.sum()), 1))).astype(np.uint8)
    cv2.rectangle(doppler, (200, 150), (320, 250), (255, 255, 255), 1)
    doppler[60:180, 480:490] = np.linspace([255, 255, 0], [255, 0, 0], 120)[:, None, :].astype(np.uint8)
    assert find_scan_area(doppler).box == SCAN_BOX


def _write_dicom(path: Path, image: np.ndarray, region: tuple[int, int, int, int] | None) -> None:
    """An RGB ultrasound DICOM of ``image``, with one tissue region (inclusive bounds)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = image.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(image).tobytes()
    if region is not None:
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
        item.RegionLocationMinX0, item.RegionLocationMinY0 = region[0], region[1]
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = region[2], region[3]
        item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3
        item.PhysicalDeltaX = item.PhysicalDeltaY = 0.0125
        ds.SequenceOfUltrasoundRegions = Sequence([item])
    ds.save_as(path, enforce_file_format=True)


def test_dicom_regions_are_used_when_they_fit_and_flagged_when_not(
    tmp_path: Path, marked_views: list[MarkedView]
) -> None:
    image = marked_views[0].clean
    # a region narrower than the scan: proof that the tags, not the pixels, decided
    good = tmp_path / "good.dcm"
    _write_dicom(good, image, (100, 60, 399, 299))
    area = scan_area_of_file(read_image(good), good)
    assert (area.source, area.box, area.flags) == ("dicom", (100, 60, 400, 300), [])
    off = ScanAreaConfig(use_dicom_regions=False)
    assert scan_area_of_file(read_image(good), good, off).box == SCAN_BOX
    # a region recorded on a larger original: ignored, flagged, and the pixels decide
    bad = tmp_path / "cropped.dcm"
    _write_dicom(bad, image, (100, 60, 700, 520))
    area = scan_area_of_file(read_image(bad), bad)
    assert area.source == "pixels" and area.box == SCAN_BOX
    assert area.flags == ["dicom_regions_mismatch"] and "do not fit" in area.reason


def test_real_dicom_screenshots() -> None:
    folder = real_path("dicom_us")
    # GE lymph-node screenshot with power Doppler, text above and below the scan: boxes
    # checked by eye on the image (the scan spans x 10..630, y 106..338 at 640x480)
    jpeg2k = scan_area_of_file(read_image(folder / "examples_jpeg2k.dcm"), folder / "examples_jpeg2k.dcm")
    assert jpeg2k.found and iou(jpeg2k.box, (10, 106, 630, 338)) > 0.95
    # the same screen at half size: the text block sits 3 px above the scan and must be trimmed
    small = scan_area_of_file(
        read_image(folder / "examples_rgb_color.dcm"), folder / "examples_rgb_color.dcm"
    )
    assert small.found and iou(small.box, (5, 53, 315, 169)) > 0.93
    # cropped/resized files whose ultrasound regions no longer fit: flagged, pixels used;
    # the phased-array fan is recognised as a sector and its corners blanked
    for name, sector in (("examples_palette.dcm", False), ("examples_ybr_color.dcm", True)):
        area = scan_area_of_file(read_image(folder / name), folder / name)
        assert area.found and "dicom_regions_mismatch" in area.flags
        assert ("sector" in area.flags) == sector
    ybr = folder / "examples_ybr_color.dcm"
    fan = scan_area_of_file(read_image(ybr), ybr)
    x0, y0, x1, y1 = fan.box
    assert fan.mask[y0:y1, x0:x1].mean() < 0.9  # the corners beside the apex are not scan
    assert not fan.mask[y0, x0] and not fan.mask[y0, x1 - 1] and fan.mask[(y0 + y1) // 2, (x0 + x1) // 2]


def test_no_scan_area_is_reported_not_guessed(tmp_path: Path) -> None:
    folder = real_path("dicom_us")
    # an 80x60 epicardial clip entirely covered by colour: no speckle region to find
    path = folder / "ExplVR_BigEnd.dcm"
    image = read_image(path)
    area = scan_area_of_file(image, path)
    assert not area.found and area.source == "none" and area.box == (0, 0, 80, 60)
    assert "less than the 5%" in area.reason
    view = UltrasoundTransform().process(image, source_path=path)
    assert "no_scan_area" in view.flags and not view.ok and view.image.shape == (224, 224, 3)
    raising = UltrasoundTransform(UltrasoundConfig(scan_area=ScanAreaConfig(on_failure="raise")))
    with pytest.raises(ScanAreaError, match=r"ExplVR_BigEnd\.dcm: no ultrasound scan area found"):
        raising(image, source_path=path)
    # a black image and a screen of text only: nothing found, the reason says why
    black = np.zeros((300, 400, 3), np.uint8)
    assert find_scan_area(black).reason == "no textured (speckle-like) region in the image"
    text = black.copy()
    for i in range(10):
        cv2.putText(text, "PATIENT ID 0000  GAIN 55", (10, 25 + 28 * i), 0, 0.6, (255, 255, 255), 1)
    assert not find_scan_area(text).found


def test_ddti_crops_real_text_panels_are_excluded() -> None:
    folder = real_path("ddti_thyroid_us")
    labels = pd.read_csv(folder / "labels.csv")
    areas = {row.image: find_scan_area(read_image(folder / row.image)) for row in labels.itertuples()}
    assert all(a.found for a in areas.values())
    # DDTI images are crops of the scan: nearly all of each is scan
    shares = np.array([a.area_fraction for a in areas.values()])
    assert (shares > 0.85).mean() > 0.95
    # two crops still hold vendor text: a panel below the scan ("IZQ TIRADS 4", from y 168)
    # and a column of settings at the right edge (from x 281); both are left out
    izq = areas["images/338_2(1).png"]
    assert izq.box[3] <= 175 and izq.box[2] == 300 and izq.box[1] == 0
    column = areas["images/284_1(2).png"]
    assert column.box[2] <= 282 and column.box[3] == 300
