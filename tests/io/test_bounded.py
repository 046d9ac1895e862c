"""Decoding is bounded: sizes come from headers, huge images are refused before decoding,
previews decode reduced — so a 20,000-px file costs milliseconds, not gigabytes."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image, ImageFile

from corpus.builders import dicom, jpeg_with_size, noise_png, png_header_only
from radiopath.errors import ConfigError, ImageReadError, ImageTooLargeError
from radiopath.io.images import fit_within, image_size, read_image
from radiopath.io.limits import DEFAULT_MAX_PIXELS, ENV_VAR, max_image_pixels


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pixel decode (Pillow, tifffile, pydicom) fails the test."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", forbidden)
    monkeypatch.setattr("pydicom.pixels.pixel_array", forbidden)


def test_sizes_come_from_headers_for_every_format(tmp_path: Path, no_decoding: None) -> None:
    rgb = np.zeros((30, 50, 3), np.uint8)
    for fmt, name in (("PNG", "a.png"), ("JPEG", "a.jpg"), ("GIF", "a.gif"), ("BMP", "a.bmp")):
        Image.fromarray(rgb).save(tmp_path / name, format=fmt)
    tifffile.imwrite(tmp_path / "a.tif", rgb, photometric="rgb")
    dicom(tmp_path / "a.dcm", np.zeros((30, 50), np.uint8))
    for name in ("a.png", "a.jpg", "a.gif", "a.bmp", "a.tif", "a.dcm"):
        assert image_size(tmp_path / name) == (50, 30), name
    assert image_size(png_header_only(tmp_path / "huge.png", 20_000, 20_000)) == (20_000, 20_000)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff", "dicom"])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path, no_decoding: None, fmt: str) -> None:
    if fmt == "png":
        path = png_header_only(tmp_path / "bomb.png", 50_000, 50_000)
    elif fmt == "jpeg":
        path = jpeg_with_size(tmp_path / "bomb.jpg", 50_000, 50_000)
    elif fmt == "tiff":
        path = tmp_path / "bomb.tif"
        tifffile.imwrite(path, shape=(50_000, 50_000), dtype=np.uint8)
    else:
        path = dicom(tmp_path / "bomb.dcm", None, rows=50_000, columns=50_000, PixelData=b"\x00" * 64)
    with pytest.raises(ImageTooLargeError) as info:
        read_image(path)
    msg = str(info.value)
    assert path.name in msg and "50000x50000 px" in msg and f"{DEFAULT_MAX_PIXELS:,}" in msg
    assert ENV_VAR in msg and "max_pixels=" in msg  # the option that lifts the limit


def test_the_pixel_budget_is_an_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = noise_png(tmp_path / "small.png", 0, (48, 40))  # 1,920 px
    monkeypatch.setenv(ENV_VAR, "1000")
    with pytest.raises(ImageTooLargeError, match="exceeds the limit of 1,000 pixels"):
        read_image(path)
    assert read_image(path, max_pixels=2000).shape == (40, 48, 3)  # the call's option wins
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ConfigError, match=f"{ENV_VAR}='lots' is not a positive number"):
        max_image_pixels()
    monkeypatch.setenv(ENV_VAR, "2e8")
    assert max_image_pixels() == 200_000_000


def test_an_image_slide_without_resolution_is_refused_without_decoding(
    tmp_path: Path, no_decoding: None
) -> None:
    from radiopath.slides.reader import open_slide

    path = png_header_only(tmp_path / "slide.png", 20_000, 20_000)
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="records no physical resolution"):
        open_slide(path)
    assert time.perf_counter() - start < 2.0
    with open_slide(path, mpp_override=0.5) as slide:  # opening is lazy; pixels wait for a read
        assert slide.dimensions == (20_000, 20_000)


def test_max_side_decodes_reduced(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    big = cv2.resize(rng.integers(0, 255, (60, 90), np.uint8), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(big).save(tmp_path / "big.png", compress_level=1)
    full_png = read_image(tmp_path / "big.png")
    small_png = read_image(tmp_path / "big.png", max_side=300)
    assert small_png.shape == (200, 300, 3)
    assert np.abs(small_png.astype(int) - fit_within(full_png, 300)).max() <= 2
    small_jpg = read_image(tmp_path / "big.jpg", max_side=300)  # scaled while decoding (JPEG draft)
    assert max(small_jpg.shape[:2]) <= 300
    assert np.abs(small_jpg.astype(int) - fit_within(full_png, 300)[: small_jpg.shape[0]]).mean() < 4


def test_preview_of_a_9000_px_view_takes_seconds(tmp_path: Path) -> None:
    """Regression: the preview processed a 9,000-px screenshot at full size (8 minutes)."""
    from radiopath.ultrasound.preview import write_preview

    rng = np.random.default_rng(0)
    scan = cv2.resize(
        rng.integers(0, 255, (300, 300), np.uint8), (9000, 9000), interpolation=cv2.INTER_LINEAR
    )
    Image.fromarray(scan).save(tmp_path / "huge.jpg", quality=85)
    del scan
    row = {"patient_id": "P1", "center": "A", "lnm": 1, "us_1": str(tmp_path / "huge.jpg"), "us_2": None}
    row |= {"us_1_mask": None, "us_2_mask": None, "us_1_box": (3000, 3000, 6000, 6000), "us_2_box": None}
    start = time.perf_counter()
    result = write_preview(pd.DataFrame([row]), tmp_path / "preview", patients=1)
    assert time.perf_counter() - start < 60
    table = pd.read_csv(result.table)
    assert result.errors == 0 and table.loc[0, "region"] == "box"
    assert max(map(int, table.loc[0, "crop_box"].split(","))) <= 1600  # processed at 1600 px, not 9000


def test_a_reduced_view_gets_its_box_scaled(tmp_path: Path) -> None:
    from radiopath.ultrasound.transform import UltrasoundTransform, load_view

    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (2000, 2400), np.uint8)).save(tmp_path / "v.png", compress_level=1)
    row = {
        "patient_id": "P1",
        "center": "A",
        "us_1": str(tmp_path / "v.png"),
        "us_1_box": (600, 400, 1200, 1000),
    }
    view = load_view(row, "us_1", UltrasoundTransform(), details=True, max_side=600)
    assert view.scan.mask.shape == (500, 600)
    assert view.region.nodule == (150, 100, 300, 250)


def test_validate_reads_only_the_header_of_a_huge_cytology_image(tmp_path: Path, no_decoding: None) -> None:
    from radiopath.cohort import validate_manifest

    png_header_only(tmp_path / "slide.png", 20_000, 20_000)  # 400 MP if it were decoded
    rows = [
        {
            "patient_id": f"P{i}",
            "center": "A",
            "cohort": "development",
            "lnm": str(i % 2),
            "cytology": "slide.png",
        }
        for i in range(2)
    ]
    rows[1]["cytology"] = ""
    rows[1]["us_1"] = ""
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    start = time.perf_counter()
    report = validate_manifest(tmp_path / "m.csv", n_folds=1)
    assert time.perf_counter() - start < 5
    (problem,) = [p for p in report.problems if p.row == 1]
    assert problem.severity == "warning" and "'slide.png' records no physical resolution" in problem.message
    assert "--mpp-table" in problem.fix
