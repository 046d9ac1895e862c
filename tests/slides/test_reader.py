"""Slide reading: formats, resolution from metadata or override, patch folders, low-res reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from radiopath.errors import ConfigError, ImageReadError
from radiopath.slides.reader import (
    FolderSlide,
    ImageSlide,
    OpenSlideSlide,
    composite,
    load_mpp_table,
    lookup_mpp,
    open_slide,
)


def test_svs_resolution_comes_from_metadata(svs_path: Path) -> None:
    with open_slide(svs_path) as s:
        assert isinstance(s, OpenSlideSlide)
        assert s.vendor == "aperio"
        assert s.mpp == pytest.approx(0.499)
        assert s.mpp_source == "metadata"
        assert s.dimensions == (2220, 2967)


def test_override_wins_over_metadata(svs_path: Path) -> None:
    with open_slide(svs_path, mpp_override=0.25) as s:
        assert (s.mpp, s.mpp_source) == (0.25, "override")


def test_implausible_override_is_refused(svs_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a microscope resolution"):
        open_slide(svs_path, mpp_override=72.0)


def test_image_without_resolution_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cells.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 240, np.uint8))
    with pytest.raises(ImageReadError) as err:
        open_slide(path)
    msg = str(err.value)
    assert "cells.png" in msg and "no physical resolution" in msg and "--mpp-table" in msg
    with open_slide(path, mpp_override=0.5) as s:
        assert isinstance(s, ImageSlide) and s.mpp == 0.5 and s.dimensions == (64, 64)


def test_default_dpi_is_not_taken_for_a_resolution(tmp_path: Path) -> None:
    path = tmp_path / "scan.jpg"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(path, dpi=(72, 72))
    with pytest.raises(ImageReadError, match=r"352\.8 µm/px"):
        open_slide(path)


def test_plain_tiff_resolution_tag_is_used(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"  # strip TIFF: OpenSlide cannot open it, so it is an ImageSlide
    tifffile.imwrite(
        path,
        np.full((100, 80, 3), 230, np.uint8),
        resolution=(1e4 / 0.25, 1e4 / 0.25),
        resolutionunit="CENTIMETER",
    )
    with open_slide(path) as s:
        assert isinstance(s, ImageSlide)
        assert s.mpp == pytest.approx(0.25) and s.mpp_source == "metadata"


def test_missing_and_empty_slides(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="slide not found"):
        open_slide(tmp_path / "nope.svs")
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        open_slide(tmp_path / "empty.svs")


def test_patch_folder_is_a_mosaic_read_patch_by_patch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    patches = [rng.integers(0, 255, (50, 70, 3), dtype=np.uint8) for _ in range(5)]
    patches[4] = patches[4][:30, :40]  # a smaller last patch
    for i, p in enumerate(patches):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), p[:, :, ::-1])
    with open_slide(tmp_path, mpp_override=0.5) as s:
        assert isinstance(s, FolderSlide)
        assert s.dimensions == (3 * 70, 2 * 50)  # ceil(sqrt(5)) = 3 per row
        assert s.regions[4] == (70, 50, 40, 30)
        np.testing.assert_array_equal(s.read_region(70, 0, 0, 70, 50), patches[1])
        # a region spanning patch 0 and 1 and the gap below patch 4
        both = s.read_region(60, 40, 0, 20, 20)
        np.testing.assert_array_equal(both[:10, :10], patches[0][40:50, 60:70])
        np.testing.assert_array_equal(both[:10, 10:], patches[1][40:50, 0:10])
        big = s.read_region(100, 90, 0, 20, 20)  # inside cell 4 but beyond its 40x30 patch
        assert (big[:, 10:] == 255).all() and (big[10:, :] == 255).all()


def test_composite_puts_transparent_pixels_on_the_background() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    out = composite(rgba, (250, 251, 252))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[1, 1]) == (250, 251, 252)


def test_lowres_read_matches_shrunk_level0(svs_pyramid: Path, svs_pixels: np.ndarray) -> None:
    with open_slide(svs_pyramid) as s:
        assert s.level_count == 3
        low = s.read_lowres(8.0, chunk=300)  # many chunks, from level 2 (downsample ~4)
    h, w = svs_pixels.shape[:2]
    assert low.shape == (-(-h // 8), -(-w // 8), 3)
    padded = np.full((low.shape[0] * 8, low.shape[1] * 8, 3), 255.0)
    padded[:h, :w] = svs_pixels
    ref = padded.reshape(low.shape[0], 8, low.shape[1], 8, 3).mean(axis=(1, 3))  # exact 8x8 block means
    diff = np.abs(low.astype(float) - ref)
    # JPEG re-encoding, two-step resampling, and OpenSlide placing regions of odd-sized levels
    # with one averaged downsample (4.002 for 4.0 x 4.004: up to 1.5 px drift at the far edge)
    assert diff.mean() < 3.5
    shifted = np.abs(low[:, 1:].astype(float) - ref[:, :-1]).mean()
    assert shifted > 2 * diff.mean()  # one detection pixel off would be clearly worse


def test_best_level_tolerates_odd_pyramid_downsamples(svs_pyramid: Path) -> None:
    with open_slide(svs_pyramid) as s:
        ds = s.level_downsamples
        assert ds[1] != 2.0  # 2967 / 1483: not an exact power of two
        assert s.best_level(2.0) == 1 and s.best_level(1.99) == 0 and s.best_level(100) == 2


def test_mpp_table_lookup_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mpp.csv"
    good.write_text("slide,mpp\nPTC0001,0.25\nscan_b.png,0.5\n", encoding="utf-8")
    table = load_mpp_table(good)
    assert lookup_mpp(table, "/data/x.tiff", "PTC0001") == 0.25
    assert lookup_mpp(table, "/data/scan_b.png", "other") == 0.5
    assert lookup_mpp(table, "/data/c.png", "other") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("slide,mpp\nA,0.25\nB,abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3, column mpp: 'abc'"):
        load_mpp_table(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("slide,mpp\nA,0.25\nA,0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="appears twice"):
        load_mpp_table(dup)
    cols = tmp_path / "cols.csv"
    cols.write_text("name,res\nA,0.25\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs columns 'slide' and 'mpp'"):
        load_mpp_table(cols)
